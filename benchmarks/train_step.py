"""Seconds per training step and peak memory, for presets, a batch size, a precision and
gradient checkpointing on or off.

A step is what ``sr_models/training/trainer.py`` does per optimizer step: forward on random LR patches
(under autocast for bf16 / fp16), the loss against random HR patches, backward, Adam.
Each configuration runs in a fresh subprocess, so peaks do not leak into each other. Peak
memory is ``torch.cuda.max_memory_allocated`` on a GPU, and on a CPU the process's peak
resident set size (VmHWM) minus its size before the model was built. The time is the
median over ``--steps`` steps after ``--warmup`` steps.

    python -m benchmarks.train_step --model espcn hat-small --batch_size 4 --lr_size 64 --checkpointing both
    python -m benchmarks.train_step --model hat --batch_size 4 --mixed_precision bf16 --checkpointing on --device cuda

A preset name trains from random weights (what a training run starts from); a folder, repo
id or bundled name starts from those weights.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks.child import run_child
from benchmarks.machine import describe
from benchmarks.peak_rss import peak_rss_mib, rss_mib


def measure(model_name: str, *, scale: int, batch_size: int, lr_size: int, precision: str, checkpointing: bool,
            device: str, steps: int, warmup: int, loss: str, threads: int | None = None) -> dict:
    """Run in the child: time ``steps`` training steps of one configuration."""
    import torch

    from sr_models import load_model
    from sr_models.training.trainer import loss_function

    torch.manual_seed(0)
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    before = rss_mib()
    model = load_model(model_name, scale=scale, random_weights=True).to(dev).train()
    if checkpointing:
        if not hasattr(model, "set_gradient_checkpointing"):
            return {"error": f"{type(model).__name__} has no gradient checkpointing"}
        model.set_gradient_checkpointing(True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.99))
    loss_fn = loss_function(loss)
    dtype = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    scaler = torch.amp.GradScaler(dev.type, enabled=precision == "fp16")
    lr = torch.rand(batch_size, 3, lr_size, lr_size, device=dev)
    hr = torch.rand(batch_size, 3, lr_size * scale, lr_size * scale, device=dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times, cpu_times = [], []
    for i in range(warmup + steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            sr = model(lr)
        value = loss_fn(sr.float(), hr)
        scaler.scale(value).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i >= warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    if dev.type == "cuda":
        peak_mib, what = torch.cuda.max_memory_allocated(dev) / 2**20, "GPU allocated"
    else:
        peak_mib, what = peak_rss_mib() - before, "RSS over start"
    return {"model": model_name, "parameters": model.num_parameters, "scale": scale, "batch_size": batch_size,
            "lr_size": lr_size, "precision": precision, "gradient_checkpointing": checkpointing, "device": device,
            "seconds_per_step": round(statistics.median(times), 4), "steps_timed": steps,
            # CPU seconds of all threads: on a shared CPU less affected by other load than wall time.
            "cpu_seconds_per_step": round(statistics.median(cpu_times), 4),
            "peak_memory_mib": round(peak_mib, 1), "memory_measure": what, "torch_threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["hat-small"], help="presets (or folders) to measure")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--lr_size", type=int, default=64, help="LR patch side (64: the 256 px HR patch at x4)")
    parser.add_argument("--mixed_precision", choices=("no", "bf16", "fp16"), default="no")
    parser.add_argument("--checkpointing", choices=("off", "on", "both"), default="off",
                        help="gradient checkpointing (models without it are measured off only)")
    parser.add_argument("--loss", choices=("l1", "l2", "charbonnier"), default="l1")
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's); 1 gives CPU times that other load barely moves")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    settings = {"off": [False], "on": [True], "both": [False, True]}[args.checkpointing]

    if args.child:
        row = measure(args.model[0], scale=args.scale, batch_size=args.batch_size, lr_size=args.lr_size,
                      precision=args.mixed_precision, checkpointing=settings[0], device=args.device,
                      steps=args.steps, warmup=args.warmup, loss=args.loss, threads=args.threads)
        print(json.dumps(row))
        return

    import torch

    rows = []
    print(f"# training steps; {describe(torch.device(args.device))}")
    print(f"{'model':<12} {'params':>8} {'ckpt':>5} {'precision':>9} {'batch':>5} {'LR':>5} "
          f"{'s/step':>8} {'cpu s':>8} {'peak MiB':>9}  device")
    for name in args.model:
        for on in settings:
            argv = [a for a in sys.argv[1:] if a != "--child"]
            argv = _replace(argv, "--model", [name]) + ["--checkpointing", "on" if on else "off"]
            row = run_child("benchmarks.train_step", argv)
            row.setdefault("model", name)
            row.setdefault("gradient_checkpointing", on)
            rows.append(row)
            if "error" in row:
                print(f"{name:<12} {'':>8} {'on' if on else 'off':>5}  skipped: {row['error']}")
                continue
            print(f"{name:<12} {row['parameters'] / 1e6:>7.2f}M {'on' if on else 'off':>5} {row['precision']:>9} "
                  f"{row['batch_size']:>5} {row['lr_size']:>5} {row['seconds_per_step']:>8.3f} {row['cpu_seconds_per_step']:>8.3f} "
                  f"{row['peak_memory_mib']:>9.1f}  {row['device']} ({row['memory_measure']})")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


def _replace(argv: list[str], flag: str, values: list[str]) -> list[str]:
    """argv with ``flag``'s values replaced (and the checkpointing flag dropped)."""
    out, skip = [], False
    for a in argv:
        if a.startswith("--"):
            skip = a in (flag, "--checkpointing")
            if skip:
                continue
        elif skip:
            continue
        out.append(a)
    return out + [flag, *values]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
