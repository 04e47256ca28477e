"""Which precision HAT runs in, on this machine: bf16 autocast only where it is fast and accurate.

bf16 autocast makes HAT 3-4x faster on a CPU that has bf16 dot products (``avx512_bf16``
or AMX: oneDNN's native bf16), and about 10x *slower* on one that has not (AVX2 only, as
the Zen 2 CPUs this project trains on: oneDNN falls back to reference kernels;
docs/performance.md, sections 2 and 7). So the app asks the CPU, and where bf16 is native
it also checks HAT's bf16 output against float32 on a real photo (the real-photo example)
before using it: at least ``MIN_BF16_PSNR`` dB, else float32. ESPCN stays in float32: it
takes a small part of a request's time (it is ready in about a second where HAT takes
tens).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from .metrics import psnr
from .pipeline import resolve_device, upscale

logger = logging.getLogger("sr_models.app")

#: Architectures that run in bf16 where the CPU has it natively.
BF16_ARCHITECTURES = {"HAT"}
#: The least PSNR (dB, Y, 8-bit) of a bf16 output against float32 on the check photo:
#: the project's bar for a reduced precision (docs/performance.md; the bundled HAT reaches 71 dB).
MIN_BF16_PSNR = 45.0
#: CPU flags (Linux /proc/cpuinfo) of native bf16 dot products.
BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}


class Precision(NamedTuple):
    """How one model runs: ``dtype`` for :func:`sr_models.upscale` (None: float32) and why."""

    dtype: str | None
    reason: str


def native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively: oneDNN's own answer, else the CPU's flags."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private op: a torch without it
        return bool(BF16_CPU_FLAGS & _cpu_flags())


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


def choose_precision(model: nn.Module, architecture: str, photo: Path | None) -> Precision:
    """bf16 for ``model`` where its architecture may use it, the CPU has native bf16 and its
    bf16 output on ``photo`` is within MIN_BF16_PSNR of float32; else float32, with the reason."""
    if architecture not in BF16_ARCHITECTURES:
        return Precision(None, "float32")
    if resolve_device(None).type != "cpu":
        return Precision(None, "float32 on the GPU")
    if not native_bf16():
        return Precision(None, "float32: this CPU has no native bf16 (bf16 would be ~10x slower)")
    if photo is None:
        return Precision(None, "float32: no photo to check bf16 against float32 on")
    reference = upscale(model, photo)
    agreement = psnr(upscale(model, photo, dtype="bfloat16"), reference, crop_border=model.scale)
    if agreement < MIN_BF16_PSNR:
        logger.warning("bf16 is %.1f dB from float32 on %s: running in float32", agreement, photo.name)
        return Precision(None, f"float32: bf16 was only {agreement:.1f} dB from it on {photo.name}")
    return Precision("bfloat16", f"bf16 autocast (native on this CPU; {agreement:.1f} dB from float32 "
                                 f"on {photo.name})")

