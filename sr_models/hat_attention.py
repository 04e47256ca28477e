"""Window attention machinery of HAT: the window geometry both paths use, and the fast path.

Geometry (:mod:`sr_models.hat`'s step-by-step reference path is written with it):
window_partition / window_reverse, the two relative-position indices (buffers that
official checkpoints carry) and the bias gathered by them, the shifted-window mask.

The fast path (``attn_impl="sdpa"``, the default) computes the same function as the
reference path from the same weights (outputs within float rounding:
tests/test_perf_paths.py); only the way tokens move and attention is computed changes:

- roll + window_partition / window_reverse, and OCAB's pad + nn.Unfold, are each one row
  gather (``index_select``) with indices built once per input geometry
  (:class:`WindowPlan`, kept in a bounded :class:`PlanCache`);
- attention runs through ``F.scaled_dot_product_attention`` with a 4-D mask, the only
  mask shape that keeps its fused CPU kernel;
- shifted windows are grouped by their four shift-mask forms, so that no
  (nW, heads, N, N) mask is materialised;
- the gathered relative-position bias is cached while no gradient is needed
  (:class:`BiasCache`).

``benchmarks/hat_speed.py`` measures both paths. Nothing here holds weights: the blocks
of :mod:`sr_models.hat` move their tokens with the plan (:meth:`WindowPlan.to_windows`,
:meth:`WindowPlan.to_image`), project them, and pass the tensors to
:func:`shifted_window_attention` and :func:`overlapping_cross_attention`.
:class:`AttentionContext` carries what one forward pass shares down the blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Upstream masks disallowed pairs of the shifted windows with -100 (not -inf); exp(-100)
# is ~4e-44, so keeping the value keeps outputs bit-comparable with upstream.
SHIFT_MASK_VALUE = -100.0

# Input geometries (B, H, W, device) whose gather plans a model keeps; tiling uses at most
# four tile shapes, so eight bounds the cache without evicting in practice.
MAX_CACHED_PLANS = 8


# --------------------------------------------------------------------------- geometry


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
    carry this buffer, so the values must stay as they are; :func:`gather_bias` applies
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


def gather_bias(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Relative-position bias (heads, N, M) from a (T, heads) table and an (N, M) index.

    The index is taken modulo T: upstream's wrap-around of negative entries, made
    explicit. ``index_select`` rather than ``table[index]``: the same values, and a
    backward (``index_add_``) much faster on CPU than advanced indexing's ``index_put_``.
    """
    n, m = index.shape
    return table.index_select(0, index.reshape(-1) % table.shape[0]).view(n, m, -1).permute(2, 0, 1)


# --------------------------------------------------------------------------- fast path


