"""Official HAT checkpoints (XPixelGroup/HAT, BasicSR ``.pth``) -> :class:`~sr_models.hat.HAT`.

One pure path: read the tensors (:func:`~sr_models.state_dicts.read_state_dict`: a pickle
that would run code is refused; ``params_ema`` / ``params`` unwrapped, ``module.``
stripped), infer the configuration from tensor shapes, check every key and shape, load
strictly. Anything else (a file that holds no dict of named tensors, shapes no HAT has)
is an :class:`OfficialCheckpointError` that says what was found. Also what the
architecture registry says of HAT files: how an official state dict is recognised
(:data:`OFFICIAL_KEYS`) and whether weights open in official tools (:func:`portability`).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping

import torch

from .hat import HAT, NUM_FEAT
from .state_dicts import CheckpointError, KeyCondition, load_strictly, log_assumed, read_state_dict

logger = logging.getLogger(__name__)

_BLOCK_KEY = re.compile(r"layers\.(\d+)\.residual_group\.blocks\.(\d+)\.")
_FIRST_BLOCK = "layers.0.residual_group.blocks.0."

#: What makes a state dict a HAT one: the first conv and the bias table of the overlapping
#: cross-attention, which is HAT's own (SwinIR's keys have the rest). The converter then
#: names every other key that is missing.
OFFICIAL_KEYS = KeyCondition.has_all("conv_first.weight",
                                     "layers.0.residual_group.overlap_attn.relative_position_bias_table")

#: Constructor arguments that official weights do not record -> why HAT's default is right.
#: ``load_official`` logs each one the caller does not give in ``overrides``.
NOT_IN_WEIGHTS: dict[str, str] = {
    "img_range": "every official model uses it",
    "conv_scale": "every official model uses it",
    "img_size": "HAT is fully convolutional: it affects neither the weights nor the output",
}


class OfficialCheckpointError(CheckpointError):
    """An official HAT checkpoint that cannot be read, inferred or matched."""


def read_official_state_dict(source: str | os.PathLike | Mapping) -> dict[str, torch.Tensor]:
    """Tensors of an official checkpoint: ``.pth`` (weights only) or ``.safetensors``,
    unwrapped from ``params_ema`` / ``params`` and stripped of ``module.``."""
    state = read_state_dict(source, OfficialCheckpointError)
    if "conv_first.weight" not in state:
        raise OfficialCheckpointError(
            "not an official HAT state dict: 'conv_first.weight' is missing "
            f"(top-level keys: {sorted(state)[:8]})"
        )
    return state


def _shape(state: Mapping[str, torch.Tensor], key: str, ndim: int) -> tuple[int, ...]:
    """The shape of ``state[key]``, which must have ``ndim`` dimensions, none empty."""
    if key not in state:
        raise OfficialCheckpointError(f"cannot infer the configuration: key {key!r} is missing")
    shape = tuple(state[key].shape)
    if len(shape) != ndim or 0 in shape:
        raise OfficialCheckpointError(
            f"{key} has shape {shape}: expected {ndim} non-empty dimensions, as in every HAT")
    return shape


def _depths(state: Mapping[str, torch.Tensor]) -> list[int]:
    """Blocks per residual group, from the numbered block keys."""
    depths_by_layer: dict[int, int] = {}
    for key in state:
        m = _BLOCK_KEY.match(key)
        if m:
            layer, block = int(m.group(1)), int(m.group(2))
            depths_by_layer[layer] = max(depths_by_layer.get(layer, 0), block + 1)
    if not depths_by_layer or sorted(depths_by_layer) != list(range(len(depths_by_layer))):
        raise OfficialCheckpointError("cannot infer depths: residual groups are missing or not numbered 0..n-1")
    return [depths_by_layer[i] for i in range(len(depths_by_layer))]


def infer_config(state: Mapping[str, torch.Tensor]) -> dict:
    """Constructor arguments implied by the tensor shapes of an official state dict.

    What the shapes cannot tell is left to HAT's defaults (see :data:`NOT_IN_WEIGHTS`).
    Ratios are exact when the division is; otherwise the value returned builds the same
    shapes (e.g. embed_dim 144 // compress_ratio 24 == 6).
    """
    embed_dim, in_chans = _shape(state, "conv_first.weight", 4)[:2]
    depths = _depths(state)
    num_heads = [_shape(state, f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table", 2)[1]
                 for i in range(len(depths))]

    table_rows = _shape(state, _FIRST_BLOCK + "attn.relative_position_bias_table", 2)[0]
    window_size = (math.isqrt(table_rows) + 1) // 2
    if (2 * window_size - 1) ** 2 != table_rows:
        raise OfficialCheckpointError(f"window bias table has {table_rows} rows, not (2*ws-1)^2")
    oca_side = math.isqrt(_shape(state, "layers.0.residual_group.overlap_attn.relative_position_bias_table", 2)[0])
    overlap_ratio = (oca_side + 1 - 2 * window_size) / window_size  # side = ws + ows - 1

    cab_hidden = _shape(state, _FIRST_BLOCK + "conv_block.cab.0.weight", 4)[0]
    se_hidden = _shape(state, _FIRST_BLOCK + "conv_block.cab.3.attention.1.weight", 4)[0]
    mlp_ratio = _shape(state, _FIRST_BLOCK + "mlp.fc1.weight", 2)[0] / embed_dim

    upsample_convs = [k for k in state if re.fullmatch(r"upsample\.\d+\.weight", k)]
    first_up = _shape(state, "upsample.0.weight", 4)[0] // NUM_FEAT
    upscale = 3 if first_up == 9 else 2 ** len(upsample_convs)

    return dict(
        upscale=upscale, in_chans=in_chans, window_size=window_size,
        compress_ratio=embed_dim // cab_hidden, squeeze_factor=embed_dim // se_hidden,
        overlap_ratio=overlap_ratio, mlp_ratio=int(mlp_ratio) if mlp_ratio.is_integer() else mlp_ratio,
        depths=depths, embed_dim=embed_dim, num_heads=num_heads,
        qkv_bias=_FIRST_BLOCK + "attn.qkv.bias" in state,
        patch_norm="patch_embed.norm.weight" in state,
        resi_connection="1conv" if "layers.0.conv.weight" in state else "identity",
        upsampler="pixelshuffle",
    )


def load_official(source: str | os.PathLike | Mapping, **overrides) -> HAT:
    """Build a :class:`HAT` from an official checkpoint, strictly.

    Args:
        source: a ``.pth`` / ``.safetensors`` path or a state dict.
        overrides: what the weights cannot tell (:data:`NOT_IN_WEIGHTS`: ``img_range``,
            ``conv_scale``) or runtime options (``attn_impl``).

    Returns:
        The model, in eval mode, ``pretrained``.

    Raises:
        OfficialCheckpointError: saying what was found and what does not fit.
    """
    where = "the state dict" if isinstance(source, Mapping) else str(source)
    return convert_official(read_official_state_dict(source), where, **overrides)


def convert_official(state: Mapping[str, torch.Tensor], where: str = "the state dict", **overrides) -> HAT:
    """:func:`load_official` of a state dict already read (the registry's HAT converter).

    The whole configuration is inferred from tensor shapes; every key and shape is
    checked; the stored index buffers must equal the ones this implementation computes.
    """
    try:
        config = infer_config(state)
    except OfficialCheckpointError as err:
        raise OfficialCheckpointError(f"{where}: {err}") from err
    try:  # the configuration, the size of the whole model included, is checked before anything is built
        model = HAT(**{**config, "drop_path_rate": 0.1, **overrides})
    except ValueError as err:
        raise OfficialCheckpointError(f"{where}: no valid HAT has these shapes ({err}; inferred "
                                      f"{config}, overrides {overrides})") from err
    log_assumed(logger, HAT, NOT_IN_WEIGHTS, overrides, "official")
    for name in ("relative_position_index_SA", "relative_position_index_OCA"):
        stored, computed = state.get(name), getattr(model, name)
        if stored is not None and stored.shape == computed.shape and not torch.equal(stored.long(), computed):
            raise OfficialCheckpointError(f"{name} in the checkpoint differs from the one HAT computes")
    return load_strictly(model, state, where, config, OfficialCheckpointError)


def portability(model: HAT) -> str:
    """Whether tools that read official HAT checkpoints run these weights (``sr-models info``)."""
    if model.config.get("global_residual"):
        return ("official HAT layout, but needs sr-models: global_residual=True is not in the official forward "
                "(tools that read official HAT files load it and give a wrong image)")
    return "official HAT layout and forward (opens in tools that read official HAT checkpoints)"
