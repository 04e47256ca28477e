"""The app's files on disk: its per-request result folders and what Gradio caches for it.

Both are bounded while the app runs and removed when it exits:

- results are written into a folder per request under one temporary folder of the
  process (:class:`ResultFolders`); Gradio copies them into its cache as soon as the
  handler yields them, so a run's folder is removed once the run has ended and the folder
  is older than a few seconds;
- Gradio's cache of this app (uploads, copies of results) is swept by
  :class:`CacheSweeper`: files older than an age go, and the oldest go first while the
  rest are over a byte budget. Uploads arrive without any request
  (``POST /gradio_api/upload``), so a timer drives the sweeps
  (:func:`repeat_in_background`), not the requests;
- the examples' results, cached at their first click, live in a folder of this process
  (:func:`examples_cache`), not Gradio's default ``.gradio/cached_examples`` in the
  working directory, which outlives the process: there a later run with other weights
  (retrained, an SR_*_MODEL override, the tests' tiny models) would show the old results.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr

logger = logging.getLogger(__name__)


class ResultFolders:
    """Per-request result folders under one folder of this process, removed at exit;
    :meth:`prune` removes those older than ``max_age_s`` but the ones :meth:`held`."""

    def __init__(self, max_age_s: float):
        self.max_age_s = max_age_s
        self._root: Path | None = None
        self._held: set[Path] = set()
        self._lock = threading.Lock()

    def new(self) -> Path:
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="sr-models-app-"))
                atexit.register(shutil.rmtree, self._root, True)
            self._prune()
            return Path(tempfile.mkdtemp(prefix="request-", dir=self._root))

    @contextlib.contextmanager
    def held(self) -> Iterator[Path]:
        """A new folder that is not pruned until the block ends: a run that shows its results
        as they come writes into its folder for as long as it runs (a HAT pass may take
        minutes), longer than ``max_age_s`` after its first file."""
        folder = self.new()
        with self._lock:
            self._held.add(folder)
        try:
            yield folder
        finally:
            with self._lock:
                self._held.discard(folder)

    def prune(self) -> None:
        with self._lock:
            if self._root is not None:
                self._prune()

    def _prune(self) -> None:
        cutoff = time.time() - self.max_age_s
        for folder in self._root.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if folder not in self._held and folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def examples_cache():
    """While gr.Examples are made, their cache (``GRADIO_EXAMPLES_CACHE``, which Gradio reads
    then) is a new folder of this process, removed at exit; a folder set by the user stays theirs."""
    if os.environ.get("GRADIO_EXAMPLES_CACHE"):
        yield
        return
    folder = tempfile.mkdtemp(prefix="sr-models-app-examples-")
    atexit.register(shutil.rmtree, folder, True)
    os.environ["GRADIO_EXAMPLES_CACHE"] = folder
    try:
        yield
    finally:
        del os.environ["GRADIO_EXAMPLES_CACHE"]


class CacheSweeper:
    """Deletes what Gradio cached for one app (results, uploads): files older than
    ``max_age_s``, then the oldest while the rest hold more than ``max_bytes``; all of it
    at exit. Example files (``keep_in_cache``) stay.

    This replaces ``gr.Blocks(delete_cache=...)``, whose sweep (Gradio 6.31) iterates the
    live file sets that requests add to: under steady traffic it stops for good with
    "Set changed size during iteration" and the cache grows again (seen with
    benchmarks/app_soak.py). This one iterates snapshots. A file's age is its ctime: when
    Gradio moved or copied it into the cache (a copy keeps the source's mtime).
    """

    def __init__(self, blocks: gr.Blocks, max_age_s: float, max_bytes: float):
        self.blocks, self.max_age_s, self.max_bytes = blocks, max_age_s, max_bytes
        self._lock = threading.Lock()
        atexit.register(self.sweep, -1)

    def sweep_due(self) -> int:
        """Apply the app's age and size limits."""
        return self.sweep(self.max_age_s, self.max_bytes)

    def sweep(self, max_age_s: float, max_bytes: float = float("inf")) -> int:
        """Delete the cached files older than ``max_age_s``, then the oldest others while
        they hold more than ``max_bytes``; returns how many were deleted."""
        with self._lock:
            files = self._cached_files()
            total, cutoff, removed = sum(size for _, size in files.values()), time.time() - max_age_s, 0
            for path, (ctime, size) in sorted(files.items(), key=lambda item: item[1][0]):  # oldest first
                if ctime >= cutoff and total <= max_bytes:
                    break
                self._remove(path)
                total, removed = total - size, removed + 1
            return removed

    def _cached_files(self) -> dict[str, tuple[float, int]]:
        """{path: (ctime, bytes)} of the cached files but the examples; paths whose file
        is gone are dropped from the file sets."""
        keep = set().union(*(getattr(block, "keep_in_cache", set()) for block in self.blocks.blocks.values()))
        files = {}
        for path in set().union(*self.blocks.temp_file_sets) - keep:  # a snapshot: requests add to the sets
            try:
                stat = os.lstat(path)
            except FileNotFoundError:
                self._forget(path)
                continue
            files[path] = (stat.st_ctime, stat.st_size)
        return files

    def _remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        self._forget(path)
        folder = os.path.dirname(path)
        if os.path.realpath(folder) != os.path.realpath(self.blocks.GRADIO_CACHE):  # Gradio's folder per content hash
            with contextlib.suppress(OSError):
                os.rmdir(folder)

    def _forget(self, path: str) -> None:
        for file_set in self.blocks.temp_file_sets:
            file_set.discard(path)


def repeat_in_background(every_s: float, *tasks: Callable[[], object]) -> threading.Event:
    """Run ``tasks`` every ``every_s`` seconds in a daemon thread until the returned event
    is set. A task that fails is logged and runs again next time."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            for task in tasks:
                try:
                    task()
                except Exception:  # noqa: BLE001 -- one failed sweep must not end the sweeping
                    logger.exception("background task %s failed", getattr(task, "__qualname__", task))

    threading.Thread(target=loop, name="sr-models-app-sweeper", daemon=True).start()
    return stop
