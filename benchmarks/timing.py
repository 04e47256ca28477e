"""Timing variants side by side: interleaved rounds, medians and per-round ratios.

Every round runs each variant once, in turn, so that a busy shared CPU slows them alike;
the ratio of two variants is the median of their per-round ratios, not a ratio of medians.
The callers run each variant once before (the warm-up, whose result they usually keep).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """{name: seconds of each of ``repeats`` calls}, the calls interleaved round by round."""
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, call in variants.items():
            start = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def median_ratio(base: list[float], other: list[float]) -> float:
    """How many times faster ``other`` ran than ``base``: the median of the per-round ratios."""
    return statistics.median(a / b for a, b in zip(base, other))
