"""Model cards: the one function that renders a card from a model and its measured facts.

Templates live in ``model_cards/`` (Jinja, one per architecture, sharing ``base.md``).
The facts a card shows (evaluations, training facts, licence, data sets) travel with the
weights in ``model_card.json``, so a reloaded model re-publishes the same card.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import jinja2
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .constants import BASE_TAGS, LIBRARY_NAME, PIPELINE_TAG, PROJECT_URL, PROTOCOL
from . import metric_registry
from .metric_registry import PRIMARY, Metric
from .protocol import degradation_of

# Installed wheels carry the templates inside the package; a source checkout has them at
# the project root.
_TEMPLATE_DIRS = [Path(__file__).parent / "model_cards", Path(__file__).resolve().parent.parent / "model_cards"]

#: How training facts are labelled in the card, in this order; other keys follow as they are.
TRAINING_LABELS = {
    "dataset": "training data",
    "train_images": "training images",
    "degradation": "training degradation",
    "steps": "optimizer steps",
    "images_seen": "images (patches) seen",
    "hr_patch_size": "HR patch size",
    "effective_batch_size": "effective batch size",
    "learning_rate": "learning rate",
    "lr_scheduler": "LR schedule",
    "loss": "loss",
    "use_ema": "EMA weights",
    "precision": "precision",
    "hardware": "hardware",
    "processes": "processes",
    "wall_time_s": "wall-clock time",
    "fine_tuned_from": "fine-tuned from",
    "total_cost": "total training cost",
    "command": "command",
}


@dataclass
class CardInfo:
    """What a card says beyond the model itself; JSON-able, stored as model_card.json.
    ``name`` titles the card when there is no ``repo_id`` (whose name comes first).

    ``evaluations``: one dict per dataset and scale, with ``dataset`` (a name),
    optional ``dataset_id`` (the Hub id of the data, or a slug naming a set that is not on
    the Hub, e.g. "celeba-hq-faces-heldout"), ``scale``, ``images``, ``bicubic`` and
    ``model`` (each metric key of sr_models.metric_registry -> value, e.g. ``{"psnr":
    30.1, "ssim": 0.85, "ms_ssim": 0.97}``; a card shows the metrics its evaluations have),
    and optional ``degradation`` (None or absent: the protocol's bicubic LR; else the
    realistic degradation preset the LR images were drawn from) with its ``seed``: each
    (dataset, degradation) is a result of its own. ``training``: facts of the run (see
    TRAINING_LABELS; ``degradation`` says in words how the training LR patches were made),
    and ``training_degradation`` the same as a record (``sr_models.protocol.Degradation.to_dict``).

    ``license`` is the licence of the *weights*, which follows the training data (the
    code's licence is the project's): a Hub licence id such as "cc-by-nc-sa-4.0", or
    "other" with ``license_name`` (an id-like slug) and ``license_link`` (the terms). None:
    not stated. ``licence_note`` is free text shown under it.
    """

    evaluations: list[dict] = field(default_factory=list)
    training: dict = field(default_factory=dict)
    training_degradation: dict | None = None
    datasets: list[str] = field(default_factory=list)
    base_model: str | None = None
    license: str | None = None
    license_name: str | None = None
    license_link: str | None = None
    licence_note: str = ""
    faces: bool = False
    repo_id: str | None = None
    space_url: str | None = None
    #: The model's name (title, model-index) when there is no ``repo_id``: e.g. the
    #: training's output folder; else "<architecture>-x<scale>".
    name: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> CardInfo:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def check_licence(self) -> None:
        """ValueError unless the licence can be stated on the Hub: "other" needs its name
        and a link to its terms. Check it before a long run, not only when the card is made."""
        if self.license == "other" and not (self.license_name and self.license_link):
            raise ValueError("license 'other' needs license_name and license_link (the terms of the weights' "
                             f"licence); got license_name={self.license_name!r}, license_link={self.license_link!r}")


def _template_env() -> jinja2.Environment:
    folder = next((d for d in _TEMPLATE_DIRS if (d / "base.md").is_file()), None)
    if folder is None:
        raise FileNotFoundError(f"model card templates not found in {[str(d) for d in _TEMPLATE_DIRS]}")
    return jinja2.Environment(loader=jinja2.FileSystemLoader(folder), keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=False)


def preset_of(model) -> str:
    """The preset the model's config matches, with the fields it changes from the class
    defaults (e.g. "espcn + global_residual=True"), else "custom"."""
    config = model.config
    defaults = {k: p.default for k, p in inspect.signature(type(model).__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    for name, preset in type(model).presets.items():
        if all(config.get(k) == (list(v) if isinstance(v, tuple) else v) for k, v in preset.items()):
            changed = [f"{k}={v}" for k, v in config.items()
                       if k in defaults and k not in preset and k != "upscale" and v != defaults[k]]
            return " + ".join([name, *changed])
    return "custom"


def format_duration(seconds: float) -> str:
    """A wall-clock time as the cards write it: "45 min", "2 h 05 min"."""
    minutes = round(float(seconds) / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _format_value(key: str, value) -> str:
    if key == "wall_time_s":
        return format_duration(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if key == "command":
        return f"`{value}`"
    if key == "precision" and value == "no":
        return "fp32"
    return str(value)


_DATASET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)?")


def dataset_type(evaluation: dict) -> str:
    """The model-index ``dataset.type`` of an evaluation: an id, never free text. Its
    ``dataset_id`` (a Hub id, or a slug for a set that is not on the Hub), else a slug of
    the dataset's name ("CelebA-HQ held-out faces" -> "celeba-hq-held-out-faces")."""
    given = evaluation.get("dataset_id")
    if given and _DATASET_ID.fullmatch(given):
        return given
    return re.sub(r"[^a-z0-9]+", "-", (given or evaluation["dataset"]).lower()).strip("-") or "unnamed-dataset"


