"""ESPCN: Efficient Sub-Pixel Convolutional Neural Network.

Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network", CVPR 2016 (arXiv:1609.05158).

The default is the colour variant the study used: conv layers 64@5x5 -> 64@3x3 ->
32@3x3 -> 3·r²@3x3 with ReLU, then PixelShuffle (depth_to_space), i.e. the paper's
network with an additional conv layer, on RGB instead of Y. ``activation="tanh"`` with
``channels=[64, 32]`` and ``kernel_sizes=[5, 3, 3]`` is the paper's own network.
Input and output are RGB in [0, 1]; the output is not clamped. ``global_residual=True``
adds a bicubic upscale of the input to the output (off by default; see HAT's docstring).
Read top to bottom: the model, its configuration (bounds, rules), its state-dict file
(recognised by its keys, configuration inferred from shapes), presets.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping

import torch
from torch import nn

from .hub import SRModelMixin
from .state_dicts import CheckpointError, KeyCondition, load_strictly, log_assumed
from .validation import BOOL, SCALE, check_fields, check_model_size, int_in, invalid, is_int, one_of
from .validation import SCALES  # noqa: F401 - sr_models.espcn.SCALES, where it was defined

logger = logging.getLogger(__name__)

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


class ESPCN(SRModelMixin, tags=["espcn", "cnn"], paper_url="https://arxiv.org/abs/1609.05158"):
    """Conv layers of ``channels`` widths and ``kernel_sizes`` (one more kernel size than
    widths: the last conv maps to in_chans·upscale² for the PixelShuffle)."""

    def __init__(
        self,
        upscale: int = 4,
        in_chans: int = 3,
        channels: list[int] = (64, 64, 32),
        kernel_sizes: list[int] = (5, 3, 3, 3),
        activation: str = "relu",
        global_residual: bool = False,
    ):
        arguments = dict(locals())  # before any other name is bound
        super().__init__()
        _validate_config({name: arguments[name] for name in CONFIG_RULES})
        channels, kernel_sizes = list(channels), list(kernel_sizes)
        self.scale = upscale
        self.pad_multiple = 1
        widths = [in_chans, *channels, in_chans * upscale**2]
        layers: list[nn.Module] = []
        for i, k in enumerate(kernel_sizes):
            layers.append(nn.Conv2d(widths[i], widths[i + 1], k, padding=k // 2))
            if i < len(kernel_sizes) - 1:
                layers.append(ACTIVATIONS[activation]())
        self.body = nn.Sequential(*layers)
        self.upsample = nn.PixelShuffle(upscale)
        self.global_residual = global_residual
        self._init_weights(activation)

    def _init_weights(self, activation: str) -> None:
        convs = [m for m in self.body if isinstance(m, nn.Conv2d)]
        for conv in convs[:-1]:
            if activation == "relu":
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            else:
                nn.init.xavier_normal_(conv.weight, gain=nn.init.calculate_gain("tanh"))
            nn.init.zeros_(conv.bias)
        # A small last layer starts the output near the mean colour (or, with the global
        # residual, near bicubic) instead of noise, which shortens the first phase of training.
        nn.init.normal_(convs[-1].weight, std=1e-3)
        nn.init.constant_(convs[-1].bias, 0.0 if self.global_residual else 0.5)

    @property
    def receptive_radius(self) -> int:
        """LR pixels of context each output pixel sees on each side (for exact tiling)."""
        return sum(m.kernel_size[0] // 2 for m in self.body if isinstance(m, nn.Conv2d))

    @property
    def tile_overlap(self) -> int:
        """Tiles overlapping by twice the receptive radius upscale exactly as the whole image."""
        return 2 * self.receptive_radius

    @property
    def bytes_per_pixel(self) -> int:
        """Peak bytes of a float32 forward per LR pixel, at the widest step: a hidden layer's
        conv output and its (not in-place) activation beside the input, or the last conv's
        output and its pixel shuffle. Exact on the presets (tests/test_model_facts.py)."""
        config = self.config
        in_chans, hidden = config["in_chans"], max(config["channels"])
        return 4 * max(in_chans + 2 * hidden, 2 * in_chans * self.scale ** 2)

    def forward(self, x):
        if x.device.type == "cpu":
            # oneDNN convolves channels_last (NHWC) maps natively; from NCHW every layer
            # reorders its input and output. About 1.3x per 1080p frame on a 2-core CPU
            # (benchmarks/espcn_speed.py); the output is returned in the usual layout.
            out = self.upsample(self.body(x.contiguous(memory_format=torch.channels_last))).contiguous()
        else:
            out = self.upsample(self.body(x))
        return out + self.bicubic_skip(x) if self.global_residual else out


# Bounds, checked before anything is allocated: far beyond the study's network (64-64-32,
# kernels 5-3-3-3) and the paper's (64-32, 5-3-3), so that any real ESPCN passes and
# nonsense fails at once instead of allocating first. Fields each in range can still
# describe a 29 GB network: the whole model is bounded by MAX_MODEL_BYTES (model_bytes).
MAX_IN_CHANS = 16  # the study: 3 (RGB)
MAX_LAYERS = 32  # hidden conv layers, len(channels); the study: 3
MAX_CHANNELS = 1024  # width of a hidden layer; the study: 64
MAX_KERNEL_SIZE = 15  # the study: 5


def _odd_sizes(v) -> bool:
    return isinstance(v, (list, tuple)) and all(is_int(k) and 1 <= k <= MAX_KERNEL_SIZE and k % 2 for k in v)


#: field -> (check, rule) for every constructor argument.
CONFIG_RULES = {
    "upscale": SCALE,
    "in_chans": int_in(1, MAX_IN_CHANS),
    "channels": (lambda v: isinstance(v, (list, tuple)) and 0 < len(v) <= MAX_LAYERS
                 and all(is_int(c) and 1 <= c <= MAX_CHANNELS for c in v),
                 f"expected a list of 1 to {MAX_LAYERS} widths, each an integer in [1, {MAX_CHANNELS}]"),
    "kernel_sizes": (_odd_sizes, f"expected a list of odd sizes in [1, {MAX_KERNEL_SIZE}]"),
    "activation": one_of(ACTIVATIONS),
    "global_residual": BOOL,
}


def _validate_config(config: dict) -> None:
    """Raise ValueError naming the first bad field: each field, then how fields combine."""
    check_fields("ESPCN", CONFIG_RULES, config)
    layers = len(config["channels"]) + 1
    if len(config["kernel_sizes"]) != layers:
        raise invalid("ESPCN", "kernel_sizes", config["kernel_sizes"],
                      f"expected {layers} sizes (one per conv layer, the last one included)")
    check_model_size("ESPCN", model_bytes(config["upscale"], config["in_chans"], config["channels"],
                                          config["kernel_sizes"]))


def model_bytes(upscale: int, in_chans: int, channels: list[int], kernel_sizes: list[int]) -> int:
    """Bytes of the float32 weights and biases of an ESPCN of this (validated) configuration."""
    widths = [in_chans, *channels, in_chans * upscale**2]
    return 4 * sum(w_in * w_out * k * k + w_out for w_in, w_out, k in zip(widths, widths[1:], kernel_sizes))


# --------------------------------------------------------------------------- state-dict files

#: An ESPCN state dict: convs (and their biases) at body.0, body.2, ... and nothing else.
STATE_DICT_KEYS = KeyCondition.has_all("body.0.weight", KeyCondition.only(r"body\.\d+\.(weight|bias)"))
#: Constructor arguments a state dict does not record -> why the default is used.
NOT_IN_WEIGHTS: dict[str, str] = {
    "activation": "the study's; pass activation='tanh' for the paper's network",
    "global_residual": "pass global_residual=True for weights trained with it",
}
_CONV_KEY = re.compile(r"body\.(\d+)\.weight")


def infer_config(state: Mapping[str, torch.Tensor]) -> dict:
    """Constructor arguments implied by the conv shapes of an ESPCN state dict (the
    activation and ``global_residual`` are not stored: :data:`NOT_IN_WEIGHTS`)."""
    indices = sorted(int(m.group(1)) for key in state if (m := _CONV_KEY.fullmatch(key)))
    if indices != list(range(0, 2 * len(indices), 2)):
        raise CheckpointError(f"ESPCN convs are body.0, body.2, body.4, ...; found convs at body.{indices}")
    shapes = [tuple(state[f"body.{i}.weight"].shape) for i in indices]
    bad = [s for s in shapes if len(s) != 4 or 0 in s or s[2] != s[3]]
    if bad:
        raise CheckpointError(f"ESPCN convs have non-empty square kernels (out, in, k, k); found {bad[0]}")
    in_chans, outputs = shapes[0][1], shapes[-1][0]
    upscale = math.isqrt(outputs // in_chans)
    if in_chans * upscale ** 2 != outputs:
        raise CheckpointError(f"the last conv has {outputs} outputs: not in_chans ({in_chans}) x upscale²")
    return dict(upscale=upscale, in_chans=in_chans, channels=[s[0] for s in shapes[:-1]],
                kernel_sizes=[s[2] for s in shapes])


def from_state_dict(state: Mapping[str, torch.Tensor], where: str = "the state dict", **overrides) -> ESPCN:
    """An ESPCN from a bare state dict (``torch.save(model.state_dict())`` or safetensors).

    Args:
        state: the weights (:func:`~sr_models.state_dicts.read_state_dict`).
        where: the file, for messages.
        overrides: constructor arguments the weights cannot tell (:data:`NOT_IN_WEIGHTS`).

    Returns:
        The model, in eval mode, ``pretrained``.

    Raises:
        CheckpointError: the shapes fit no valid ESPCN, saying what they imply.
    """
    try:
        config = infer_config(state)
        model = ESPCN(**{**config, **overrides})
    except (TypeError, ValueError) as err:  # a CheckpointError of infer_config included
        raise CheckpointError(f"{where} holds ESPCN weights (by its keys), but no valid ESPCN has these shapes: "
                              f"{err}") from err
    log_assumed(logger, ESPCN, NOT_IN_WEIGHTS, overrides, "bare ESPCN")
    return load_strictly(model, state, where, config)


# --------------------------------------------------------------------------- presets

#: Named configurations: the study's default, the paper's network, and a tiny one for tests.
PRESETS: dict[str, dict] = {
    "espcn": dict(channels=[64, 64, 32], kernel_sizes=[5, 3, 3, 3], activation="relu"),
    "espcn-paper": dict(channels=[64, 32], kernel_sizes=[5, 3, 3], activation="tanh"),
    "espcn-tiny": dict(channels=[8, 8], kernel_sizes=[3, 3, 3], activation="relu"),
}

ESPCN.presets = PRESETS
