"""ESPCN frames per second for 1080p output, against the machine's dense-matmul roofline.

1. Roofline: the float32 (and bfloat16) GFLOP/s of a large ``torch.mm`` on this machine's
   threads (best of seven runs).
2. Work: ESPCN's multiply-accumulates for one frame, counted with
   ``torch.utils.flop_counter.FlopCounterMode`` (MAC = FLOPs / 2).
3. Variants, timed interleaved (each repeat runs every variant once, in turn): the plain
   network (NCHW throughout) under ``no_grad`` and ``inference_mode``; ``ESPCN.forward``
   (channels_last inside on CPU), float32 and bf16 autocast; ``torch.compile`` (inductor;
   with ``freezing``, which prepacks the conv weights for oneDNN and fuses conv + ReLU).
   Compiled variants are warmed up first and timed in steady state. Each variant's
   output is checked against ``ESPCN.forward`` in float32.

fps = 1 / median seconds per frame; roofline fps = GFLOP/s / (2 * MACs / 1e9); the
fraction of roofline is their ratio.

    python -m benchmarks.espcn_speed                         # espcn x4, LR 480x270 -> 1920x1080
    python -m benchmarks.espcn_speed --repeats 10 --json out.json
    python -m benchmarks.espcn_speed --no-compile            # eager variants only
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.machine import describe
from sr_models import ESPCN


def matmul_gflops(dtype: torch.dtype, n: int = 4096, runs: int = 7) -> float:
    """Best GFLOP/s of ``runs`` n x n x n torch.mm (2 n³ FLOPs): the attainable peak (a
    busy machine can only slow a run down, so the best run is the least disturbed)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        torch.mm(a, b)
        rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return max(rates)


def count_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2


def build_variants(model: ESPCN, compile_: bool) -> dict:
    """name -> (callable, input memory format, grad context, autocast dtype).

    ``plain`` is the network without ESPCN.forward's CPU layout choice (NCHW throughout,
    as before it was added); ``model()`` is ESPCN.forward (channels_last inside on CPU).
    """
    def plain(x):
        return model.upsample(model.body(x))

    def compiled(fn, **options):
        # A copy per variant: dynamo caches graphs per module instance, and inductor
        # options (freezing) apply per compile call, not globally.
        target = copy.deepcopy(model) if fn is model else fn
        return torch.compile(target, options=options or None)

    nchw, cl = torch.contiguous_format, torch.channels_last
    variants = {
        "plain NCHW no_grad": (plain, nchw, torch.no_grad, None),
        "plain NCHW inference_mode": (plain, nchw, torch.inference_mode, None),
        "model() inference_mode": (model, nchw, torch.inference_mode, None),
        "model() bf16 autocast": (model, nchw, torch.inference_mode, torch.bfloat16),
    }
    if compile_:
        variants["compile plain NCHW"] = (compiled(plain), nchw, torch.inference_mode, None)
        variants["compile model()"] = (compiled(model), nchw, torch.inference_mode, None)
        # freezing: constant-folds the weights, prepacks them for oneDNN, fuses conv + ReLU.
        variants["compile model() freezing"] = (compiled(model, freezing=True), nchw, torch.inference_mode, None)
        variants["compile channels_last freezing"] = (compiled(model, freezing=True), cl, torch.inference_mode, None)
    return variants


def run(variant, x: torch.Tensor) -> tuple[float, torch.Tensor]:
    fn, memory_format, grad_context, dtype = variant
    x = x.contiguous(memory_format=memory_format)
    autocast = torch.autocast("cpu", dtype=dtype) if dtype is not None else nullcontext()
    with grad_context(), autocast:
        start = time.perf_counter()
        out = fn(x)
        return time.perf_counter() - start, out


