"""What both training scripts share: arguments, Accelerator set-up, the loop, EMA,
checkpoints, validation, and writing / publishing the model folder.

A script (``train/hat.py``, ``train/espcn.py``) adds its architecture's arguments and
defaults to :func:`build_parser`, and calls :func:`train` with its model class.
"""

from __future__ import annotations

import argparse
import bisect
import copy
import json
import logging
import math
import os
import platform
import re
import shlex
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

import sr_models
from sr_models import WeightsMismatchError, load_model, upscale_tensor
from sr_models.cards import CardInfo
from sr_models.metrics import bicubic_upscale, degrade, psnr_batch, ssim_batch

from . import data
from .data import DataError

logger = logging.getLogger("train")

LOSSES = ("l1", "l2", "charbonnier")
SCHEDULERS = ("constant", "cosine", "multistep")
TRACKERS = ("tensorboard", "trackio", "wandb", "none")
#: Without --lr_milestones, multistep halves the LR at these fractions of the run: the
#: official HAT schedules (e.g. 250k/400k/450k/475k of 500k steps from scratch).
DEFAULT_MILESTONE_FRACTIONS = (0.5, 0.8, 0.9, 0.95)
#: Charbonnier's epsilon, as in the SR papers that use it (LapSRN, SwinIR's option files).
CHARBONNIER_EPS = 1e-3
#: Validation images shown in the LR | bicubic | SR | HR grid, and the largest side of each
#: tile (bigger images are shown by their centre, so the grid stays a viewable size).
GRID_IMAGES = 4
GRID_MAX_SIDE = 512
VALIDATION_BATCH = 8
CHECKPOINT_PREFIX = "checkpoint-"


class UsageError(Exception):
    """A user mistake (arguments, paths, data): one line on stderr, exit code 2."""


class TrainingDiverged(Exception):
    """The loss or the weights became NaN / inf: the run stops, and nothing NaN is saved."""


