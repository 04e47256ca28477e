"""The study in one command: does the transformer beat the CNN, and at what cost?

Quality (PSNR / SSIM by the protocol, mean and per image) of bicubic and every model on
an HR folder; cost per model (parameters, FLOPs per LR megapixel, CPU latency at several
LR sizes with the ratio to the first model measured in the same run, peak memory);
training cost from the model cards; plots; a markdown report.

    python benchmarks/compare.py --hr data/faces256/val                  # bundled ESPCN and HAT
    python benchmarks/compare.py --hr DIR --model espcn-faces --model user/other-hat --update-readme

Writes benchmarks/results/: compare.md, compare.json, psnr_vs_latency.png,
per_image_psnr.png, crops.png.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from sr_models import load_model, upscale, upscale_tensor
from sr_models.constants import PROTOCOL
from sr_models.evaluation import BICUBIC, evaluate, find_images, prepare_hr
from sr_models.metrics import bicubic_upscale, degrade

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODELS = ["espcn-faces", "hat-faces"]
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


# --------------------------------------------------------------------------- cost


def flops_per_lr_megapixel(model, size: int = 64) -> float:
    """Forward FLOPs (multiply-adds count 2) per million LR pixels, counted on size x size."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        upscale_tensor(model, torch.rand(1, 3, size, size))
    return counter.get_total_flops() / (size * size) * 1e6


def latency_seconds(model, size: int, repeats: int) -> float:
    """Median wall time of upscale_tensor on a size x size LR input (after one warm-up)."""
    x = torch.rand(1, 3, size, size)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            start = time.perf_counter()
            upscale_tensor(model, x)
            if i:  # the first run warms caches and allocators
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory_mb(name: str, size: int) -> float:
    """Peak RSS of a fresh process that loads the model and upscales one size² LR image.

    Read from VmHWM, as every benchmark here does (benchmarks/peak_rss.py says why).
    """
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
        "import numpy as np, torch; from PIL import Image; from sr_models import load_model, upscale; "
        "from peak_rss import peak_rss_mib; "
        f"m = load_model({name!r}); img = Image.fromarray(np.zeros(({size}, {size}, 3), np.uint8)); "
        "upscale(m, img, device='cpu'); print(peak_rss_mib())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def costs(models: dict, sizes: list[int], repeats: int) -> dict:
    """Cost table; latencies of every model interleaved size by size so that they share the
    machine's state, and ratios taken to the first model of the same run."""
    result = {name: {"parameters": m.num_parameters, "flops_per_lr_mp": flops_per_lr_megapixel(m),
                     "latency_s": {}, "latency_ratio": {}} for name, m in models.items()}
    first = next(iter(models))
    for size in sizes:
        for name, model in models.items():
            result[name]["latency_s"][size] = latency_seconds(model, size, repeats)
        for name in models:
            result[name]["latency_ratio"][size] = result[name]["latency_s"][size] / result[first]["latency_s"][size]
    for name in models:
        result[name]["peak_rss_mb"] = peak_memory_mb(name, max(sizes))
    return result


# --------------------------------------------------------------------------- plots


