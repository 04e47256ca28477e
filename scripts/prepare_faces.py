"""Prepare the faces the bundled weights are trained and evaluated on.

Reads the CelebA-HQ photographs (1024x1024) from a folder, resizes each to the protocol's
256x256 HR with PIL bicubic (antialiased), and splits them: every fifth face (sorted by
file name, indices 4, 9, 14, ...) is held out for validation (``val/``), the rest are for
training (``train/``). ``train_multiscale/`` holds the training faces again at 256, 320
and 384 pixels: scale augmentation (as in the multi-scale DF2K sets of Real-ESRGAN), used
by the second stage of the bundled HAT's training; the held-out faces are never in it.

    python -m scripts.prepare_faces FACES_DIR data/faces256

``FACES_DIR``: a folder of face photographs (the bundled weights used 46 CelebA-HQ faces,
1024x1024; any face photographs work: each is centre-cropped to a square).
"""

import argparse
from pathlib import Path

from sr_models.evaluation import find_images, prepare_hr
from sr_models.pipeline import load_image

HR_SIZE = 256
HOLD_OUT_EVERY = 5
MULTISCALE_SIZES = (256, 320, 384)


def main(source: str, target: str) -> None:
    faces = find_images(source)
    if not faces:
        raise SystemExit(f"prepare_faces: no images in {source}")
    out = Path(target)
    for split in ("train", "val", "train_multiscale"):
        (out / split).mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(faces):
        image = load_image(path)
        hr = prepare_hr(image, scale=4, hr_size=HR_SIZE)
        if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1:
            hr.save(out / "val" / f"{path.stem}.png")
            continue
        hr.save(out / "train" / f"{path.stem}.png")
        for size in MULTISCALE_SIZES:
            scaled = hr if size == HR_SIZE else prepare_hr(image, scale=4, hr_size=size)
            scaled.save(out / "train_multiscale" / f"{path.stem}_{size}.png")
    for split in ("train", "val", "train_multiscale"):
        names = sorted(p.stem for p in (out / split).glob("*.png"))
        print(f"{split}: {len(names)} images" + (f": {', '.join(names)}" if split == "val" else ""))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="folder of the 1024x1024 face photographs")
    parser.add_argument("target", help="output folder (train/, val/, train_multiscale/ are created)")
    args = parser.parse_args()
    main(args.source, args.target)
