"""Names said once for the whole library: Hub metadata, file names, the evaluation protocol.

A leaf module (imports nothing of the package), so that the model base class, the card
renderer, the evaluation code and the scripts can all read the same values.
"""

#: Library name on the Hub (model cards' ``library_name``) and the project's home.
LIBRARY_NAME = "sr-models"
PROJECT_URL = "https://github.com/sr-models/sr-models"
#: Hub organisation the bundled weights are published under.
HUB_ORGANISATION = "sr-models"
#: Tags every model card carries; each architecture adds its own.
BASE_TAGS = ["super-resolution", "image-to-image", "sr-models"]
#: The Hub task of every model here.
PIPELINE_TAG = "image-to-image"

#: Key added to config.json so that a folder or repo says which class it holds.
ARCHITECTURE_KEY = "architecture"
#: Files of a ``save_pretrained`` folder (the names huggingface_hub uses): settings,
#: weights, model card; then the card's facts and its pictures (an LR | bicubic | model | HR
#: strip; held-out PSNR against training time, beside other models).
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
CARD_INFO_FILE = "model_card.json"
COMPARISON_IMAGE_FILE = "comparison.png"
TRAINING_CURVE_FILE = "training_curve.png"

#: The evaluation protocol every score in this project follows (cards, CLI, study).
PROTOCOL = ("LR = PIL bicubic downscale of HR (cropped to a multiple of the scale); "
            "PSNR / SSIM / MS-SSIM on Y (BT.601) of uint8 images, border of `scale` pixels cropped, "
            "SSIM and MS-SSIM (5 scales) with an 11x11 Gaussian window (sigma 1.5) on the valid region; "
            "mean over images")

#: Bytes HAT-L holds once built (presets["hat-l"] at x8, its largest scale: 40.99 M float32
#: parameters and the int64 relative-position index buffers), the largest published model of
#: either architecture; tests/test_model_size.py recomputes it.
HAT_L_BYTES = 165_681_096
#: How much larger than HAT-L a model may be. 16x (2.7 GB) admits research variants far
#: beyond any published one (twice HAT-L's width and four times its depth) and still fits
#: the memory of any machine that runs HAT, while a config.json or checkpoint whose fields
#: are each in range but together describe tens or hundreds of GB is refused at once.
MODEL_SIZE_MARGIN = 16
#: The largest model a configuration may describe (parameters and buffers, checked before
#: anything is allocated).
MAX_MODEL_BYTES = MODEL_SIZE_MARGIN * HAT_L_BYTES
#: The largest config.json read: real ones are under 2 KB (a size guard, like the image
#: pixel limit, so that a huge file is refused before it is parsed).
MAX_CONFIG_BYTES = 1_000_000
