"""HAT: Hybrid Attention Transformer for image super-resolution.

Chen, Wang, Zhou, Qiao, Dong, "Activating More Pixels in Image Super-Resolution
Transformer", CVPR 2023 (arXiv:2205.04437). Upstream: XPixelGroup/HAT
(hat/archs/hat_arch.py, Apache-2.0). This is an independent implementation that keeps
the official constructor arguments and the official state-dict layout (same keys,
shapes and order), so official checkpoints load strictly and our weights open in tools
that read official HAT files.

Differences from upstream, none of which change the weights or the outputs:
- attention runs through ``F.scaled_dot_product_attention`` with the relative-position
  bias and the shift mask folded into one additive mask (``attn_impl="sdpa"``); the
  explicit softmax path (``attn_impl="math"``) follows upstream step by step;
- shift masks are cached per input size instead of being rebuilt on every forward;
- ``gradient_checkpointing`` really checkpoints each block (upstream's
  ``use_checkpoint`` is accepted there and ignored).

Read top to bottom: helpers, blocks from small to large, the model, presets, and the
official-checkpoint import.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .hub import SRModelMixin

logger = logging.getLogger(__name__)

# Mean RGB of DIV2K, subtracted inside the model (upstream hard-codes it; it is not part of
# the state dict).
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)

# Upstream masks disallowed pairs of the shifted windows with -100 (not -inf); exp(-100)
# is ~4e-44, so keeping the value keeps outputs bit-comparable with upstream.
SHIFT_MASK_VALUE = -100.0

ATTN_IMPLS = ("sdpa", "math")


# --------------------------------------------------------------------------- helpers


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(B, H, W, C) -> (B*nW, ws, ws, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c)


def window_reverse(windows: torch.Tensor, window_size: int, h: int, w: int) -> torch.Tensor:
    """(B*nW, ws, ws, C) -> (B, H, W, C); inverse of :func:`window_partition`."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // window_size) * (w // window_size))
    x = windows.view(b, h // window_size, w // window_size, window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def _grid(size: int) -> torch.Tensor:
    """(2, size*size) row/column coordinates of a size x size window, row-major."""
    coords = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij"))
    return coords.flatten(1)


def relative_position_index_sa(window_size: int) -> torch.Tensor:
    """(ws², ws²) index into the (2ws-1)² bias table for window self-attention (Swin)."""
    coords = _grid(window_size)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # (ws², ws², 2)
    rel = rel + (window_size - 1)
    return rel[..., 0] * (2 * window_size - 1) + rel[..., 1]


def relative_position_index_oca(window_size: int, overlap_window_size: int) -> torch.Tensor:
    """(ws², ows²) index into the (ws+ows-1)² bias table of overlapping cross-attention.

    Reproduces upstream exactly, including its offset: the result contains negative
    entries, which upstream resolves by PyTorch's wrap-around indexing. The checkpoints
    carry this buffer, so the values must stay as they are; :func:`_gather_bias` applies
    the same wrap-around explicitly (index modulo the table length).
    """
    ori = _grid(window_size)
    ext = _grid(overlap_window_size)
    rel = (ext[:, None, :] - ori[:, :, None]).permute(1, 2, 0)  # (ws², ows², 2)
    rel = rel + (window_size - overlap_window_size + 1)
    return rel[..., 0] * (window_size + overlap_window_size - 1) + rel[..., 1]


def shifted_window_mask(h: int, w: int, window_size: int, shift_size: int) -> torch.Tensor:
    """(nW, ws², ws²) additive mask: 0 within a region, -100 across regions of the roll."""
    region = torch.zeros(1, h, w, 1)
    slices = (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None))
    label = 0
    for hs in slices:
        for ws in slices:
            region[:, hs, ws, :] = label
            label += 1
    region = window_partition(region, window_size).view(-1, window_size * window_size)
    diff = region.unsqueeze(1) - region.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, SHIFT_MASK_VALUE)


