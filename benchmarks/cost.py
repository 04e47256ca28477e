"""What each model of the study costs: parameters, FLOPs, CPU latency, peak memory, and
(ours only) the training cost summed over its stages."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.memory import measure_in_child
from benchmarks.peers import PeerModel
from benchmarks.stages import read_stages, total
from sr_models import upscale_tensor
from sr_models.loading import BUNDLED, bundled_folder


def flops_per_lr_megapixel(model, size: int = 64) -> float:
    """Forward FLOPs (multiply-adds count 2) per million LR pixels, counted on size x size."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        upscale_tensor(model, torch.rand(1, 3, size, size))
    return counter.get_total_flops() / (size * size) * 1e6


def latency_seconds(model, size: int, repeats: int) -> float:
    """Median wall time of upscale_tensor on a size x size LR input (after one warm-up)."""
    x = torch.rand(1, 3, size, size)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            start = time.perf_counter()
            upscale_tensor(model, x)
            if i:  # the first run warms caches and allocators
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory_mb(name: str, size: int) -> float:
    """Peak RSS of a fresh process that loads the model and upscales one size² LR image,
    untiled (benchmarks/memory.py measures it; benchmarks/peak_rss.py says how)."""
    row = measure_in_child(name, size, tile=None)
    if "error" in row:
        raise SystemExit(f"compare: measuring the peak memory of {name} failed: {row['error']}")
    return row["peak_rss_mb"]


def costs(models: dict, sizes: list[int], repeats: int) -> dict:
    """Cost table; latencies of every model interleaved size by size so that they share the
    machine's state, and ratios taken to the first model of the same run. A peer runs
    outside torch: its FLOPs are not counted and its memory not measured (None)."""
    result = {name: {"parameters": m.num_parameters,
                     "flops_per_lr_mp": None if isinstance(m, PeerModel) else flops_per_lr_megapixel(m),
                     "latency_s": {}, "latency_ratio": {}} for name, m in models.items()}
    first = next(iter(models))
    for size in sizes:
        for name, model in models.items():
            result[name]["latency_s"][size] = latency_seconds(model, size, repeats)
        for name in models:
            result[name]["latency_ratio"][size] = result[name]["latency_s"][size] / result[first]["latency_s"][size]
    for name, model in models.items():
        result[name]["peak_rss_mb"] = None if isinstance(model, PeerModel) else peak_memory_mb(name, max(sizes))
    return result


def weights_folder(name: str) -> Path | None:
    """The local folder of a model given by bundled name or path (None for a Hub id)."""
    if name in BUNDLED:
        return bundled_folder(name)
    return Path(name) if Path(name).is_dir() else None


def training_cost(name: str, model) -> dict:
    """Steps, images seen and wall time summed over the weights' stages (the folder's
    training_facts.json), else this run's from the card; hardware and precision from the card."""
    card = (model.card_info.training if model.card_info else {}) or {}
    stages = read_stages(weights_folder(name)) or [card]
    return {**total(stages), "hardware": card.get("hardware"), "precision": card.get("precision")}
