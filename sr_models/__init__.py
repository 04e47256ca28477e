"""ESPCN and HAT super-resolution models, packaged the Hugging Face way.

The public names are imported on first use, so that ``import sr_models.espcn`` loads the
model and its Hub base only (no card templates, image pipeline or evaluation code).
"""

import importlib

__version__ = "0.1.0"

#: public name -> submodule that defines it
_EXPORTS = {
    "ESPCN": "espcn",
    "HAT": "hat",
    "CheckpointError": "state_dicts",
    "OfficialCheckpointError": "convert_hat",
    "load_official": "convert_hat",
    "WeightsMismatchError": "hub",
    "load_model": "loading",
    "psnr": "metrics",
    "ssim": "metrics",
    "ImageInputError": "pipeline",
    "upscale": "pipeline",
    "upscale_tensor": "pipeline",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sr_models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