def _gather_bias(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Relative-position bias (heads, N, M) from a (T, heads) table and an (N, M) index."""
    n, m = index.shape
    bias = table[index.reshape(-1) % table.shape[0]]  # modulo = upstream's wrap-around
    return bias.view(n, m, -1).permute(2, 0, 1)


def attention(q, k, v, bias: torch.Tensor, mask: torch.Tensor | None, impl: str) -> torch.Tensor:
    """Multi-head attention over windows with an additive relative-position bias.

    q: (B*nW, heads, N, d); k, v: (B*nW, heads, M, d); bias: (heads, N, M);
    mask: (nW, N, M) or None. Returns (B*nW, heads, N, d).
    """
    if mask is not None:
        n_windows = mask.shape[0]
        bias = bias.unsqueeze(0) + mask.unsqueeze(1)  # (nW, heads, N, M)
        # (B, nW, heads, N, d): batch windows share the per-window mask by broadcasting.
        q, k, v = (t.view(-1, n_windows, *t.shape[1:]) for t in (q, k, v))
    if impl == "sdpa":
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
    else:
        # Upstream's order of operations: scale q, q @ k^T, add bias (+ mask), softmax.
        attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
        attn = (attn + bias).softmax(dim=-1)
        out = attn @ v
    return out.flatten(0, 1) if mask is not None else out


class DropPath(nn.Module):
    """Stochastic depth per sample (Huang et al., 2016), as in timm / upstream."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        noise = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * noise / keep


# --------------------------------------------------------------------------- blocks


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention (RCAN)."""

    def __init__(self, dim: int, squeeze_factor: int):
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dim, dim // squeeze_factor, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim // squeeze_factor, dim, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.attention(x)


class CAB(nn.Module):
    """Channel attention block: conv-GELU-conv, then channel attention."""

    def __init__(self, dim: int, compress_ratio: int, squeeze_factor: int):
        super().__init__()
        self.cab = nn.Sequential(
            nn.Conv2d(dim, dim // compress_ratio, 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(dim // compress_ratio, dim, 3, 1, 1),
            ChannelAttention(dim, squeeze_factor),
        )

    def forward(self, x):
        return self.cab(x)


class WindowAttention(nn.Module):
    """Window multi-head self-attention with a learned relative-position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool, attn_impl: str):
        super().__init__()
        self.num_heads = num_heads
        self.attn_impl = attn_impl
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, rpi: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b_, n, c = x.shape  # (B*nW, ws², C)
        qkv = self.qkv(x).view(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = _gather_bias(self.relative_position_bias_table, rpi)
        out = attention(qkv[0], qkv[1], qkv[2], bias, mask, self.attn_impl)  # (B*nW, heads, N, d)
        return self.proj(out.transpose(1, 2).reshape(b_, n, c))


class HAB(nn.Module):
    """Hybrid attention block: (shifted) window attention + scaled channel attention, MLP."""

    def __init__(self, dim, num_heads, window_size, shift_size, compress_ratio, squeeze_factor,
                 conv_scale, mlp_ratio, qkv_bias, drop_path, attn_impl):
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.conv_scale = conv_scale
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias, attn_impl)
        self.conv_block = CAB(dim, compress_ratio, squeeze_factor)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], rpi_sa: torch.Tensor,
                shift_mask: torch.Tensor) -> torch.Tensor:
        h, w = x_size
        b, _, c = x.shape  # (B, H*W, C)
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        conv_x = self.conv_block(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(b, h * w, c)

        s, ws = self.shift_size, self.window_size
        if s > 0:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        windows = window_partition(x, ws).view(-1, ws * ws, c)  # (B*nW, ws², C)
        windows = self.attn(windows, rpi_sa, shift_mask if s > 0 else None)
        x = window_reverse(windows.view(-1, ws, ws, c), ws, h, w)
        if s > 0:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))

        x = shortcut + self.drop_path(x.reshape(b, h * w, c)) + conv_x * self.conv_scale
        return x + self.drop_path(self.mlp(self.norm2(x)))


