"""Snapshot test: the bundled weights give the outputs stored in tests/data/.

A refactor must not change what the shipped models produce. The stored input (seeded,
1x3x12x20, so HAT's padding path runs) goes through each bundled model; the output must
match the stored float32 output (written by ``scripts/snapshot_bundled.py``).

Tolerance: max |difference| < 1e-4 on outputs in [0, 1]. Another CPU (other SIMD kernels,
another summation order, another thread count) changes float32 results by rounding noise
only; the snapshot script measures that noise as the distance between the float32 and the
float64 forward pass: 4.2e-7 (ESPCN) and 3.5e-7 (HAT) when the snapshot was made, so the
bound is over 200 times the noise. It is also 1/39 of one 8-bit level (1/255), so any real
change (other weights, padding, a changed block) fails it.
"""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sr_models import load_model
from sr_models.loading import BUNDLED
from sr_models.pipeline import upscale_tensor

SNAPSHOTS = Path(__file__).parent / "data" / "bundled_snapshots.safetensors"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def snapshots() -> dict[str, torch.Tensor]:
    return load_file(SNAPSHOTS)


def test_every_bundled_model_has_a_snapshot(snapshots):
    assert set(snapshots) - {"input"} == set(BUNDLED)


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_model_reproduces_its_stored_output(snapshots, name, monkeypatch):
    for entry in BUNDLED.values():  # the bundled files, not an override
        monkeypatch.delenv(entry.env_var, raising=False)
    model = load_model(name)
    with torch.no_grad():
        out = upscale_tensor(model, snapshots["input"])
    expected = snapshots[name]
    assert out.shape == expected.shape
    assert (out - expected).abs().max().item() < TOLERANCE
