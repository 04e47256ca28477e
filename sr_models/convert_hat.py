"""Official HAT checkpoints (XPixelGroup/HAT, BasicSR ``.pth``) -> :class:`~sr_models.hat.HAT`.

One pure path: read the tensors (``weights_only``: a pickle that would run code is
refused), unwrap ``params_ema`` / ``params``, strip ``module.``, infer the configuration
from tensor shapes, check every key and shape, load strictly. Anything else (a file that
holds no dict of named tensors, shapes no HAT has) is an :class:`OfficialCheckpointError`
that says what was found.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from .hat import HAT, NUM_FEAT
from .hub import check_finite_weights

logger = logging.getLogger(__name__)

_KEY_PREFIX = "module."
_BLOCK_KEY = re.compile(r"layers\.(\d+)\.residual_group\.blocks\.(\d+)\.")
_FIRST_BLOCK = "layers.0.residual_group.blocks.0."

#: Constructor arguments that official weights do not record -> why HAT's default is right.
#: ``load_official`` logs each one the caller does not give in ``overrides``.
NOT_IN_WEIGHTS: dict[str, str] = {
    "img_range": "every official model uses it",
    "conv_scale": "every official model uses it",
    "img_size": "HAT is fully convolutional: it affects neither the weights nor the output",
}


class OfficialCheckpointError(ValueError):
    """An official HAT checkpoint that cannot be read, inferred or matched."""


def read_official_state_dict(source: str | os.PathLike | Mapping) -> dict[str, torch.Tensor]:
    """Tensors of an official checkpoint: ``.pth`` (weights only) or ``.safetensors``,
    unwrapped from ``params_ema`` / ``params`` and stripped of ``module.``."""
    state = source if isinstance(source, Mapping) else _load_file(Path(source))
    if not isinstance(state, Mapping):
        raise OfficialCheckpointError(
            f"the checkpoint holds a {type(state).__name__}, not a dict of tensors (a state dict)")
    for wrapper in ("params_ema", "params"):
        if isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
            break
    not_named = [k for k in state if not isinstance(k, str)]
    if not_named:
        raise OfficialCheckpointError(f"the state dict has keys that are not strings: {not_named[:5]}")
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


def _load_file(path: Path) -> object:
    if not path.is_file():
        raise OfficialCheckpointError(f"no such checkpoint file: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise OfficialCheckpointError(f"cannot read {path} as safetensors: {err}") from err
    try:
        # weights_only: tensors and plain containers only; a pickle that would run code
        # (or build arbitrary objects) is refused before anything executes.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise OfficialCheckpointError(
            f"{path} cannot be read as plain weights: it is not a PyTorch weights file, or it "
            "holds pickled objects beyond tensors; refusing to unpickle it"
        ) from err
    except Exception as err:  # zip / format errors from torch.load
        raise OfficialCheckpointError(f"cannot read {path} as a PyTorch checkpoint: {err}") from err


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
    """Build a :class:`HAT` from an official checkpoint (path or state dict), strictly.

    The whole configuration is inferred from tensor shapes; ``overrides`` set what the
    weights cannot tell (:data:`NOT_IN_WEIGHTS`: ``img_range``, ``conv_scale``) or runtime
    options (``attn_impl``). Every key and shape is checked; the stored index buffers must
    equal the ones this implementation computes. The model returned is in eval mode.
    """
    where = "the state dict" if isinstance(source, Mapping) else str(source)
    state = read_official_state_dict(source)
    config = infer_config(state)
    try:  # the configuration, the size of the whole model included, is checked before anything is built
        model = HAT(**{**config, "drop_path_rate": 0.1, **overrides})
    except ValueError as err:
        raise OfficialCheckpointError(f"{where}: no valid HAT has these shapes ({err}; inferred "
                                      f"{config}, overrides {overrides})") from err
    defaults = inspect.signature(HAT).parameters
    for field, reason in NOT_IN_WEIGHTS.items():
        if field not in overrides:
            logger.warning("%s is not stored in official weights: using %r (%s)",
                           field, defaults[field].default, reason)
    _check_layout(model, state, config)
    model.load_state_dict(state, strict=True)
    try:
        check_finite_weights(model, where)
    except ValueError as err:
        raise OfficialCheckpointError(str(err)) from err
    model.pretrained = True
    model.name_or_path = where
    return model.eval()


def _check_layout(model: HAT, state: Mapping[str, torch.Tensor], config: dict) -> None:
    """Every key and shape of ``state`` as in ``model``; index buffers equal to its own."""
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
