"""ESPCN and HAT super-resolution models, packaged the Hugging Face way."""

from .espcn import ESPCN
from .hat import HAT, load_official
from .hub import WeightsMismatchError
from .loading import load_model
from .pipeline import upscale_tensor

__all__ = ["ESPCN", "HAT", "WeightsMismatchError", "load_model", "load_official", "upscale_tensor"]
__version__ = "0.1.0"
