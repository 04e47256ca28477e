"""Denoise strength: a model between the clean weights and the real-photo weights.

The bundled real-photo weights (``espcn-real``, ``hat-real``) were fine-tuned from the
clean ones (``espcn-faces``, ``hat-faces``), so the two sit in one basin of the loss and
every weight in between is a working model: deep network interpolation (Wang et al.,
"Deep Network Interpolation for Continuous Imagery Effect Transition", CVPR 2019; Real-ESRGAN's
``--denoise_strength``). With strength ``s`` each floating tensor is
``(1 - s) * clean + s * real``:

- ``s = 1``: the real-photo model as shipped (removes blur, noise and JPEG artefacts, and
  some fine texture with them);
- ``s = 0``: the clean model (keeps every detail, and every artefact, of its input).
"""

from __future__ import annotations

import copy

import torch

from .bundled import BUNDLED, denoisable_names
from .hub import SRModelMixin
from .validation import check_fields, number_in

#: What a strength may be: the two ends and everything between.
STRENGTH_RULE = number_in(0.0, 1.0)


def clean_partner(name: str) -> str:
    """The clean bundled weights that the real-photo bundled weights ``name`` were fine-tuned from.

    Args:
        name: a real-photo bundled name, e.g. ``"hat-real"``.

    Returns:
        The clean bundled name, e.g. ``"hat-faces"``.

    Raises:
        ValueError: when ``name`` is not bundled weights with a clean partner, listing those that are.
    """
    entry = BUNDLED.get(name)
    if entry is None or entry.clean_partner is None:
        raise ValueError(f"{name!r} has no clean partner to blend with: a denoise strength needs bundled "
                         f"real-photo weights, one of {', '.join(denoisable_names())}")
    return entry.clean_partner


def blend(clean: SRModelMixin, real: SRModelMixin, strength: float) -> SRModelMixin:
    """A new model whose floating weights are ``(1 - strength) * clean + strength * real``.

    Both models are left untouched; the new one is a copy of ``real`` (its device, dtype
    and train / eval mode) with the blended weights, and without the card facts of either
    (their scores do not describe the blend). Tensors that are not floats (HAT's
    relative-position index tables) are the same in both and taken from ``real``.

    Args:
        clean: the clean model, e.g. ``load_model("hat-faces")``.
        real: the real-photo model fine-tuned from it, e.g. ``load_model("hat-real")``.
        strength: in [0, 1]; 0 gives ``clean``'s outputs exactly, 1 ``real``'s.

    Returns:
        The blended model.

    Raises:
        ValueError: when the strength is not a finite number in [0, 1], or the models are of
            different classes or configurations (naming both and the first differing field).
    """
    check_fields("denoise", {"strength": STRENGTH_RULE}, {"strength": strength})
    clean_state, real_state = clean.state_dict(), real.state_dict()
    _check_compatible(clean, real, clean_state.keys() == real_state.keys())
    blended = {}
    for key, theirs in real_state.items():
        ours = clean_state[key]
        if theirs.is_floating_point():
            # lerp is exact at both ends: a + 0 * (b - a) for weight < 0.5, b - (b - a) * 0 from 0.5 on
            blended[key] = torch.lerp(ours.to(theirs), theirs, float(strength))
        elif torch.equal(ours.cpu(), theirs.cpu()):
            blended[key] = theirs
        else:
            raise ValueError(f"{_describe(clean)} and {_describe(real)} differ in {key!r}, a tensor that is not "
                             "learned (not floating point): they cannot be blended")
    model = copy.deepcopy(real)
    model.load_state_dict(blended, strict=True)
    model.train(real.training)  # clears HAT's cached attention bias, which the copy carried over
    model.card_info, model.comparison_image = None, None
    model.name_or_path = f"{_source(clean)} + {_source(real)} at denoise {float(strength):g}"
    return model


def _check_compatible(clean: SRModelMixin, real: SRModelMixin, same_weight_names: bool) -> None:
    """The same class, configuration and weight names, so that every weight has its counterpart."""
    if type(clean) is not type(real):
        raise ValueError(f"cannot blend {_describe(clean)} with {_describe(real)}: different architectures")
    clean_config, real_config = clean.config, real.config
    for key in sorted(clean_config.keys() | real_config.keys()):
        if clean_config.get(key) != real_config.get(key):
            raise ValueError(f"cannot blend {_describe(clean)} with {_describe(real)}: their config differs in "
                             f"{key!r} ({clean_config.get(key)!r} vs {real_config.get(key)!r})")
    if not same_weight_names:
        raise ValueError(f"cannot blend {_describe(clean)} with {_describe(real)}: their weights have different names")


def _source(model: SRModelMixin) -> str:
    return model.name_or_path or "unsaved weights"


def _describe(model: SRModelMixin) -> str:
    """``HAT (weights/hat-small-faces-x4)``."""
    return f"{type(model).__name__} ({_source(model)})"


def load_denoised(name: str, strength: float) -> SRModelMixin:
    """Bundled real-photo weights blended with their clean partner at a denoise strength.

    Both are loaded by :func:`sr_models.loading.load_bundled`, so the environment
    variables that replace bundled weights (``SR_HAT_REAL_MODEL``, ``SR_HAT_MODEL``, ...)
    apply to each end.

    Args:
        name: real-photo bundled weights, e.g. ``"hat-real"`` (:func:`denoisable_names`).
        strength: 1 = the real-photo model as shipped, 0 = the clean model it was
            fine-tuned from; in between, less denoising and more of the input's detail.

    Returns:
        The blended model, in eval mode.

    Raises:
        ValueError: for a name without a clean partner or a strength outside [0, 1].
    """
    # Imported here: sr_models.loading imports this module for load_model(denoise=...).
    from .loading import load_bundled

    check_fields("denoise", {"strength": STRENGTH_RULE}, {"strength": strength})  # before loading anything
    clean = load_bundled(clean_partner(name))[0]
    return blend(clean, load_bundled(name)[0], strength)
