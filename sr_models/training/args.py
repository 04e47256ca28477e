"""The training scripts' command line: argument groups named as in the diffusers /
Accelerate examples, and the checks that reject combinations that cannot work before
anything is trained (argparse's usage message, exit code 2).

A script (``train/hat.py``, ``train/espcn.py``) passes its model class, its default
preset, its architecture flags and its recipe (defaults) to :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path

import torch

from sr_models.degradations import PRESETS as DEGRADATION_PRESETS
from sr_models.training import data, pairs
from sr_models.training.public import public_command
from sr_models.validation import (SCALES, fraction, int_between, non_negative_float, non_negative_int, positive_float,
                                  positive_int)

LOSSES = ("l1", "l2", "charbonnier")
SCHEDULERS = ("constant", "cosine", "multistep")
TRACKERS = ("tensorboard", "trackio", "wandb", "none")
#: Hub licence ids are lower-case words joined by "-" or "." (cc-by-nc-sa-4.0, apache-2.0,
#: openrail++, other, unknown).
LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+_-]*")
#: numpy's (and so Accelerate's set_seed's) seeds are 32-bit.
MAX_SEED = 2**32 - 1


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The script's docstring as written, and every option's default, unless its help already
    says it or it has none (a flag that is off, a value computed at start-up)."""

    def _get_help_string(self, action):
        text = action.help or ""
        # identity, not equality: a default of 0 is shown (0 == False)
        if any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS)) or "default" in text:
            return text
        return super()._get_help_string(action)


def _license_id(text: str) -> str:
    if not LICENSE_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a Hub licence id (e.g. cc-by-nc-sa-4.0, apache-2.0, other): {text!r}")
    return text


# --------------------------------------------------------------------------- groups


def _model_group(parser: argparse.ArgumentParser, model_class, default_model: str) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--model", choices=sorted(model_class.presets), default=None,
                   help=f"preset to train from random weights (default: {default_model})")
    g.add_argument("--pretrained_model_name_or_path", default=None,
                   help="start from these weights: a Hub repo id, a save_pretrained folder, or an official "
                        "HAT checkpoint (.pth / .safetensors)")
    g.add_argument("--scale", type=int, choices=SCALES, default=4, help="upscaling factor (default 4)")
    g.add_argument("--global_residual", action="store_const", const=True, default=None,
                   help="add a bicubic upscale of the input to the output (the network learns the detail)")
    g.add_argument("--gradient_checkpointing", action="store_true",
                   help="recompute each block's activations in backward: much less memory, more time")


def _data_group(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--dataset_name", default=None,
                   help=f"Hub dataset (or a local folder laid out like one), streamed (default: {data.DEFAULT_DATASET}, "
                        f"FFHQ 256x256, {data.DEFAULT_DATASET_TERMS.license})")
    g.add_argument("--dataset_config_name", default=None, help="the dataset's configuration, if it has several")
    g.add_argument("--image_column", default=data.DEFAULT_IMAGE_COLUMN, help="column holding the images")
    g.add_argument("--train_data_dir", default=None,
                   help="a local folder of images instead of --dataset_name (all of it, whatever the file names)")
    g.add_argument("--validation_data_dir", default=None,
                   help="a local folder of validation images (default: hold out the first --max_eval_samples "
                        "images of the training stream)")
    g.add_argument("--data_license", type=_license_id, default=None,
                   help="Hub licence id of the training data, which the weights' card carries (default: the one "
                        "declared for the default dataset, else the dataset card's 'license', else 'unknown')")
    g.add_argument("--data_license_link", default=None,
                   help="URL of the data's licence text (needed with --data_license other)")
    g.add_argument("--data_license_name", default=None,
                   help="a short slug naming the licence (needed with --data_license other), e.g. "
                        "celeba-hq-non-commercial-research")
    g.add_argument("--max_train_samples", type=positive_int, default=None,
                   help="train on the first N images only (the study's HAT run used 10)")
    g.add_argument("--max_eval_samples", type=non_negative_int, default=100,
                   help="validation images (default 100; 0 turns validation off)")
    g.add_argument("--validation_hr_size", type=non_negative_int, default=data.DEFAULT_VALIDATION_HR_SIZE,
                   help="side of the validation HR images, prepared as `sr-models evaluate --hr-size` prepares them "
                        "(centre square crop, PIL bicubic resize), so that the card's numbers equal `sr-models "
                        "evaluate` on the same folder; 0: native size (large images are run in tiles)")
    g.add_argument("--hr_patch_size", type=positive_int, default=None,
                   help="HR training patch side (default 64 * scale: 256 at x4, a 64x64 LR patch like official HAT)")
    g.add_argument("--shuffle_buffer_size", type=positive_int, default=1000, help="streaming shuffle buffer (images)")
    g.add_argument("--dataloader_num_workers", type=non_negative_int, default=4,
                   help="threads that decode and crop images (0: in the training loop)")
    g.add_argument("--log_image_ids", action="store_true",
                   help="append the id of every training image each process reads to "
                        "OUTPUT_DIR/logs/image_ids_rank{N}.tsv (to audit the data split)")


