"""The study in one command: does the transformer beat the CNN, and at what cost?

Quality (PSNR / SSIM by the protocol, mean and per image) of bicubic and every model on
one or more held-out HR sets, optionally also under a seeded realistic degradation beside
the protocol; cost per model (parameters, FLOPs per LR megapixel, CPU latency at several
LR sizes with the ratio to the first model measured in the same run, peak memory);
training cost from the model cards; plots; a markdown report. Run from the project root:

    python -m benchmarks.compare --hr data/faces256/val                  # the bundled ESPCN and HAT
    python -m benchmarks.compare --hr celeba=data/faces256v2/val --hr studio=data/faces256v2/val_studio \
        --degradation moderate --seed 0 --update-readme
    python -m benchmarks.compare --hr DIR --model espcn-faces --model user/other-hat

``--hr NAME=DIR`` names a set (plain ``--hr DIR`` is named after its folder); the first set
is the main benchmark (its summary is plotted against latency, its crops are shown).
``--degradation PRESET`` (sr_models.degradations) adds a quality table per set whose LR
images are drawn with ``--seed``: one fixed LR per image, so the numbers are reproducible.

Writes benchmarks/results/: compare.md, compare.json, psnr_vs_latency.png,
per_image_psnr_<table>.png per quality table, crops_<table>.png for the main set.
``--update-readme`` also rewrites the blocks between ``<!-- results:start -->`` and
``<!-- results:end -->``: the short quality table in README.md (one row per method, one
column per table) and the full report in docs/study.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.child import PROJECT_ROOT
from benchmarks.machine import describe
from benchmarks.memory import measure_in_child
from sr_models import load_model, upscale, upscale_tensor
from sr_models.constants import PROTOCOL
from sr_models.degradations import PRESETS
from sr_models.evaluation import BICUBIC, describe_lr, evaluate, find_images, make_lr, prepare_hr, resolve_degradation
from sr_models.loading import DEFAULT_MODELS
from sr_models.metrics import bicubic_upscale
from sr_models.pipeline import load_image

RESULTS_START, RESULTS_END = "<!-- results:start -->", "<!-- results:end -->"
README = PROJECT_ROOT / "README.md"
STUDY = PROJECT_ROOT / "docs" / "study.md"
PSNR_VS_LATENCY = "psnr_vs_latency.png"
#: Widest per-image plot (inches) and the most images whose names label its axis.
PER_IMAGE_MAX_WIDTH, PER_IMAGE_MAX_LABELS = 20, 30


# --------------------------------------------------------------------------- quality


def named_folder(value: str) -> tuple[str, Path]:
    """``NAME=DIR`` (NAME a word: letters, digits, ``_.-``) or a plain ``DIR``, named
    after its folder: the argparse type of --hr (and of scripts.finalize --held-out)."""
    name, sep, folder = value.partition("=")
    if sep and re.fullmatch(r"[\w.-]+", name):
        if not folder:
            raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {value!r} (no folder)")
        return name, Path(folder)
    return Path(value).resolve().name, Path(value)


def score_sets(models: dict, sets: list[tuple[str, Path]], *, degradations: list[str | None], seed: int = 0,
               scale: int = 4, hr_size: int | None = 256, limit: int | None = None) -> list[dict]:
    """One quality table per (set, degradation), set by set: each is ``Evaluation.to_json()``
    (summary, per image, degradation, seed) with the set's ``name`` and ``hr_dir``.
    ``degradations``: None for the protocol, or PRESETS names."""
    names = [name for name, _ in sets]
    if len(set(names)) != len(names):
        raise SystemExit(f"two held-out sets share a name in {names}; name them with NAME=DIR")
    tables = []
    for name, folder in sets:
        hr_paths = find_images(folder)[:limit]
        if not hr_paths:
            raise SystemExit(f"no images in {folder}")
        for degradation in degradations:
            result = evaluate(models, hr_paths, scale=scale, hr_size=hr_size, degradation=degradation, seed=seed,
                              device="cpu")
            tables.append({"name": name, "hr_dir": str(folder), **result.to_json()})
    return tables


def table_key(table: dict) -> str:
    """A file-name-safe key of a quality table: the set's name, plus the degradation."""
    key = table["name"] if table["degradation"] is None else f"{table['name']}_{table['degradation']}"
    return re.sub(r"[^\w.-]+", "-", key)


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
    """Peak RSS of a fresh process that loads the model and upscales one size² LR image,
    untiled (benchmarks/memory.py measures it; benchmarks/peak_rss.py says how)."""
    row = measure_in_child(name, size, tile=None)
    if "error" in row:
        raise SystemExit(f"compare: measuring the peak memory of {name} failed: {row['error']}")
    return row["peak_rss_mb"]


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
    fig, ax = plt.subplots(figsize=(min(max(6, len(images) * 0.9), PER_IMAGE_MAX_WIDTH), 4))
    for i, name in enumerate(names):
        ax.bar(x + i * width, per_image[name]["psnr"], width, label=name)
    if len(images) <= PER_IMAGE_MAX_LABELS:
        ax.set_xticks(x + 0.4 - width / 2, [Path(p).stem for p in images], rotation=45, ha="right", fontsize=7)
    else:  # too many names to read: the images in their sorted order
        ax.set_xlabel(f"image (1 to {len(images)}, sorted by file name)")
    ax.set_ylabel("PSNR-Y (dB)")
    low = min(min(v["psnr"]) for v in per_image.values())
    ax.set_ylim(low - 1, None)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def crop_grid(models: dict, hr_paths: list[Path], scale: int, hr_size: int | None, path: Path, *,
              degradation: str | None = None, seed: int = 0, crop: int = 96, rows: int = 3) -> None:
    """Centre crops of LR (nearest) | bicubic | each model | HR, one row per image; the LR
    made as the evaluation made it (``degradation``, ``seed``, the image's index)."""
    _, config = resolve_degradation(degradation)
    tiles = []
    for index, hr_path in enumerate(hr_paths[:rows]):
        hr = prepare_hr(load_image(hr_path), scale, hr_size)
        crop = min(crop, hr.width, hr.height)
        lr = make_lr(hr, scale, config, seed=seed, index=index)
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


