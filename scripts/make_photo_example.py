"""Make the app's real-looking low-quality example photo from a clean portrait.

The app's *real photo* choice needs an example that looks like the photos people have: a
small portrait, a little blurred and noisy, saved as JPEG. This script makes one with the
library's realistic degradation, the ``moderate`` preset that the real-photo weights are
benchmarked on, from a portrait the repository may carry (the public-domain astronaut;
never a photo of the training or held-out face sets, which stay outside the repository):

    python -m scripts.make_photo_example examples/astronaut.png examples/astronaut_photo.jpg

The portrait (512x512) is degraded x4 to 128x128; the result is saved at JPEG quality
``--quality`` (the file of a real photo is a JPEG). Its source goes in ``examples/LICENSE.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from sr_models.protocol import degrade_realistic

SCALE = 4


def make_example(face: Path, output: Path, *, seed: int, quality: int) -> Image.Image:
    with Image.open(face) as image:
        hr = image.convert("RGB")
    lr = degrade_realistic(hr, SCALE, "moderate", seed=seed, index=0)
    lr.save(output, "JPEG", quality=quality)
    return lr


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("face", type=Path, help="a clean portrait the repository may carry")
    parser.add_argument("output", type=Path, help="the example JPEG to write")
    parser.add_argument("--seed", type=int, default=0, help="the degradation's seed (default %(default)s)")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality of the file (default %(default)s)")
    args = parser.parse_args(argv)
    if not args.face.is_file():
        parser.error(f"{args.face} is not a file")
    lr = make_example(args.face, args.output, seed=args.seed, quality=args.quality)
    print(f"wrote {args.output}: {lr.width}x{lr.height}, {args.output.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