def evaluation_name(evaluation: dict) -> str:
    """The name of an evaluation's result: its dataset, and the realistic degradation of
    its LR images if it has one ("London studio faces (held out), realistic degradation
    'moderate' seed 0")."""
    degradation = evaluation.get("degradation")
    if not degradation:
        return evaluation["dataset"]
    return f"{evaluation['dataset']}, realistic degradation '{degradation}' seed {evaluation.get('seed', 0)}"


def degradation_config_name(evaluation: dict) -> str | None:
    """The model-index ``dataset.config`` of a result on realistically degraded LR images
    ("realistic-moderate-seed0"; None for the protocol): the Hub tells results apart by
    dataset type and config, not by name, and the data set itself (its type) is the same."""
    degradation = evaluation.get("degradation")
    return f"realistic-{degradation}-seed{evaluation.get('seed', 0)}" if degradation else None


def realistic_training(info: CardInfo) -> str | None:
    """Whether the weights learned a realistic degradation, by the structured record.

    Args:
        info: the card's facts; ``training_degradation`` is read through
            :func:`sr_models.protocol.degradation_of` (absent: the protocol's bicubic LR).

    Returns:
        The training degradation in words when it was realistic, else None.
    """
    if not degradation_of(info.training_degradation).realistic:
        return None
    return str(info.training.get("degradation") or degradation_of(info.training_degradation))


def _licence_line(info: CardInfo) -> str:
    """What the card's Licence section says of the weights, from the card's metadata."""
    if info.license == "other":
        return f"Licence of these weights: [{info.license_name}]({info.license_link})."
    if info.license:
        return f"Licence of these weights: `{info.license}`."
    return "The licence of these weights is not stated."


def below_bicubic(info: CardInfo, evaluation: dict) -> bool:
    """Whether the model scores under bicubic on an evaluation whose LR it was trained for
    (the protocol's; realistic rows too when it was trained on realistic degradations): such
    weights are not usable yet, and the card says so beside the numbers. (A clean-trained
    model below bicubic on realistic LR is out of distribution, which Limitations says.)"""
    trained_for = not evaluation.get("degradation") or realistic_training(info) is not None
    return trained_for and evaluation["model"][PRIMARY.key] < evaluation["bicubic"][PRIMARY.key]