def per_image_file(table: dict) -> str:
    return f"per_image_psnr_{table_key(table)}.png"


def crops_file(table: dict, report: dict) -> str | None:
    """The crops of the main (first) set's tables; None for the other sets."""
    return f"crops_{table_key(table)}.png" if table["name"] == report["quality"][0]["name"] else None


def write_plots(models: dict, report: dict, out: Path, limit: int | None) -> None:
    """PSNR vs latency (main set, protocol), per-image PSNR of every table, crops of the main set."""
    main = report["quality"][0]
    plot_psnr_vs_latency(main["summary"], report["cost"], report["latency_sizes"][0], out / PSNR_VS_LATENCY)
    for table in report["quality"]:
        plot_per_image(table["per_image"], table["images"], out / per_image_file(table))
        if crops_file(table, report):
            crop_grid(models, find_images(table["hr_dir"])[:limit], report["scale"], report["hr_size"],
                      out / crops_file(table, report), degradation=table["degradation"], seed=table["seed"] or 0)


# --------------------------------------------------------------------------- report


def training_cost(model) -> dict:
    facts = (model.card_info.training if model.card_info else {}) or {}
    return {k: facts.get(k) for k in ("steps", "images_seen", "wall_time_s", "hardware", "precision")}


def quality_table(summary: dict) -> list[str]:
    base = summary[BICUBIC]["psnr"]
    lines = ["| method | PSNR-Y (dB) | SSIM-Y | gain over bicubic (dB) |", "|---|---|---|---|"]
    return lines + [f"| {name} | {s['psnr']:.2f} | {s['ssim']:.4f} | {s['psnr'] - base:+.2f} |"
                    for name, s in summary.items()]


