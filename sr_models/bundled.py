"""The bundled weights by name: their folders, override variables, and the default lists.

Names only (standard library): the command line's help texts list them without importing
torch. Loading them is :func:`sr_models.loading.load_bundled`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .constants import CONFIG_FILE


@dataclass(frozen=True)
class BundledWeights:
    """Weights shipped with the project (trained here on faces, x4)."""

    folder: str  #: folder under weights/
    env_var: str  #: environment variable whose repo id or folder replaces them
    architecture: str  #: the class they hold; an override must hold the same
    #: the LR they were trained for: None, the protocol's bicubic downscale ("clean
    #: downscale"); else the realistic degradation preset (sr_models.degradations) that
    #: their benchmark uses ("real photo")
    degradation: str | None = None
    #: for real-photo weights, the bundled name of the clean weights they were fine-tuned
    #: from (their training facts' ``pretrained_from``): the other end of the denoise
    #: strength (sr_models.denoise); None for the clean weights themselves
    clean_partner: str | None = None


BUNDLED: dict[str, BundledWeights] = {
    "espcn-faces": BundledWeights("espcn-faces-x4", "SR_ESPCN_MODEL", "ESPCN"),
    "hat-faces": BundledWeights("hat-small-faces-x4", "SR_HAT_MODEL", "HAT"),
    "espcn-real": BundledWeights("espcn-real-x4", "SR_ESPCN_REAL_MODEL", "ESPCN", "moderate", "espcn-faces"),
    "hat-real": BundledWeights("hat-small-real-x4", "SR_HAT_REAL_MODEL", "HAT", "moderate", "hat-faces"),
}
#: The models every default list compares (CLI evaluate, the app, benchmarks), in order:
#: the study's, trained on the protocol's bicubic LR.
DEFAULT_MODELS = ["espcn-faces", "hat-faces"]
#: The same architectures trained on realistic degradations, for real photos (the app's
#: "real photo" choice; docs/degradations.md).
REAL_PHOTO_MODELS = ["espcn-real", "hat-real"]


def denoisable_names() -> list[str]:
    """The bundled names a denoise strength applies to (real-photo weights with a clean
    partner, :mod:`sr_models.denoise`), in the order of :data:`BUNDLED`."""
    return [name for name, entry in BUNDLED.items() if entry.clean_partner is not None]


# A wheel carries weights/ inside the package; a source checkout has it at the root.
_WEIGHTS_DIRS = [Path(__file__).parent / "weights", Path(__file__).resolve().parent.parent / "weights"]


def bundled_folder(name: str) -> Path:
    """The folder of bundled weights ``name`` (a key of :data:`BUNDLED`).

    Args:
        name: the bundled name, e.g. ``"hat-faces"``.

    Returns:
        The save_pretrained folder, from the wheel or the checkout.

    Raises:
        FileNotFoundError: when neither holds it.
    """
    folder_name = BUNDLED[name].folder
    for root in _WEIGHTS_DIRS:
        if (root / folder_name / CONFIG_FILE).is_file():
            return root / folder_name
    raise FileNotFoundError(f"bundled weights {name!r} ({folder_name}) are missing from {[str(d) for d in _WEIGHTS_DIRS]}")
