"""One measurement per fresh Python process, so that peaks, caches and allocator state of
one setting never leak into the next.

Every benchmark that measures in children has a hidden ``--child`` flag: with it, the
script measures one setting and prints the result as one JSON object on its last line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

#: The folder that holds the ``benchmarks`` package: children run there, so that
#: ``python -m benchmarks.X`` resolves whatever the caller's working directory is.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run_child(module: str, argv: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``python -m <module> --child <argv>`` and return the JSON object it printed last.

    ``env`` adds to (or overrides) this process's environment. A child that fails gives
    ``{"error": <its last line of stderr>}`` instead, so one failing setting does not
    end the whole benchmark.
    """
    proc = subprocess.run([sys.executable, "-m", module, "--child", *argv], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
        return {"error": lines[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])
