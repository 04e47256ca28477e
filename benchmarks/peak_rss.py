"""The process's resident-set figures, read from /proc/self/status (Linux).

The benchmarks measure each setting in a fresh child process and read VmHWM, the peak RSS of
the child's own address space. ``resource.getrusage(...).ru_maxrss`` is not used: on exec
Linux folds the forked copy's high-water mark into it, so every child would inherit its
parent's peak (the parent here holds torch, and in compare.py the models too).
"""

from __future__ import annotations

import re


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.MULTILINE).group(1))


def rss_mib() -> float:
    """Resident set size now."""
    return _status_kib("VmRSS") / 1024


def peak_rss_mib() -> float:
    """Peak resident set size since the process started or since :func:`reset_peak`."""
    return _status_kib("VmHWM") / 1024


def reset_peak() -> None:
    """Reset the peak mark to the current RSS, so the next :func:`peak_rss_mib` covers what follows."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
