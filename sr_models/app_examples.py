"""The app's examples: which images, and what each one teaches (its input kind and mode).

The images are public domain (examples/LICENSE.md). Each example sets the controls it needs,
so that clicking it shows what it is for:

- the astronaut's face, downscaled with the protocol: *Clean downscale*, *Upscale*;
- the same portrait degraded into a real-looking JPEG: *Real photo*, *Upscale*;
- the 512x512 original: *Benchmark* (it is the HR), clean downscale;
- its model shuttles, a 256x256 crop: *Benchmark*, where HAT leads ESPCN the most. Among the
  25 256-px crops of the original on a 64-px grid and the example images under either
  input kind, this crop gives the largest gap with the bundled weights: ESPCN 33.13 dB,
  HAT 33.69 dB (+0.56; bicubic 30.18), against +0.33 dB on the whole image (docs/app.md).
"""

from __future__ import annotations

from pathlib import Path

from .app_choices import BENCHMARK_MODE, CLEAN_DOWNSCALE, REAL_PHOTO, UPSCALE_MODE

# A wheel carries the examples inside the package; a source checkout has them at the root.
EXAMPLE_DIRS = (Path(__file__).parent / "examples", Path(__file__).resolve().parent.parent / "examples")
#: file name -> (input kind, mode), in the order the page lists them.
EXAMPLES = {
    "astronaut_face_lr.png": (CLEAN_DOWNSCALE, UPSCALE_MODE),
    "astronaut_photo.jpg": (REAL_PHOTO, UPSCALE_MODE),
    "astronaut.png": (CLEAN_DOWNSCALE, BENCHMARK_MODE),
    "astronaut_shuttles.png": (CLEAN_DOWNSCALE, BENCHMARK_MODE),
}
#: The real photo that bf16 is checked against float32 on (sr_models.app_precision).
CHECK_PHOTO = "astronaut_photo.jpg"


def example_images(dirs=EXAMPLE_DIRS) -> list[str]:
    """The example images (PNG, JPEG) of the first of ``dirs`` that has any (package, then checkout)."""
    for folder in dirs:
        examples = sorted(str(p) for p in Path(folder).glob("*") if p.suffix in (".png", ".jpg"))
        if examples:
            return examples
    return []


def example_rows(examples: list[str]) -> list[list[str]]:
    """[image, input kind, mode] per example, in the order of EXAMPLES (images it does not
    know come last, as clean downscales to upscale)."""
    rank = {name: position for position, name in enumerate(EXAMPLES)}
    ordered = sorted(examples, key=lambda path: rank.get(Path(path).name, len(rank)))
    return [[path, *EXAMPLES.get(Path(path).name, (CLEAN_DOWNSCALE, UPSCALE_MODE))] for path in ordered]


def check_photo() -> Path | None:
    """The real photo of the examples, if they are installed."""
    return next((Path(path) for path in example_images() if Path(path).name == CHECK_PHOTO), None)
