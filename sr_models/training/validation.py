"""Held-out scoring during training: PSNR-Y / SSIM-Y (the protocol, through
``sr_models.metrics.psnr_batch`` / ``ssim_batch``) of the model and of bicubic on fixed
validation images, and the LR | bicubic | SR | HR grid shown in the trackers and the card.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from sr_models import upscale_tensor
from sr_models.metrics import bicubic_upscale, degrade, psnr_batch, ssim_batch
from sr_models.training.data import to_tensor

#: Validation images shown in the LR | bicubic | SR | HR grid, and the largest side of each
#: tile (bigger images are shown by their centre, so the grid stays a viewable size).
GRID_IMAGES = 4
GRID_MAX_SIDE = 512
VALIDATION_BATCH = 8


class Validator:
    """Scores of a model and of bicubic on fixed validation images (HR, RGB), and the grid."""

    def __init__(self, images: list[tuple[str, Image.Image]], scale: int, device: torch.device):
        self.scale = scale
        self.device = device
        self.hr, self.lr, self.bicubic = [], [], []
        for _, hr in images:
            lr = degrade(hr, scale)
            self.hr.append(hr)
            self.lr.append(lr)
            self.bicubic.append(bicubic_upscale(lr, scale))
        self.bicubic_metrics = self._evaluate(lambda batch: _to_batch([self.bicubic[i] for i in batch]))

    def __len__(self) -> int:
        return len(self.hr)

    def _batches(self):
        """Indices of same-size images, in groups of up to VALIDATION_BATCH."""
        by_size: dict[tuple, list[int]] = {}
        for i, img in enumerate(self.hr):
            by_size.setdefault(img.size, []).append(i)
        for indices in by_size.values():
            for k in range(0, len(indices), VALIDATION_BATCH):
                yield indices[k : k + VALIDATION_BATCH]

    def _evaluate(self, predict) -> dict:
        """Mean per-image PSNR / SSIM of ``predict(indices) -> (B, 3, H, W)`` against the HR images."""
        psnrs, ssims = [], []
        for batch in self._batches():
            sr = predict(batch)
            hr = _to_batch([self.hr[i] for i in batch]).to(sr.device)
            psnrs.append(psnr_batch(sr, hr, crop_border=self.scale).cpu())
            ssims.append(ssim_batch(sr, hr, crop_border=self.scale).cpu())
        return {"psnr_y": torch.cat(psnrs).mean().item(), "ssim_y": torch.cat(ssims).mean().item()}

    @torch.inference_mode()
    def run(self, model) -> tuple[dict, Image.Image]:
        """Metrics of ``model`` (run as it is: float32, eval mode) and the grid of the first images."""
        model.eval()
        shown: dict[int, torch.Tensor] = {}

        def predict(batch):
            lr = _to_batch([self.lr[i] for i in batch]).to(self.device)
            sr = upscale_tensor(model, lr).float().clamp_(0.0, 1.0)
            shown.update({i: sr[j].cpu() for j, i in enumerate(batch) if i < GRID_IMAGES})
            return sr

        return self._evaluate(predict), self._grid(shown)

    def _grid(self, outputs: dict[int, torch.Tensor]) -> Image.Image:
        rows = []
        for i in sorted(outputs):
            sr = Image.fromarray(outputs[i].mul(255).round().byte().permute(1, 2, 0).numpy())
            hr = self.hr[i]
            lr_big = self.lr[i].resize(hr.size, Image.NEAREST)  # pixels visible at HR size
            rows.append([_centre(t, GRID_MAX_SIDE) for t in (lr_big, self.bicubic[i], sr, hr)])
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


def _to_batch(images: list[Image.Image]) -> torch.Tensor:
    return to_tensor([np.asarray(i) for i in images])
