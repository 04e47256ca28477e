"""The denoise-strength curve: quality of the blended models (sr_models.denoise) from the
clean weights (strength 0) to the real-photo weights (strength 1).

Each bundled real-photo model (``espcn-real``, ``hat-real``) is blended with the clean
model it was fine-tuned from at every strength, and scored by the study's scorer
(benchmarks.quality.score_sets: the library's one protocol) on both held-out sets, under
the protocol's bicubic LR and under the seeded ``moderate`` realistic LR, bicubic beside
them. Run from the project root (one thread, as the study measures):

    python -m benchmarks.denoise_curve                       # writes a fresh runs/denoise-<time>/
    python -m benchmarks.denoise_curve --out runs/denoise-new --hr celeba=data/faces256v2/val --limit 3

Prints the table and writes ``denoise_curve.json`` (every number, the weights' sources, the
machine) and ``denoise_curve.png`` (PSNR-Y and SSIM-Y against strength, one column per
table). The SR_*_MODEL variables replace either end, as everywhere (sr_models.loading), so
that rerunning after new weights needs no change here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmarks.machine import describe
from benchmarks.outputs import fresh_output_dir
from benchmarks.quality import named_folder, score_sets, table_key
from sr_models.bundled import denoisable_names
from sr_models.denoise import blend, clean_partner
from sr_models.evaluation import BICUBIC, describe_lr
from sr_models.loading import load_bundled

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: The study's held-out sets (scripts.finalize and benchmarks.compare use the same),
#: relative to the project root the script runs from: the report names no local path.
DEFAULT_SETS = [("celeba", Path("data/faces256v2/val")), ("studio", Path("data/faces256v2/val_studio"))]
#: LR of each table: the protocol, then the realistic preset the real-photo weights were trained for.
DEGRADATIONS = [None, "moderate"]
JSON_FILE, PLOT_FILE = "denoise_curve.json", "denoise_curve.png"


def method_name(model: str, strength: float) -> str:
    """``hat-real@0.25``: one blended model's row in the quality tables."""
    return f"{model}@{strength:g}"


def curve(pairs: dict[str, tuple], sets: list[tuple[str, Path]], *, strengths=STRENGTHS, seed: int = 0,
          hr_size: int | None = 256, limit: int | None = None) -> dict:
    """Score every pair blended at every strength.

    Args:
        pairs: model name -> (clean model, real-photo model fine-tuned from it).
        sets: (name, folder of HR images) of each held-out set.
        strengths: the denoise strengths, each in [0, 1].
        seed: the seed of the realistic LR.
        hr_size: HR side (centre crop + resize), None to keep it.
        limit: the first N images of each set only.

    Returns:
        ``{"strengths", "tables": {table key: {"lr", "images", "curves": {model: {"psnr": [...],
        "ssim": [...]}}, "bicubic": {"psnr", "ssim"}}}, "quality"}``: a curve per model, one
        value per strength, and the full quality tables (per image) they come from.
    """
    models = {method_name(name, s): blend(clean, real, s) for name, (clean, real) in pairs.items() for s in strengths}
    quality = score_sets(models, sets, degradations=DEGRADATIONS, seed=seed, hr_size=hr_size, limit=limit)
    tables = {}
    for table in quality:
        summary = table["summary"]
        curves = {name: {metric: [summary[method_name(name, s)][metric] for s in strengths]
                         for metric in ("psnr", "ssim")} for name in pairs}
        tables[table_key(table)] = {
            "lr": describe_lr(table["degradation"], table["seed"]), "images": len(table["images"]),
            "curves": curves, BICUBIC: {metric: summary[BICUBIC][metric] for metric in ("psnr", "ssim")}}
    return {"strengths": list(strengths), "tables": tables, "quality": quality}


def table_text(result: dict) -> str:
    """The curves as text: per table, one row per model (and bicubic), ``PSNR / SSIM`` per strength."""
    strengths = result["strengths"]
    header = f"{'model':<14}" + "".join(f"{f's={s:g}':>18}" for s in strengths)
    lines = []
    for key, table in result["tables"].items():
        lines += ["", f"{key}: {table['images']} images, LR: {table['lr']}", header]
        for name, c in table["curves"].items():
            lines.append(f"{name:<14}" + "".join(f"{p:>9.2f} / {s:.4f}" for p, s in zip(c["psnr"], c["ssim"])))
        bicubic = table[BICUBIC]
        lines.append(f"{BICUBIC:<14}{bicubic['psnr']:>9.2f} / {bicubic['ssim']:.4f} (any strength)")
    return "\n".join(lines[1:])


def plot(result: dict, path: Path) -> None:
    """PSNR-Y (top) and SSIM-Y (bottom) against strength, one column per table, bicubic dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = result["tables"]
    fig, axes = plt.subplots(2, len(tables), figsize=(3.6 * len(tables), 6), squeeze=False)
    for col, (key, table) in enumerate(tables.items()):
        for row, (metric, label) in enumerate((("psnr", "PSNR-Y (dB)"), ("ssim", "SSIM-Y"))):
            ax = axes[row][col]
            for name, c in table["curves"].items():
                ax.plot(result["strengths"], c[metric], marker="o", label=name)
            ax.axhline(table[BICUBIC][metric], color="grey", ls="--", lw=1, label=BICUBIC)
            ax.set_xlabel("denoise strength")
            ax.set_ylabel(label)
            ax.set_title(key, fontsize=9)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def load_pairs(names: list[str]) -> tuple[dict[str, tuple], dict[str, dict[str, str]]]:
    """(name -> (clean, real) models, name -> where each end's weights came from)."""
    pairs, sources = {}, {}
    for name in names:
        partner = clean_partner(name)
        (clean, clean_source), (real, real_source) = load_bundled(partner), load_bundled(name)
        pairs[name] = (clean, real)
        sources[name] = {"clean": f"{partner}: {clean_source}", "real": f"{name}: {real_source}"}
    return pairs, sources


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    pairs, sources = load_pairs(args.model)
    result = curve(pairs, args.hr, seed=args.seed, hr_size=args.hr_size, limit=args.limit)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {**result, "sources": sources, "machine": describe(), "seed": args.seed, "hr_size": args.hr_size}
    (out / JSON_FILE).write_text(json.dumps(report, indent=2, allow_nan=False))
    plot(result, out / PLOT_FILE)
    print(table_text(result))
    print(f"denoise_curve: wrote {out / JSON_FILE} and {out / PLOT_FILE}")
    return report


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", choices=denoisable_names(), default=None,
                        help=f"real-photo bundled model (repeatable; default: {' '.join(denoisable_names())})")
    parser.add_argument("--hr", action="append", type=named_folder, default=None, metavar="[NAME=]DIR",
                        help="a held-out set (repeatable; default: "
                             f"{' '.join(f'{n}={p}' for n, p in DEFAULT_SETS)})")
    parser.add_argument("--hr-size", type=int, default=256, help="HR side (centre crop + resize); 0 keeps it")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each set only")
    parser.add_argument("--seed", type=int, default=0, help="seed of the moderate LR images (default: 0)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default: %(default)s)")
    parser.add_argument("--out", default=None, help="output folder (default: a fresh runs/denoise-<time>/)")
    args = parser.parse_args(argv)
    if args.seed < 0 or args.threads < 1:
        parser.error("--seed must be >= 0 and --threads >= 1")
    args.model = args.model or denoisable_names()
    args.hr = args.hr or DEFAULT_SETS
    args.hr_size = args.hr_size or None
    args.out = args.out or str(fresh_output_dir("denoise"))
    return args


if __name__ == "__main__":
    run(parse_args())