def plot_psnr_vs_latency(summary: dict, cost: dict, size: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, c in cost.items():
        ax.scatter(c["latency_s"][size] * 1000, summary[name]["psnr"], s=60)
        ax.annotate(f"{name}\n{c['parameters'] / 1e6:.2f} M", (c["latency_s"][size] * 1000, summary[name]["psnr"]),
                    textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.axhline(summary[BICUBIC]["psnr"], color="grey", ls="--", lw=1, label="bicubic")
    ax.set_xscale("log")
    ax.set_xlabel(f"CPU latency at {size}² LR (ms, log scale)")
    ax.set_ylabel("PSNR-Y (dB)")
    ax.set_title("Quality vs speed (x4)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_per_image(per_image: dict, images: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_image)
    x = np.arange(len(images))
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(6, len(images) * 0.9), 4))
    for i, name in enumerate(names):
        ax.bar(x + i * width, per_image[name]["psnr"], width, label=name)
    ax.set_xticks(x + 0.4 - width / 2, [Path(p).stem for p in images], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("PSNR-Y (dB)")
    low = min(min(v["psnr"]) for v in per_image.values())
    ax.set_ylim(low - 1, None)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def crop_grid(models: dict, hr_paths: list[Path], scale: int, hr_size: int | None, path: Path,
              crop: int = 96, rows: int = 3) -> None:
    """Centre crops of LR (nearest) | bicubic | each model | HR, one row per image."""
    tiles = []
    for hr_path in hr_paths[:rows]:
        hr = prepare_hr(Image.open(hr_path), scale, hr_size)
        crop = min(crop, hr.width, hr.height)
        lr = degrade(hr, scale)
        outputs = [lr.resize(hr.size, Image.NEAREST), bicubic_upscale(lr, scale)]
        outputs += [upscale(m, lr) for m in models.values()] + [hr]
        left = (hr.width - crop) // 2 // scale * scale
        top = (hr.height - crop) // 2 // scale * scale
        tiles.append([o.convert("RGB").crop((left, top, left + crop, top + crop)) for o in outputs])
    grid = Image.new("RGB", (crop * len(tiles[0]), crop * len(tiles)), "white")
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            grid.paste(tile, (c * crop, r * crop))
    grid.resize((grid.width * 2, grid.height * 2), Image.NEAREST).save(path)


# --------------------------------------------------------------------------- report


def training_cost(model) -> dict:
    facts = (model.card_info.training if model.card_info else {}) or {}
    return {k: facts.get(k) for k in ("steps", "images_seen", "wall_time_s", "hardware", "precision")}


def markdown(report: dict) -> str:
    summary, cost, sizes = report["summary"], report["cost"], report["latency_sizes"]
    first = next(iter(cost))
    lines = [
        f"**Quality** — {len(report['images'])} held-out HR images from `{report['hr_dir']}`, x{report['scale']}, "
        f"HR {report['hr_size'] or 'as is'}. {PROTOCOL}.",
        "",
        "| method | PSNR-Y (dB) | SSIM-Y | gain over bicubic (dB) |",
        "|---|---|---|---|",
    ]
    base = summary[BICUBIC]["psnr"]
    for name, s in summary.items():
        lines.append(f"| {name} | {s['psnr']:.2f} | {s['ssim']:.4f} | {s['psnr'] - base:+.2f} |")
    lines += ["", f"**Cost** — {report['machine']}; latency = median of {report['repeats']} runs of one "
                  f"forward pass; ratio to {first} measured in the same run; peak RSS of a fresh process "
                  f"upscaling one {max(sizes)}² LR image.", ""]
    header = "| model | parameters | GFLOPs / LR MP | " + " | ".join(f"latency {s}² (ms, ×{first})" for s in sizes)
    lines += [header + " | peak RSS (MB) |", "|---" * (4 + len(sizes)) + "|"]
    for name, c in cost.items():
        lat = " | ".join(f"{c['latency_s'][s] * 1000:.1f} (×{c['latency_ratio'][s]:.1f})" for s in sizes)
        lines.append(f"| {name} | {c['parameters']:,} | {c['flops_per_lr_mp'] / 1e9:.1f} | {lat} | "
                     f"{c['peak_rss_mb']:.0f} |")
    lines += ["", "**Training cost** (from the model cards)", "",
              "| model | steps | images seen | wall time | hardware | precision |", "|---|---|---|---|---|---|"]
    for name, t in report["training"].items():
        wall = f"{t['wall_time_s'] / 60:.0f} min" if t.get("wall_time_s") else "—"
        seen = f"{t['images_seen']:,}" if t.get("images_seen") else "—"
        precision = {"no": "fp32"}.get(t.get("precision"), t.get("precision"))
        lines.append(f"| {name} | {t.get('steps') or '—'} | {seen} | {wall} | {t.get('hardware') or '—'} | "
                     f"{precision or '—'} |")
    lines += ["", "![PSNR vs latency](psnr_vs_latency.png)", "", "![Per-image PSNR](per_image_psnr.png)", "",
              "![Crops: LR | bicubic | " + " | ".join(cost) + " | HR](crops.png)", ""]
    return "\n".join(lines)


def update_readme(text: str, readme: Path) -> None:
    """Replace the README's results block (between the markers) with ``text``."""
    content = readme.read_text()
    if README_START not in content or README_END not in content:
        raise SystemExit(f"{readme} has no {README_START} ... {README_END} block")
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    content = pattern.sub(lambda _: f"{README_START}\n{text}\n{README_END}", content)
    readme.write_text(content)


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    hr_paths = find_images(args.hr)[: args.limit]
    if not hr_paths:
        raise SystemExit(f"no images in {args.hr}")
    models = {name: load_model(name, scale=args.scale) for name in args.model}
    for model in models.values():
        model.eval()
    quality = evaluate(models, hr_paths, scale=args.scale, hr_size=args.hr_size, device="cpu")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cost = costs(models, args.latency_sizes, args.repeats)
    report = {
        "hr_dir": str(args.hr), "scale": args.scale, "hr_size": args.hr_size, "images": quality.images,
        "machine": f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "repeats": args.repeats, "latency_sizes": args.latency_sizes,
        "summary": quality.to_json()["summary"], "per_image": quality.to_json()["per_image"],
        "cost": cost, "training": {name: training_cost(m) for name, m in models.items()},
    }
    (out / "compare.json").write_text(json.dumps(report, indent=2))
    plot_psnr_vs_latency(report["summary"], cost, args.latency_sizes[0], out / "psnr_vs_latency.png")
    plot_per_image(report["per_image"], quality.images, out / "per_image_psnr.png")
    crop_grid(models, hr_paths, args.scale, args.hr_size, out / "crops.png")
    text = markdown(report)
    (out / "compare.md").write_text(text)
    if args.update_readme:
        relative = out.resolve().relative_to(ROOT).as_posix()
        update_readme(re.sub(r"\]\((\w+\.png)\)", rf"]({relative}/\1)", text), ROOT / "README.md")
    print(text)
    return report


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hr", required=True, help="folder of HR images (e.g. the held-out faces)")
    parser.add_argument("--model", action="append", help="model name, folder or repo id (repeatable); "
                                                         f"default: {' '.join(DEFAULT_MODELS)}")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--hr-size", type=int, default=256, help="HR side (centre crop + resize); 0 keeps it")
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--latency-sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output-dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--update-readme", action="store_true", help="rewrite the README's results block")
    args = parser.parse_args(argv)
    args.model = args.model or DEFAULT_MODELS
    args.hr_size = args.hr_size or None
    return args


if __name__ == "__main__":
    run(parse_args())