class OCAB(nn.Module):
    """Overlapping cross-attention block: ws x ws query windows attend to larger,
    overlapping ows x ows key/value windows (ows = ws + int(overlap_ratio * ws))."""

    def __init__(self, dim, window_size, overlap_ratio, num_heads, qkv_bias, mlp_ratio, attn_impl):
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.overlap_win_size = int(window_size * overlap_ratio) + window_size
        self.attn_impl = attn_impl
        table_side = window_size + self.overlap_win_size - 1
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table_side * table_side, num_heads))
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _overlapping_windows(self, kv: torch.Tensor) -> torch.Tensor:
        """(B, 2C, H, W) -> (2, B*nW, ows², C): zero-padded, stride-ws windows of size ows."""
        ws, ows = self.window_size, self.overlap_win_size
        b, c2, h, w = kv.shape
        pad = (ows - ws) // 2
        kv = F.pad(kv, (pad, pad, pad, pad))
        # unfold == nn.Unfold(ows, stride=ws, padding=pad) as upstream, without the copy to
        # (B, 2C*ows², nW) and back: (B, 2C, nH, nW, ows, ows)
        patches = kv.unfold(2, ows, ws).unfold(3, ows, ws)
        n_h, n_w = patches.shape[2], patches.shape[3]
        patches = patches.reshape(b, 2, c2 // 2, n_h * n_w, ows * ows)
        return patches.permute(1, 0, 3, 4, 2).reshape(2, b * n_h * n_w, ows * ows, c2 // 2)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], rpi_oca: torch.Tensor) -> torch.Tensor:
        h, w = x_size
        b, _, c = x.shape
        ws, heads = self.window_size, self.num_heads
        shortcut = x
        qkv = self.qkv(self.norm1(x)).view(b, h, w, 3, c)
        q = window_partition(qkv[..., 0, :], ws).view(-1, ws * ws, c)  # (B*nW, ws², C)
        kv = qkv[..., 1:, :].permute(0, 3, 4, 1, 2).reshape(b, 2 * c, h, w)  # (B, 2C, H, W)
        k, v = self._overlapping_windows(kv)  # each (B*nW, ows², C)

        b_, nq, _ = q.shape
        q = q.view(b_, nq, heads, c // heads).transpose(1, 2)
        k = k.reshape(b_, -1, heads, c // heads).transpose(1, 2)
        v = v.reshape(b_, -1, heads, c // heads).transpose(1, 2)
        bias = _gather_bias(self.relative_position_bias_table, rpi_oca)
        out = attention(q, k, v, bias, None, self.attn_impl)  # (B*nW, heads, ws², d)
        out = out.transpose(1, 2).reshape(-1, ws, ws, c)
        x = window_reverse(out, ws, h, w).reshape(b, h * w, c)
        x = self.proj(x) + shortcut
        return x + self.mlp(self.norm2(x))


class AttenBlocks(nn.Module):
    """The HABs of one group (shift on every second block) followed by one OCAB."""

    def __init__(self, dim, depth, num_heads, window_size, compress_ratio, squeeze_factor, conv_scale,
                 overlap_ratio, mlp_ratio, qkv_bias, drop_path, attn_impl):
        super().__init__()
        self.blocks = nn.ModuleList(
            HAB(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, compress_ratio,
                squeeze_factor, conv_scale, mlp_ratio, qkv_bias, drop_path[i], attn_impl)
            for i in range(depth)
        )
        self.overlap_attn = OCAB(dim, window_size, overlap_ratio, num_heads, qkv_bias, mlp_ratio, attn_impl)
        self.gradient_checkpointing = False

    def _run(self, module, *args):
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            # Recompute the block in backward instead of keeping its activations; RNG state
            # is restored, so DropPath draws the same mask both times.
            return checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def forward(self, x, x_size, rpi_sa, rpi_oca, shift_mask):
        for block in self.blocks:
            x = self._run(block, x, x_size, rpi_sa, shift_mask)
        return self._run(self.overlap_attn, x, x_size, rpi_oca)


class RHAG(nn.Module):
    """Residual hybrid attention group: blocks, then a 3x3 conv, plus the group input."""

    def __init__(self, dim, resi_connection, **block_kwargs):
        super().__init__()
        self.residual_group = AttenBlocks(dim, **block_kwargs)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1) if resi_connection == "1conv" else nn.Identity()

    def forward(self, x, x_size, rpi_sa, rpi_oca, shift_mask):
        h, w = x_size
        b, _, c = x.shape
        y = self.residual_group(x, x_size, rpi_sa, rpi_oca, shift_mask)
        y = self.conv(y.transpose(1, 2).reshape(b, c, h, w))  # tokens -> (B, C, H, W)
        return y.flatten(2).transpose(1, 2) + x


class PatchEmbed(nn.Module):
    """Feature map (B, C, H, W) -> tokens (B, H*W, C), with the optional LayerNorm."""

    def __init__(self, dim: int, patch_norm: bool):
        super().__init__()
        if patch_norm:
            self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x) if hasattr(self, "norm") else x


class Upsample(nn.Sequential):
    """Sub-pixel upsampler: (conv 4C + PixelShuffle(2)) x log2(scale), or conv 9C + shuffle(3)."""

    def __init__(self, scale: int, num_feat: int):
        layers = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"upscale={scale} is not supported: use 2, 3, 4 or 8")
        super().__init__(*layers)


# --------------------------------------------------------------------------- the model

# Features before the upsampler, fixed in upstream's pixel-shuffle head.
NUM_FEAT = 64


class HAT(
    SRModelMixin,
    tags=["hat", "transformer"],
    paper_url="https://arxiv.org/abs/2205.04437",
):
    """Hybrid Attention Transformer (official constructor arguments and state dict).

    Input: (B, in_chans, H, W) in [0, 1] with H, W multiples of ``window_size`` (use
    :func:`sr_models.upscale_tensor` for any size). Output: (B, in_chans, sH, sW), not
    clamped. Extra arguments beyond upstream: ``attn_impl`` ("sdpa" or "math") and
    ``gradient_checkpointing``. ``img_size``, ``patch_size`` and ``ape`` are accepted so
    that official option files load; HAT is fully convolutional, so ``img_size`` does not
    matter, and only ``patch_size=1``, ``ape=False`` (every official model) are supported.
    """

    def __init__(
        self,
        upscale: int = 4,
        in_chans: int = 3,
        img_size: int = 64,
        patch_size: int = 1,
        window_size: int = 16,
        compress_ratio: int = 3,
        squeeze_factor: int = 30,
        conv_scale: float = 0.01,
        overlap_ratio: float = 0.5,
        mlp_ratio: float = 2.0,
        depths: list[int] = (6, 6, 6, 6, 6, 6),
        embed_dim: int = 180,
        num_heads: list[int] = (6, 6, 6, 6, 6, 6),
        qkv_bias: bool = True,
        drop_path_rate: float = 0.1,
        ape: bool = False,
        patch_norm: bool = True,
        img_range: float = 1.0,
        upsampler: str = "pixelshuffle",
        resi_connection: str = "1conv",
        attn_impl: str = "sdpa",
        gradient_checkpointing: bool = False,
    ):
        super().__init__()
        depths, num_heads = list(depths), list(num_heads)
        _validate_config(upscale=upscale, in_chans=in_chans, patch_size=patch_size, window_size=window_size,
                         compress_ratio=compress_ratio, squeeze_factor=squeeze_factor,
                         overlap_ratio=overlap_ratio, mlp_ratio=mlp_ratio, depths=depths, embed_dim=embed_dim,
                         num_heads=num_heads, drop_path_rate=drop_path_rate, ape=ape, img_range=img_range,
                         upsampler=upsampler, resi_connection=resi_connection, attn_impl=attn_impl)
        self.scale = upscale
        self.pad_multiple = window_size
        self.window_size = window_size
        self.img_range = img_range
        mean = DIV2K_RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        # Not persistent: upstream keeps the mean outside the state dict.
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)
        # Checkpoints carry these two index buffers, so they are persistent (upstream layout).
        overlap_win_size = int(window_size * overlap_ratio) + window_size
        self.register_buffer("relative_position_index_SA", relative_position_index_sa(window_size))
        self.register_buffer("relative_position_index_OCA",
                             relative_position_index_oca(window_size, overlap_win_size))
        self._shift_masks: dict[tuple, torch.Tensor] = {}

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, patch_norm)
        drop_path = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()  # stochastic depth decay
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(RHAG(
                embed_dim, resi_connection, depth=depth, num_heads=num_heads[i], window_size=window_size,
                compress_ratio=compress_ratio, squeeze_factor=squeeze_factor, conv_scale=conv_scale,
                overlap_ratio=overlap_ratio, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                drop_path=drop_path[start:start + depth], attn_impl=attn_impl,
            ))
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1) if resi_connection == "1conv" else nn.Identity()
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, NUM_FEAT, 3, 1, 1), nn.LeakyReLU(inplace=True))
        self.upsample = Upsample(upscale, NUM_FEAT)
        self.conv_last = nn.Conv2d(NUM_FEAT, in_chans, 3, 1, 1)
        self.apply(_init_weights)
        self.set_gradient_checkpointing(gradient_checkpointing)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each block's activations in backward (less memory, ~1.3x time)."""
        for layer in self.layers:
            layer.residual_group.gradient_checkpointing = enabled

    def set_attn_impl(self, impl: str) -> None:
        """Switch every attention layer between "sdpa" and "math" (same weights)."""
        _validate_config(attn_impl=impl)
        for module in self.modules():
            if hasattr(module, "attn_impl"):
                module.attn_impl = impl

    def _shift_mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, device)
        if key not in self._shift_masks:
            ws = self.window_size
            self._shift_masks[key] = shifted_window_mask(h, w, ws, ws // 2).to(device)
        return self._shift_masks[key]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        shift_mask = self._shift_mask(h, w, x.device)
        x = self.patch_embed(x)  # (B, H*W, C)
        for layer in self.layers:
            x = layer(x, (h, w), self.relative_position_index_SA, self.relative_position_index_OCA, shift_mask)
        x = self.norm(x)
        return x.transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.window_size or w % self.window_size:
            raise ValueError(
                f"HAT input {h}x{w} is not a multiple of window_size={self.window_size}; "
                "pad it, or use sr_models.upscale_tensor which pads and crops for you"
            )
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        return x / self.img_range + mean


def _init_weights(m: nn.Module) -> None:
    # Upstream's init: truncated normal for linear weights, unit LayerNorms.
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def _validate_config(**fields) -> None:
    """Raise ValueError naming the first bad field; checks only the fields given."""
    def need(ok: bool, name: str, rule: str):
        if not ok:
            raise ValueError(f"HAT: {name}={fields[name]!r} is invalid: {rule}")

    def positive_int(name):
        v = fields[name]
        need(isinstance(v, int) and not isinstance(v, bool) and v > 0, name, "expected a positive integer")

    for name in ("in_chans", "window_size", "compress_ratio", "squeeze_factor", "embed_dim"):
        if name in fields:
            positive_int(name)
    if "upscale" in fields:
        need(fields["upscale"] in (2, 3, 4, 8), "upscale", "expected 2, 3, 4 or 8")
    if "patch_size" in fields:
        need(fields["patch_size"] == 1, "patch_size", "HAT operates on pixels; only 1 is supported")
    if "ape" in fields:
        need(fields["ape"] is False, "ape", "absolute position embedding is not supported (unused upstream)")
    if "window_size" in fields:
        need(fields["window_size"] % 2 == 0, "window_size", "must be even (shift = window_size // 2)")
    if "overlap_ratio" in fields:
        need(isinstance(fields["overlap_ratio"], (int, float)) and 0 <= fields["overlap_ratio"] < 1,
             "overlap_ratio", "expected a number in [0, 1)")
    if "window_size" in fields and "overlap_ratio" in fields:
        extra = int(fields["window_size"] * fields["overlap_ratio"])
        need(extra % 2 == 0, "overlap_ratio", "int(window_size * overlap_ratio) must be even (symmetric padding)")
    if "mlp_ratio" in fields:
        need(isinstance(fields["mlp_ratio"], (int, float)) and fields["mlp_ratio"] > 0, "mlp_ratio", "expected > 0")
    if "depths" in fields:
        d = fields["depths"]
        need(len(d) > 0 and all(isinstance(i, int) and i > 0 for i in d), "depths", "expected positive integers")
    if "num_heads" in fields:
        heads = fields["num_heads"]
        need(all(isinstance(i, int) and i > 0 for i in heads), "num_heads", "expected positive integers")
        if "depths" in fields:
            need(len(heads) == len(fields["depths"]), "num_heads", "needs one entry per group in depths")
        if "embed_dim" in fields:
            need(all(fields["embed_dim"] % i == 0 for i in heads), "num_heads", "each must divide embed_dim")
    if "embed_dim" in fields and "compress_ratio" in fields:
        need(fields["embed_dim"] // fields["compress_ratio"] > 0, "compress_ratio", "must not exceed embed_dim")
    if "embed_dim" in fields and "squeeze_factor" in fields:
        need(fields["embed_dim"] // fields["squeeze_factor"] > 0, "squeeze_factor", "must not exceed embed_dim")
    if "drop_path_rate" in fields:
        need(0 <= fields["drop_path_rate"] < 1, "drop_path_rate", "expected a number in [0, 1)")
    if "img_range" in fields:
        need(isinstance(fields["img_range"], (int, float)) and fields["img_range"] > 0, "img_range", "expected > 0")
    if "upsampler" in fields:
        need(fields["upsampler"] == "pixelshuffle", "upsampler", "only 'pixelshuffle' (classic SR) is supported")
    if "resi_connection" in fields:
        need(fields["resi_connection"] in ("1conv", "identity"), "resi_connection", "expected '1conv' or 'identity'")
    if "attn_impl" in fields:
        need(fields["attn_impl"] in ATTN_IMPLS, "attn_impl", f"expected one of {ATTN_IMPLS}")


# --------------------------------------------------------------------------- presets

_OFFICIAL = dict(window_size=16, overlap_ratio=0.5, mlp_ratio=2.0, conv_scale=0.01, img_range=1.0,
                 upsampler="pixelshuffle", resi_connection="1conv")

#: Named configurations. ``hat-s`` / ``hat`` / ``hat-l`` are upstream's (HAT-S_SRx*, HAT_SRx*,
#: HAT-L_SRx* option files); ``hat-small`` is sized to train on a CPU; ``hat-tiny`` is the
#: configuration of the reference vectors, for tests.
PRESETS: dict[str, dict] = {
    "hat-s": dict(_OFFICIAL, embed_dim=144, depths=[6] * 6, num_heads=[6] * 6, compress_ratio=24, squeeze_factor=24),
    "hat": dict(_OFFICIAL, embed_dim=180, depths=[6] * 6, num_heads=[6] * 6, compress_ratio=3, squeeze_factor=30),
    "hat-l": dict(_OFFICIAL, embed_dim=180, depths=[6] * 12, num_heads=[6] * 12, compress_ratio=3, squeeze_factor=30),
    "hat-small": dict(_OFFICIAL, window_size=8, embed_dim=60, depths=[4] * 4, num_heads=[6] * 4,
                      compress_ratio=6, squeeze_factor=15),
    "hat-tiny": dict(_OFFICIAL, window_size=8, embed_dim=24, depths=[2, 2], num_heads=[2, 2],
                     compress_ratio=3, squeeze_factor=4),
}

HAT.presets = PRESETS


# --------------------------------------------------------------------------- official import

_KEY_PREFIX = "module."
_BLOCK_KEY = re.compile(r"layers\.(\d+)\.residual_group\.blocks\.(\d+)\.")


class OfficialCheckpointError(ValueError):
    """An official HAT checkpoint that cannot be read, inferred or matched."""


def read_official_state_dict(source: str | os.PathLike | Mapping) -> dict[str, torch.Tensor]:
    """Tensors of an official checkpoint: ``.pth`` (weights only) or ``.safetensors``,
    unwrapped from ``params_ema`` / ``params`` and stripped of ``module.``."""
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise OfficialCheckpointError(f"no such checkpoint file: {path}")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            try:
                # weights_only: tensors and plain containers only; a pickle that would run code
                # (or build arbitrary objects) is refused before anything executes.
                state = torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as err:
                raise OfficialCheckpointError(
                    f"{path} cannot be read as plain weights: it is not a PyTorch weights file, or it "
                    "holds pickled objects beyond tensors; refusing to unpickle it"
                ) from err
            except Exception as err:  # zip / format errors from torch.load
                raise OfficialCheckpointError(f"cannot read {path} as a PyTorch checkpoint: {err}") from err
    for wrapper in ("params_ema", "params"):
        if isinstance(state.get(wrapper), Mapping):
            state = dict(state[wrapper])
            break
    state = {(k[len(_KEY_PREFIX):] if k.startswith(_KEY_PREFIX) else k): v for k, v in state.items()}
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise OfficialCheckpointError(f"checkpoint entries are not tensors: {bad[:5]}")
    if "conv_first.weight" not in state:
        raise OfficialCheckpointError(
            "not an official HAT state dict: 'conv_first.weight' is missing "
            f"(top-level keys: {sorted(state)[:8]})"
        )
    return state


def infer_config(state: Mapping[str, torch.Tensor]) -> tuple[dict, list[str]]:
    """Constructor arguments implied by the tensor shapes of an official state dict.

    Returns (config, notes): ``notes`` lists each value the shapes cannot tell (the
    upstream default is used). Ratios are exact when the division is; otherwise the
    value returned builds the same shapes (e.g. embed_dim 144 // compress_ratio 24 == 6).
    """
    def shape(key):
        if key not in state:
            raise OfficialCheckpointError(f"cannot infer the configuration: key {key!r} is missing")
        return tuple(state[key].shape)

    embed_dim, in_chans = shape("conv_first.weight")[:2]
    depths_by_layer: dict[int, int] = {}
    for key in state:
        m = _BLOCK_KEY.match(key)
        if m:
            layer, block = int(m.group(1)), int(m.group(2))
            depths_by_layer[layer] = max(depths_by_layer.get(layer, 0), block + 1)
    if not depths_by_layer or sorted(depths_by_layer) != list(range(len(depths_by_layer))):
        raise OfficialCheckpointError("cannot infer depths: residual groups are missing or not numbered 0..n-1")
    depths = [depths_by_layer[i] for i in range(len(depths_by_layer))]
    num_heads = [shape(f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table")[1]
                 for i in range(len(depths))]

    table_rows = shape("layers.0.residual_group.blocks.0.attn.relative_position_bias_table")[0]
    window_size = (math.isqrt(table_rows) + 1) // 2
    if (2 * window_size - 1) ** 2 != table_rows:
        raise OfficialCheckpointError(f"window bias table has {table_rows} rows, not (2*ws-1)^2")
    oca_side = math.isqrt(shape("layers.0.residual_group.overlap_attn.relative_position_bias_table")[0])
    overlap_ratio = (oca_side + 1 - 2 * window_size) / window_size  # side = ws + ows - 1

    prefix = "layers.0.residual_group.blocks.0."
    cab_hidden = shape(prefix + "conv_block.cab.0.weight")[0]
    se_hidden = shape(prefix + "conv_block.cab.3.attention.1.weight")[0]
    mlp_hidden = shape(prefix + "mlp.fc1.weight")[0]
    mlp_ratio = mlp_hidden / embed_dim

    upsample_convs = [k for k in state if re.fullmatch(r"upsample\.\d+\.weight", k)]
    first_up = shape("upsample.0.weight")[0] // NUM_FEAT
    upscale = 3 if first_up == 9 else 2 ** len(upsample_convs)

    config = dict(
        upscale=upscale, in_chans=in_chans, window_size=window_size,
        compress_ratio=embed_dim // cab_hidden, squeeze_factor=embed_dim // se_hidden,
        overlap_ratio=overlap_ratio, mlp_ratio=int(mlp_ratio) if mlp_ratio.is_integer() else mlp_ratio,
        depths=depths, embed_dim=embed_dim, num_heads=num_heads,
        qkv_bias=prefix + "attn.qkv.bias" in state,
        patch_norm="patch_embed.norm.weight" in state,
        resi_connection="1conv" if "layers.0.conv.weight" in state else "identity",
        upsampler="pixelshuffle",
    )
    notes = [
        "img_range is not stored in the weights: assuming 1.0 (every official model)",
        "conv_scale is not stored in the weights: assuming 0.01 (every official model)",
        "img_size is not stored in the weights and does not affect them: assuming 64",
    ]
    return config, notes


def load_official(source: str | os.PathLike | Mapping, **overrides) -> HAT:
    """Build a :class:`HAT` from an official checkpoint (path or state dict), strictly.

    The whole configuration is inferred from tensor shapes; ``overrides`` set what the
    weights cannot tell (``img_range``, ``conv_scale``) or runtime options (``attn_impl``).
    Every key and shape is checked; the stored index buffers must equal the ones this
    implementation computes.
    """
    state = read_official_state_dict(source)
    config, notes = infer_config(state)
    for note in notes:
        if note.split()[0] not in overrides:
            logger.warning(note)
    model = HAT(**{**config, "drop_path_rate": 0.1, **overrides})
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mismatched = [f"{k}: checkpoint {found[k]} vs model {expected[k]}"
                  for k in expected if k in found and found[k] != expected[k]]
    if missing or unexpected or mismatched:
        raise OfficialCheckpointError(
            f"checkpoint does not match the inferred HAT config {config}: "
            f"missing {missing[:10]}, unexpected {unexpected[:10]}, shape mismatches {mismatched[:10]}"
        )
    for name in ("relative_position_index_SA", "relative_position_index_OCA"):
        if name in state and not torch.equal(state[name].long(), getattr(model, name)):
            raise OfficialCheckpointError(f"{name} in the checkpoint differs from the one HAT computes")
    model.load_state_dict(state, strict=True)
    return model.eval()
