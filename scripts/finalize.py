"""Turn a finished training run into a bundled weights folder with its full model card.

The training scripts already write the card (validation metrics on the held-out faces,
training facts, comparison strip). This adds what only the bundled weights know: the
data's licence (CelebA-HQ: non-commercial research) and the names of the held-out faces.

    python -m scripts.finalize runs/espcn-faces-x4 weights/espcn-faces-x4 data/faces256/val
    python -m scripts.finalize runs/hat-small-faces-x4 weights/hat-small-faces-x4 data/faces256/val
"""

import argparse
import shutil
from pathlib import Path

from scripts.prepare_faces import MULTISCALE_SIZES
from sr_models import load_model
from sr_models.constants import HUB_ORGANISATION

LICENCE_NOTE = (
    "**These weights were trained on CelebA-HQ photographs, which are released for "
    "non-commercial research use only; the weights inherit that restriction.** "
    "Held-out validation faces (not used for training): {held_out}."
)
LICENSE_NAME = "celeba-hq-non-commercial-research"
LICENSE_LINK = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
#: The slug the model cards give the held-out set (it is not a Hub dataset).
HELD_OUT_ID = "celeba-hq-faces-heldout"


def main(run_dir: str, target: str, val_dir: str) -> None:
    model = load_model(run_dir)
    if model.card_info is None:
        raise SystemExit(f"{run_dir} has no model_card.json: was it written by train/espcn.py or train/hat.py?")
    held_out = sorted(p.stem for p in Path(val_dir).glob("*.png"))
    info = model.card_info
    info.license, info.license_name, info.license_link = "other", LICENSE_NAME, LICENSE_LINK
    info.licence_note = LICENCE_NOTE.format(held_out=", ".join(held_out))
    info.faces = True
    info.repo_id = f"{HUB_ORGANISATION}/{Path(target).name}"
    sizes = "/".join(map(str, MULTISCALE_SIZES))
    info.training["dataset"] = (f"CelebA-HQ, {info.training.get('train_images', '?')} faces: at 256x256, then the same "
                                f"faces at {sizes} px (scale augmentation, scripts/prepare_faces.py)")
    for evaluation in info.evaluations:
        evaluation["dataset"] = f"CelebA-HQ held-out faces ({len(held_out)}, 256x256)"
        evaluation["dataset_id"] = HELD_OUT_ID
    out = Path(target)
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out, card_info=info)
    for extra in ("metrics.json", "training_facts.json"):
        if (Path(run_dir) / extra).is_file():
            shutil.copy2(Path(run_dir) / extra, out / extra)
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    print(f"{out}: {size:.1f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="the training run's output folder (--output_dir)")
    parser.add_argument("target", help="the bundled folder to write (replaced if it exists)")
    parser.add_argument("val_dir", help="the held-out faces (data/faces256/val)")
    args = parser.parse_args()
    main(args.run_dir, args.target, args.val_dir)
