"""What a run reports: the start-up summary, the trackers, the training facts
(``training_facts.json``), what the model card says (``sr_models.cards.CardInfo``), the
model folder, and publishing it to the Hub.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import sr_models
from sr_models import metric_registry
from sr_models.cards import CardInfo
from sr_models.training import ema
from sr_models.training.checkpoints import RunState
from sr_models.training.data import DataTerms
from sr_models.training.errors import RunFailed, check_finite
from sr_models.training.public import is_local, public_path, public_source

#: The config.json key beside "architecture" that says how the LR training patches were
#: made (``sr_models.protocol.Degradation.to_dict``); the models' constructors never see it.
TRAINING_DEGRADATION_KEY = "training_degradation"
#: Warn when more than this share of the published EMA weights would still be the start.
EMA_START_SHARE = 0.05


def hardware(accelerator) -> str:
    if accelerator.device.type == "cuda":
        name = torch.cuda.get_device_name(accelerator.device)
    else:
        name = f"{accelerator.device.type.upper()} ({platform.machine()}, {os.cpu_count()} cores)"
    return f"{accelerator.num_processes} x {name}"


def effective_batch(args, accelerator) -> int:
    """Patches per optimizer step, all processes."""
    return args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps


def startup_summary(args, accelerator, model, *, data: dict, terms: DataTerms, validation: str, step: int,
                    resumed_from: str | None) -> str:
    """The lines logged before the first step: what is trained, how, on what."""
    p, s = args.hr_patch_size, args.scale
    origin = args.pretrained_model_name_or_path or f"preset {args.model}"
    steps = f"{args.max_train_steps}" + (f" (resuming at step {step} from {resumed_from})" if resumed_from else "")
    lines = [
        f"***** Training {type(model).__name__} x{s} from {origin} *****",
        f"  parameters             {model.num_parameters / 1e6:.2f} M ({model.num_parameters:,})",
        f"  processes              {accelerator.num_processes}: {hardware(accelerator)}",
        f"  mixed precision        {accelerator.mixed_precision}",
        f"  batch per process      {args.train_batch_size}",
        f"  gradient accumulation  {args.gradient_accumulation_steps}",
        f"  effective batch        {effective_batch(args, accelerator)}",
        f"  gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}",
        f"  steps                  {steps}",
        f"  patches                HR {p}x{p} -> LR {p // s}x{p // s}",
        f"  degradation            {args.training_degradation}",
        f"  optimisation           {args.optimizer} lr {args.learning_rate:g} ({args.lr_scheduler}), loss {args.loss}, "
        f"EMA {ema.describe(args.ema_decay, args.ema_warmup) if args.use_ema else 'off'}",
        f"  data                   {data['train_source']}",
        f"  data licence           {terms.license} ({terms.source})",
        f"  validation             {validation}",
        f"  output                 {args.output_dir}",
    ]
    return "\n".join(lines)


def startup_warnings(args, terms: DataTerms) -> list[str]:
    """Settings that run but are probably not what was meant, one line each."""
    warnings = []
    if args.lr_warmup_steps >= args.max_train_steps:
        warnings.append(f"--lr_warmup_steps {args.lr_warmup_steps} is not shorter than the run (--max_train_steps "
                        f"{args.max_train_steps}): the learning rate never reaches --learning_rate "
                        f"{args.learning_rate:g}")
    if args.use_ema and not args.ema_warmup:
        kept = args.ema_decay ** args.max_train_steps
        if kept > EMA_START_SHARE:
            warnings.append(f"--no_ema_warmup: after {args.max_train_steps} steps at --ema_decay {args.ema_decay:g}, "
                            f"{kept:.0%} of the published EMA weights is still the starting point")
    if terms.license == "unknown":
        warnings.append("the licence of the training data is unknown: the model card will say 'license: unknown'; "
                        "pass --data_license (and --data_license_link) to state it")
    return warnings


def below_bicubic_advice(args, model) -> str:
    """What to do about weights that score below bicubic (the log's words; the card has its own)."""
    if getattr(model, "global_residual", False) or args.pretrained_model_name_or_path:
        return "train longer"
    return "train longer, or use --global_residual (docs/training.md)"


def tracker_config(args) -> dict:
    # Trackers take int / float / str / bool only (TensorBoard's hparams refuses the rest).
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in vars(args).items()}


def log_image(accelerator, name: str, image: Image.Image, step: int) -> None:
    """Send the validation grid to the trackers that take images."""
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_image(name, np.asarray(image), step, dataformats="HWC")
        elif tracker.name == "wandb":
            import wandb

            tracker.log({name: wandb.Image(image)}, step=step)
        elif tracker.name == "trackio":
            import trackio

            tracker.log({name: trackio.Image(image)}, step=step)


