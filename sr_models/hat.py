"""HAT: Hybrid Attention Transformer for image super-resolution.

Chen, Wang, Zhou, Qiao, Dong, "Activating More Pixels in Image Super-Resolution
Transformer", CVPR 2023 (arXiv:2205.04437). Upstream: XPixelGroup/HAT
(hat/archs/hat_arch.py, Apache-2.0). An independent implementation that keeps the
official constructor arguments and state-dict layout (same keys, shapes and order), so
official checkpoints load strictly (:mod:`sr_models.convert_hat`) and our weights open
in tools that read official HAT files (except weights trained with ``global_residual``,
an option the official forward does not have).

``attn_impl`` picks how the blocks attend, for the whole model (same weights, outputs
within float rounding, tested): ``"math"`` is the reference in this file, upstream's
algorithm step by step (roll, window_partition, q @ k^T + bias + mask, softmax,
nn.Unfold for OCAB; the shift mask cached per input size); ``"sdpa"`` (default) is the
fast path of :mod:`sr_models.hat_attention` (cached row gathers, fused SDPA). The model
chooses (``self.attn_impl``); the :class:`AttentionContext` of each forward pass carries
the choice, and what else the blocks share, to every attention block. Everything else is
shared, the layout included: maps are channels_last, so a map's token view (B, H*W, C)
is free. Read top to bottom: helpers (the window geometry, which both paths use, is in
:mod:`sr_models.hat_attention`), blocks from small to large, the model. Its configuration
(bounds, rules, size, presets) is :mod:`sr_models.hat_config`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .hat_attention import (
    AttentionContext, BiasCache, PlanCache, gather_bias, overlapping_cross_attention, relative_position_index_oca,
    relative_position_index_sa, shifted_window_attention, shifted_window_mask, window_partition, window_reverse,
)
# HAT's configuration; its public names are sr_models.hat's too (sr_models.hat.PRESETS, ...).
from .hat_config import (  # noqa: F401
    ATTN_IMPLS, CONFIG_RULES, MAX_CONV_SCALE, MAX_DEPTH, MAX_EMBED_DIM, MAX_GROUPS, MAX_HEADS, MAX_IMG_RANGE,
    MAX_IMG_SIZE, MAX_IN_CHANS, MAX_MLP_RATIO, MAX_WINDOW_SIZE, NUM_FEAT, PRESETS, SCALES, model_bytes, validate_config,
)
from .hub import SRModelMixin
from .validation import check_fields

# Mean RGB of DIV2K, subtracted inside the model (upstream hard-codes it; it is not part of
# the state dict).
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


# --------------------------------------------------------------------------- helpers


def attention(q, k, v, bias: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Upstream's multi-head attention over windows, step by step: scale q, q @ k^T, add
    the bias, add the mask window by window through a 5-D view, softmax, @ v.

    q: (B*nW, heads, N, d); k, v: (B*nW, heads, M, d); bias: (heads, N, M);
    mask: (nW, N, M) or None. Returns (B*nW, heads, N, d).
    """
    attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    attn = attn + bias.unsqueeze(0)
    if mask is not None:
        n_windows, heads, n, m = mask.shape[0], *attn.shape[1:]
        attn = attn.view(-1, n_windows, heads, n, m) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, heads, n, m)
    return attn.softmax(dim=-1) @ v


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


class _BiasedAttention(nn.Module):
    """What both attentions share: a learned relative-position bias table (T, heads),
    read through an index buffer of the model (:func:`gather_bias`), and the fast path's
    cache of the gathered bias. Subclasses initialise the table last, as upstream does
    (same random draws)."""

    def __init__(self, table_rows: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table_rows, num_heads))
        self.bias_cache = BiasCache()

    def cached_bias(self, rpi: torch.Tensor) -> torch.Tensor:
        """The fast path's bias (heads, N, M), gathered once while no gradient is needed."""
        return self.bias_cache.get(self.relative_position_bias_table, rpi)

    def train(self, mode: bool = True):
        self.bias_cache.clear()  # writes through .data are invisible to the cache's key
        return super().train(mode)


