"""The app's models: what each input kind runs, loaded once per process, blended for a
denoise strength, in the precision chosen for this machine.

Results are keyed by *method name*: ``sr_models.evaluation.BICUBIC`` for the baseline and
the bundled name for a model (``hat-faces``, ``hat-real``), so two models of one
architecture never share a slot. The page shows each method by a label: its architecture,
or its name where two of an input kind's models share one.

Each bundled model's environment variable (``SR_ESPCN_MODEL``, ``SR_HAT_MODEL``,
``SR_ESPCN_REAL_MODEL``, ``SR_HAT_REAL_MODEL``) may name a repo id or folder of trained
weights of the same architecture instead (:func:`sr_models.loading.load_bundled`).
"""

from __future__ import annotations

import functools
import logging
import math

from torch import nn

from .app_choices import CLEAN_DOWNSCALE, REAL_PHOTO
from .app_errors import refuse
from .app_examples import check_photo
from .app_precision import Precision, choose_precision
from .bundled import BUNDLED, DEFAULT_MODELS, REAL_PHOTO_MODELS
from .denoise import blend, clean_partner
from .evaluation import BICUBIC
from .loading import load_bundled

logger = logging.getLogger("sr_models.app")

#: What the input is -> the bundled models it runs, in the order they run and are shown.
INPUT_KINDS = {CLEAN_DOWNSCALE: tuple(DEFAULT_MODELS), REAL_PHOTO: tuple(REAL_PHOTO_MODELS)}
#: The baseline's label on the page (its method name is sr_models.evaluation.BICUBIC).
BICUBIC_LABEL = "Bicubic"
#: Real-photo weights blended with the clean ones they were fine-tuned from
#: (sr_models.denoise): 1 = the real-photo weights as shipped, 0 = the clean weights. The
#: default is chosen from the measured curve (docs/degradations.md, "the denoise strength"):
#: within 0.2 dB of 1 on realistic LR, 0.4-0.7 dB better on a photo cleaner than assumed.
DENOISE_STRENGTH = 0.75
#: Blended models kept in memory (each is a copy of one model: ~3 MB for the bundled HAT),
#: so that going back to a strength does not blend again.
BLENDS_KEPT = 8


def method_labels(kind: str) -> dict[str, str]:
    """{method name: label}: bicubic, then the kind's models by architecture (by
    ``architecture (name)`` where two of them share one), in run order."""
    architectures = [BUNDLED[name].architecture for name in INPUT_KINDS[kind]]
    labels = {name: arch if architectures.count(arch) == 1 else f"{arch} ({name})"
              for name, arch in zip(INPUT_KINDS[kind], architectures)}
    return {BICUBIC: BICUBIC_LABEL, **labels}


def kind_degradation(kind: str) -> str | None:
    """The LR the kind's models were trained for, which Benchmark mode makes: None, the
    protocol's bicubic downscale; else a realistic degradation preset. ValueError when the
    kind's models were trained for different ones (no single benchmark fits them)."""
    found = {BUNDLED[name].degradation for name in INPUT_KINDS[kind]}
    if len(found) != 1:
        raise ValueError(f"the {kind!r} models were trained for different degradations: {sorted(map(str, found))}")
    return found.pop()


@functools.cache
def load(name: str) -> tuple[nn.Module, str]:
    """(model, where its weights came from) of bundled ``name``, loaded once per process."""
    return load_bundled(name)


def get_models(kind: str) -> dict[str, tuple[nn.Module, str]]:
    """{name: (model, source)} of an input kind. ValueError when an SR_*_MODEL override names
    a preset or another architecture, or the models do not share one scale."""
    models = {name: load(name) for name in INPUT_KINDS[kind]}
    scales = {name: model.scale for name, (model, _) in models.items()}
    if len(set(scales.values())) > 1:
        env_vars = " / ".join(BUNDLED[name].env_var for name in models)
        raise ValueError(f"the models must share one scale, got {scales}: check {env_vars}")
    return models


def kind_models(kind: str) -> dict[str, tuple[nn.Module, str]]:
    """:func:`get_models`, with an unknown kind or a misconfiguration refused with the reason."""
    if kind not in INPUT_KINDS:
        raise refuse(f"Unknown input kind {kind!r:.40}; choose {' or '.join(map(repr, INPUT_KINDS))}.")
    try:
        return get_models(kind)
    except (ValueError, OSError) as err:
        raise refuse(f"The app's weights are misconfigured: {err}") from err


def pad_multiple(models: dict[str, tuple[nn.Module, str]]) -> int:
    """The multiple every model of a kind pads its input to (HAT: its window)."""
    return math.lcm(*(model.pad_multiple for model, _ in models.values()))


@functools.lru_cache(maxsize=BLENDS_KEPT)
def blended(name: str, strength: float) -> nn.Module:
    """Real-photo model ``name`` blended with its clean partner at ``strength`` (ValueError
    when the two cannot be blended: an override of another configuration)."""
    return blend(load(clean_partner(name))[0], load(name)[0], strength)


def run_models(kind: str, strength: float) -> tuple[dict[str, nn.Module], list[str]]:
    """({name: the model to run}, notes) for an input kind at a denoise strength: the kind's
    models, those with a clean partner blended at ``strength`` (below 1). A model that
    cannot be blended runs as it is, and a note says why."""
    models, notes = {}, []
    for name, (model, _) in kind_models(kind).items():
        models[name] = model
        if strength == 1 or BUNDLED[name].clean_partner is None:
            continue
        try:
            models[name] = blended(name, strength)
        except ValueError as err:
            logger.warning("denoise strength not applied to %s: %s", name, err)
            notes.append(f"The denoise strength was not applied to {name} ({err}); it ran at full strength.")
    return models, notes


@functools.cache
def precision(name: str) -> Precision:
    """How model ``name`` runs on this machine (:func:`sr_models.app_precision.choose_precision`),
    decided once per process."""
    return choose_precision(load(name)[0], BUNDLED[name].architecture, check_photo())


def check_weights() -> None:
    """Load every model and choose its precision now: a misconfigured SR_*_MODEL stops the
    app with its reason (a Space must not serve wrong weights under the right label)."""
    try:
        for kind in INPUT_KINDS:
            kind_degradation(kind)
            for name in get_models(kind):
                precision(name)
    except (ValueError, OSError) as err:
        raise SystemExit(f"sr-models app: cannot start: {err}") from err


def weights_note() -> str:
    """What the page says about its weights and how they run."""
    lines = []
    for kind in INPUT_KINDS:
        labels = method_labels(kind)
        for name, (model, source) in kind_models(kind).items():
            lines.append(f"- **{labels[name]}** ({kind.lower()}): {source} (x{model.scale}, "
                         f"{model.num_parameters:,} parameters; {precision(name).reason})")
    return "Weights in use:\n" + "\n".join(lines)