def cost_table(report: dict) -> list[str]:
    cost, sizes = report["cost"], report["latency_sizes"]
    first = next(iter(cost))
    lines = [f"**Cost** — {report['machine']}; latency = median of {report['repeats']} runs of one "
             f"forward pass; ratio to {first} measured in the same run; peak RSS of a fresh process "
             f"upscaling one {max(sizes)}² LR image.", ""]
    header = "| model | parameters | GFLOPs / LR MP | " + " | ".join(f"latency {s}² (ms, ×{first})" for s in sizes)
    lines += [header + " | peak RSS (MB) |", "|---" * (4 + len(sizes)) + "|"]
    for name, c in cost.items():
        latency = " | ".join(f"{c['latency_s'][s] * 1000:.1f} (×{c['latency_ratio'][s]:.1f})" for s in sizes)
        lines.append(f"| {name} | {c['parameters']:,} | {c['flops_per_lr_mp'] / 1e9:.1f} | {latency} | "
                     f"{c['peak_rss_mb']:.0f} |")
    return lines


def training_table(training: dict) -> list[str]:
    lines = ["**Training cost** (from the model cards)", "",
             "| model | steps | images seen | wall time | hardware | precision |", "|---|---|---|---|---|---|"]
    for name, t in training.items():
        wall = f"{t['wall_time_s'] / 60:.0f} min" if t.get("wall_time_s") else "—"
        seen = f"{t['images_seen']:,}" if t.get("images_seen") else "—"
        precision = {"no": "fp32"}.get(t.get("precision"), t.get("precision"))
        lines.append(f"| {name} | {t.get('steps') or '—'} | {seen} | {wall} | {t.get('hardware') or '—'} | "
                     f"{precision or '—'} |")
    return lines


def protocol_line(report: dict) -> str:
    line = f"Protocol: {PROTOCOL}."
    if any(t["degradation"] for t in report["quality"]):
        line += (" Tables marked with a realistic degradation change only the LR: drawn by "
                 "sr_models.degradations from the preset with the seed given, one fixed LR per image.")
    return line


def quality_section(table: dict, report: dict, plot) -> list[str]:
    """One quality table with its heading, per-image plot and, for the main set, its crops."""
    lines = [f"**Quality — {table['name']}**, LR: {describe_lr(table['degradation'], table['seed'])}. "
             f"{len(table['images'])} held-out HR images from `{table['hr_dir']}`, x{report['scale']}, "
             f"HR {report['hr_size'] or 'as is'}.", ""]
    lines += quality_table(table["summary"])
    lines += ["", f"![Per-image PSNR, {table['name']}]({plot(per_image_file(table))})"]
    crops = crops_file(table, report)
    if crops:
        columns = " | ".join(["LR", BICUBIC, *report["cost"], "HR"])
        lines += ["", f"![Crops, {table['name']}: {columns}]({plot(crops)})"]
    return lines + [""]


def markdown(report: dict, plots_dir: str = ".") -> str:
    """The full report; plots are linked as ``plots_dir/<file>`` (relative to the page)."""
    def plot(name: str) -> str:
        return name if plots_dir == "." else f"{plots_dir}/{name}"

    lines = [protocol_line(report), ""]
    for table in report["quality"]:
        lines += quality_section(table, report, plot)
    lines += cost_table(report) + [""] + training_table(report["training"]) + [""]
    lines += [f"![PSNR vs latency, {report['quality'][0]['name']}]({plot(PSNR_VS_LATENCY)})", ""]
    return "\n".join(lines)


def column_label(table: dict) -> str:
    lr = "" if table["degradation"] is None else f", {table['degradation']} seed {table['seed']}"
    return f"{table['name']}{lr} ({len(table['images'])})"