def card_metrics(info: CardInfo) -> list[Metric]:
    """The metrics a card shows.

    Args:
        info: the card's facts.

    Returns:
        The registry's metrics that every evaluation has a value of (model and bicubic), in
        registry order: a card written before a metric existed shows the others.
    """
    def measured(metric: Metric, evaluation: dict) -> bool:
        return all(evaluation[side].get(metric.key) is not None for side in ("model", "bicubic"))
    return [m for m in metric_registry.METRICS if all(measured(m, e) for e in info.evaluations)]


def _eval_results(info: CardInfo) -> list[EvalResult]:
    results = []
    for e in info.evaluations:
        for metric in card_metrics(info):
            results.append(EvalResult(
                task_type=PIPELINE_TAG,
                task_name=f"Image Super-Resolution x{e['scale']}",
                dataset_type=dataset_type(e),
                dataset_name=evaluation_name(e),
                dataset_config=degradation_config_name(e),
                metric_type=metric.card_id,
                metric_name=f"{metric.name} (x{e['scale']})",
                metric_value=float(metric.show(e["model"][metric.key])),
            ))
    return results


def _evaluation_row(info: CardInfo, evaluation: dict) -> dict:
    """What the template shows of one evaluation: its name, the scores as shown, the gain."""
    shown = {side: " / ".join(m.show(evaluation[side][m.key]) for m in card_metrics(info))
             for side in ("bicubic", "model")}
    return {**evaluation, "name": evaluation_name(evaluation), "below_bicubic": below_bicubic(info, evaluation),
            "shown": shown, "gain": evaluation["model"][PRIMARY.key] - evaluation["bicubic"][PRIMARY.key]}


def render_model_card(model, info: CardInfo | None = None, *, comparison_image: str | None = None,
                      training_curve_image: str | None = None) -> ModelCard:
    """The card of ``model`` with the facts in ``info``; ``comparison_image`` is the file
    name (in the same folder) of an LR | bicubic | model | HR strip, and
    ``training_curve_image`` of held-out PSNR against training time, if there are some."""
    info = info or CardInfo()
    info.check_licence()
    arch = type(model).__name__
    name = info.repo_id.split("/")[-1] if info.repo_id else info.name or f"{arch.lower()}-x{model.scale}"
    card_data = ModelCardData(
        library_name=LIBRARY_NAME,
        license=info.license,
        license_name=info.license_name,
        license_link=info.license_link,
        pipeline_tag=PIPELINE_TAG,
        tags=sorted(set(BASE_TAGS + [arch.lower(), f"x{model.scale}"] + (["faces"] if info.faces else []))),
        datasets=info.datasets or None,
        base_model=info.base_model,
        model_name=name,
        eval_results=_eval_results(info) or None,
    )
    keys = [k for k in TRAINING_LABELS if k in info.training] + [k for k in info.training if k not in TRAINING_LABELS]
    training_rows = [(TRAINING_LABELS.get(k, k.replace("_", " ")), _format_value(k, info.training[k])) for k in keys]
    text = _template_env().get_template(f"{arch.lower()}.md").render(
        card_data=card_data.to_yaml(),
        title=f"{name}: {arch} x{model.scale} super-resolution",
        summary=(f"{'An' if arch[0] in 'AEIOU' else 'A'} {arch} image super-resolution model (x{model.scale}) for the "
                 f"[{LIBRARY_NAME}]({PROJECT_URL}) toolkit, which compares ESPCN and HAT."),
        architecture=arch,
        preset=preset_of(model),
        scale=model.scale,
        parameters=model.num_parameters,
        pad_multiple=model.pad_multiple,
        config=model.config,
        project_url=PROJECT_URL,
        repo_id=info.repo_id or "path/to/this/folder",
        space_url=info.space_url,
        training=bool(info.training),
        training_rows=training_rows,
        metric_names=" / ".join(m.name for m in card_metrics(info)),
        evaluations=[_evaluation_row(info, e) for e in info.evaluations],
        realistic_rows=any(e.get("degradation") for e in info.evaluations),
        realistic_training=realistic_training(info),
        protocol=PROTOCOL,
        comparison_image=comparison_image,
        training_curve_image=training_curve_image,
        faces=info.faces,
        licence=_licence_line(info),
        licence_note=info.licence_note,
    )
    return ModelCard(text)
