"""One line that says what a benchmark ran on, printed with every figure (timings on a shared
CPU mean little without the core count, the thread count and the load)."""

from __future__ import annotations

import os
import platform

import torch


def describe(device: torch.device = torch.device("cpu")) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")


def cpu_capability() -> str:
    """The SIMD level torch's CPU kernels use and whether oneDNN has native bf16 (avx512_bf16
    or AMX): without it bf16 convolutions fall back to slow reference kernels, so bf16
    training is only worth measuring where this says yes (docs/performance.md)."""
    from sr_models.app_precision import native_bf16

    native = native_bf16()
    return (f"CPU capability {torch.backends.cpu.get_cpu_capability()}, "
            f"native bf16 (oneDNN): {'yes' if native else 'no'}")
