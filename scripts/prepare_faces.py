"""Prepare the faces the bundled weights are trained and evaluated on.

Every photo is centre-cropped to a square and resized to the protocol's 256x256 HR with
PIL bicubic (antialiased). Sources:

- ``--split-folder DIR`` (the 46 CelebA-HQ faces, 1024x1024): every fifth face, sorted by
  file name (indices 4, 9, 14, ...), is held out (``val/``, the main benchmark); the rest
  are for training;
- ``--train-folder DIR`` (repeatable; e.g. the 369 portraits of faces-more/train): all
  for training;
- ``--held-out NAME=DIR`` (repeatable; e.g. ``studio=.../faces-more/val_studio``): a whole
  folder held out as ``val_NAME/``.

``train/`` holds every training face at 256; ``train_multiscale/`` holds them again at 256,
320 and 384 px (scale augmentation, as in the multi-scale DF2K sets of Real-ESRGAN; a size
above the photo's own is skipped rather than upsampled). Held-out faces are never in either.

    python -m scripts.prepare_faces data/faces256 --split-folder FACES_DIR \\
        --train-folder FACES_MORE_DIR/train --held-out studio=FACES_MORE_DIR/val_studio

(the bundled weights v1 used only ``--split-folder`` with 46 CelebA-HQ faces; v2 adds the
369 + 64 portraits of faces-more: see docs/bundled-weights.md).
"""

import argparse
from pathlib import Path

from sr_models.evaluation import find_images
from sr_models.protocol import prepare_hr
from sr_models.pipeline import load_image

HR_SIZE = 256
HOLD_OUT_EVERY = 5
MULTISCALE_SIZES = (256, 320, 384)


def split_faces(folder: str) -> tuple[list[Path], list[Path]]:
    """(training, held-out) faces of a folder split every fifth face."""
    faces = _images(folder)
    held = [p for i, p in enumerate(faces) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1]
    return [p for p in faces if p not in held], held


def write_training(faces: list[Path], out: Path) -> None:
    for path in faces:
        image = load_image(path)
        _save(prepare_hr(image, scale=4, hr_size=HR_SIZE), out / "train" / f"{path.stem}.png")
        for size in MULTISCALE_SIZES:
            if size <= min(image.size):
                _save(prepare_hr(image, scale=4, hr_size=size), out / "train_multiscale" / f"{path.stem}_{size}.png")


def write_held_out(faces: list[Path], folder: Path) -> None:
    for path in faces:
        _save(prepare_hr(load_image(path), scale=4, hr_size=HR_SIZE), folder / f"{path.stem}.png")


def main(args: argparse.Namespace) -> None:
    out = Path(args.target)
    train: list[Path] = []
    held_out: dict[str, list[Path]] = {}
    if args.split_folder:
        train, held_out["val"] = split_faces(args.split_folder)
    for folder in args.train_folder:
        train += _images(folder)
    for name, folder in args.held_out:
        held_out[f"val_{name}"] = _images(folder)
    _check_unique_names([*train, *(p for faces in held_out.values() for p in faces)])
    write_training(train, out)
    for split, faces in held_out.items():
        write_held_out(faces, out / split)
    for split in ["train", "train_multiscale", *held_out]:
        print(f"{split}: {len(list((out / split).glob('*.png')))} images")


def _images(folder: str) -> list[Path]:
    faces = find_images(folder)
    if not faces:
        raise SystemExit(f"prepare_faces: no images in {folder}")
    return faces


def _check_unique_names(paths: list[Path]) -> None:
    # Outputs are named by file stem: two sources with one stem would overwrite each other.
    seen: dict[str, Path] = {}
    for path in paths:
        if path.stem in seen:
            raise SystemExit(f"prepare_faces: {path} and {seen[path.stem]} have the same name")
        seen[path.stem] = path


def _save(image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _held_out(value: str) -> tuple[str, str]:
    name, sep, folder = value.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=FOLDER (NAME a word), got {value!r}")
    return name, folder


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="output folder (train/, train_multiscale/, val*/ are created)")
    parser.add_argument("--split-folder", help="faces of which every fifth is held out as val/")
    parser.add_argument("--train-folder", action="append", default=[], help="faces all used for training")
    parser.add_argument("--held-out", action="append", default=[], type=_held_out, metavar="NAME=DIR",
                        help="a folder held out whole as val_NAME/")
    args = parser.parse_args(argv)
    if not (args.split_folder or args.train_folder):
        parser.error("give --split-folder and/or --train-folder")
    return args


if __name__ == "__main__":
    main(parse_args())
