"""Regenerate the stored outputs of the bundled weights (tests/data/bundled_snapshots.safetensors).

``tests/test_bundled.py`` runs the stored input through each bundled model
(``load_model(name)`` for every name of ``sr_models.loading.BUNDLED``: the study's
``espcn-faces`` and ``hat-faces``, the real-photo ``espcn-real`` and ``hat-real``) and compares the result with the
output stored here, so that a change of code that alters what the shipped weights produce
is noticed. Rerun this script only when such a change is intended (new weights, a deliberate
change of the forward pass), and say why in the commit:

    python scripts/snapshot_bundled.py

The input is a seeded 1x3x12x20 tensor in [0, 1]: non-square (catches transposed axes) and
not a multiple of HAT's window (8), so the padding path runs too. Outputs are stored in
float32 (about 46 KB per model; float16 would round by up to 5e-4, more than the test's
tolerance). The script also prints, per model, the largest difference between the float32
output and the same forward pass in float64: the rounding noise of float32 that a
different CPU (other kernels, other summation order) may show, which the tolerance of the
test must exceed by a wide margin.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file

from sr_models.loading import BUNDLED, load_model
from sr_models.pipeline import upscale_tensor

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "bundled_snapshots.safetensors"
INPUT_SHAPE = (1, 3, 12, 20)
SEED = 0


def snapshot_input() -> torch.Tensor:
    generator = torch.Generator().manual_seed(SEED)
    return torch.rand(INPUT_SHAPE, generator=generator)


def run(name: str, lr: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The float32 output of bundled model ``name`` and its largest distance to float64."""
    model = load_model(name)
    with torch.no_grad():
        out = upscale_tensor(model, lr)
        exact = upscale_tensor(model.double(), lr.double())
    return out.contiguous(), (out.double() - exact).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="default: %(default)s")
    args = parser.parse_args()
    lr = snapshot_input()
    tensors = {"input": lr}
    for name in BUNDLED:
        tensors[name], noise = run(name, lr)
        print(f"{name}: output {tuple(tensors[name].shape)}, max |float32 - float64| = {noise:.2e}")
    save_file(tensors, args.output, metadata={"torch": torch.__version__, "seed": str(SEED)})
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