# --------------------------------------------------------------------------- arguments


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser(description: str, model_class, default_model: str) -> argparse.ArgumentParser:
    """The arguments both scripts share; a script adds its architecture's overrides."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(model_class=model_class, default_model=default_model, arch_args=())

    g = parser.add_argument_group("model")
    g.add_argument("--model", choices=sorted(model_class.presets), default=None,
                   help=f"preset to train from random weights (default: {default_model})")
    g.add_argument("--pretrained_model_name_or_path", default=None,
                   help="start from these weights: a Hub repo id, a save_pretrained folder, or an official "
                        "HAT checkpoint (.pth / .safetensors)")
    g.add_argument("--scale", type=int, choices=(2, 3, 4, 8), default=4, help="upscaling factor (default 4)")
    g.add_argument("--global_residual", action="store_const", const=True, default=None,
                   help="add a bicubic upscale of the input to the output (the network learns the detail)")
    g.add_argument("--gradient_checkpointing", action="store_true",
                   help="recompute each block's activations in backward: much less memory, more time")

    g = parser.add_argument_group("data")
    g.add_argument("--dataset_name", default=None,
                   help=f"Hub dataset (or a local folder laid out like one), streamed (default: {data.DEFAULT_DATASET}, "
                        "FFHQ 256x256, CC BY-NC-SA 4.0)")
    g.add_argument("--dataset_config_name", default=None, help="the dataset's configuration, if it has several")
    g.add_argument("--image_column", default=data.DEFAULT_IMAGE_COLUMN, help="column holding the images")
    g.add_argument("--train_data_dir", default=None, help="a local folder of images instead of --dataset_name")
    g.add_argument("--validation_data_dir", default=None,
                   help="a local folder of validation images (default: hold out the first --max_eval_samples "
                        "images of the training stream)")
    g.add_argument("--max_train_samples", type=_positive_int, default=None,
                   help="train on the first N images only (the study's HAT run used 10)")
    g.add_argument("--max_eval_samples", type=_non_negative_int, default=100,
                   help="validation images (default 100; 0 turns validation off)")
    g.add_argument("--hr_patch_size", type=_positive_int, default=None,
                   help="HR training patch side (default 64 * scale: 256 at x4, a 64x64 LR patch like official HAT)")
    g.add_argument("--shuffle_buffer_size", type=_positive_int, default=1000, help="streaming shuffle buffer (images)")
    g.add_argument("--dataloader_num_workers", type=_non_negative_int, default=4,
                   help="threads that decode and crop images (0: in the training loop)")
    g.add_argument("--log_image_ids", action="store_true",
                   help="append the id of every training image each process reads to "
                        "OUTPUT_DIR/logs/image_ids_rank{N}.tsv (to audit the data split)")

    g = parser.add_argument_group("optimisation")
    g.add_argument("--train_batch_size", type=_positive_int, default=4, help="patches per process and step")
    g.add_argument("--gradient_accumulation_steps", type=_positive_int, default=1)
    g.add_argument("--max_train_steps", type=_positive_int, default=100_000, help="optimizer steps")
    g.add_argument("--learning_rate", type=_positive_float, default=2e-4)
    g.add_argument("--lr_scheduler", choices=SCHEDULERS, default="constant")
    g.add_argument("--lr_warmup_steps", type=_non_negative_int, default=0, help="linear warm-up from 0")
    g.add_argument("--lr_milestones", type=_positive_int, nargs="+", default=None,
                   help="multistep: steps at which the LR is multiplied by --lr_gamma "
                        "(default: 50%%, 80%%, 90%%, 95%% of the run, like the official HAT schedules)")
    g.add_argument("--lr_gamma", type=_positive_float, default=0.5, help="multistep factor (default 0.5, as HAT)")
    g.add_argument("--optimizer", choices=("adam", "adamw"), default="adam")
    g.add_argument("--adam_beta1", type=float, default=0.9)
    g.add_argument("--adam_beta2", type=float, default=0.99, help="default 0.99, as the official HAT recipes")
    g.add_argument("--adam_weight_decay", type=float, default=0.0)
    g.add_argument("--adam_epsilon", type=float, default=1e-8)
    g.add_argument("--loss", choices=LOSSES, default="l1")
    g.add_argument("--max_grad_norm", type=_positive_float, default=None, help="clip the gradient norm (default: off)")
    g.add_argument("--use_ema", action="store_true",
                   help="keep an exponential moving average of the weights; it is what is validated and saved")
    g.add_argument("--ema_decay", type=float, default=0.999)
    g.add_argument("--mixed_precision", choices=("no", "fp16", "bf16"), default=None,
                   help="default: the accelerate config's")
    g.add_argument("--seed", type=int, default=0)

    g = parser.add_argument_group("checkpoints, validation and logging")
    g.add_argument("--output_dir", default=None, help="default: outputs/MODEL-xSCALE")
    g.add_argument("--checkpointing_steps", type=_positive_int, default=1000)
    g.add_argument("--checkpoints_total_limit", type=_positive_int, default=None, help="keep the newest N checkpoints")
    g.add_argument("--resume_from_checkpoint", default=None, help="a checkpoint folder, or 'latest' in --output_dir")
    g.add_argument("--validation_steps", type=_positive_int, default=1000)
    g.add_argument("--report_to", choices=TRACKERS, default="tensorboard")
    g.add_argument("--tracker_project_name", default="sr-models")
    g.add_argument("--logging_dir", default="logs", help="tracker logs, relative to --output_dir")

    g = parser.add_argument_group("Hub")
    g.add_argument("--push_to_hub", action="store_true", help="publish the output folder to the Hub at the end")
    g.add_argument("--hub_model_id", default=None, help="user/name of the model repo")
    g.add_argument("--hub_private_repo", action="store_true")
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, and reject combinations that cannot work, with argparse's usage message."""
    args = parser.parse_args(argv)
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
    if args.train_data_dir and args.dataset_name:
        parser.error("give either --dataset_name or --train_data_dir, not both")
    if not args.train_data_dir:
        args.dataset_name = args.dataset_name or data.DEFAULT_DATASET
    for flag in ("train_data_dir", "validation_data_dir"):
        if getattr(args, flag) and not Path(getattr(args, flag)).is_dir():
            parser.error(f"--{flag} {getattr(args, flag)}: no such folder")
    if args.hr_patch_size is None:
        args.hr_patch_size = 64 * args.scale
    if args.hr_patch_size % args.scale:
        parser.error(f"--hr_patch_size {args.hr_patch_size} is not a multiple of --scale {args.scale}")
    if args.lr_milestones and sorted(set(args.lr_milestones)) != args.lr_milestones:
        parser.error(f"--lr_milestones must be increasing, got {args.lr_milestones}")
    if not 0 <= args.ema_decay < 1:
        parser.error(f"--ema_decay must be in [0, 1), got {args.ema_decay}")
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id user/name")
    if args.output_dir is None:
        name = Path(args.pretrained_model_name_or_path).stem if args.pretrained_model_name_or_path else args.model
        args.output_dir = os.path.join("outputs", f"{name}-x{args.scale}")
    if Path(args.output_dir).is_file():
        parser.error(f"--output_dir {args.output_dir} is a file")
    if args.resume_from_checkpoint not in (None, "latest") and not Path(args.resume_from_checkpoint).is_dir():
        parser.error(f"--resume_from_checkpoint {args.resume_from_checkpoint}: no such folder")
    return args


