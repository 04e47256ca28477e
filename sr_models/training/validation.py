"""Held-out scoring during training, as ``sr-models evaluate`` scores a folder, and the
LR | bicubic | SR | HR grid shown in the trackers and the card.

The HR images come prepared by ``sr_models.protocol.prepare_hr`` (in
``data.decode_validation``: 256x256 by default, ``--validation_hr_size``), the LR is the
protocol's bicubic downscale, and every metric of ``sr_models.metric_registry`` is taken
on the batches, rounded to uint8 as ``sr-models evaluate`` rounds them: a card's numbers
equal ``sr-models evaluate --hr-size N`` on the same folder.

Memory is bounded whatever the images' size: a forward pass sees at most MAX_LR_PIXELS LR
pixels (several protocol-sized images at once); a larger image (``--validation_hr_size 0``
and a photo) is run alone in tiles of TILE LR pixels (``sr_models.pipeline.upscale_tiled``),
and the metrics work in strips (``sr_models.metrics.STRIP_PIXELS``); bicubic outputs are
kept only for the grid.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from sr_models import metric_registry, upscale_tensor
from sr_models.pipeline import default_tile_overlap, upscale_tiled
from sr_models.protocol import bicubic_upscale, degrade
from sr_models.training.data import to_tensor

#: Validation images shown in the LR | bicubic | SR | HR grid, and the largest side of each
#: tile (bigger images are shown by their centre, so the grid stays a viewable size).
GRID_IMAGES = 4
GRID_MAX_SIDE = 512
#: LR pixels of one forward pass: 8 protocol images (64x64 LR at x4). HAT-S needs about 43 KB
#: per LR pixel in float32 (docs/performance.md), so ~1.4 GB; a 12 MP photo untiled needed 7.6 GB
#: with ESPCN and a 36 MP one over 24 GB (issue 19).
MAX_LR_PIXELS = 8 * 64 * 64
#: LR side of the tiles of images over MAX_LR_PIXELS.
TILE = 128


class Validator:
    """Scores of a model and of bicubic on fixed validation images (HR, RGB), and the grid."""

    def __init__(self, images: list[tuple[str, Image.Image]], scale: int, device: torch.device):
        self.scale = scale
        self.device = device
        self.hr = [hr for _, hr in images]
        self.lr = [degrade(hr, scale) for hr in self.hr]
        self.bicubic_metrics = self._evaluate(lambda batch: _to_batch([self._bicubic(i) for i in batch]))

    def __len__(self) -> int:
        return len(self.hr)

    def _bicubic(self, i: int) -> Image.Image:
        return bicubic_upscale(self.lr[i], self.scale)

    def _batches(self):
        """Indices of same-size images, as many at once as MAX_LR_PIXELS allows (at least one)."""
        by_size: dict[tuple, list[int]] = {}
        for i, img in enumerate(self.lr):
            by_size.setdefault(img.size, []).append(i)
        for (w, h), indices in by_size.items():
            size = max(1, MAX_LR_PIXELS // (w * h))
            for k in range(0, len(indices), size):
                yield indices[k : k + size]

    def _evaluate(self, predict) -> dict:
        """Every registry metric of ``predict(indices) -> (B, 3, H, W)`` against the HR images:
        key -> the mean over images (``metric_registry.mean``, as ``sr-models evaluate`` takes it)."""
        values: dict[str, list] = {key: [] for key in metric_registry.KEYS}
        for batch in self._batches():
            sr = predict(batch)
            hr = _to_batch([self.hr[i] for i in batch]).to(sr.device)
            for key, scores in metric_registry.score_batches(sr, hr, self.scale).items():
                values[key] += [None] * len(batch) if scores is None else scores.cpu().tolist()
        return {key: metric_registry.mean(per_image) for key, per_image in values.items()}

    def _upscale(self, model, batch: list[int]) -> torch.Tensor:
        """The model's output for a batch; an image over MAX_LR_PIXELS (alone in its batch) in tiles."""
        lr = _to_batch([self.lr[i] for i in batch])
        if lr.shape[-2] * lr.shape[-1] <= MAX_LR_PIXELS:
            return upscale_tensor(model, lr.to(self.device)).float()
        return upscale_tiled(model, lr, TILE, default_tile_overlap(model))  # on the CPU, like the HR

    @torch.inference_mode()
    def run(self, model) -> tuple[dict, Image.Image]:
        """Metrics of ``model`` (run as it is: float32, eval mode) and the grid of the first images."""
        model.eval()
        shown: dict[int, Image.Image] = {}

        def predict(batch):
            sr = self._upscale(model, batch).clamp_(0.0, 1.0)
            # only the grid's centre crop is kept of a large output
            shown.update({i: _centre(_to_image(sr[j]), GRID_MAX_SIDE) for j, i in enumerate(batch) if i < GRID_IMAGES})
            return sr

        return self._evaluate(predict), self._grid(shown)

    def _grid(self, outputs: dict[int, Image.Image]) -> Image.Image:
        rows = []
        for i in sorted(outputs):
            hr = self.hr[i]
            lr_big = self.lr[i].resize(hr.size, Image.NEAREST)  # pixels visible at HR size
            rows.append([_centre(t, GRID_MAX_SIDE) for t in (lr_big, self._bicubic(i), hr)])
            rows[-1].insert(2, outputs[i])
        width = max(sum(t.width for t in row) for row in rows)
        grid = Image.new("RGB", (width, sum(row[0].height for row in rows)))
        y = 0
        for row in rows:
            x = 0
            for tile in row:
                grid.paste(tile, (x, y))
                x += tile.width
            y += row[0].height
        return grid


def _centre(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    cw, ch = min(w, side), min(h, side)
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch))


def _to_image(sr: torch.Tensor) -> Image.Image:
    """(3, H, W) in [0, 1] -> uint8 RGB, rounded as the metrics round it."""
    return Image.fromarray(sr.mul(255).round().byte().permute(1, 2, 0).cpu().numpy())


def _to_batch(images: list[Image.Image]) -> torch.Tensor:
    return to_tensor([np.asarray(i) for i in images])


def __getattr__(name: str):
    # The strip scorer's names: every metric bounds its own memory (sr_models.metrics.STRIP_PIXELS).
    if name in ("score", "SCORE_PIXELS"):
        raise AttributeError(f"{__name__}.{name} is gone: every metric bounds its memory itself; use "
                             "sr_models.metric_registry.score_batches (sr_models.metrics.STRIP_PIXELS)")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