def _data_facts(data: dict, terms: DataTerms, loaders: list[dict]) -> dict:
    """The data part of the facts: sources, licence, and what each process read."""
    complete = all(s["epochs_completed"] > 0 for s in loaders)
    return {
        **data,
        "license": terms.license, "license_link": terms.license_link, "license_source": terms.source,
        "train_images": sum(s["first_pass"]["usable"] for s in loaders) if complete else None,
        "skipped_undecodable": sum(s["first_pass"]["corrupt"] for s in loaders),
        "skipped_too_small": sum(s["first_pass"]["too_small"] for s in loaders),
        "epochs_completed": min(s["epochs_completed"] for s in loaders),
        "per_process": [{"usable": s["first_pass"]["usable"], "epochs_completed": s["epochs_completed"]}
                        for s in loaders],
    }


def _validation_facts(state: RunState) -> dict:
    """The run's validation history (``RunState.validation_history``: step, training seconds,
    every registry metric) and, once, the bicubic baseline of the same images (None when
    the run never validated)."""
    metrics = state.last_metrics or {}
    prefix = metric_registry.BASELINE_PREFIX
    bicubic = {key: metrics.get(f"{prefix}{key}") for key in metric_registry.KEYS} if metrics else None
    return {"validation_history": state.validation_history, "validation_bicubic": bicubic}


def training_facts(args, accelerator, model, state: RunState, *, data: dict, terms: DataTerms, loaders: list[dict],
                   steps_per_second: float, resumed_from: str | None) -> dict:
    """What the study compares between runs, written to training_facts.json."""
    import accelerate
    import datasets

    peak = torch.cuda.max_memory_allocated(accelerator.device) / 2**30 if accelerator.device.type == "cuda" else None
    return {
        "architecture": type(model).__name__,
        "preset": None if args.pretrained_model_name_or_path else args.model,
        "pretrained_from": public_source(args.pretrained_model_name_or_path) if args.pretrained_model_name_or_path
        else None,
        "scale": args.scale,
        "parameters": model.num_parameters,
        "steps": state.step,
        "images_seen": state.images_seen,
        "effective_batch_size": effective_batch(args, accelerator),
        "train_batch_size": args.train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "processes": accelerator.num_processes,
        "hr_patch_size": args.hr_patch_size,
        "degradation": args.training_degradation.to_dict(),
        "wall_time_s": round(state.elapsed, 2),
        "steps_per_second": round(steps_per_second, 4),  # training only, this run (segment)
        "hardware": hardware(accelerator),
        "precision": accelerator.mixed_precision,
        "gradient_checkpointing": args.gradient_checkpointing,
        "peak_gpu_memory_gib": round(peak, 3) if peak is not None else None,
        "fp16_skipped_steps": state.skipped_steps,
        "optimizer": {"name": args.optimizer, "learning_rate": args.learning_rate,
                      "betas": [args.adam_beta1, args.adam_beta2], "weight_decay": args.adam_weight_decay,
                      "lr_scheduler": args.lr_scheduler, "lr_warmup_steps": args.lr_warmup_steps,
                      "max_grad_norm": args.max_grad_norm},
        "loss": args.loss,
        "ema_decay": args.ema_decay if args.use_ema else None,
        "ema_warmup": args.ema_warmup if args.use_ema else None,
        "validation_hr_size": args.validation_hr_size or None,  # None: native size
        "seed": args.seed,
        "data": _data_facts(data, terms, loaders),
        "resumed_from": public_path(resumed_from) if resumed_from else None,
        **_validation_facts(state),
        "command": args.public_command,
        "versions": {"sr_models": sr_models.__version__, "torch": torch.__version__,
                     "accelerate": accelerate.__version__, "datasets": datasets.__version__},
    }


def licence_note(terms: DataTerms, train_source: str) -> str:
    """The card's licence paragraph: the terms of the data the weights were trained on."""
    if terms.license == "unknown":
        return (f"The weights were trained on {train_source}, whose licence was not given "
                "(--data_license); check that data's licence before using them.")
    link = f" ({terms.license_link})" if terms.license_link else ""
    # Creative Commons ids say "nc" for non-commercial (cc-by-nc-4.0, cc-by-nc-sa-4.0).
    non_commercial = " Non-commercial use only." if terms.license.startswith("cc-") and "-nc" in terms.license else ""
    return (f"The weights were trained on {train_source}, licensed {terms.license}{link}; "
            f"they are published under the same terms.{non_commercial}")


