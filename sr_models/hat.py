"""HAT: Hybrid Attention Transformer for image super-resolution.

Chen, Wang, Zhou, Qiao, Dong, "Activating More Pixels in Image Super-Resolution
Transformer", CVPR 2023 (arXiv:2205.04437). Upstream: XPixelGroup/HAT
(hat/archs/hat_arch.py, Apache-2.0). This is an independent implementation that keeps
the official constructor arguments and the official state-dict layout (same keys,
shapes and order), so official checkpoints load strictly and our weights open in tools
that read official HAT files.

Two paths compute the same function from the same weights (outputs within float
rounding, tested):
- ``attn_impl="math"``, the reference: upstream's algorithm step by step (roll,
  window_partition, q @ k^T + bias + mask, softmax, nn.Unfold for OCAB, upstream's
  reshapes), except that the shift mask is cached per input size instead of rebuilt on
  every forward;
- ``attn_impl="sdpa"`` (default), the fast path: attention through
  ``F.scaled_dot_product_attention`` with 4-D masks (the only shape that keeps its fused
  CPU kernel); roll + window_partition / reverse, and OCAB's pad + unfold, each replaced by
  one row gather with indices cached per input geometry (:class:`_WindowPlan`); shifted
  windows grouped by their four mask forms so that no (nW, heads, N, N) mask is
  materialised; the gathered relative-position bias cached when no gradient is needed
  (:func:`_relative_bias`); tokens and conv maps shared as channels_last views instead
  of copied. ``benchmarks/hat_speed.py`` measures both.
``gradient_checkpointing`` really checkpoints each block (upstream's ``use_checkpoint`` is
accepted there and ignored). None of this changes the weights or the state-dict layout.

Read top to bottom: helpers, blocks from small to large, the model, presets, and the
official-checkpoint import.
"""

from __future__ import annotations

import logging
import math

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

# Input geometries (B, H, W, device) whose fast-path gather plans a model keeps; tiling
# uses at most four tile shapes, so eight bounds the cache without evicting in practice.
MAX_CACHED_PLANS = 8