def _window_tokens(grid: torch.Tensor, window_size: int) -> torch.Tensor:
    """(nW, ws²) entries of an (H, W) grid, window by window in row-major order (the order
    of :func:`window_partition`)."""
    h, w = grid.shape
    ws = window_size
    return grid.view(h // ws, ws, w // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)


def _inverse(permutation: torch.Tensor) -> torch.Tensor:
    inverse = torch.empty_like(permutation)
    inverse[permutation] = torch.arange(len(permutation))
    return inverse


class WindowPlan:
    """Gather indices of one input geometry (B, H, W), built once.

    Tokens live as rows of a (B*H*W, C) matrix. ``orders[shift]`` is (order, inverse,
    groups): one ``index_select`` with ``order`` does what upstream does with roll +
    window_partition (shift 0 or ws // 2), one with ``inverse`` undoes it. ``kv_index``
    gathers OCAB's overlapping ows x ows key/value windows straight from the token rows
    (the index B*H*W points at an appended zero row: the zero padding), replacing pad +
    unfold + two permutes.

    Shifted windows are ordered by their mask class instead of row-major: the shift mask
    takes only four forms (0 interior windows: none; 1 last column; 2 last row; 3 the
    corner), so each class runs as one SDPA call whose (heads, N, N) bias + mask is
    broadcast over its windows with a stride-0 expand. ``groups`` is [(windows, class)].
    ``class_masks`` (4, ws², ws²) holds the mask of each class.
    """

    def __init__(self, b: int, h: int, w: int, window_size: int, overlap_win_size: int,
                 class_masks: torch.Tensor, device: torch.device):
        ws, shift = window_size, window_size // 2
        n_h, n_w = h // ws, w // ws
        offsets = (torch.arange(b) * (h * w)).view(b, 1, 1)  # first row of each image
        grid = torch.arange(h * w).view(h, w)

        def batched(windows):  # (nW', ws²) tokens of one image -> (B*nW'*ws²,) rows
            return (offsets + windows.unsqueeze(0)).flatten()

        plain = batched(_window_tokens(grid, ws))
        # torch.roll(x, -shift) puts token (r + s, c + s) at (r, c): roll the grid, not the data.
        rolled = _window_tokens(torch.roll(grid, shifts=(-shift, -shift), dims=(0, 1)), ws)
        row, col = torch.arange(n_h * n_w).div(n_w, rounding_mode="floor"), torch.arange(n_h * n_w) % n_w
        window_class = 2 * (row == n_h - 1).long() + (col == n_w - 1).long()
        shifted, groups = [], []
        for cls in range(4):
            members = rolled[window_class == cls]
            if len(members):
                shifted.append(batched(members))
                groups.append((b * len(members), cls))
        shifted = torch.cat(shifted)

        self.orders = {0: (plain.to(device), _inverse(plain).to(device), [(b * n_h * n_w, 0)]),
                       shift: (shifted.to(device), _inverse(shifted).to(device), groups)}
        self.kv_index = _overlapping_rows(b, h, w, ws, overlap_win_size).to(device)  # (B*nW*ows²,)
        self.class_masks = class_masks.to(device)

    def to_windows(self, rows: torch.Tensor, shift: int) -> torch.Tensor:
        """Token rows (B*H*W, C') in image order -> window order (B*nW*ws², C'): roll +
        window_partition in one gather."""
        return rows.index_select(0, self.orders[shift][0])

    def to_image(self, rows: torch.Tensor, shift: int) -> torch.Tensor:
        """The inverse of :meth:`to_windows`: window_reverse + roll back."""
        return rows.index_select(0, self.orders[shift][1])


def _overlapping_rows(b: int, h: int, w: int, window_size: int, overlap_win_size: int) -> torch.Tensor:
    """Token rows of every ows x ows window around each ws x ws window (stride ws), with
    B*H*W (the appended zero row) where the window leaves the image: nn.Unfold's order."""
    ws, ows = window_size, overlap_win_size
    n_h, n_w = h // ws, w // ws
    pad = (ows - ws) // 2
    rows = (torch.arange(n_h) * ws - pad).view(n_h, 1, 1, 1) + torch.arange(ows).view(1, 1, ows, 1)
    cols = (torch.arange(n_w) * ws - pad).view(1, n_w, 1, 1) + torch.arange(ows).view(1, 1, 1, ows)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)  # (nH, nW, ows, ows)
    offsets = (torch.arange(b) * (h * w)).view(b, 1, 1, 1, 1)
    return torch.where(inside.unsqueeze(0), offsets + (rows * w + cols).unsqueeze(0), b * h * w).flatten()


