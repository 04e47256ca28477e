"""Peak memory and time of one HAT training step, gradient checkpointing off vs on.

A step: forward on a (B, 3, s, s) LR batch, L1 loss against the (B, 3, 4s, 4s) HR batch,
backward, Adam step, ``zero_grad(set_to_none=True)`` (so gradients are allocated inside the
step, as in a training loop).

How memory is measured (CPU): every run is a fresh subprocess. It builds the model and
the optimizer, runs one warm-up step (Adam's state, oneDNN primitives and the gather
plans are allocated there), resets the kernel's peak-RSS mark (``/proc/self/clear_refs``),
reads its RSS, runs the measured steps and reads the peak again (``VmHWM``). Reported:

- ``step MB``: peak RSS during the measured steps minus the RSS before them: what the
  step itself adds (activations kept for backward, gradients, temporaries);
- ``process MB``: the process's peak RSS during the measured steps (Python, torch,
  weights and Adam state included).

glibc would otherwise keep freed tensors of up to 32 MB in its heap, so the RSS before a
step would already hold the previous step's activations; the child therefore runs with
``MALLOC_MMAP_THRESHOLD_=65536``, which maps every larger allocation on its own and
returns it on free, so RSS follows the live tensors. The same setting applies to both
variants. Children alternate off / on for ``--repeats`` rounds; medians are reported.

Time is measured separately, in this process under the normal allocator (page-faulting
every large allocation would distort it): one model, checkpointing switched off and on
in turn for ``--time-steps`` rounds after a warm-up step of each; the ratio reported is
the median of the per-round ratios.

    python -m benchmarks.train_memory                          # HAT-S x4, batch 4, LR 64², 3 rounds
    python -m benchmarks.train_memory --preset hat-small --repeats 1 --steps 1 --time-steps 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from benchmarks.child import run_child
from benchmarks.machine import describe
from benchmarks.peak_rss import peak_rss_mib, reset_peak, rss_mib

MMAP_THRESHOLD = "65536"


def make_step(preset: str, batch: int, lr_size: int, attn_impl: str):
    """A HAT model, Adam and random patches; returns step(checkpointing) -> seconds of one
    optimizer step (forward, L1 loss, backward, update)."""
    import torch

    from sr_models import HAT

    torch.manual_seed(0)
    model = HAT.from_preset(preset, upscale=4, attn_impl=attn_impl).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.99))
    lr = torch.rand(batch, 3, lr_size, lr_size)
    hr = torch.rand(batch, 3, 4 * lr_size, 4 * lr_size)

    def step(checkpointing: bool) -> float:
        model.set_gradient_checkpointing(checkpointing)
        start = time.perf_counter()
        torch.nn.functional.l1_loss(model(lr), hr).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    return step


def measure(preset: str, batch: int, lr_size: int, checkpointing: bool, steps: int, attn_impl: str) -> dict:
    """In the child: one warm-up step, then ``steps`` measured steps."""
    step = make_step(preset, batch, lr_size, attn_impl)
    warmup = step(checkpointing)
    reset_peak()
    before = rss_mib()
    times = [step(checkpointing) for _ in range(steps)]
    peak = peak_rss_mib()
    return {"preset": preset, "batch": batch, "lr_size": lr_size, "checkpointing": checkpointing,
            "attn_impl": attn_impl, "step_mb": peak - before, "process_mb": peak,
            "rss_before_step_mb": before, "step_s": statistics.median(times), "warmup_s": warmup}


def measure_in_child(args, checkpointing: bool) -> dict:
    """:func:`measure` in a fresh process under the mmap threshold (see the module docstring)."""
    argv = ["--preset", args.preset, "--batch", str(args.batch), "--lr-size", str(args.lr_size),
            "--steps", str(args.steps), "--attn-impl", args.attn_impl]
    argv += ["--checkpointing"] if checkpointing else []
    row = run_child("benchmarks.train_memory", argv, env={"MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD})
    if "error" in row:  # every row is needed for the medians
        raise SystemExit(f"train_memory: child failed: {row['error']}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="hat-s")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1, help="measured steps per child, after one warm-up step")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of (off, on) memory children (0: none)")
    parser.add_argument("--time-steps", type=int, default=3, help="rounds of (off, on) timed steps (0: none)")
    parser.add_argument("--attn-impl", default="sdpa", choices=["sdpa", "math"])
    parser.add_argument("--json", default=None)
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.preset, args.batch, args.lr_size, args.checkpointing, args.steps,
                                 args.attn_impl)))
        return

    print(f"# HAT training step, {args.preset} x4, batch {args.batch}, LR {args.lr_size}², attn_impl="
          f"{args.attn_impl}, Adam, float32; {describe()}")
    print(f"{'round':>5} {'checkpointing':>13} {'step MB':>8} {'process MB':>10}")
    rows = []
    for r in range(args.repeats):
        for checkpointing in (False, True):
            row = measure_in_child(args, checkpointing)
            rows.append(row)
            print(f"{r:>5} {'on' if checkpointing else 'off':>13} {row['step_mb']:>8.0f} {row['process_mb']:>10.0f}",
                  flush=True)

    def med(key, on):
        return statistics.median(row[key] for row in rows if row["checkpointing"] == on)

    if rows:  # --repeats 0 measures time only
        print(f"\nmemory (median of {args.repeats}): off {med('step_mb', False):.0f} MB step / "
              f"{med('process_mb', False):.0f} MB process; on {med('step_mb', True):.0f} MB step / "
              f"{med('process_mb', True):.0f} MB process")
        print(f"checkpointing on / off: step memory {med('step_mb', True) / med('step_mb', False):.1%}, "
              f"process peak {med('process_mb', True) / med('process_mb', False):.1%}")
    times = interleaved_times(args) if args.time_steps else {False: [], True: []}
    if args.time_steps:
        ratios = [on / off for off, on in zip(times[False], times[True])]
        print(f"time (median of {args.time_steps} interleaved steps): off {statistics.median(times[False]):.2f} s, "
              f"on {statistics.median(times[True]):.2f} s; on / off {statistics.median(ratios):.2f}x")
    print(f"# load average at the end: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"memory": rows, "step_s": {"off": times[False], "on": times[True]}},
                                              indent=2))


def interleaved_times(args) -> dict[bool, list[float]]:
    """Seconds per step with checkpointing off and on, alternating on one model."""
    step = make_step(args.preset, args.batch, args.lr_size, args.attn_impl)
    step(False), step(True)
    times = {False: [], True: []}
    for _ in range(args.time_steps):
        for checkpointing in (False, True):
            times[checkpointing].append(step(checkpointing))
            print(f"  timed step, checkpointing {'on' if checkpointing else 'off'}: "
                  f"{times[checkpointing][-1]:.2f} s", flush=True)
    return times


if __name__ == "__main__":
    main()
