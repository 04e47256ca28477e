"""ESPCN: Efficient Sub-Pixel Convolutional Neural Network.

Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network", CVPR 2016 (arXiv:1609.05158).

The default is the colour variant the study used: conv layers 64@5x5 -> 64@3x3 ->
32@3x3 -> 3·r²@3x3 with ReLU, then PixelShuffle (depth_to_space), i.e. the paper's
network with an additional conv layer, on RGB instead of Y. ``activation="tanh"`` with
``channels=[64, 32]`` and ``kernel_sizes=[5, 3, 3]`` is the paper's own network.
Input and output are RGB in [0, 1]; the output is not clamped. ``global_residual=True``
adds a bicubic upscale of the input to the output (off by default; see HAT's docstring).
"""

from __future__ import annotations

import reprlib

import torch
from torch import nn

from .hub import SRModelMixin, check_model_size

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
        super().__init__()
        _validate(upscale, in_chans, channels, kernel_sizes, activation, global_residual)
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
SCALES = (2, 3, 4, 8)  # the scales the study and the CLI offer
MAX_IN_CHANS = 16  # the study: 3 (RGB)
MAX_LAYERS = 32  # hidden conv layers, len(channels); the study: 3
MAX_CHANNELS = 1024  # width of a hidden layer; the study: 64
MAX_KERNEL_SIZE = 15  # the study: 5


def _validate(upscale, in_chans, channels, kernel_sizes, activation, global_residual) -> None:
    """Raise ValueError naming the first bad field and its rule."""
    def ints(values, hi):
        return isinstance(values, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= hi for v in values)

    def need(ok, name, value, rule):
        if not ok:
            raise ValueError(f"ESPCN: {name}={reprlib.repr(value)} is invalid: {rule}")

    need(type(upscale) is int and upscale in SCALES, "upscale", upscale, f"expected an integer, one of {SCALES}")
    need(ints([in_chans], MAX_IN_CHANS), "in_chans", in_chans, f"expected an integer in [1, {MAX_IN_CHANS}]")
    need(ints(channels, MAX_CHANNELS) and 0 < len(channels) <= MAX_LAYERS, "channels", channels,
         f"expected a list of 1 to {MAX_LAYERS} widths, each an integer in [1, {MAX_CHANNELS}]")
    layers = len(channels) + 1
    need(ints(kernel_sizes, MAX_KERNEL_SIZE) and len(kernel_sizes) == layers and all(k % 2 for k in kernel_sizes),
         "kernel_sizes", kernel_sizes,
         f"expected {layers} odd sizes in [1, {MAX_KERNEL_SIZE}] (one per conv layer, the last one included)")
    need(isinstance(activation, str) and activation in ACTIVATIONS, "activation", activation,
         f"expected one of {sorted(ACTIVATIONS)}")
    need(isinstance(global_residual, bool), "global_residual", global_residual, "expected true or false")
    check_model_size("ESPCN", model_bytes(upscale, in_chans, channels, kernel_sizes))


def model_bytes(upscale: int, in_chans: int, channels: list[int], kernel_sizes: list[int]) -> int:
    """Bytes of the float32 weights and biases of an ESPCN of this (validated) configuration."""
    widths = [in_chans, *channels, in_chans * upscale**2]
    return 4 * sum(w_in * w_out * k * k + w_out for w_in, w_out, k in zip(widths, widths[1:], kernel_sizes))


#: Named configurations: the study's default, the paper's network, and a tiny one for tests.
PRESETS: dict[str, dict] = {
    "espcn": dict(channels=[64, 64, 32], kernel_sizes=[5, 3, 3, 3], activation="relu"),
    "espcn-paper": dict(channels=[64, 32], kernel_sizes=[5, 3, 3], activation="tanh"),
    "espcn-tiny": dict(channels=[8, 8], kernel_sizes=[3, 3, 3], activation="relu"),
}

ESPCN.presets = PRESETS
