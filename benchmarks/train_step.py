"""Seconds per training step and peak memory, for presets and every combination of the
settings that decide a CPU step's speed: threads, precision, gradient checkpointing,
memory layout, torch.compile and (HAT) the attention path.

A step is what ``sr_models/training/trainer.py`` does per optimizer step: forward on random LR patches
(under autocast for bf16 / fp16), the loss against random HR patches, backward, Adam.
Each configuration runs in a fresh subprocess, so peaks and compiled code do not leak
into each other. Peak memory is ``torch.cuda.max_memory_allocated`` on a GPU, and on a
CPU the process's peak resident set size (VmHWM) minus its size before the model was
built. The time is the median over ``--steps`` steps after ``--warmup`` steps; the first
step's time is shown too (with ``--compile``, it holds the compilation). The header says
what the CPU offers: the SIMD level of torch's kernels and whether oneDNN has native bf16
(without it, bf16 convolutions fall back to slow reference kernels).

    python -m benchmarks.train_step --model espcn hat-small --batch_size 4 --lr_size 64 --checkpointing both
    python -m benchmarks.train_step --model hat --batch_size 4 --mixed_precision bf16 --checkpointing on --device cuda
    # the CPU comparisons of docs/performance.md ("Training steps on this CPU"), one command each:
    python -m benchmarks.train_step --model hat-small --batch_size 8 --lr_size 24 --threads 1 2 \\
        --mixed_precision no bf16 --channels_last both --attn_impl sdpa math --compile both
    python -m benchmarks.train_step --model espcn --batch_size 16 --lr_size 32 --threads 1 2 --channels_last both

A preset name trains from random weights (what a training run starts from); a folder, repo
id or bundled name starts from those weights.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path

from benchmarks.child import run_child
from benchmarks.machine import cpu_capability, describe
from benchmarks.peak_rss import peak_rss_mib, rss_mib

BOTH = {"off": [False], "on": [True], "both": [False, True]}


def prepare(args: argparse.Namespace, dev):
    """The model in the child's setting, and the step to time: ``step(lr, hr)``."""
    import torch

    from sr_models import load_model
    from sr_models.training.trainer import loss_function

    model = load_model(args.model[0], scale=args.scale, random_weights=True).to(dev).train()
    if args.checkpointing == "on":
        if not hasattr(model, "set_gradient_checkpointing"):
            raise SystemExit(f"{type(model).__name__} has no gradient checkpointing")
        model.set_gradient_checkpointing(True)
    if args.attn_impl:
        model.set_attn_impl(args.attn_impl[0])
    if args.channels_last == "on":
        model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if args.compile == "on" else model  # forward and its backward (inductor)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.99))
    loss_fn = loss_function(args.loss)
    dtype = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.mixed_precision[0]]
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16)

    def step(lr, hr):
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            sr = forward(lr)
        scaler.scale(loss_fn(sr.float(), hr)).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    return model, step