def run(main, parse) -> None:
    """The scripts' ``__main__``: user mistakes and divergence end in one line, no traceback."""
    args = parse()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        level=logging.INFO)
    try:
        main(args)
    except (UsageError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


# --------------------------------------------------------------------------- set-up


def make_accelerator(args):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, is_tensorboard_available, is_trackio_available, is_wandb_available

    available = {"tensorboard": is_tensorboard_available, "trackio": is_trackio_available, "wandb": is_wandb_available}
    # Accelerate drops an unavailable tracker with a debug message only; say it loudly instead.
    if args.report_to != "none" and not available[args.report_to]():
        raise UsageError(f"--report_to {args.report_to}: the package is not installed "
                         f"(pip install {args.report_to}), or pass --report_to none")
    project = ProjectConfiguration(project_dir=args.output_dir,
                                   logging_dir=os.path.join(args.output_dir, args.logging_dir))
    try:
        accelerator = Accelerator(
            mixed_precision=args.mixed_precision,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            log_with=None if args.report_to == "none" else args.report_to,
            project_config=project,
        )
    except ValueError as err:  # e.g. fp16 without a GPU
        raise UsageError(f"cannot set up Accelerate: {err}") from err
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and accelerator.num_processes == 1:
        # `accelerate launch --multi_gpu` on a machine without GPUs starts N processes that
        # each train alone and write the same folder.
        raise UsageError(f"{launched} processes were launched but each runs alone (no GPU): for several CPU "
                         "processes, run with ACCELERATE_USE_CPU=true accelerate launch --multi_gpu ...")
    _quiet_libraries(accelerator)
    return accelerator


def _quiet_libraries(accelerator) -> None:
    import datasets

    datasets.disable_progress_bars()
    if accelerator.is_main_process:
        datasets.logging.set_verbosity_warning()
    else:
        datasets.logging.set_verbosity_error()
    # Accelerate logs six lines per checkpoint; the loop says "saved checkpoint-N" itself.
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    if not accelerator.is_main_process:
        logging.getLogger().setLevel(logging.WARNING)


def build_model(args, model_class):
    """A fresh preset (with overrides) or pretrained weights; in train mode."""
    if args.pretrained_model_name_or_path:
        try:
            model = load_model(args.pretrained_model_name_or_path, scale=args.scale)
        except (ValueError, OSError, WeightsMismatchError) as err:
            raise UsageError(f"--pretrained_model_name_or_path: {err}") from err
        if not isinstance(model, model_class):
            raise UsageError(f"--pretrained_model_name_or_path {args.pretrained_model_name_or_path} holds a "
                             f"{type(model).__name__}, but this script trains {model_class.__name__}")
    else:
        try:
            model = model_class.from_preset(args.model, upscale=args.scale, **args.model_overrides)
        except (ValueError, TypeError) as err:
            raise UsageError(f"cannot build {args.model} with {args.model_overrides}: {err}") from err
    lr_patch = args.hr_patch_size // args.scale
    if lr_patch % model.pad_multiple:
        raise UsageError(f"--hr_patch_size {args.hr_patch_size} gives {lr_patch} px LR patches, which must be a "
                         f"multiple of the model's window ({model.pad_multiple}): use "
                         f"{math.ceil(lr_patch / model.pad_multiple) * model.pad_multiple * args.scale}")
    if args.gradient_checkpointing:
        model.set_gradient_checkpointing(True)
    return model.train()


def build_optimizer(model, args) -> torch.optim.Optimizer:
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[args.optimizer]
    return cls([p for p in model.parameters() if p.requires_grad], lr=args.learning_rate,
               betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon, weight_decay=args.adam_weight_decay)


def lr_factor(step: int, *, schedule: str, total: int, warmup: int = 0, milestones=None, gamma: float = 0.5) -> float:
    """The LR multiplier at ``step`` (0-based): linear warm-up, then the schedule."""
    warm = step / warmup if step < warmup else 1.0  # the transformers convention
    if schedule == "constant":
        return warm
    if schedule == "cosine":
        progress = min(1.0, max(0.0, (step - warmup) / max(1, total - warmup)))
        return warm * 0.5 * (1.0 + math.cos(math.pi * progress))
    return warm * gamma ** bisect.bisect_right(milestones, step)


def build_lr_scheduler(optimizer, args):
    milestones = args.lr_milestones or [int(args.max_train_steps * f) for f in DEFAULT_MILESTONE_FRACTIONS]

    def factor(step: int) -> float:
        return lr_factor(step, schedule=args.lr_scheduler, total=args.max_train_steps, warmup=args.lr_warmup_steps,
                         milestones=milestones, gamma=args.lr_gamma)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def charbonnier_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((sr - hr) ** 2 + CHARBONNIER_EPS**2).mean()


def loss_function(name: str):
    return {"l1": F.l1_loss, "l2": F.mse_loss, "charbonnier": charbonnier_loss}[name]


# --------------------------------------------------------------------------- state


class EMA:
    """Exponential moving average of a model's weights (BasicSR's ``model_ema``):
    ``ema = decay * ema + (1 - decay) * weights`` after every optimizer step, kept in float32."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
                       for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        floats, targets = [], []
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                floats.append(self.shadow[k])
                targets.append(v.detach().float())
            else:
                self.shadow[k].copy_(v)
        torch._foreach_lerp_(floats, targets, 1.0 - self.decay)

    def copy_to(self, model: torch.nn.Module) -> None:
        model.load_state_dict(self.shadow)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)


class TrainState:
    """What a resumed run needs beside the model, optimizer, scheduler and RNG states."""

    def __init__(self):
        self.step = 0
        self.images_seen = 0  # training patches, all processes
        self.elapsed = 0.0  # wall-clock seconds of the training loop, over all resumed segments
        self.skipped_steps = 0  # fp16 steps the gradient scaler skipped (overflow)
        self.world_size = None
        self.loaders: list[dict] = []  # one data.LoaderState per process
        self.last_metrics: dict | None = None

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


def find_latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    steps = []
    for path in Path(output_dir).glob(CHECKPOINT_PREFIX + "*"):
        m = re.fullmatch(re.escape(CHECKPOINT_PREFIX) + r"(\d+)", path.name)
        if m and path.is_dir():
            steps.append((int(m.group(1)), path))
    return max(steps)[1] if steps else None


def assert_finite(*modules_or_dicts, what: str) -> None:
    for obj in modules_or_dicts:
        if obj is None:
            continue
        tensors = obj.values() if isinstance(obj, dict) else obj.state_dict().values()
        if not all(torch.isfinite(t).all() for t in tensors if t.is_floating_point()):
            raise TrainingDiverged(f"the weights contain NaN / inf; refusing to save {what}")


# --------------------------------------------------------------------------- validation


class Validator:
    """PSNR / SSIM (Y, protocol) of a model and of bicubic on fixed validation images, and
    the LR | bicubic | SR | HR grid."""

    def __init__(self, images: list[tuple[str, Image.Image]], scale: int, device: torch.device):
        self.scale = scale
        self.device = device
        self.hr, self.lr, self.bicubic = [], [], []
        for _, hr in images:
            lr = degrade(hr, scale)
            self.hr.append(hr)
            self.lr.append(lr)
            self.bicubic.append(bicubic_upscale(lr, scale))
        self.bicubic_metrics = self._evaluate(lambda batch: _to_batch([self.bicubic[i] for i in batch]))

    def __len__(self) -> int:
        return len(self.hr)

    def _batches(self):
        """Indices of same-size images, in groups of up to VALIDATION_BATCH."""
        by_size: dict[tuple, list[int]] = {}
        for i, img in enumerate(self.hr):
            by_size.setdefault(img.size, []).append(i)
        for indices in by_size.values():
            for k in range(0, len(indices), VALIDATION_BATCH):
                yield indices[k : k + VALIDATION_BATCH]

    def _evaluate(self, predict) -> dict:
        """Mean per-image PSNR / SSIM of ``predict(indices) -> (B, 3, H, W)`` against the HR images."""
        psnrs, ssims = [], []
        for batch in self._batches():
            sr = predict(batch)
            hr = _to_batch([self.hr[i] for i in batch]).to(sr.device)
            psnrs.append(psnr_batch(sr, hr, crop_border=self.scale).cpu())
            ssims.append(ssim_batch(sr, hr, crop_border=self.scale).cpu())
        return {"psnr_y": torch.cat(psnrs).mean().item(), "ssim_y": torch.cat(ssims).mean().item()}

    @torch.inference_mode()
    def run(self, model) -> tuple[dict, Image.Image]:
        """Metrics of ``model`` (run as it is: float32, eval mode) and the grid of the first images."""
        model.eval()
        shown: dict[int, torch.Tensor] = {}

        def predict(batch):
            lr = _to_batch([self.lr[i] for i in batch]).to(self.device)
            sr = upscale_tensor(model, lr).float().clamp_(0.0, 1.0)
            shown.update({i: sr[j].cpu() for j, i in enumerate(batch) if i < GRID_IMAGES})
            return sr

        return self._evaluate(predict), self._grid(shown)

    def _grid(self, outputs: dict[int, torch.Tensor]) -> Image.Image:
        rows = []
        for i in sorted(outputs):
            sr = Image.fromarray(outputs[i].mul(255).round().byte().permute(1, 2, 0).numpy())
            hr = self.hr[i]
            lr_big = self.lr[i].resize(hr.size, Image.NEAREST)  # pixels visible at HR size
            tiles = [_centre(t, GRID_MAX_SIDE) for t in (lr_big, self.bicubic[i], sr, hr)]
            rows.append(tiles)
        width = max(sum(t.width for t in row) for row in rows)
        height = sum(row[0].height for row in rows)
        grid = Image.new("RGB", (width, height))
        y = 0
        for row in rows:
            x = 0
            for tile in row:
                grid.paste(tile, (x, y))
                x += tile.width
            y += row[0].height
        return grid


def _centre(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    cw, ch = min(w, side), min(h, side)
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch))


def _to_batch(images: list[Image.Image]) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.asarray(i) for i in images])).permute(0, 3, 1, 2).float().div_(255.0)


# --------------------------------------------------------------------------- the run


class Trainer:
    """One training run: set-up in ``__init__``, then :meth:`fit`."""

    def __init__(self, args: argparse.Namespace, model_class):
        from accelerate.utils import set_seed

        self.args = args
        self.accelerator = acc = make_accelerator(args)
        set_seed(args.seed)
        model = build_model(args, model_class)
        self.sources = data.prepare_sources(
            dataset_name=args.dataset_name, dataset_config_name=args.dataset_config_name,
            image_column=args.image_column, train_data_dir=args.train_data_dir,
            validation_data_dir=args.validation_data_dir, max_train_samples=args.max_train_samples,
            max_eval_samples=args.max_eval_samples, scale=args.scale, seed=args.seed,
            shuffle_buffer_size=args.shuffle_buffer_size, rank=acc.process_index, world_size=acc.num_processes,
        )
        # A plain copy, made before prepare() wraps the model: validation and the final save
        # run it in float32, with the EMA weights when there are any.
        self.eval_model = copy.deepcopy(model).to(acc.device).eval() if acc.is_main_process else None
        optimizer = build_optimizer(model, args)
        self.scheduler = build_lr_scheduler(optimizer, args)
        self.model, self.optimizer = acc.prepare(model, optimizer)
        self.unwrapped = acc.unwrap_model(self.model)
        self.ema = EMA(self.unwrapped, args.ema_decay) if args.use_ema else None
        self.state = TrainState()
        acc.register_for_checkpointing(self.scheduler, self.state, *([self.ema] if self.ema else []))
        self.resumed_from = self._resume()
        self.loader = self._make_loader()
        self.has_validation = bool(self.sources.validation)
        self.validator = (Validator(self.sources.validation, args.scale, acc.device)
                          if self.has_validation and acc.is_main_process else None)
        self.loss_fn = loss_function(args.loss)
        self.effective_batch = args.train_batch_size * acc.num_processes * args.gradient_accumulation_steps
        self._validated_step = None
        if args.report_to != "none":
            acc.init_trackers(args.tracker_project_name, config=_tracker_config(args))

    # -- set-up helpers

    def _resume(self) -> str | None:
        arg = self.args.resume_from_checkpoint
        if arg is None:
            return None
        path = find_latest_checkpoint(self.args.output_dir) if arg == "latest" else Path(arg)
        if path is None:
            logger.info("no checkpoint in %s: starting a new run", self.args.output_dir)
            return None
        try:
            self.accelerator.load_state(str(path))
        except (OSError, RuntimeError, KeyError, ValueError) as err:
            raise UsageError(f"cannot resume from {path}: {err} (a checkpoint resumes with the same model, "
                             "--use_ema and --scale)") from err
        return str(path)

    def _make_loader(self) -> data.PairLoader:
        acc, st = self.accelerator, self.state
        loader_state = None
        if st.loaders and st.world_size == acc.num_processes:
            loader_state = data.LoaderState(**st.loaders[acc.process_index])
        elif st.loaders:
            epoch = min(s["epoch"] for s in st.loaders)
            logger.warning("the checkpoint was written by %d processes and this run has %d: each process's "
                           "data stream restarts at the beginning of epoch %d", st.world_size, acc.num_processes, epoch)
            loader_state = data.LoaderState(epoch=epoch, epochs_completed=epoch)
        id_log = (Path(self.args.output_dir) / self.args.logging_dir / f"image_ids_rank{acc.process_index}.tsv"
                  if self.args.log_image_ids else None)
        return data.PairLoader(
            self.sources.train, image_column=self.sources.description["image_column"], scale=self.args.scale,
            hr_patch_size=self.args.hr_patch_size, batch_size=self.args.train_batch_size, seed=self.args.seed,
            rank=acc.process_index, num_workers=self.args.dataloader_num_workers, state=loader_state, id_log=id_log,
        )

    def _log_startup(self) -> None:
        a, acc, m = self.args, self.accelerator, self.unwrapped
        p, s = a.hr_patch_size, a.scale
        origin = a.pretrained_model_name_or_path or f"preset {a.model}"
        val = "off"
        if self.validator is not None:
            b = self.validator.bicubic_metrics
            val = (f"{len(self.validator)} images, {self.sources.description['validation_source']}; "
                   f"bicubic PSNR-Y {b['psnr_y']:.2f} dB, SSIM-Y {b['ssim_y']:.4f}")
        steps = f"{a.max_train_steps}"
        if self.resumed_from:
            steps += f" (resuming at step {self.state.step} from {self.resumed_from})"
        lines = [
            f"***** Training {type(m).__name__} x{s} from {origin} *****",
            f"  parameters             {m.num_parameters / 1e6:.2f} M ({m.num_parameters:,})",
            f"  processes              {acc.num_processes}: {hardware(acc)}",
            f"  mixed precision        {acc.mixed_precision}",
            f"  batch per process      {a.train_batch_size}",
            f"  gradient accumulation  {a.gradient_accumulation_steps}",
            f"  effective batch        {self.effective_batch}",
            f"  gradient checkpointing {'on' if a.gradient_checkpointing else 'off'}",
            f"  steps                  {steps}",
            f"  patches                HR {p}x{p} -> LR {p // s}x{p // s}",
            f"  optimisation           {a.optimizer} lr {a.learning_rate:g} ({a.lr_scheduler}), loss {a.loss}, "
            f"EMA {a.ema_decay if a.use_ema else 'off'}",
            f"  data                   {self.sources.description['train_source']}",
            f"  validation             {val}",
            f"  output                 {a.output_dir}",
        ]
        logger.info("\n".join(lines))

    # -- the loop

    def fit(self) -> None:
        args, acc, state = self.args, self.accelerator, self.state
        self._log_startup()
        start_step, start_time, elapsed_before = state.step, time.perf_counter(), state.elapsed
        self._clock = lambda: elapsed_before + time.perf_counter() - start_time
        progress = tqdm(total=args.max_train_steps, initial=state.step, desc="steps", dynamic_ncols=True,
                        disable=not acc.is_local_main_process)
        batches = iter(self.loader)
        overhead = 0.0  # seconds spent checkpointing and validating, left out of the speed
        while state.step < args.max_train_steps:
            loss, lr = self._optimizer_step(batches)
            state.step += 1
            state.images_seen += self.effective_batch
            progress.update(1)
            progress.set_postfix(loss=f"{loss:.4g}", lr=f"{lr:.3g}")
            acc.log({"train/loss": loss, "train/lr": lr}, step=state.step)
            pause = time.perf_counter()
            if state.step % args.checkpointing_steps == 0:
                self.save_checkpoint()
            if self.has_validation and state.step % args.validation_steps == 0:
                self.validate()
            overhead += time.perf_counter() - pause
        progress.close()
        self._speed = (state.step - start_step) / max(time.perf_counter() - start_time - overhead, 1e-9)
        self.finish()

    def _optimizer_step(self, batches) -> tuple[float, float]:
        """One optimizer step over ``gradient_accumulation_steps`` batches; (mean loss, LR used)."""
        acc, args = self.accelerator, self.args
        losses = []
        for _ in range(args.gradient_accumulation_steps):
            batch = next(batches)
            with acc.accumulate(self.model):
                sr = self.model(batch.lr.to(acc.device, non_blocking=True))
                loss = self.loss_fn(sr.float(), batch.hr.to(acc.device, non_blocking=True))
                # Averaged over processes, so that all of them stop together on a NaN.
                value = acc.reduce(loss.detach(), reduction="mean").item()
                if not math.isfinite(value):
                    raise TrainingDiverged(
                        f"the loss is {value} at step {self.state.step + 1}; nothing was saved after the last "
                        "checkpoint. Try a lower --learning_rate, --max_grad_norm 1, or bf16 instead of fp16")
                losses.append(value)
                acc.backward(loss)
                if acc.sync_gradients and args.max_grad_norm:
                    acc.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        lr = self.optimizer.param_groups[0]["lr"]
        if acc.optimizer_step_was_skipped:
            # fp16: the gradient scaler found inf / NaN gradients and skipped the update, and
            # lowers its scale; the schedule does not advance, as Accelerate does it.
            self.state.skipped_steps += 1
        else:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.unwrapped)
        return sum(losses) / len(losses), lr

    # -- checkpoints

    def save_checkpoint(self) -> None:
        """``checkpoint-STEP``: written under a temporary name and renamed, so a run killed while
        saving leaves the previous checkpoints intact and no half-written 'latest'."""
        from accelerate.utils import gather_object

        acc, state = self.accelerator, self.state
        state.elapsed = self._clock()
        state.world_size = acc.num_processes
        state.loaders = gather_object([asdict(self.loader.state)])
        assert_finite(self.unwrapped, self.ema.shadow if self.ema else None, what=f"checkpoint {state.step}")
        out = Path(self.args.output_dir)
        final, tmp = out / f"{CHECKPOINT_PREFIX}{state.step}", out / f".tmp-{CHECKPOINT_PREFIX}{state.step}"
        if acc.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            self._prune_checkpoints()
            logger.info("saved %s", final)
        acc.wait_for_everyone()

    def _prune_checkpoints(self) -> None:
        limit = self.args.checkpoints_total_limit
        if limit is None:
            return
        found = sorted((int(p.name[len(CHECKPOINT_PREFIX):]), p) for p in Path(self.args.output_dir).glob(
            CHECKPOINT_PREFIX + "*") if p.name[len(CHECKPOINT_PREFIX):].isdigit())
        for _, path in found[:-limit]:
            logger.info("removing %s (--checkpoints_total_limit %d)", path, limit)
            shutil.rmtree(path)

    # -- validation and the end

    def _weights_for_eval(self) -> None:
        """Load the weights that are evaluated and published (EMA if any) into eval_model."""
        source = self.ema.shadow if self.ema is not None else self.unwrapped.state_dict()
        self.eval_model.load_state_dict(source)

    def validate(self) -> dict | None:
        """Validate on the main process (the others wait); returns the metrics there."""
        acc, step = self.accelerator, self.state.step
        metrics = None
        if acc.is_main_process:
            self._weights_for_eval()
            result, grid = self.validator.run(self.eval_model)
            b = self.validator.bicubic_metrics
            metrics = {"step": step, "weights": "ema" if self.ema else "model", "images": len(self.validator),
                       "scale": self.args.scale, **result,
                       "bicubic_psnr_y": b["psnr_y"], "bicubic_ssim_y": b["ssim_y"]}
            self.state.last_metrics = metrics
            logger.info("step %d: PSNR-Y %.2f dB (bicubic %.2f), SSIM-Y %.4f (bicubic %.4f) on %d images",
                        step, result["psnr_y"], b["psnr_y"], result["ssim_y"], b["ssim_y"], len(self.validator))
            folder = Path(self.args.output_dir) / "validation"
            folder.mkdir(parents=True, exist_ok=True)
            grid.save(folder / f"step-{step:07d}.png")
            acc.log({f"val/{k}": metrics[k] for k in ("psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y")},
                    step=step)
            log_image(acc, "val/lr_bicubic_sr_hr", grid, step)
        acc.wait_for_everyone()
        self._validated_step = step
        return metrics

    def finish(self) -> None:
        from accelerate.utils import gather_object

        acc, args, state = self.accelerator, self.args, self.state
        if self.has_validation and self._validated_step != state.step:
            self.validate()
        state.elapsed = self._clock()
        loaders = gather_object([asdict(self.loader.state)])
        if acc.is_main_process:
            out = Path(args.output_dir)
            self._weights_for_eval()
            metrics = state.last_metrics if self.has_validation else {}
            facts = self._facts(loaders)
            grids = sorted((out / "validation").glob("step-*.png"))
            grid = Image.open(grids[-1]).convert("RGB") if grids else None
            write_model_folder(self.eval_model, out, metrics=metrics, facts=facts,
                               card_info=card_info(args, metrics, facts), comparison_image=grid)
            logger.info("saved the %s weights of step %d to %s", "EMA" if self.ema else "final", state.step, out)
            if args.push_to_hub:
                url = publish(out, args.hub_model_id, private=args.hub_private_repo,
                              commit_message=f"{type(self.unwrapped).__name__} x{args.scale}, {state.step} steps")
                logger.info("published to %s", url)
        acc.wait_for_everyone()
        acc.end_training()

    def _facts(self, loaders: list[dict]) -> dict:
        """What the study compares between runs, written to training_facts.json."""
        import accelerate
        import datasets

        a, acc, st = self.args, self.accelerator, self.state
        complete = all(s["epochs_completed"] > 0 for s in loaders)
        peak = (torch.cuda.max_memory_allocated(acc.device) / 2**30 if acc.device.type == "cuda" else None)
        return {
            "architecture": type(self.unwrapped).__name__,
            "preset": None if a.pretrained_model_name_or_path else a.model,
            "pretrained_from": a.pretrained_model_name_or_path,
            "scale": a.scale,
            "parameters": self.unwrapped.num_parameters,
            "steps": st.step,
            "images_seen": st.images_seen,
            "effective_batch_size": self.effective_batch,
            "train_batch_size": a.train_batch_size,
            "gradient_accumulation_steps": a.gradient_accumulation_steps,
            "processes": acc.num_processes,
            "hr_patch_size": a.hr_patch_size,
            "wall_time_s": round(st.elapsed, 2),
            "steps_per_second": round(self._speed, 4),  # training only, this run (segment)
            "hardware": hardware(acc),
            "precision": acc.mixed_precision,
            "gradient_checkpointing": a.gradient_checkpointing,
            "peak_gpu_memory_gib": round(peak, 3) if peak is not None else None,
            "fp16_skipped_steps": st.skipped_steps,
            "optimizer": {"name": a.optimizer, "learning_rate": a.learning_rate, "betas": [a.adam_beta1, a.adam_beta2],
                          "weight_decay": a.adam_weight_decay, "lr_scheduler": a.lr_scheduler,
                          "lr_warmup_steps": a.lr_warmup_steps, "max_grad_norm": a.max_grad_norm},
            "loss": a.loss,
            "ema_decay": a.ema_decay if a.use_ema else None,
            "seed": a.seed,
            "data": {
                **self.sources.description,
                "train_images": sum(s["first_pass"]["usable"] for s in loaders) if complete else None,
                "skipped_undecodable": sum(s["first_pass"]["corrupt"] for s in loaders),
                "skipped_too_small": sum(s["first_pass"]["too_small"] for s in loaders),
                "epochs_completed": min(s["epochs_completed"] for s in loaders),
                "per_process": [{"usable": s["first_pass"]["usable"], "epochs_completed": s["epochs_completed"]}
                                for s in loaders],
            },
            "resumed_from": self.resumed_from,
            "command": "accelerate launch " + shlex.join(sys.argv),
            "versions": {"sr_models": sr_models.__version__, "torch": torch.__version__,
                         "accelerate": accelerate.__version__, "datasets": datasets.__version__},
        }


def train(args: argparse.Namespace, model_class) -> None:
    Trainer(args, model_class).fit()


# --------------------------------------------------------------------------- output


def hardware(accelerator) -> str:
    if accelerator.device.type == "cuda":
        name = torch.cuda.get_device_name(accelerator.device)
    else:
        name = f"{accelerator.device.type.upper()} ({platform.machine()}, {os.cpu_count()} cores)"
    return f"{accelerator.num_processes} x {name}"


def _tracker_config(args) -> dict:
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


def card_info(args, metrics: dict, facts: dict) -> CardInfo:
    """What the model card shows about this run (rendered by ``sr_models.cards``)."""
    d = facts["data"]
    hub_dataset = args.dataset_name if args.dataset_name and not Path(args.dataset_name).exists() else None
    evaluations = []
    if metrics:
        evaluations.append({
            "dataset": d["validation_name"], "dataset_id": hub_dataset, "scale": args.scale,
            "images": metrics["images"],
            "bicubic": {"psnr": metrics["bicubic_psnr_y"], "ssim": metrics["bicubic_ssim_y"]},
            "model": {"psnr": metrics["psnr_y"], "ssim": metrics["ssim_y"]},
        })
    training = {
        "dataset": d["train_source"], "train_images": d["train_images"], "steps": facts["steps"],
        "images_seen": facts["images_seen"], "hr_patch_size": facts["hr_patch_size"],
        "effective_batch_size": facts["effective_batch_size"], "learning_rate": args.learning_rate,
        "lr_scheduler": args.lr_scheduler, "loss": args.loss,
        "use_ema": f"yes (decay {args.ema_decay})" if args.use_ema else "no", "precision": facts["precision"],
        "hardware": facts["hardware"], "processes": facts["processes"], "wall_time_s": facts["wall_time_s"],
        "command": facts["command"],
    }
    training = {k: v for k, v in training.items() if v is not None}
    pretrained = args.pretrained_model_name_or_path
    base_model = pretrained if pretrained and not Path(pretrained).exists() else None
    info = CardInfo(evaluations=evaluations, training=training, datasets=[hub_dataset] if hub_dataset else [],
                    base_model=base_model, repo_id=args.hub_model_id)
    source = (args.dataset_name or args.train_data_dir or "").lower()
    if "ffhq" in source:
        info.license, info.faces = "cc-by-nc-sa-4.0", True
        info.licence_note = ("Code: Apache-2.0. These weights were trained on FFHQ (NVIDIA, CC BY-NC-SA 4.0): "
                             "non-commercial use, share-alike.")
    else:
        info.licence_note = ("Code: Apache-2.0. The weights were trained on "
                             f"{d['train_source']}; check that data's licence before using them.")
    return info


def write_model_folder(model, output_dir: str | os.PathLike, *, metrics: dict, facts: dict,
                       card_info: CardInfo | None = None, comparison_image: Image.Image | None = None) -> None:
    """The published folder: ``save_pretrained`` (model.safetensors, config.json, the model
    card README.md with model_card.json and comparison.png), plus the final validation
    ``metrics.json`` and ``training_facts.json``."""
    assert_finite(model, what="the final model")
    out = Path(output_dir)
    model.save_pretrained(out, card_info=card_info, comparison_image=comparison_image)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "training_facts.json").write_text(json.dumps(facts, indent=2) + "\n")


def publish(folder: str | os.PathLike, repo_id: str, *, private: bool = False, commit_message: str) -> str:
    """Push the model folder (not the checkpoints, logs or per-step grids: see
    ``sr_models.publish.LOCAL_ONLY``) in one commit; returns the commit URL."""
    from sr_models.publish import PublishError, push_folder

    try:
        return push_folder(folder, repo_id, private=private, commit_message=commit_message)
    except PublishError as err:
        raise UsageError(f"the model is saved in {folder}, but publishing it to {repo_id} failed: {err}") from err
