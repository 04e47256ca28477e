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

import torch
from torch import nn

from .hub import SRModelMixin

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
        channels, kernel_sizes = list(channels), list(kernel_sizes)
        _validate(upscale, in_chans, channels, kernel_sizes, activation)
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
        self.global_residual = bool(global_residual)
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


def _validate(upscale, in_chans, channels, kernel_sizes, activation) -> None:
    def positive_ints(values):
        return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)

    if upscale not in (2, 3, 4, 8):
        raise ValueError(f"ESPCN: upscale={upscale!r} is invalid: expected 2, 3, 4 or 8")
    if not positive_ints([in_chans]):
        raise ValueError(f"ESPCN: in_chans={in_chans!r} is invalid: expected a positive integer")
    if not channels or not positive_ints(channels):
        raise ValueError(f"ESPCN: channels={channels!r} is invalid: expected positive integers")
    if len(kernel_sizes) != len(channels) + 1 or not positive_ints(kernel_sizes) or any(k % 2 == 0 for k in kernel_sizes):
        raise ValueError(
            f"ESPCN: kernel_sizes={kernel_sizes!r} is invalid: expected {len(channels) + 1} odd sizes "
            "(one per conv layer, the last one included)"
        )
    if activation not in ACTIVATIONS:
        raise ValueError(f"ESPCN: activation={activation!r} is invalid: expected one of {sorted(ACTIVATIONS)}")


#: Named configurations: the study's default, the paper's network, and a tiny one for tests.
PRESETS: dict[str, dict] = {
    "espcn": dict(channels=[64, 64, 32], kernel_sizes=[5, 3, 3, 3], activation="relu"),
    "espcn-paper": dict(channels=[64, 32], kernel_sizes=[5, 3, 3], activation="tanh"),
    "espcn-tiny": dict(channels=[8, 8], kernel_sizes=[3, 3, 3], activation="relu"),
}

ESPCN.presets = PRESETS
