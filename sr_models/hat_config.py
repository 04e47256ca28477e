"""HAT's configuration: the bounds and rule of every constructor argument, the size of the
model a configuration describes, and the named presets (:mod:`sr_models.hat` builds the
model; official option files use the same argument names). Without torch: a configuration
is checked, and its size counted, before anything is allocated.
"""

from __future__ import annotations

import math

from .validation import (BOOL, SCALE, Rule, check_fields, check_model_size, int_in, int_list, invalid, is_int,
                         number_in, one_of)
from .validation import SCALES  # noqa: F401 - what the pixel-shuffle upsampler builds (upstream's choices)

ATTN_IMPLS = ("sdpa", "math")

# Features before the upsampler, fixed in upstream's pixel-shuffle head.
NUM_FEAT = 64

# Bounds, checked before anything is allocated: well beyond the largest official model
# (HAT-L: 12 groups of 6 blocks, width 180, 6 heads, window 16, mlp_ratio 2), so that every
# real model passes and nonsense (depths=[100000, 3, 3]) fails at once instead of
# allocating gigabytes first. They bound each field; the size of the whole model (fields
# each in range can still describe 490 GB) is bounded by MAX_MODEL_BYTES (model_bytes).
MAX_IN_CHANS = 16  # official: 3 (RGB)
MAX_EMBED_DIM = 1024  # official: 180
MAX_GROUPS = 32  # residual groups, len(depths); official: 12
MAX_DEPTH = 64  # blocks per group; official: 6
MAX_HEADS = 64  # per group; official: 6
MAX_WINDOW_SIZE = 32  # official: 16; the index buffers grow as window_size**4
MAX_MLP_RATIO = 16  # official: 2
MAX_IMG_SIZE = 65536  # official: 64; kept for option files, unused by the model
# The two scalars of the forward pass: one of 1e308 gives a finite model whose every output
# is infinite (an all-black image), so they are bounded too.
MAX_CONV_SCALE = 100.0  # |conv_scale|; official: 0.01
MAX_IMG_RANGE = 65535.0  # official: 1.0 (BasicSR also uses 255)

#: field -> (check, rule) for every constructor argument.
CONFIG_RULES: dict[str, Rule] = {
    "upscale": SCALE,
    "in_chans": int_in(1, MAX_IN_CHANS),
    "img_size": int_in(1, MAX_IMG_SIZE),
    "patch_size": (lambda v: is_int(v) and v == 1, "HAT operates on pixels; only 1 is supported"),
    "window_size": (lambda v: is_int(v) and 2 <= v <= MAX_WINDOW_SIZE and v % 2 == 0,
                    f"expected an even integer in [2, {MAX_WINDOW_SIZE}] (shift = window_size // 2)"),
    "compress_ratio": int_in(1, MAX_EMBED_DIM),
    "squeeze_factor": int_in(1, MAX_EMBED_DIM),
    "conv_scale": number_in(-MAX_CONV_SCALE, MAX_CONV_SCALE),
    "overlap_ratio": number_in(0, 1, open_high=True),
    "mlp_ratio": number_in(0, MAX_MLP_RATIO, open_low=True),
    "depths": int_list(MAX_GROUPS, MAX_DEPTH),
    "embed_dim": int_in(1, MAX_EMBED_DIM),
    "num_heads": int_list(MAX_GROUPS, MAX_HEADS),
    "qkv_bias": BOOL,
    "drop_path_rate": number_in(0, 1, open_high=True),
    "ape": (lambda v: v is False, "absolute position embedding is not supported (unused upstream)"),
    "patch_norm": BOOL,
    "img_range": number_in(0, MAX_IMG_RANGE, open_low=True),
    "upsampler": (lambda v: v == "pixelshuffle", "only 'pixelshuffle' (classic SR) is supported"),
    "resi_connection": one_of(("1conv", "identity")),
    "attn_impl": one_of(ATTN_IMPLS),
    "gradient_checkpointing": BOOL,
    "global_residual": BOOL,
}


def validate_config(config: dict) -> None:
    """Check a whole configuration before anything is built.

    Args:
        config: every constructor argument of HAT, by name.

    Raises:
        ValueError: naming the first bad field: each field by its rule, then how fields
            combine, then the size of the whole model (MAX_MODEL_BYTES).
    """
    check_fields("HAT", CONFIG_RULES, config)
    dim, heads = config["embed_dim"], config["num_heads"]
    if len(heads) != len(config["depths"]):
        raise invalid("HAT", "num_heads", heads, "needs one entry per group in depths")
    if any(dim % h for h in heads):
        raise invalid("HAT", "num_heads", heads, f"each must divide embed_dim={dim}")
    for name in ("compress_ratio", "squeeze_factor"):
        if config[name] > dim:
            raise invalid("HAT", name, config[name], f"must not exceed embed_dim={dim}")
    if int(config["window_size"] * config["overlap_ratio"]) % 2:
        raise invalid("HAT", "overlap_ratio", config["overlap_ratio"], "int(window_size * overlap_ratio) must be even")
    check_model_size("HAT", model_bytes(config))


def model_bytes(config: dict) -> int:
    """Bytes a HAT of this (validated) configuration holds once built (float32 parameters, int64
    index buffers, the mean), counted layer by layer as built (tests/test_model_size.py)."""
    dim, ws, chans = config["embed_dim"], config["window_size"], config["in_chans"]
    ows = int(ws * config["overlap_ratio"]) + ws
    hidden = int(dim * config["mlp_ratio"])
    conv = 9 * dim * dim + dim if config["resi_connection"] == "1conv" else 0  # each group's, and after the body
    attention = 4 * dim * dim + dim + (3 * dim if config["qkv_bias"] else 0)  # qkv, proj
    mlp = 2 * dim * hidden + hidden + dim + 4 * dim  # fc1, fc2, the two LayerNorms
    cab, se = dim // config["compress_ratio"], dim // config["squeeze_factor"]
    conv_block = 18 * dim * cab + cab + dim + 2 * dim * se + se + dim  # CAB: 2 convs, squeeze-excitation
    params = 0
    for depth, heads in zip(config["depths"], config["num_heads"]):
        hab = (2 * ws - 1) ** 2 * heads + attention + conv_block + mlp
        ocab = (ws + ows - 1) ** 2 * heads + attention + mlp
        params += depth * hab + ocab + conv
    upscale = config["upscale"]
    up_convs, up_width = (1, 9 * NUM_FEAT) if upscale == 3 else (int(math.log2(upscale)), 4 * NUM_FEAT)
    params += (9 * chans * dim + dim + (2 * dim if config["patch_norm"] else 0) + 2 * dim + conv
               + 9 * dim * NUM_FEAT + NUM_FEAT + up_convs * (9 * NUM_FEAT * up_width + up_width)
               + 9 * NUM_FEAT * chans + chans)
    return 4 * (params + chans) + 8 * (ws ** 4 + ws * ws * ows * ows)


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