def roofline_fps(model: ESPCN, x: torch.Tensor) -> dict:
    """The dense-matmul rates, ESPCN's work per frame and the frame rates they bound."""
    gflops = {"float32": matmul_gflops(torch.float32), "bfloat16": matmul_gflops(torch.bfloat16)}
    macs = count_macs(model, x)
    print(f"dense matmul (4096³ torch.mm, best of 7): float32 {gflops['float32']:.1f} GFLOP/s, "
          f"bfloat16 {gflops['bfloat16']:.1f} GFLOP/s")
    print(f"ESPCN work per frame: {macs / 1e9:.3f} GMAC ({2 * macs / 1e9:.2f} GFLOP)")
    fps = {dtype: rate / (2 * macs / 1e9) for dtype, rate in gflops.items()}
    print(f"roofline: {fps['float32']:.2f} fps float32, {fps['bfloat16']:.2f} fps bfloat16")
    return {"matmul_gflops": gflops, "macs_per_frame": macs, "roofline_fps": fps}


def time_variants(variants: dict, x: torch.Tensor, repeats: int) -> tuple[dict, dict]:
    """(seconds of each variant's first call, per-repeat seconds), interleaved repeats."""
    warmup = {}
    for name, variant in variants.items():  # compiles here; a second call reaches steady state
        start = time.perf_counter()
        run(variant, x)
        warmup[name] = time.perf_counter() - start
        run(variant, x)
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, variant in variants.items():
            times[name].append(run(variant, x)[0])
    return warmup, times


def report(variants: dict, x: torch.Tensor, warmup: dict, times: dict, roofline: dict) -> list[dict]:
    """Print and return one row per variant, its output checked against ESPCN.forward in float32."""
    reference = run(variants["model() inference_mode"], x)[1].float()
    print(f"{'variant':>31} {'ms/frame':>9} {'fps':>6} {'% roofline':>11} {'vs plain':>9} {'max |diff|':>11} "
          f"{'1st call s':>10}")
    base = statistics.median(times["plain NCHW no_grad"])
    rows = []
    for name, variant in variants.items():
        seconds = statistics.median(times[name])
        out = run(variant, x)[1].float()
        dtype = "bfloat16" if variant[3] is not None else "float32"
        row = {"variant": name, "ms_per_frame": 1e3 * seconds, "fps": 1 / seconds,
               "roofline_fraction": (1 / seconds) / roofline[dtype], "roofline_dtype": dtype,
               "speedup_vs_plain_no_grad": base / seconds, "max_abs_diff": (out - reference).abs().max().item(),
               "first_call_s": warmup[name], "times_s": times[name]}
        rows.append(row)
        print(f"{name:>31} {row['ms_per_frame']:>9.1f} {row['fps']:>6.2f} {100 * row['roofline_fraction']:>10.1f}% "
              f"{row['speedup_vs_plain_no_grad']:>8.2f}x {row['max_abs_diff']:>11.2e} {row['first_call_s']:>10.1f}",
              flush=True)
    print("(% roofline of bf16 variants is against the bf16 matmul rate)")
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="espcn")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--width", type=int, default=480, help="LR width (480 -> 1920 at x4)")
    parser.add_argument("--height", type=int, default=270, help="LR height (270 -> 1080 at x4)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, = cores)")
    parser.add_argument("--json", default=None)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ESPCN.from_preset(args.preset, upscale=args.scale).eval()
    x = torch.rand(1, 3, args.height, args.width, generator=torch.Generator().manual_seed(0))
    print(f"# ESPCN ({args.preset}) x{args.scale}, LR {args.width}x{args.height} -> "
          f"{args.scale * args.width}x{args.scale * args.height}; {describe()}")
    work = roofline_fps(model, x)
    variants = build_variants(model, args.compile)
    warmup, times = time_variants(variants, x, args.repeats)
    print(f"\n{args.repeats} interleaved repeats, medians")
    rows = report(variants, x, warmup, times, work["roofline_fps"])
    print(f"# load average at the end: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": describe(), **work, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
