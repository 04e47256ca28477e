"""ESPCN and HAT super-resolution models, packaged the Hugging Face way."""

from .espcn import ESPCN
from .hat import HAT, load_official
from .hub import WeightsMismatchError
from .loading import load_model
from .metrics import psnr, ssim
from .pipeline import ImageInputError, upscale, upscale_tensor

__all__ = [
    "ESPCN", "HAT", "ImageInputError", "WeightsMismatchError", "load_model", "load_official",
    "psnr", "ssim", "upscale", "upscale_tensor",
]
__version__ = "0.1.0"
