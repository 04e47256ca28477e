"""How long the app makes a user wait: time to the first result and to all of them.

Drives the app's handler (``sr_models.app_run.compare``, a generator that yields after
bicubic and after each model) in this process with the bundled weights, and times each
yield from the call: for a 512x512 upload in Upscale mode the first result (the input and
bicubic on the slider) and each model's; for a 1024x1024 upload in Benchmark mode the
total (degradation, every method, scoring). The uploads are ``examples/astronaut.png``
(512x512, a photo) and the same photo resized to 1024x1024 (PIL bicubic). Each case runs
once to warm up (model loading, HAT's attention plans), then ``--repeats`` times; the
median is printed, with the machine and the precision the app chose for HAT.

``--before`` also times the app as it computed before issue 22, emulated in this process
and interleaved with today's path (each repeat runs both, in turn): float32 for every
model, fixed 128-px tiles (``TILE_SIZE``) one after the other instead of
:func:`~sr_models.app_limits.choose_tile`'s, ``TILE_WORKERS`` at once, SSIM's Gaussian
filter as two conv2d calls, and nothing on the page before every method is done (the old
handler returned once: its first result is its last).

What it leaves out: Gradio's share of a request (postprocessing, copying the result files
into its cache, the browser's download), tens of milliseconds for these sizes.

    python -m benchmarks.app_timing
    python -m benchmarks.app_timing --repeats 5 --kind "Real photo"
    python -m benchmarks.app_timing --repeats 1 --before
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from .machine import cpu_capability, describe

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "examples" / "astronaut.png"
#: The issue's targets (issue 22), seconds on a 2-core CPU.
TARGETS = {"first result": 1.5, "all results": 6.0, "benchmark 1024": 3.0}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case, after one warm-up run")
    parser.add_argument("--kind", default="Clean downscale", choices=["Clean downscale", "Real photo"],
                        help="the input kind (which weights)")
    parser.add_argument("--upscale-size", type=int, default=512, help="side of the Upscale mode upload")
    parser.add_argument("--benchmark-size", type=int, default=1024, help="side of the Benchmark mode upload")
    parser.add_argument("--before", action="store_true",
                        help="also time the app as it computed before issue 22 (emulated; interleaved)")
    return parser.parse_args(argv)


def upload(side: int, folder: Path) -> str:
    """The photo at ``side`` x ``side`` as a PNG file (the photo itself at its own size)."""
    image = Image.open(PHOTO).convert("RGB")
    if image.size != (side, side):
        image = image.resize((side, side), Image.Resampling.BICUBIC)
    path = folder / f"astronaut_{side}.png"
    image.save(path)
    return str(path)


def time_run(path: str, kind: str, mode: str) -> tuple[list[float], dict[str, float]]:
    """([seconds from the call to each yield], {method: its own seconds})."""
    from sr_models.app_run import compare

    times, start = [], time.perf_counter()
    for _, table, _, _, _ in compare(path, kind, mode):
        times.append(time.perf_counter() - start)
    return times, {row[0]: row[1] for row in table["data"]}


@contextlib.contextmanager
def as_before():
    """The app's computation before issue 22: float32, fixed tiles one after the other,
    SSIM's filter as conv2d."""
    from sr_models import app_run, metrics
    from sr_models.app_limits import TILE_SIZE
    from sr_models.app_precision import Precision

    from .metrics_speed import conv2d_filter

    saved = app_run.choose_tile, app_run.TILE_WORKERS, app_run.precision, metrics.gaussian_filter_valid
    app_run.choose_tile, app_run.TILE_WORKERS = (lambda *_: TILE_SIZE), 1
    app_run.precision = lambda name: Precision(None, "float32")
    metrics.gaussian_filter_valid = conv2d_filter
    try:
        yield
    finally:
        app_run.choose_tile, app_run.TILE_WORKERS, app_run.precision, metrics.gaussian_filter_valid = saved


#: The variants timed: today's path, and with --before the emulated one.
VARIANTS = {"now": contextlib.nullcontext, "before": as_before}


def median_runs(path: str, kind: str, mode: str, repeats: int, variants: list[str]) -> dict:
    """{variant: (per-yield medians, per-method medians)} over ``repeats`` runs of each
    variant, interleaved, after one warm-up run of each. Before issue 22 nothing reached
    the page until the end, so that variant's yields are all at its last one."""
    runs = {name: [] for name in variants}
    for repeat in range(repeats + 1):
        for name in variants:
            with VARIANTS[name]():
                times, methods = time_run(path, kind, mode)
            if name == "before":
                times = [times[-1]] * len(times)
            if repeat:
                runs[name].append((times, methods))
    return {name: ([statistics.median(run[0][i] for run in done) for i in range(len(done[0][0]))],
                   {label: statistics.median(run[1][label] for run in done) for label in done[0][1]})
            for name, done in runs.items()}


def main(argv=None) -> None:
    args = parse_args(argv)
    from sr_models.app_models import INPUT_KINDS, check_weights, method_labels, precision

    check_weights()  # loads the models and chooses their precision, as main() does before serving
    print(describe())
    print(cpu_capability())
    for name in INPUT_KINDS[args.kind]:
        print(f"{method_labels(args.kind)[name]} ({name}): {precision(name).reason}")
    variants = ["now", "before"] if args.before else ["now"]
    with tempfile.TemporaryDirectory() as folder:
        small, large = upload(args.upscale_size, Path(folder)), upload(args.benchmark_size, Path(folder))
        side = args.upscale_size
        for variant, (per_yield, methods) in median_runs(small, args.kind, "Upscale", args.repeats, variants).items():
            print(f"\nUpscale {side}x{side} ({args.kind}), {variant}, median of {args.repeats}:")
            print(f"  first result (input + bicubic): {per_yield[0]:7.2f} s   target {TARGETS['first result']} s")
            for label, seconds in zip(list(methods)[1:], per_yield[1:]):
                print(f"  {label + ':':<32} {seconds:7.2f} s   (its own run: {methods[label]:.2f} s)")
            print(f"  all results:                    {per_yield[-1]:7.2f} s   target {TARGETS['all results']} s")
        side = args.benchmark_size
        for variant, (per_yield, methods) in median_runs(large, args.kind, "Benchmark", args.repeats, variants).items():
            print(f"\nBenchmark {side}x{side} ({args.kind}), {variant}, median of {args.repeats}:")
            print(f"  total:                          {per_yield[-1]:7.2f} s   target {TARGETS['benchmark 1024']} s")
            print("  methods: " + ", ".join(f"{label} {seconds:.2f} s" for label, seconds in methods.items()))


if __name__ == "__main__":
    main()