def summary_markdown(report: dict, study_link: str) -> str:
    """The README's short block: one row per method, one PSNR / SSIM column per quality
    table, and one line that links the study."""
    tables = report["quality"]
    lines = ["| method | " + " | ".join(column_label(t) for t in tables) + " |", "|---" * (1 + len(tables)) + "|"]
    for method in tables[0]["summary"]:
        cells = []
        for table in tables:
            s, base = table["summary"][method], table["summary"][BICUBIC]["psnr"]
            gain = "" if method == BICUBIC else f" ({s['psnr'] - base:+.2f})"
            cells.append(f"{s['psnr']:.2f} / {s['ssim']:.4f}{gain}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    realistic = "; columns naming a degradation: realistic LR (sr_models.degradations)" \
        if any(t["degradation"] for t in tables) else ""
    lines += ["", f"PSNR-Y (dB) / SSIM-Y, gain over bicubic in brackets; x{report['scale']}, held-out images "
                  f"(count in brackets), the evaluation protocol{realistic}. Cost, training cost, per-image "
                  f"scores and plots: [{study_link}]({study_link})."]
    return "\n".join(lines)


def relative(path: Path, page: Path) -> str:
    """``path`` as a link from the markdown file ``page`` (POSIX separators)."""
    return Path(os.path.relpath(path.resolve(), page.resolve().parent)).as_posix()


def replace_block(content: str, text: str, page: Path) -> str:
    """``content`` with the text between the results markers replaced by ``text``."""
    if RESULTS_START not in content or RESULTS_END not in content:
        raise SystemExit(f"{page} has no {RESULTS_START} ... {RESULTS_END} block")
    pattern = re.compile(re.escape(RESULTS_START) + ".*?" + re.escape(RESULTS_END), re.S)
    return pattern.sub(lambda _: f"{RESULTS_START}\n{text}\n{RESULTS_END}", content, count=1)


def update_pages(report: dict, results_dir: Path, readme: Path = README, study: Path = STUDY) -> None:
    """Rewrite the results blocks: the short table in ``readme``, the full report in
    ``study``. Both pages are checked before either is written."""
    pages = {
        study: markdown(report, plots_dir=relative(results_dir, study)),
        readme: summary_markdown(report, study_link=relative(study, readme)),
    }
    new = {page: replace_block(page.read_text(), text, page) for page, text in pages.items()}
    for page, content in new.items():
        page.write_text(content)


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    models = {name: load_model(name, scale=args.scale).eval() for name in args.model}
    quality = score_sets(models, args.hr, degradations=[None, *([args.degradation] if args.degradation else [])],
                         seed=args.seed, scale=args.scale, hr_size=args.hr_size, limit=args.limit)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "scale": args.scale, "hr_size": args.hr_size, "quality": quality,
        "machine": describe(), "repeats": args.repeats, "latency_sizes": args.latency_sizes,
        "cost": costs(models, args.latency_sizes, args.repeats),
        "training": {name: training_cost(m) for name, m in models.items()},
    }
    (out / "compare.json").write_text(json.dumps(report, indent=2))
    write_plots(models, report, out, args.limit)
    text = markdown(report)
    (out / "compare.md").write_text(text)
    if args.update_readme:
        update_pages(report, out, Path(args.readme), Path(args.study))
    print(text)
    return report


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hr", required=True, action="append", type=named_folder, metavar="[NAME=]DIR",
                        help="a held-out set of HR images (repeatable; the first is the main benchmark)")
    parser.add_argument("--model", action="append", help="model name, folder or repo id (repeatable); "
                                                         f"default: {' '.join(DEFAULT_MODELS)}")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--hr-size", type=int, default=256, help="HR side (centre crop + resize); 0 keeps it")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each set only")
    parser.add_argument("--degradation", choices=sorted(PRESETS), default=None,
                        help="also score every set with LR images from this realistic degradation preset")
    parser.add_argument("--seed", type=int, default=0, help="seed of --degradation's LR images (default: 0)")
    parser.add_argument("--latency-sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output-dir", default=str(PROJECT_ROOT / "benchmarks" / "results"))
    parser.add_argument("--update-readme", action="store_true",
                        help="rewrite the results blocks of --readme (short table) and --study (full report)")
    parser.add_argument("--readme", default=str(README), help="default: %(default)s")
    parser.add_argument("--study", default=str(STUDY), help="default: %(default)s")
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error(f"--seed must be an integer >= 0, got {args.seed}")
    args.model = args.model or list(DEFAULT_MODELS)
    args.hr_size = args.hr_size or None
    return args


if __name__ == "__main__":
    run(parse_args())