# --------------------------------------------------------------------------- helpers


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(B, H, W, C) -> (B*nW, ws, ws, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    # contiguous, as upstream: callers view the result as (B*nW, ws², C), and for a single
    # row of windows a bare reshape would return a view that cannot be viewed so.
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size, window_size, c)


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
    mask: (nW, N, M) or None. Returns (B*nW, heads, N, d). The blocks' reference path
    uses it; the fast path calls SDPA itself (see :meth:`WindowAttention.forward_grouped`).
    """
    if impl == "math":
        # Upstream, step by step: scale q, q @ k^T, add the bias, add the mask window by
        # window through a 5-D view, softmax, @ v.
        attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            n_windows, heads, n, m = mask.shape[0], *attn.shape[1:]
            attn = attn.view(-1, n_windows, heads, n, m) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, heads, n, m)
        return attn.softmax(dim=-1) @ v
    bias = bias.to(q.dtype).unsqueeze(0)  # (1, heads, N, M)
    if mask is None:
        # A 4-D mask (a stride-0 expand is enough) keeps SDPA on its fused CPU kernel; a 3-D
        # one sends it to its math fallback.
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.expand(q.shape[0], -1, -1, -1))
    fused = bias + mask.to(q.dtype).unsqueeze(1)  # (nW, heads, N, M)
    # One call per image: the mask repeats every nW windows, which no stride can express.
    n_windows = mask.shape[0]
    return torch.cat([F.scaled_dot_product_attention(*qkv, attn_mask=fused)
                      for qkv in zip(q.split(n_windows), k.split(n_windows), v.split(n_windows))])


def _relative_bias(module: nn.Module, index: torch.Tensor) -> torch.Tensor:
    """``module.relative_position_bias_table`` gathered by ``index``: (heads, N, M).

    When no gradient is needed the gathered bias is cached on the module, keyed on the
    table's (and index's) storage, version counter, dtype and device: an optimizer step
    or ``load_state_dict`` writes in place and bumps the version, ``.to()`` changes the
    storage, so a stale bias is never used. The cache holds a detached alias of the table,
    so its storage cannot be freed and reused at the same address. Writes through
    ``.data`` bypass version counting: ``train()`` / ``eval()`` clear the cache as well.
    """
    table = module.relative_position_bias_table
    if (torch.is_grad_enabled() and table.requires_grad) or table.is_inference() or index.is_inference():
        return _select_bias(table, index)  # gradients flow into the table
    key = (table.data_ptr(), table._version, table.dtype, table.device, index.data_ptr(), index._version)
    cache = module._bias_cache
    if cache is None or cache[0] != key:
        cache = module._bias_cache = (key, table.detach(), _select_bias(table, index).contiguous())
    return cache[2]


def _select_bias(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """:func:`_gather_bias` through ``index_select``: the same values, and a backward
    (``index_add_``) much faster on CPU than advanced indexing's accumulating ``index_put_``."""
    n, m = index.shape
    return table.index_select(0, index.reshape(-1) % table.shape[0]).view(n, m, -1).permute(2, 0, 1)


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SDPA with a 4-D additive mask (a stride-0 expand is enough: the fused CPU kernel
    takes it, a 3-D mask would send SDPA to its math fallback).

    When the mask needs a gradient (training: the bias table is a parameter) no fused
    kernel applies and SDPA would run its math fallback, which adds a NaN-safe softmax
    (isneginf / all / where passes) and scales q and k separately; the explicit
    scale-matmul-softmax-matmul is the same computation without that overhead.
    """
    if mask.requires_grad and torch.is_grad_enabled():
        attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
        return (attn + mask).softmax(dim=-1) @ v
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _window_tokens(grid: torch.Tensor, window_size: int) -> torch.Tensor:
    """(nW, ws²) entries of an (H, W) grid, window by window in row-major order (the order
    of :func:`window_partition`)."""
    h, w = grid.shape
    ws = window_size
    return grid.view(h // ws, ws, w // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)


class _WindowPlan:
    """Gather indices of one input geometry (B, H, W) for the fast path, built once.

    Tokens live as rows of a (B*H*W, C) matrix. One ``index_select`` with ``order`` does
    what upstream does with roll + window_partition (shifted or not), and one with
    ``inverse`` undoes it; ``kv_index`` gathers OCAB's overlapping ows x ows key/value
    windows straight from the token rows (the index B*H*W points at an appended zero row:
    the zero padding), replacing pad + unfold + two permutes.

    Shifted windows are ordered by their mask class instead of row-major: the shift mask
    takes only four forms (interior windows: none; last column; last row; the corner), so
    each class runs as one SDPA call whose (heads, N, N) bias + mask is broadcast over its
    windows with a stride-0 expand, instead of materialising a (nW, heads, N, N) mask.
    """

    def __init__(self, b: int, h: int, w: int, window_size: int, overlap_win_size: int, device: torch.device):
        ws, shift, ows = window_size, window_size // 2, overlap_win_size
        n_h, n_w = h // ws, w // ws
        offsets = (torch.arange(b) * (h * w)).view(b, 1, 1)  # first row of each image
        grid = torch.arange(h * w).view(h, w)

        def batched(windows):  # (nW', ws²) tokens of one image -> (B*nW'*ws²,) rows
            return (offsets + windows.unsqueeze(0)).flatten()

        plain = batched(_window_tokens(grid, ws))
        # torch.roll(x, -shift) puts token (r + s, c + s) at (r, c): roll the grid, not the data.
        rolled = _window_tokens(torch.roll(grid, shifts=(-shift, -shift), dims=(0, 1)), ws)
        row, col = torch.arange(n_h * n_w).div(n_w, rounding_mode="floor"), torch.arange(n_h * n_w) % n_w
        window_class = 2 * (row == n_h - 1).long() + (col == n_w - 1).long()  # 0 interior, 1 col, 2 row, 3 corner
        shifted, groups = [], []
        for cls in range(4):
            members = rolled[window_class == cls]
            if len(members):
                shifted.append(batched(members))
                groups.append((b * len(members), cls))
        shifted = torch.cat(shifted)

        pad = (ows - ws) // 2
        rows = (torch.arange(n_h) * ws - pad).view(n_h, 1, 1, 1) + torch.arange(ows).view(1, 1, ows, 1)
        cols = (torch.arange(n_w) * ws - pad).view(1, n_w, 1, 1) + torch.arange(ows).view(1, 1, 1, ows)
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)  # (nH, nW, ows, ows)
        kv = torch.where(inside.unsqueeze(0), offsets.view(b, 1, 1, 1, 1) + (rows * w + cols).unsqueeze(0), b * h * w)

        self.orders = {0: (plain.to(device), _inverse(plain).to(device), [(b * n_h * n_w, 0)]),
                       shift: (shifted.to(device), _inverse(shifted).to(device), groups)}
        self.kv_index = kv.flatten().to(device)  # (B*nW*ows²,)
        # (4, ws², ws²) masks of the classes: the windows of a 2ws x 2ws image are one of each.
        self.class_masks = shifted_window_mask(2 * ws, 2 * ws, ws, shift).to(device)


def _inverse(permutation: torch.Tensor) -> torch.Tensor:
    inverse = torch.empty_like(permutation)
    inverse[permutation] = torch.arange(len(permutation))
    return inverse


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
        self._bias_cache = None  # see _relative_bias

    def train(self, mode: bool = True):
        self._bias_cache = None
        return super().train(mode)

    def forward(self, x: torch.Tensor, rpi: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Reference path (upstream's): x (B*nW, ws², C) -> (B*nW, ws², C)."""
        b_, n, c = x.shape
        qkv = self.qkv(x).view(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = _gather_bias(self.relative_position_bias_table, rpi)
        out = attention(qkv[0], qkv[1], qkv[2], bias, mask, self.attn_impl)  # (B*nW, heads, N, d)
        return self.proj(out.transpose(1, 2).reshape(b_, n, c))

    def forward_grouped(self, x: torch.Tensor, rpi: torch.Tensor, groups: list[tuple[int, int]],
                        class_masks: torch.Tensor) -> torch.Tensor:
        """Fast path: x (B*nW*ws², C), windows ordered by mask class (see _WindowPlan);
        ``groups`` is [(windows, class)], class 0 meaning no mask. Returns (B*nW*ws², C)."""
        n = rpi.shape[0]
        c = x.shape[-1]
        qkv = self.qkv(x).view(-1, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = _relative_bias(self, rpi)  # (heads, N, N)
        outs, start = [], 0
        for count, cls in groups:
            mask = bias if cls == 0 else bias + class_masks[cls]
            mask = mask.to(qkv.dtype).unsqueeze(0).expand(count, -1, -1, -1)
            q, k, v = qkv[:, start:start + count]
            outs.append(_sdpa(q, k, v, mask).transpose(1, 2))
            start += count
        out = outs[0] if len(outs) == 1 else torch.cat(outs)  # (B*nW, N, heads, d)
        return self.proj(out.reshape(-1, c))


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
                shift_mask: torch.Tensor | None, plan: _WindowPlan | None = None) -> torch.Tensor:
        """x (B, H*W, C). With a ``plan`` the fast path runs; without, upstream's steps."""
        h, w = x_size
        b, _, c = x.shape  # (B, H*W, C)
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        # The permuted view is channels_last: the conv reads it without a copy, writes
        # channels_last, and the permute back is again a free view.
        conv_x = self.conv_block(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(b, h * w, c)

        s, ws = self.shift_size, self.window_size
        if plan is not None:
            order, inverse, groups = plan.orders[s]
            windows = x.reshape(-1, c).index_select(0, order)  # (B*nW*ws², C): roll + partition
            windows = self.attn.forward_grouped(windows, rpi_sa, groups, plan.class_masks)
            x = windows.index_select(0, inverse)  # (B*H*W, C): reverse + roll back
        else:
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
        self._bias_cache = None  # see _relative_bias

    def train(self, mode: bool = True):
        self._bias_cache = None
        return super().train(mode)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], rpi_oca: torch.Tensor,
                plan: _WindowPlan | None = None) -> torch.Tensor:
        """x (B, H*W, C). With a ``plan`` the fast path runs; without, upstream's steps."""
        h, w = x_size
        b, _, c = x.shape
        ws, ows, heads = self.window_size, self.overlap_win_size, self.num_heads
        shortcut = x
        if plan is None:
            x = window_reverse(self._attend_reference(self.norm1(x), x_size, rpi_oca), ws, h, w)
        else:
            qkv = self.qkv(self.norm1(x)).view(-1, 3 * c)  # (B*H*W, 3C)
            order, inverse, _ = plan.orders[0]
            q = qkv[:, :c].index_select(0, order).view(-1, ws * ws, heads, c // heads).transpose(1, 2)
            kv = torch.cat([qkv[:, c:], qkv.new_zeros(1, 2 * c)])  # (B*H*W + 1, 2C): last row = padding
            kv = kv.index_select(0, plan.kv_index).view(-1, ows * ows, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
            bias = _relative_bias(self, rpi_oca).to(q.dtype)  # (heads, ws², ows²)
            out = _sdpa(q, kv[0], kv[1], bias.expand(q.shape[0], -1, -1, -1))
            x = out.transpose(1, 2).reshape(-1, c).index_select(0, inverse)  # (B*H*W, C), image order
        x = self.proj(x.reshape(b, h * w, c)) + shortcut
        return x + self.mlp(self.norm2(x))

    def _attend_reference(self, x: torch.Tensor, x_size: tuple[int, int], rpi_oca: torch.Tensor) -> torch.Tensor:
        """Upstream's steps: qkv, window_partition of q, nn.Unfold of k and v over the
        zero-padded map, attention. (B, H*W, C) -> (B*nW, ws, ws, C)."""
        h, w = x_size
        b, _, c = x.shape
        ws, ows, heads = self.window_size, self.overlap_win_size, self.num_heads
        qkv = self.qkv(x).reshape(b, h, w, 3, c).permute(3, 0, 4, 1, 2)  # (3, B, C, H, W)
        q = window_partition(qkv[0].permute(0, 2, 3, 1), ws).view(-1, ws * ws, c)  # (B*nW, ws², C)
        kv = torch.cat((qkv[1], qkv[2]), dim=1)  # (B, 2C, H, W)
        kv = F.unfold(kv, kernel_size=ows, stride=ws, padding=(ows - ws) // 2)  # (B, 2C*ows², nW)
        # rearrange 'b (nc ch owh oww) nw -> nc (b nw) (owh oww) ch'
        kv = kv.view(b, 2, c, ows * ows, -1).permute(1, 0, 4, 3, 2).reshape(2, -1, ows * ows, c)
        b_, nq, _ = q.shape
        q = q.reshape(b_, nq, heads, c // heads).permute(0, 2, 1, 3)
        k = kv[0].reshape(b_, -1, heads, c // heads).permute(0, 2, 1, 3)
        v = kv[1].reshape(b_, -1, heads, c // heads).permute(0, 2, 1, 3)
        bias = _gather_bias(self.relative_position_bias_table, rpi_oca)
        out = attention(q, k, v, bias, None, self.attn_impl)  # (B*nW, heads, ws², d)
        return out.transpose(1, 2).reshape(b_, ws, ws, c)


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

    def forward(self, x, x_size, rpi_sa, rpi_oca, shift_mask, plan=None):
        for block in self.blocks:
            x = self._run(block, x, x_size, rpi_sa, shift_mask, plan)
        return self._run(self.overlap_attn, x, x_size, rpi_oca, plan)


class RHAG(nn.Module):
    """Residual hybrid attention group: blocks, then a 3x3 conv, plus the group input."""

    def __init__(self, dim, resi_connection, **block_kwargs):
        super().__init__()
        self.residual_group = AttenBlocks(dim, **block_kwargs)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1) if resi_connection == "1conv" else nn.Identity()

    def forward(self, x, x_size, rpi_sa, rpi_oca, shift_mask, plan=None):
        h, w = x_size
        b, _, c = x.shape
        y = self.residual_group(x, x_size, rpi_sa, rpi_oca, shift_mask, plan)
        if plan is None:
            y = self.conv(y.transpose(1, 2).reshape(b, c, h, w))  # tokens -> (B, C, H, W), upstream's copy
            return y.flatten(2).transpose(1, 2) + x
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
    clamped. Extra arguments beyond upstream: ``attn_impl`` ("sdpa" or "math"),
    ``gradient_checkpointing``, and ``global_residual`` (off by default: add a bicubic
    upscale of the input to the output, so the network learns only the missing detail;
    no weights change, but tools that read official files do not know the flag).
    ``img_size``, ``patch_size`` and ``ape`` are accepted so
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
        global_residual: bool = False,
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
        self._shift_masks: dict[tuple, torch.Tensor] = {}  # reference path, per (H, W, device)
        self._plans: dict[tuple, _WindowPlan] = {}  # fast path, per (B, H, W, device)
        self.attn_impl = attn_impl  # selects the path of the whole model; see set_attn_impl
        self.overlap_win_size = overlap_win_size

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
        self.global_residual = bool(global_residual)
        if self.global_residual:
            # Start exactly at bicubic: the last conv learns the detail from zero.
            nn.init.zeros_(self.conv_last.weight)
            nn.init.zeros_(self.conv_last.bias)

    supports_gradient_checkpointing = True

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each block's activations in backward (less memory, ~1.3x time)."""
        for layer in self.layers:
            layer.residual_group.gradient_checkpointing = enabled

    def set_attn_impl(self, impl: str) -> None:
        """Switch the whole model between the fast path ("sdpa") and upstream's step-by-step
        reference path ("math"); same weights, outputs within float rounding."""
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

    def _plan(self, b: int, h: int, w: int, device: torch.device) -> _WindowPlan:
        key = (b, h, w, device)
        if key not in self._plans:
            if len(self._plans) >= MAX_CACHED_PLANS:
                self._plans.pop(next(iter(self._plans)))  # the oldest geometry
            self._plans[key] = _WindowPlan(b, h, w, self.window_size, self.overlap_win_size, device)
        return self._plans[key]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W). The fast path works on channels_last maps, whose
        token view (B, H*W, C) is free; the reference path follows upstream's copies."""
        b, c, h, w = x.shape
        if self.attn_impl == "math":
            shift_mask, plan = self._shift_mask(h, w, x.device), None
        else:
            shift_mask, plan = None, self._plan(b, h, w, x.device)
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.patch_embed(x)  # (B, H*W, C)
        for layer in self.layers:
            x = layer(x, (h, w), self.relative_position_index_SA, self.relative_position_index_OCA, shift_mask, plan)
        x = self.norm(x)
        if plan is None:
            return x.transpose(1, 2).reshape(b, c, h, w)
        return x.view(b, h, w, c).permute(0, 3, 1, 2)  # channels_last view

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.window_size or w % self.window_size:
            raise ValueError(
                f"HAT input {h}x{w} is not a multiple of window_size={self.window_size}; "
                "pad it, or use sr_models.upscale_tensor which pads and crops for you"
            )
        mean = self.mean.to(x.dtype)
        lr = x
        if self.attn_impl != "math":
            # The fast path's token views are channels_last; starting there keeps every conv
            # (head, body, upsampler) on the same layout, with no reorders in between.
            x = x.contiguous(memory_format=torch.channels_last)
        x = (x - mean) * self.img_range
        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        if self.global_residual:  # the body predicts the detail missing from bicubic
            x = x / self.img_range + self.bicubic_skip(lr)
        else:
            x = x / self.img_range + mean
        return x.contiguous()  # the usual layout, whichever path ran


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
    "hat-small": dict(_OFFICIAL, window_size=8, embed_dim=48, depths=[3] * 3, num_heads=[4] * 3,
                      compress_ratio=4, squeeze_factor=12),
    "hat-tiny": dict(_OFFICIAL, window_size=8, embed_dim=24, depths=[2, 2], num_heads=[2, 2],
                     compress_ratio=3, squeeze_factor=4),
}

HAT.presets = PRESETS