class PlanCache:
    """The :class:`WindowPlan` of each input geometry (B, H, W, device), the oldest
    dropped beyond :data:`MAX_CACHED_PLANS`."""

    def __init__(self, window_size: int, overlap_win_size: int):
        self.window_size = window_size
        self.overlap_win_size = overlap_win_size
        self._plans: dict[tuple, WindowPlan] = {}

    def __len__(self) -> int:
        return len(self._plans)

    def get(self, b: int, h: int, w: int, device: torch.device) -> WindowPlan:
        key = (b, h, w, device)
        if key not in self._plans:
            if len(self._plans) >= MAX_CACHED_PLANS:
                self._plans.pop(next(iter(self._plans)))  # the oldest geometry
            ws = self.window_size
            # The four window classes are the four windows of a 2ws x 2ws image, row-major.
            class_masks = shifted_window_mask(2 * ws, 2 * ws, ws, ws // 2)  # (4, ws², ws²)
            self._plans[key] = WindowPlan(b, h, w, ws, self.overlap_win_size, class_masks, device)
        return self._plans[key]


class BiasCache:
    """The gathered relative-position bias (heads, N, M) of one attention module.

    Used only when no gradient is needed, keyed on the table's (and index's) storage,
    version counter, dtype and device: an optimizer step or ``load_state_dict`` writes in
    place and bumps the version, ``.to()`` changes the storage, so a stale bias is never
    used. The entry holds a detached alias of the table, so its storage cannot be freed
    and reused at the same address. Writes through ``.data`` bypass version counting: the
    owning module clears the cache in ``train()`` / ``eval()``.
    """

    def __init__(self):
        self.entry: tuple | None = None

    def clear(self) -> None:
        self.entry = None

    def get(self, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """:func:`gather_bias` of ``table`` by ``index``: (heads, N, M)."""
        if (torch.is_grad_enabled() and table.requires_grad) or table.is_inference() or index.is_inference():
            return gather_bias(table, index)  # gradients flow into the table
        key = (table.data_ptr(), table._version, table.dtype, table.device, index.data_ptr(), index._version)
        if self.entry is None or self.entry[0] != key:
            self.entry = (key, table.detach(), gather_bias(table, index).contiguous())
        return self.entry[2]


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


def shifted_window_attention(qkv: torch.Tensor, bias: torch.Tensor, plan: WindowPlan, shift: int,
                             num_heads: int) -> torch.Tensor:
    """A HAB's (shifted) window attention on projected tokens in window order.

    qkv (B*nW*ws², 3C) in :meth:`WindowPlan.to_windows` order; bias (heads, N, N) with
    N = ws². Returns (B*nW*ws², C), the heads concatenated, in the same order."""
    n, c = bias.shape[-1], qkv.shape[-1] // 3
    qkv = qkv.view(-1, n, 3, num_heads, c // num_heads).permute(2, 0, 3, 1, 4)  # (3, B*nW, heads, N, d)
    outs, start = [], 0
    for count, cls in plan.orders[shift][2]:  # windows ordered by mask class; class 0 has no mask
        mask = bias if cls == 0 else bias + plan.class_masks[cls]
        mask = mask.to(qkv.dtype).unsqueeze(0).expand(count, -1, -1, -1)
        q, k, v = qkv[:, start:start + count]
        outs.append(_sdpa(q, k, v, mask).transpose(1, 2))
        start += count
    out = outs[0] if len(outs) == 1 else torch.cat(outs)  # (B*nW, N, heads, d)
    return out.reshape(-1, c)


def overlapping_cross_attention(qkv: torch.Tensor, bias: torch.Tensor, plan: WindowPlan, window_size: int,
                                overlap_win_size: int, num_heads: int) -> torch.Tensor:
    """An OCAB's attention before its projection: qkv (B*H*W, 3C) in image order, bias
    (heads, ws², ows²) -> (B*H*W, C) in image order."""
    c = qkv.shape[-1] // 3
    ws, ows, d = window_size, overlap_win_size, c // num_heads
    q = plan.to_windows(qkv[:, :c], 0).view(-1, ws * ws, num_heads, d).transpose(1, 2)
    kv = torch.cat([qkv[:, c:], qkv.new_zeros(1, 2 * c)])  # (B*H*W + 1, 2C): last row = padding
    kv = kv.index_select(0, plan.kv_index).view(-1, ows * ows, 2, num_heads, d).permute(2, 0, 3, 1, 4)
    out = _sdpa(q, kv[0], kv[1], bias.to(q.dtype).expand(q.shape[0], -1, -1, -1))  # (B*nW, heads, ws², d)
    return plan.to_image(out.transpose(1, 2).reshape(-1, c), 0)


# --------------------------------------------------------------------------- one forward pass


@dataclass(frozen=True)
class AttentionContext:
    """What every block of one forward pass shares besides its tokens: the map size, the
    two relative-position indices (the model's buffers), the path the model attends with
    (``attn_impl``) and that path's geometry: the gather plan of the fast path ("sdpa"), or
    the shift mask (nW, ws², ws²) of the reference path ("math"); the other one is None."""

    x_size: tuple[int, int]
    rpi_sa: torch.Tensor
    rpi_oca: torch.Tensor
    attn_impl: str
    shift_mask: torch.Tensor | None = None
    plan: WindowPlan | None = None
