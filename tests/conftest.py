import gzip
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def load_reference(scale: int) -> dict:
    """The official tiny HAT at ``scale``: config, weights (official keys), inputs, outputs."""
    with safe_open(DATA / f"tiny_x{scale}.safetensors", "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        config = json.loads(f.metadata()["config"])
    return {
        "config": config,
        "weights": {k[len("weights."):]: v for k, v in tensors.items() if k.startswith("weights.")},
        "inputs": [tensors["input.0"], tensors["input.1"]],
        "outputs": [tensors["output.0"], tensors["output.1"]],
    }


def official_layouts() -> dict:
    with gzip.open(DATA / "official_layouts.json.gz", "rt") as f:
        return json.load(f)
