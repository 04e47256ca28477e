"""From inputs of any size to model outputs: padding, running, cropping."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad (B, C, H, W) on the right and bottom up to multiples of ``multiple``.

    Reflection (as the official HAT test code does) keeps image statistics at the border.
    PyTorch's reflect needs pad < size, so tiny inputs are reflected repeatedly.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    while pad_h or pad_w:
        step_h, step_w = min(pad_h, x.shape[-2] - 1), min(pad_w, x.shape[-1] - 1)
        if step_h == 0 and step_w == 0:  # a 1-pixel side cannot be reflected
            return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return x


def upscale_tensor(model: nn.Module, lr: torch.Tensor) -> torch.Tensor:
    """Super-resolve float (B, C, H, W) in [0, 1] of any H, W; returns (B, C, sH, sW).

    Pads to ``model.pad_multiple``, runs the model as it is (device, dtype, grad mode are
    the caller's), crops the padding away. Values are not clamped.
    """
    if lr.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(lr.shape)}")
    h, w = lr.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f"empty input of size {h}x{w}")
    out = model(pad_to_multiple(lr, model.pad_multiple))
    return out[..., : model.scale * h, : model.scale * w]
