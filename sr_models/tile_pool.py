"""Tiles side by side on the CPU: worker threads that each run torch on one core.

On a CPU, one tile's forward pass split across cores (torch's intra-op threads) leaves
cores waiting in its many small operations (a softmax over 8x8 windows, a layer norm over
48 channels, the Python between them); two tiles at once, each on one core, keep both
busy. HAT-small x4, bf16 autocast, 2 cores, against the same tiles one after the other on
2 threads: nine 184-px tiles (the app's 512x512 case) 0.98-1.16x faster, four 1.08x, on a
noisy shared machine (docs/performance.md, section 9).

Torch reads its intra-op thread count once per thread, from a process-wide default, the
first time that thread asks for it. A worker therefore sets the default to 1 and takes it
at once; the pool's creator waits until every worker has, then puts the default back.
Only a thread that asks for its count for the very first time inside that instant would
start with one thread. The pools live as long as the process (their threads idle between
tiles): creating one per call would repeat that dance, and each ``set_num_threads`` also
empties oneDNN's cache of compiled kernels.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import torch

_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def single_threaded_pool(workers: int) -> ThreadPoolExecutor:
    """The process's pool of ``workers`` threads whose torch operations run on one thread."""
    with _POOLS_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = _start_pool(workers)
        return _POOLS[workers]


def _start_pool(workers: int) -> ThreadPoolExecutor:
    default = torch.get_num_threads()
    all_started = threading.Barrier(workers + 1)

    def take_one_thread() -> None:
        torch.set_num_threads(1)
        torch.get_num_threads()  # the first ask: this thread keeps 1 from now on
        all_started.wait()

    pool = ThreadPoolExecutor(workers, thread_name_prefix="sr-models-tile")
    # Each task blocks until all have started, so the pool starts one thread per task.
    for _ in range(workers):
        pool.submit(take_one_thread)
    all_started.wait()
    torch.set_num_threads(default)
    return pool


def in_callers_modes(fn):
    """``fn`` wrapped to run in another thread under this thread's grad, inference and CPU
    autocast modes (each thread has its own)."""
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
    autocast, autocast_dtype = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    def run(*args):
        with torch.inference_mode(inference), torch.set_grad_enabled(grad), \
                torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast):
            return fn(*args)
    return run


def map_in_order(pool: ThreadPoolExecutor, fn, items, ahead: int):
    """``fn(item)`` for each item, computed in ``pool`` and yielded in the items' order, with
    at most ``ahead + 1`` results computed or waiting at a time (each may be a large tensor).
    When a call fails its error is raised here, and the calls not yet started are cancelled."""
    pending = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