def card_evaluation(args, metrics: dict, data: dict) -> dict:
    """The card's evaluation of the final validation.

    Args:
        args: the run's arguments (its scale).
        metrics: the final validation (metrics.json): every registry metric, its bicubic value
            under ``bicubic_<key>``, and the image count.
        data: the data facts (the validation set's name and id).

    Returns:
        One ``CardInfo.evaluations`` entry.
    """
    baseline = metric_registry.BASELINE_PREFIX
    return {"dataset": data["validation_name"], "dataset_id": data["validation_id"], "scale": args.scale,
            "images": metrics["images"],
            "bicubic": {key: metrics[f"{baseline}{key}"] for key in metric_registry.KEYS},
            "model": {key: metrics[key] for key in metric_registry.KEYS}}


def card_info(args, metrics: dict, facts: dict, terms: DataTerms) -> CardInfo:
    """What the model card shows about this run (rendered by ``sr_models.cards``): data named
    as the user gave it (relative paths, folder names, Hub ids), never by absolute paths."""
    d = facts["data"]
    hub_dataset = args.dataset_name if args.dataset_name and not is_local(args.dataset_name) else None
    evaluations = [card_evaluation(args, metrics, d)] if metrics else []
    use_ema = f"yes ({ema.describe(args.ema_decay, args.ema_warmup)})" if args.use_ema else "no"
    training = {
        "dataset": d["train_source"], "train_images": d["train_images"], "steps": facts["steps"],
        "images_seen": facts["images_seen"], "hr_patch_size": facts["hr_patch_size"],
        "degradation": str(args.training_degradation),
        "effective_batch_size": facts["effective_batch_size"], "learning_rate": args.learning_rate,
        "lr_scheduler": args.lr_scheduler, "loss": args.loss, "use_ema": use_ema, "precision": facts["precision"],
        "hardware": facts["hardware"], "processes": facts["processes"], "wall_time_s": facts["wall_time_s"],
        "command": facts["command"],
    }
    pretrained = args.pretrained_model_name_or_path
    return CardInfo(evaluations=evaluations, training={k: v for k, v in training.items() if v is not None},
                    training_degradation=args.training_degradation.to_dict(),
                    datasets=[hub_dataset] if hub_dataset else [],
                    base_model=pretrained if pretrained and not is_local(pretrained) else None,
                    repo_id=args.hub_model_id, name=model_name(args), license=terms.license,
                    license_link=terms.license_link, license_name=terms.license_name,
                    licence_note=licence_note(terms, d["train_source"]), faces=terms.faces)


def model_name(args) -> str:
    """The card's title and model-index name: the Hub repo's name, else the output folder's."""
    if args.hub_model_id:
        return args.hub_model_id.split("/")[-1]
    return Path(args.output_dir).resolve().name


def write_model_folder(model, output_dir: str | os.PathLike, *, metrics: dict, facts: dict,
                       card_info: CardInfo | None = None, comparison_image: Image.Image | None = None) -> None:
    """The published folder: ``save_pretrained`` (model.safetensors, config.json, the model
    card README.md with model_card.json and comparison.png), plus the final validation
    ``metrics.json`` and ``training_facts.json``. config.json also records the training
    degradation of the facts (TRAINING_DEGRADATION_KEY), which loading ignores."""
    check_finite(model, what="the final model")
    out = Path(output_dir)
    config = {**model.config, TRAINING_DEGRADATION_KEY: facts["degradation"]} if "degradation" in facts else None
    model.save_pretrained(out, config=config, card_info=card_info, comparison_image=comparison_image)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "training_facts.json").write_text(json.dumps(facts, indent=2) + "\n")


def publish(folder: str | os.PathLike, repo_id: str, *, private: bool = False, commit_message: str) -> str:
    """Push the model folder (not the checkpoints, logs or per-step grids: see
    ``sr_models.publish.LOCAL_ONLY``) in one commit; returns the commit URL. A failure is
    RunFailed, one line that says the model is saved and gives the command that retries."""
    from sr_models.publish import push_folder

    try:
        return push_folder(folder, repo_id, private=private, commit_message=commit_message)
    except Exception as err:  # noqa: BLE001 - whatever the Hub client raises, the model is saved and the retry the same
        retry = shlex.join(["sr-models", "push", str(folder), "--repo-id", repo_id,
                            *(["--private"] if private else [])])
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RunFailed(f"the model is saved in {folder}, but publishing it to {repo_id} failed ({detail}); "
                        f"retry with: {retry}") from err
