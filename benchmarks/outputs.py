"""Where the benchmarks write: a fresh, git-ignored ``runs/<name>-<time>/`` per run, so a
rerun never overwrites the shipped results in ``benchmarks/results/`` (only an explicit
flag of each script writes those)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.child import PROJECT_ROOT

SHIPPED_RESULTS = PROJECT_ROOT / "benchmarks" / "results"
RUNS = PROJECT_ROOT / "runs"


def fresh_output_dir(name: str, now: float | None = None) -> Path:
    """A folder for one run that does not exist yet.

    Args:
        name: what ran, e.g. ``"compare"``.
        now: the time to name it by (seconds since the epoch); default now.

    Returns:
        ``runs/<name>-<local time>``, with a counter when that folder exists already.
    """
    base = RUNS / time.strftime(f"{name}-%Y%m%d-%H%M%S", time.localtime(now))
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


@contextlib.contextmanager
def scratch_folder(prefix: str, keep: bool) -> Iterator[Path]:
    """A temporary folder for a benchmark's servers and files, removed afterwards.

    Args:
        prefix: the start of its name, e.g. ``"app-memory-"``.
        keep: leave it (and say where) instead, to look inside.

    Yields:
        The folder.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        if keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
