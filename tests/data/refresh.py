"""Refresh the committed reference data from the shared reference folder.

Run from the project root with the shared folder beside it: ``python tests/data/refresh.py``.
The vectors themselves come from running the official HAT code; see that folder's README.
"""

import gzip
import json
import shutil
from pathlib import Path

HERE = Path(__file__).parent
SHARED = HERE.parents[1].parent / "shared" / "reference" / "hat"

for scale in (2, 3, 4):
    shutil.copyfile(SHARED / f"tiny_x{scale}.safetensors", HERE / f"tiny_x{scale}.safetensors")
with gzip.open(HERE / "official_layouts.json.gz", "wt") as f:
    json.dump(json.loads((SHARED / "official_layouts.json").read_text()), f)
