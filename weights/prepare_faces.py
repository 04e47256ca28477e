"""Prepare the faces the bundled weights are trained and evaluated on.

Reads the CelebA-HQ photographs (1024x1024) from a folder, resizes each to the protocol's
256x256 HR with PIL bicubic (antialiased), and splits them: every fifth face (sorted by
file name, indices 4, 9, 14, ...) is held out for validation, the rest are for training.

    python weights/prepare_faces.py ../shared/data/faces data/faces256
"""

import sys
from pathlib import Path

from sr_models.evaluation import find_images, prepare_hr
from sr_models.pipeline import load_image

HR_SIZE = 256
HOLD_OUT_EVERY = 5


def main(source: str, target: str) -> None:
    faces = find_images(source)
    if not faces:
        raise SystemExit(f"no images in {source}")
    for split in ("train", "val"):
        (Path(target) / split).mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(faces):
        split = "val" if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1 else "train"
        hr = prepare_hr(load_image(path), scale=4, hr_size=HR_SIZE)
        hr.save(Path(target) / split / f"{path.stem}.png")
    for split in ("train", "val"):
        names = sorted(p.stem for p in (Path(target) / split).glob("*.png"))
        print(f"{split}: {len(names)} faces" + (f": {', '.join(names)}" if split == "val" else ""))


if __name__ == "__main__":
    main(*sys.argv[1:3])
