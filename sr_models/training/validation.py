"""Held-out scoring during training, as ``sr-models evaluate`` scores a folder, and the
LR | bicubic | SR | HR grid shown in the trackers and the card.

The HR images come prepared by ``sr_models.evaluation.prepare_hr`` (in
``data.decode_validation``: 256x256 by default, ``--validation_hr_size``), the LR is the
protocol's bicubic downscale, and ``psnr_batch`` / ``ssim_batch`` round to uint8 as
``sr_models.metrics.psnr`` does: a card's numbers equal ``sr-models evaluate --hr-size N``
on the same folder.

Memory is bounded whatever the images' size: a forward pass sees at most MAX_LR_PIXELS LR
pixels (several protocol-sized images at once); a larger image (``--validation_hr_size 0``
and a photo) is run alone in tiles of TILE LR pixels (``sr_models.pipeline.upscale_tiled``)
and scored in strips of rows (:func:`score`); bicubic outputs are kept only for the grid.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from sr_models import upscale_tensor
from sr_models.metrics import SSIM_WINDOW_SIZE, bicubic_upscale, degrade, psnr_batch, ssim_batch
from sr_models.pipeline import default_tile_overlap, upscale_tiled
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
#: HR pixels scored at once. SSIM filters five float64 moments and needs ~550 bytes per
#: pixel: 6.5 GB for one 12 MP image, measured. Larger images are scored in strips of rows.
SCORE_PIXELS = 2**20


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
        """Mean per-image PSNR / SSIM of ``predict(indices) -> (B, 3, H, W)`` against the HR images."""
        psnrs, ssims = [], []
        for batch in self._batches():
            sr = predict(batch)
            p, s = score(sr, _to_batch([self.hr[i] for i in batch]).to(sr.device), self.scale)
            psnrs.append(p.cpu())
            ssims.append(s.cpu())
        return {"psnr_y": torch.cat(psnrs).mean().item(), "ssim_y": torch.cat(ssims).mean().item()}

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


def score(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image PSNR-Y and SSIM-Y of batches (B, 3, H, W), as ``psnr_batch`` / ``ssim_batch``
    give them, over strips of at most SCORE_PIXELS: the mean squared error is summed over
    disjoint strips, SSIM's valid map over strips that overlap by its window less one row
    (the same positions, each once)."""
    b, _, h, w = hr.shape
    if b * h * w <= SCORE_PIXELS:
        return psnr_batch(sr, hr, crop_border=scale), ssim_batch(sr, hr, crop_border=scale)
    sr, hr = sr[..., scale : h - scale, scale : w - scale], hr[..., scale : h - scale, scale : w - scale]
    h, w = hr.shape[-2:]
    rows, margin = max(1, SCORE_PIXELS // (b * w)), SSIM_WINDOW_SIZE - 1
    squared = sum(_squared_error(sr[..., top : top + rows, :], hr[..., top : top + rows, :])
                  for top in range(0, h, rows))
    psnr = 10.0 * torch.log10(255.0**2 * h * w / squared)
    ssim = sum(ssim_batch(sr[..., top : top + rows + margin, :], hr[..., top : top + rows + margin, :], crop_border=0)
               * min(rows, h - margin - top) for top in range(0, h - margin, rows))
    return psnr, ssim / (h - margin)


def _squared_error(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Per-image sum of squared Y errors (on the 0..255 scale) of a strip, from its PSNR."""
    pixels = sr.shape[-2] * sr.shape[-1]
    return 255.0**2 * pixels / 10.0 ** (psnr_batch(sr, hr, crop_border=0).double() / 10.0)


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
