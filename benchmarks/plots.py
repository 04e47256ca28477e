"""The study's plots: PSNR against latency, per-image PSNR of every quality table, and
crops of the main set (LR, bicubic, every model, HR side by side)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.quality import table_key
from sr_models import upscale
from sr_models.evaluation import find_images
from sr_models.pipeline import load_image
from sr_models.protocol import BICUBIC, bicubic_upscale, degradation_of, make_pair

PSNR_VS_LATENCY = "psnr_vs_latency.png"
#: Widest per-image plot (inches) and the most images whose names label its axis.
PER_IMAGE_MAX_WIDTH, PER_IMAGE_MAX_LABELS = 20, 30


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
    lr_kind = degradation_of(degradation)
    tiles = []
    for index, hr_path in enumerate(hr_paths[:rows]):
        hr, lr = make_pair(load_image(hr_path), scale, hr_size, lr_kind, seed=seed, index=index)
        crop = min(crop, hr.width, hr.height)
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