class WindowAttention(_BiasedAttention):
    """Window multi-head self-attention with a learned relative-position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool):
        super().__init__((2 * window_size - 1) ** 2, num_heads)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, rpi: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x (B*nW, ws², C) -> (B*nW, ws², C)."""
        b_, n, c = x.shape
        qkv = self.qkv(x).view(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = gather_bias(self.relative_position_bias_table, rpi)
        out = attention(qkv[0], qkv[1], qkv[2], bias, mask)  # (B*nW, heads, N, d)
        return self.proj(out.transpose(1, 2).reshape(b_, n, c))


class HAB(nn.Module):
    """Hybrid attention block: (shifted) window attention + scaled channel attention, MLP."""

    def __init__(self, dim, num_heads, window_size, shift_size, compress_ratio, squeeze_factor,
                 conv_scale, mlp_ratio, qkv_bias, drop_path):
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.conv_scale = conv_scale
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias)
        self.conv_block = CAB(dim, compress_ratio, squeeze_factor)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:
        """x (B, H*W, C) -> (B, H*W, C)."""
        h, w = ctx.x_size
        b, _, c = x.shape
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        # The permuted view is channels_last: the conv reads it without a copy, writes
        # channels_last, and the permute back is again a free view.
        conv_x = self.conv_block(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(b, h * w, c)
        if ctx.attn_impl == "sdpa":
            windows = ctx.plan.to_windows(x.reshape(-1, c), self.shift_size)  # (B*nW*ws², C)
            out = shifted_window_attention(self.attn.qkv(windows), self.attn.cached_bias(ctx.rpi_sa), ctx.plan,
                                           self.shift_size, self.attn.num_heads)
            x = ctx.plan.to_image(self.attn.proj(out), self.shift_size)
        else:
            x = self._window_attention(x, ctx.rpi_sa, ctx.shift_mask)
        x = shortcut + self.drop_path(x.reshape(b, h * w, c)) + conv_x * self.conv_scale
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def _window_attention(self, x: torch.Tensor, rpi_sa: torch.Tensor, shift_mask: torch.Tensor):
        """Upstream's steps: roll, window_partition, attention, window_reverse, roll back.
        (B, H, W, C) -> (B, H, W, C)."""
        b, h, w, c = x.shape
        s, ws = self.shift_size, self.window_size
        if s > 0:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        windows = window_partition(x, ws).view(-1, ws * ws, c)  # (B*nW, ws², C)
        windows = self.attn(windows, rpi_sa, shift_mask if s > 0 else None)
        x = window_reverse(windows.view(-1, ws, ws, c), ws, h, w)
        return torch.roll(x, shifts=(s, s), dims=(1, 2)) if s > 0 else x


class OCAB(_BiasedAttention):
    """Overlapping cross-attention block: ws x ws query windows attend to larger,
    overlapping ows x ows key/value windows (ows = ws + int(overlap_ratio * ws))."""

    def __init__(self, dim, window_size, overlap_ratio, num_heads, qkv_bias, mlp_ratio):
        overlap_win_size = int(window_size * overlap_ratio) + window_size
        super().__init__((window_size + overlap_win_size - 1) ** 2, num_heads)
        self.window_size = window_size
        self.overlap_win_size = overlap_win_size
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:
        """x (B, H*W, C) -> (B, H*W, C)."""
        h, w = ctx.x_size
        b, _, c = x.shape
        shortcut = x
        x = self.norm1(x)
        if ctx.attn_impl == "sdpa":
            x = overlapping_cross_attention(self.qkv(x).view(-1, 3 * c), self.cached_bias(ctx.rpi_oca), ctx.plan,
                                            self.window_size, self.overlap_win_size, self.num_heads)
        else:
            x = self._cross_attention(x, ctx.x_size, ctx.rpi_oca)
        x = self.proj(x.reshape(b, h * w, c)) + shortcut
        return x + self.mlp(self.norm2(x))

    def _cross_attention(self, x: torch.Tensor, x_size: tuple[int, int], rpi_oca: torch.Tensor) -> torch.Tensor:
        """Upstream's steps: qkv, window_partition of q, nn.Unfold of k and v over the
        zero-padded map, attention, window_reverse. (B, H*W, C) -> (B, H, W, C)."""
        h, w = x_size
        b, _, c = x.shape
        ws, ows, heads = self.window_size, self.overlap_win_size, self.num_heads
        qkv = self.qkv(x).reshape(b, h, w, 3, c).permute(3, 0, 4, 1, 2)  # (3, B, C, H, W)
        q = window_partition(qkv[0].permute(0, 2, 3, 1), ws).view(-1, ws * ws, c)  # (B*nW, ws², C)
        kv = torch.cat((qkv[1], qkv[2]), dim=1)  # (B, 2C, H, W)
        kv = nn.functional.unfold(kv, kernel_size=ows, stride=ws, padding=(ows - ws) // 2)  # (B, 2C*ows², nW)
        # rearrange 'b (nc ch owh oww) nw -> nc (b nw) (owh oww) ch'
        kv = kv.view(b, 2, c, ows * ows, -1).permute(1, 0, 4, 3, 2).reshape(2, -1, ows * ows, c)
        b_, nq, _ = q.shape
        q = q.reshape(b_, nq, heads, c // heads).permute(0, 2, 1, 3)
        k = kv[0].reshape(b_, -1, heads, c // heads).permute(0, 2, 1, 3)
        v = kv[1].reshape(b_, -1, heads, c // heads).permute(0, 2, 1, 3)
        out = attention(q, k, v, gather_bias(self.relative_position_bias_table, rpi_oca))  # (B*nW, heads, ws², d)
        return window_reverse(out.transpose(1, 2).reshape(b_, ws, ws, c), ws, h, w)


class AttenBlocks(nn.Module):
    """The HABs of one group (shift on every second block) followed by one OCAB."""

    def __init__(self, dim, depth, num_heads, window_size, compress_ratio, squeeze_factor, conv_scale,
                 overlap_ratio, mlp_ratio, qkv_bias, drop_path):
        super().__init__()
        self.blocks = nn.ModuleList(
            HAB(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, compress_ratio,
                squeeze_factor, conv_scale, mlp_ratio, qkv_bias, drop_path[i])
            for i in range(depth)
        )
        self.overlap_attn = OCAB(dim, window_size, overlap_ratio, num_heads, qkv_bias, mlp_ratio)
        self.gradient_checkpointing = False

    def _run(self, module, *args):
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            # Recompute the block in backward instead of keeping its activations; RNG state
            # is restored, so DropPath draws the same mask both times.
            return checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def forward(self, x: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:
        for block in self.blocks:
            x = self._run(block, x, ctx)
        return self._run(self.overlap_attn, x, ctx)


class RHAG(nn.Module):
    """Residual hybrid attention group: blocks, then a 3x3 conv, plus the group input."""

    def __init__(self, dim, resi_connection, **block_kwargs):
        super().__init__()
        self.residual_group = AttenBlocks(dim, **block_kwargs)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1) if resi_connection == "1conv" else nn.Identity()

    def forward(self, x: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:
        h, w = ctx.x_size
        b, _, c = x.shape
        y = self.residual_group(x, ctx)
        # Tokens viewed as a channels_last map and back: no copies around the conv.
        y = self.conv(y.view(b, h, w, c).permute(0, 3, 1, 2))
        return y.permute(0, 2, 3, 1).reshape(b, h * w, c) + x


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
        if scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:  # a power of two (the configuration is validated)
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        super().__init__(*layers)


# --------------------------------------------------------------------------- the model


class HAT(
    SRModelMixin,
    tags=["hat", "transformer"],
    paper_url="https://arxiv.org/abs/2205.04437",
):
    """Hybrid Attention Transformer (official constructor arguments and state dict).

    Input: (B, in_chans, H, W) in [0, 1], H and W multiples of ``window_size``
    (:func:`sr_models.upscale_tensor` pads any size). Output: (B, in_chans, sH, sW), not
    clamped. Beyond upstream: ``attn_impl``; ``gradient_checkpointing`` (really
    checkpoints each block; upstream's ``use_checkpoint`` is ignored there);
    ``global_residual`` (off by default: add a bicubic upscale of the input to the output,
    so the network learns only the missing detail; tools that read official files do not
    know the flag). ``img_size``, ``patch_size`` and ``ape`` are accepted so that official
    option files load: ``img_size`` does not matter (fully convolutional), and only
    ``patch_size=1``, ``ape=False`` (every official model) are supported. Every argument
    is checked (:data:`CONFIG_RULES`) before anything is built.
    """

    supports_gradient_checkpointing = True
    #: No finite receptive field (a fact the pipeline reads, hub.SRModelMixin): the shifted
    #: windows chain context across the whole image.
    receptive_radius = None

    def __init__(self, upscale: int = 4, in_chans: int = 3, img_size: int = 64, patch_size: int = 1,
                 window_size: int = 16, compress_ratio: int = 3, squeeze_factor: int = 30,
                 conv_scale: float = 0.01, overlap_ratio: float = 0.5, mlp_ratio: float = 2.0,
                 depths: list[int] = (6, 6, 6, 6, 6, 6), embed_dim: int = 180,
                 num_heads: list[int] = (6, 6, 6, 6, 6, 6), qkv_bias: bool = True, drop_path_rate: float = 0.1,
                 ape: bool = False, patch_norm: bool = True, img_range: float = 1.0,
                 upsampler: str = "pixelshuffle", resi_connection: str = "1conv", attn_impl: str = "sdpa",
                 gradient_checkpointing: bool = False, global_residual: bool = False):
        arguments = dict(locals())  # before any other name is bound
        super().__init__()
        validate_config({name: arguments[name] for name in CONFIG_RULES})
        self.scale = upscale
        self.pad_multiple = self.window_size = window_size
        self.img_range = img_range
        self.global_residual = global_residual
        overlap_win_size = int(window_size * overlap_ratio) + window_size
        mean = DIV2K_RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        # Not persistent: upstream keeps the mean outside the state dict.
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)
        # Checkpoints carry these two index buffers, so they are persistent (upstream layout).
        self.register_buffer("relative_position_index_SA", relative_position_index_sa(window_size))
        self.register_buffer("relative_position_index_OCA", relative_position_index_oca(window_size, overlap_win_size))
        self._shift_masks: dict[tuple, torch.Tensor] = {}  # reference path, per (H, W, device)
        self._plans = PlanCache(window_size, overlap_win_size)  # fast path, per (B, H, W, device)

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, patch_norm)
        self.layers = _residual_groups(embed_dim, resi_connection, list(depths), list(num_heads), drop_path_rate,
                                       window_size=window_size, compress_ratio=compress_ratio,
                                       squeeze_factor=squeeze_factor, conv_scale=conv_scale,
                                       overlap_ratio=overlap_ratio, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias)
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1) if resi_connection == "1conv" else nn.Identity()
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, NUM_FEAT, 3, 1, 1), nn.LeakyReLU(inplace=True))
        self.upsample = Upsample(upscale, NUM_FEAT)
        self.conv_last = nn.Conv2d(NUM_FEAT, in_chans, 3, 1, 1)
        self.apply(_init_weights)
        self.set_gradient_checkpointing(gradient_checkpointing)
        self.set_attn_impl(attn_impl)
        if global_residual:
            # Start exactly at bicubic: the last conv learns the detail from zero.
            nn.init.zeros_(self.conv_last.weight)
            nn.init.zeros_(self.conv_last.bias)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each block's activations in backward (less memory, ~1.3x time)."""
        for layer in self.layers:
            layer.residual_group.gradient_checkpointing = enabled

    def set_attn_impl(self, impl: str) -> None:
        """Switch the whole model between the fast path ("sdpa") and upstream's step-by-step
        reference path ("math"); same weights, outputs within float rounding."""
        check_fields("HAT", CONFIG_RULES, {"attn_impl": impl})
        self.attn_impl = impl  # the one place the path is chosen: the context of each forward says it

    @property
    def tile_overlap(self) -> int:
        """Two windows of context: tiled against untiled >= 45 dB (tests/test_pipeline.py)."""
        return 2 * self.window_size

    @property
    def bytes_per_pixel(self) -> int:
        """Peak bytes of a float32 forward per LR pixel, the larger of two peaks (the terms and
        their calibration: docs/upscaling.md#auto-tiling)."""
        config = self.config
        dim, ws = config["embed_dim"], self.window_size
        ows = int(ws * config["overlap_ratio"]) + ws
        # OCAB's gathered keys and values (2C, times the overlap (ows/ws)²) beside ~10C of
        # tokens, projections and residuals; the reference path adds scores and softmax.
        body = dim * (10 + 2 * (ows / ws) ** 2)
        if self.attn_impl == "math":
            body += 2 * max(config["num_heads"]) * ows ** 2
        # The upsampler's last conv output and its pixel shuffle, beside two C-wide maps.
        return int(4 * max(body, 2 * NUM_FEAT * self.scale ** 2 + 2 * dim))

    def _shift_mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, device)
        if key not in self._shift_masks:
            ws = self.window_size
            self._shift_masks[key] = shifted_window_mask(h, w, ws, ws // 2).to(device)
        return self._shift_masks[key]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) channels_last -> (B, C, H, W) channels_last (its token view is free)."""
        b, c, h, w = x.shape
        shared = ((h, w), self.relative_position_index_SA, self.relative_position_index_OCA, self.attn_impl)
        if self.attn_impl == "sdpa":
            ctx = AttentionContext(*shared, plan=self._plans.get(b, h, w, x.device))
        else:
            ctx = AttentionContext(*shared, shift_mask=self._shift_mask(h, w, x.device))
        x = self.patch_embed(x)  # (B, H*W, C)
        for layer in self.layers:
            x = layer(x, ctx)
        return self.norm(x).view(b, h, w, c).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.window_size or w % self.window_size:
            raise ValueError(
                f"HAT input {h}x{w} is not a multiple of window_size={self.window_size}; "
                "pad it, or use sr_models.upscale_tensor which pads and crops for you"
            )
        mean = self.mean.to(x.dtype)
        lr = x
        # channels_last from the start keeps every conv (head, body, upsampler) on the
        # layout of the token views, with no reorders in between.
        x = x.contiguous(memory_format=torch.channels_last)
        x = (x - mean) * self.img_range
        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        if self.global_residual:  # the body predicts the detail missing from bicubic
            x = x / self.img_range + self.bicubic_skip(lr)
        else:
            x = x / self.img_range + mean
        return x.contiguous()  # the usual layout


def _residual_groups(dim, resi_connection, depths, num_heads, drop_path_rate, **block_kwargs) -> nn.ModuleList:
    """One RHAG per entry of ``depths``; stochastic depth rises linearly over all blocks."""
    drop_path = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
    groups = nn.ModuleList()
    for i, depth in enumerate(depths):
        start = sum(depths[:i])
        groups.append(RHAG(dim, resi_connection, depth=depth, num_heads=num_heads[i],
                           drop_path=drop_path[start:start + depth], **block_kwargs))
    return groups


def _init_weights(m: nn.Module) -> None:
    # Upstream's init: truncated normal for linear weights, unit LayerNorms.
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


HAT.presets = PRESETS