def measure(args: argparse.Namespace) -> dict:
    """Run in the child: time ``args.steps`` training steps of one configuration."""
    import torch

    torch.manual_seed(0)
    if args.threads[0]:
        torch.set_num_threads(args.threads[0])
    dev = torch.device(args.device)
    before = rss_mib()
    model, step = prepare(args, dev)
    layout = torch.channels_last if args.channels_last == "on" else torch.contiguous_format
    lr = torch.rand(args.batch_size, 3, args.lr_size, args.lr_size, device=dev).to(memory_format=layout)
    hr_size = args.lr_size * args.scale
    hr = torch.rand(args.batch_size, 3, hr_size, hr_size, device=dev).to(memory_format=layout)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times, cpu_times = [], []
    for _ in range(args.warmup + args.steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        step(lr, hr)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    if dev.type == "cuda":
        peak_mib, what = torch.cuda.max_memory_allocated(dev) / 2**20, "GPU allocated"
    else:
        peak_mib, what = peak_rss_mib() - before, "RSS over start"
    return {"parameters": model.num_parameters, "seconds_per_step": round(statistics.median(times[args.warmup:]), 4),
            "first_step_s": round(times[0], 2), "steps_timed": args.steps,
            # CPU seconds of all threads: on a shared CPU less affected by other load than wall time.
            "cpu_seconds_per_step": round(statistics.median(cpu_times[args.warmup:]), 4),
            "peak_memory_mib": round(peak_mib, 1), "memory_measure": what, "torch_threads": torch.get_num_threads()}


def configurations(args: argparse.Namespace) -> list[dict]:
    """Every combination of the settings asked for, model by model; the attention path
    only varies for HAT (ESPCN has none), told by its name."""
    rows = []
    for name in args.model:
        attn = (args.attn_impl or ["sdpa"]) if "hat" in Path(name).name.lower() else [None]
        for threads, precision, ckpt, layout, compiled, impl in itertools.product(
                args.threads, args.mixed_precision, BOTH[args.checkpointing], BOTH[args.channels_last],
                BOTH[args.compile], attn):
            rows.append({"model": name, "threads": threads, "precision": precision, "checkpointing": ckpt,
                         "channels_last": layout, "compile": compiled, "attn_impl": impl})
    return rows


def child_argv(args: argparse.Namespace, config: dict) -> list[str]:
    """The child's command line: the shared settings, then this configuration's values."""
    argv = ["--model", config["model"], "--scale", str(args.scale), "--batch_size", str(args.batch_size),
            "--lr_size", str(args.lr_size), "--loss", args.loss, "--device", args.device,
            "--steps", str(args.steps), "--warmup", str(args.warmup), "--mixed_precision", config["precision"]]
    for flag in ("checkpointing", "channels_last", "compile"):
        argv += [f"--{flag}", "on" if config[flag] else "off"]
    argv += ["--threads", str(config["threads"])] if config["threads"] else []
    return argv + (["--attn_impl", config["attn_impl"]] if config["attn_impl"] else [])


HEADER = (f"{'model':<10} {'params':>7} {'threads':>7} {'precision':>9} {'ckpt':>4} {'layout':>8} {'compile':>7} "
          f"{'attn':>5} {'batch':>5} {'LR':>4} {'s/step':>7} {'cpu s':>7} {'first s':>8} {'peak MiB':>9}")


def format_row(config: dict, row: dict) -> str:
    settings = (f"{config['model']:<10} {row.get('parameters', 0) / 1e6:>6.2f}M {config['threads'] or '-':>7} "
                f"{config['precision']:>9} {'on' if config['checkpointing'] else 'off':>4} "
                f"{'cl' if config['channels_last'] else 'contig':>8} {'on' if config['compile'] else 'off':>7} "
                f"{config['attn_impl'] or '-':>5}")
    if "error" in row:
        return f"{settings}  skipped: {row['error']}"
    return (f"{settings} {row['batch_size']:>5} {row['lr_size']:>4} {row['seconds_per_step']:>7.3f} "
            f"{row['cpu_seconds_per_step']:>7.3f} {row['first_step_s']:>8.2f} {row['peak_memory_mib']:>9.1f}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["hat-small"], help="presets (or folders) to measure")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--lr_size", type=int, default=64, help="LR patch side (64: the 256 px HR patch at x4)")
    parser.add_argument("--mixed_precision", nargs="+", choices=("no", "bf16", "fp16"), default=["no"])
    parser.add_argument("--checkpointing", choices=tuple(BOTH), default="off",
                        help="gradient checkpointing (models without it are skipped when on)")
    parser.add_argument("--channels_last", choices=tuple(BOTH), default="off",
                        help="model and inputs in channels-last memory layout")
    parser.add_argument("--compile", nargs="?", const="on", choices=tuple(BOTH), default="off",
                        help="torch.compile the model (forward and backward; inductor); the first step compiles")
    parser.add_argument("--attn_impl", nargs="+", choices=("sdpa", "math"), default=None,
                        help="HAT's attention path: the fast 'sdpa' one (default) or the reference 'math' one")
    parser.add_argument("--loss", choices=("l1", "l2", "charbonnier"), default="l1")
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--threads", type=int, nargs="+", default=[None],
                        help="torch CPU threads, one row each (default: torch's); 1 gives CPU times that other "
                             "load barely moves")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return

    import torch

    print(f"# training steps; {describe(torch.device(args.device))}")
    if args.device == "cpu":
        print(f"# {cpu_capability()}")
    print(HEADER)
    rows = []
    for config in configurations(args):
        row = {**config, "batch_size": args.batch_size, "lr_size": args.lr_size, "device": args.device,
               **run_child("benchmarks.train_step", child_argv(args, config))}
        rows.append(row)
        print(format_row(config, row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