def _degradation_group(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("degradation (how LR training patches are made; validation stays bicubic)")
    g.add_argument("--degradation", choices=pairs.DEGRADATIONS, default="bicubic",
                   help="bicubic: PIL bicubic downscale, the evaluation protocol (default); realistic: "
                        "Real-ESRGAN-style random blur, resize, noise and JPEG, for real photos")
    g.add_argument("--degradation_config", default=None, metavar="PRESET_OR_JSON_FILE",
                   help=f"with --degradation realistic: a preset ({', '.join(sorted(DEGRADATION_PRESETS))}; "
                        f"default {pairs.DEFAULT_DEGRADATION_PRESET}) or a JSON file of "
                        "sr_models.degradations.DegradationConfig fields (the others keep their defaults)")


def _optimisation_group(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("optimisation")
    g.add_argument("--train_batch_size", type=positive_int, default=4, help="patches per process and step")
    g.add_argument("--gradient_accumulation_steps", type=positive_int, default=1,
                   help="batches per optimizer step (the effective batch is their sum over all processes)")
    g.add_argument("--max_train_steps", type=positive_int, default=100_000,
                   help="optimizer steps (may grow on resume: the LR schedule follows the new total)")
    g.add_argument("--learning_rate", type=positive_float, default=2e-4, help="peak learning rate")
    g.add_argument("--lr_scheduler", choices=SCHEDULERS, default="constant", help="learning-rate schedule")
    g.add_argument("--lr_warmup_steps", type=non_negative_int, default=0, help="linear warm-up from 0")
    g.add_argument("--lr_milestones", type=positive_int, nargs="+", default=None,
                   help="multistep: steps at which the LR is multiplied by --lr_gamma "
                        "(default: 50%%, 80%%, 90%%, 95%% of the run, like the official HAT schedules)")
    g.add_argument("--lr_gamma", type=positive_float, default=0.5, help="multistep factor (default 0.5, as HAT)")
    g.add_argument("--optimizer", choices=("adam", "adamw"), default="adam", help="optimizer")
    g.add_argument("--adam_beta1", type=fraction, default=0.9, help="Adam's first-moment decay")
    g.add_argument("--adam_beta2", type=fraction, default=0.99, help="default 0.99, as the official HAT recipes")
    g.add_argument("--adam_weight_decay", type=non_negative_float, default=0.0, help="weight decay")
    g.add_argument("--adam_epsilon", type=positive_float, default=1e-8, help="Adam's epsilon")
    g.add_argument("--loss", choices=LOSSES, default="l1", help="pixel loss")
    g.add_argument("--max_grad_norm", type=positive_float, default=None, help="clip the gradient norm (default: off)")
    g.add_argument("--use_ema", action="store_true",
                   help="keep an exponential moving average of the weights; it is what is validated and saved")
    g.add_argument("--ema_decay", type=fraction, default=0.999, help="with --use_ema: the largest decay")
    g.add_argument("--ema_warmup", dest="ema_warmup", action="store_true", default=True,
                   help="(the default) warm the EMA up as diffusers does: decay min(--ema_decay, (1+t)/(10+t)) at "
                        "step t, so that the average follows the first steps instead of staying near the start")
    g.add_argument("--no_ema_warmup", dest="ema_warmup", action="store_false",
                   help="the fixed --ema_decay from the first step (default: warm-up on)")
    g.add_argument("--mixed_precision", choices=("no", "fp16", "bf16"), default=None,
                   help="default: the accelerate config's")
    g.add_argument("--seed", type=int_between(0, MAX_SEED), default=0,
                   help="seed of the data order, crops and initial weights")


def _output_group(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("checkpoints, validation and logging")
    g.add_argument("--output_dir", default=None, help="default: outputs/MODEL-xSCALE")
    g.add_argument("--checkpointing_steps", type=positive_int, default=1000,
                   help="write OUTPUT_DIR/checkpoint-STEP every N steps")
    g.add_argument("--checkpoints_total_limit", type=positive_int, default=None, help="keep the newest N checkpoints")
    g.add_argument("--resume_from_checkpoint", default=None,
                   help="a checkpoint folder, or 'latest' in --output_dir (checkpoint folders are trusted input: "
                        "Accelerate unpickles the optimizer and RNG states in them)")
    g.add_argument("--allow_inexact_resume", action="store_true",
                   help="resume even if the checkpoint's random-number states are missing or damaged (with fresh "
                        "ones: the run is then no longer the same as an uninterrupted one)")
    g.add_argument("--validation_steps", type=positive_int, default=1000, help="validate every N steps and at the end")
    g.add_argument("--report_to", choices=TRACKERS, default="tensorboard", help="tracker of losses, metrics and grids")
    g.add_argument("--tracker_project_name", default="sr-models", help="the tracker's project")
    g.add_argument("--logging_dir", default="logs", help="tracker logs, relative to --output_dir")

    g = parser.add_argument_group("Hub")
    g.add_argument("--push_to_hub", action="store_true",
                   help="publish the output folder to the Hub at the end (the login is checked at start-up)")
    g.add_argument("--hub_model_id", default=None,
                   help="user/name of the model repo (its name also titles the card; default: the output folder's)")
    g.add_argument("--hub_private_repo", action="store_true", help="create the Hub repo private")


def build_parser(description: str, model_class, default_model: str, *, architecture: dict[str, dict],
                 recipe: dict) -> argparse.ArgumentParser:
    """The arguments both scripts share, the script's ``architecture`` flags (name ->
    ``add_argument`` keywords; they override the preset) and its ``recipe`` (defaults)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    parser.set_defaults(model_class=model_class, default_model=default_model, arch_args=tuple(architecture))
    _model_group(parser, model_class, default_model)
    _data_group(parser)
    _degradation_group(parser)
    _optimisation_group(parser)
    _output_group(parser)
    g = parser.add_argument_group(f"{model_class.__name__} architecture (overrides of the preset)")
    for name, options in architecture.items():
        g.add_argument(f"--{name}", **options)
    parser.set_defaults(**recipe)
    return parser


# --------------------------------------------------------------------------- checks


def _check_model(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    cls = args.model_class
    args.model_overrides = {k: getattr(args, k) for k in (*args.arch_args, "global_residual")
                            if getattr(args, k) is not None}
    if args.pretrained_model_name_or_path and (args.model or args.model_overrides):
        flags = ["--model"] * bool(args.model) + [f"--{k}" for k in args.model_overrides]
        parser.error(f"{', '.join(flags)} cannot be combined with --pretrained_model_name_or_path "
                     "(the pretrained weights fix the architecture)")
    args.model = args.model or args.default_model
    if args.gradient_checkpointing and not cls.supports_gradient_checkpointing:
        parser.error(f"--gradient_checkpointing: {cls.__name__} has no gradient checkpointing (it is small "
                     "enough not to need it)")
    if args.hr_patch_size is None:
        args.hr_patch_size = 64 * args.scale
    if args.hr_patch_size % args.scale:
        parser.error(f"--hr_patch_size {args.hr_patch_size} is not a multiple of --scale {args.scale}")


def _check_data(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.train_data_dir and args.dataset_name:
        parser.error("give either --dataset_name or --train_data_dir, not both")
    if not args.train_data_dir:
        args.dataset_name = args.dataset_name or data.DEFAULT_DATASET
    for flag in ("train_data_dir", "validation_data_dir"):
        if getattr(args, flag) and not Path(getattr(args, flag)).is_dir():
            parser.error(f"--{flag} {getattr(args, flag)}: no such folder")
    for flag in ("data_license_link", "data_license_name"):
        if getattr(args, flag) and not args.data_license:
            parser.error(f"--{flag} needs --data_license (the licence id it explains)")
    if args.data_license == "other" and not (args.data_license_link and args.data_license_name):
        parser.error("--data_license other needs --data_license_name SLUG and --data_license_link URL "
                     "(the Hub shows them as the licence)")


def _check_degradation(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    try:
        args.training_degradation = pairs.load_degradation(args.degradation, args.degradation_config)
    except ValueError as err:
        parser.error(f"--degradation_config: {err}")


def _check_optimisation(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.lr_milestones and sorted(set(args.lr_milestones)) != args.lr_milestones:
        parser.error(f"--lr_milestones must be increasing, got {args.lr_milestones}")
    # Adam's first step moves the weights by up to lr / (1 - beta1), applied to float32 weights.
    first_step, limit = args.learning_rate / (1 - args.adam_beta1), torch.finfo(torch.float32).max
    if first_step > limit:
        parser.error(f"--learning_rate {args.learning_rate:g} is too large: Adam's first step would be "
                     f"{first_step:g}, more than float32 holds ({limit:.3g})")


def _check_output(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.output_dir is None:
        name = Path(args.pretrained_model_name_or_path).stem if args.pretrained_model_name_or_path else args.model
        args.output_dir = os.path.join("outputs", f"{name}-x{args.scale}")
    if Path(args.output_dir).is_file():
        parser.error(f"--output_dir {args.output_dir} is a file")
    problem = _unwritable(Path(args.output_dir))
    if problem:
        parser.error(f"--output_dir {args.output_dir}: cannot write there ({problem})")
    if args.resume_from_checkpoint not in (None, "latest") and not Path(args.resume_from_checkpoint).is_dir():
        parser.error(f"--resume_from_checkpoint {args.resume_from_checkpoint}: no such folder")


def _unwritable(folder: Path) -> str | None:
    """Why a run could not write ``folder``, found before training: a temporary folder is made
    (and removed) in it, or in its nearest existing parent. None if it can."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".sr-models-write-test-", dir=existing))
    except OSError as err:
        return err.strerror or str(err)
    return None


def _check_hub(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Publishing fails only at the end of a run: everything it needs is checked now,
    without the network (the token is read from HF_TOKEN or the login's token file)."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if args.hub_model_id is not None:
        try:
            validate_repo_id(args.hub_model_id)
        except HFValidationError as err:
            parser.error(f"--hub_model_id {args.hub_model_id!r}: {str(err).splitlines()[0]}")
        if args.hub_model_id.count("/") != 1:
            parser.error(f"--hub_model_id must look like user/name, got {args.hub_model_id!r}")
    if not args.push_to_hub:
        return
    if not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id user/name")
    if get_token() is None:
        parser.error("--push_to_hub: not logged in to the Hugging Face Hub; run `hf auth login` or set HF_TOKEN "
                     "before training (nothing was trained)")


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, and reject combinations that cannot work, with argparse's usage message."""
    args = parser.parse_args(argv)
    # What the model card and training_facts.json say was run: the flags as given, no local paths.
    args.public_command = public_command(parser, args, f"sr_models.training.{args.model_class.__name__.lower()}")
    for check in (_check_model, _check_data, _check_degradation, _check_optimisation, _check_output, _check_hub):
        check(parser, args)
    return args
