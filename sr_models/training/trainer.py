"""The training loop both scripts share: Accelerator set-up, the model, optimizer, LR
schedule and loss, the steps, checkpoints, validation and the end of the run (model
folder, card, publishing). The EMA is :mod:`sr_models.training.ema`, resuming
:mod:`sr_models.training.resume`.

Outline: :class:`Trainer` sets everything up in ``__init__`` (resuming from a checkpoint if
asked) and :meth:`Trainer.fit` runs the steps, checkpointing and validating on their
schedules, then :meth:`Trainer.finish` writes (and publishes) the model folder.
"""

from __future__ import annotations

import argparse
import bisect
import copy
import functools
import logging
import math
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from sr_models import WeightsMismatchError, load_model, metric_registry
from sr_models.training import checkpoints, data, report, resume
from sr_models.training.ema import EMA
from sr_models.training.errors import RunFailed, TrainingDiverged, UsageError, check_finite
from sr_models.training.validation import Validator

logger = logging.getLogger("train")

#: Without --lr_milestones, multistep halves the LR at these fractions of the run: the
#: official HAT schedules (e.g. 250k/400k/450k/475k of 500k steps from scratch).
DEFAULT_MILESTONE_FRACTIONS = (0.5, 0.8, 0.9, 0.95)
#: Charbonnier's epsilon, as in the SR papers that use it (LapSRN, SwinIR's option files).
CHARBONNIER_EPS = 1e-3


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


def build_lr_scheduler(optimizer, args, start_step: int = 0):
    """The LR schedule of the current arguments, standing at ``start_step``.

    The schedule is a function of the step, ``--learning_rate`` and ``--max_train_steps``
    alone: a run resumed with a longer ``--max_train_steps`` continues on the longer
    schedule, not on the end of the old one. So it is never restored from a checkpoint.
    """
    milestones = args.lr_milestones or [int(args.max_train_steps * f) for f in DEFAULT_MILESTONE_FRACTIONS]
    factor = functools.partial(lr_factor, schedule=args.lr_scheduler, total=args.max_train_steps,
                               warmup=args.lr_warmup_steps, milestones=milestones, gamma=args.lr_gamma)
    for group in optimizer.param_groups:
        # A resumed optimizer carries the old run's values; the base LR is this run's.
        group["initial_lr"] = args.learning_rate
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor, last_epoch=start_step - 1)


def charbonnier_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((sr - hr) ** 2 + CHARBONNIER_EPS**2).mean()


def loss_function(name: str):
    return {"l1": F.l1_loss, "l2": F.mse_loss, "charbonnier": charbonnier_loss}[name]


# --------------------------------------------------------------------------- run state


class RunClock:
    """Training time over all resumed segments, and this segment's speed with checkpointing
    and validation (the ``paused`` parts) left out. Starts when it is made."""

    def __init__(self, elapsed_before: float, start_step: int):
        self._start = time.perf_counter()
        self._before = elapsed_before
        self._start_step = start_step
        self._paused = 0.0

    def elapsed(self) -> float:
        return self._before + time.perf_counter() - self._start

    @contextmanager
    def paused(self):
        start = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - start

    def steps_per_second(self, step: int) -> float:
        return (step - self._start_step) / max(time.perf_counter() - self._start - self._paused, 1e-9)


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
            validation_hr_size=args.validation_hr_size or None,
        )
        self.terms = data.data_terms(license=args.data_license, license_link=args.data_license_link,
                                     license_name=args.data_license_name, dataset_name=args.dataset_name)
        # A plain copy, made before prepare() wraps the model: validation and the final save
        # run it in float32, with the EMA weights when there are any.
        self.eval_model = copy.deepcopy(model).to(acc.device).eval() if acc.is_main_process else None
        optimizer = build_optimizer(model, args)
        self.model, self.optimizer = acc.prepare(model, optimizer)
        self.unwrapped = acc.unwrap_model(self.model)
        self.ema = EMA(self.unwrapped, args.ema_decay, warmup=args.ema_warmup) if args.use_ema else None
        self.state, self.resumed_from = resume.resume(args, acc, self.ema)
        self.state.degradation = args.training_degradation.to_dict()  # written in each checkpoint
        self.scheduler = build_lr_scheduler(optimizer, args, start_step=self.state.schedule_step)
        self.loader = self._make_loader()
        self.validator = (Validator(self.sources.validation, args.scale, acc.device)
                          if self.sources.validation and acc.is_main_process else None)
        self.loss_fn = loss_function(args.loss)
        self._validated_step = None
        if args.report_to != "none":
            acc.init_trackers(args.tracker_project_name, config=report.tracker_config(args))
        self.clock = RunClock(self.state.elapsed, self.state.step)

    @property
    def has_validation(self) -> bool:
        return bool(self.sources.validation)

    # -- set-up helpers

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
            degradation=self.args.training_degradation,
        )

    def _log_startup(self) -> None:
        validation = "off"
        if self.validator is not None:
            validation = (f"{len(self.validator)} images, {self.sources.description['validation_source']}; "
                          f"bicubic {metric_registry.describe(self.validator.bicubic_metrics)}")
        logger.info(report.startup_summary(self.args, self.accelerator, self.unwrapped,
                                           data=self.sources.description, terms=self.terms, validation=validation,
                                           step=self.state.step, resumed_from=self.resumed_from))
        if self.accelerator.is_main_process:
            for warning in report.startup_warnings(self.args, self.terms):
                logger.warning(warning)

    # -- the loop

    def fit(self) -> None:
        args, acc, state = self.args, self.accelerator, self.state
        self._log_startup()
        progress = tqdm(total=args.max_train_steps, initial=state.step, desc="steps", dynamic_ncols=True,
                        disable=not acc.is_local_main_process)
        batches = iter(self.loader)
        while state.step < args.max_train_steps:
            loss, lr = self._optimizer_step(batches)
            state.step += 1
            state.images_seen += report.effective_batch(args, acc)
            progress.update(1)
            progress.set_postfix(loss=f"{loss:.4g}", lr=f"{lr:.3g}")
            acc.log({"train/loss": loss, "train/lr": lr}, step=state.step)
            # Validation first: the checkpoint of this step then carries its validation, which
            # a run resumed from it keeps in its history.
            if self.has_validation and state.step % args.validation_steps == 0:
                self.validate()
            if state.step % args.checkpointing_steps == 0:
                self.save_checkpoint()
        progress.close()
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

    def _gather_loaders(self) -> list[dict]:
        from accelerate.utils import gather_object

        return gather_object([asdict(self.loader.state)])

    def save_checkpoint(self) -> None:
        """``checkpoint-STEP``: written under a temporary name and renamed, so a run killed while
        saving leaves the previous checkpoints intact and no half-written 'latest'. A failed
        write (a full disk) removes the temporary folder and stops the run in one line."""
        from accelerate.utils import gather_object

        acc, state = self.accelerator, self.state
        with self.clock.paused():
            state.elapsed = self.clock.elapsed()
            state.world_size = acc.num_processes
            state.loaders = self._gather_loaders()
            state.ema_updates = self.ema.updates if self.ema is not None else None
            check_finite(self.unwrapped, self.ema.shadow if self.ema else None, what=f"checkpoint {state.step}")
            final = checkpoints.checkpoint_path(self.args.output_dir, state.step)
            tmp = checkpoints.checkpoint_path(self.args.output_dir, state.step, partial=True)
            if acc.is_main_process and tmp.exists():
                shutil.rmtree(tmp)
            acc.wait_for_everyone()
            failures = [f for f in gather_object([self._write_checkpoint(tmp)]) if f]
            if failures:
                if acc.is_main_process:
                    shutil.rmtree(tmp, ignore_errors=True)
                raise RunFailed(f"{failures[0]} while saving {final.name} in {self.args.output_dir} (its temporary "
                                "folder was removed; the earlier checkpoints are intact): free some space, then "
                                "rerun with --resume_from_checkpoint latest")
            if acc.is_main_process:
                self._publish_checkpoint(tmp, final)
            acc.wait_for_everyone()

    def _write_checkpoint(self, tmp: Path) -> str | None:
        """Write this process's part of the checkpoint into ``tmp``; what went wrong, or None.
        torch.save reports a failed write as RuntimeError, safetensors as SafetensorError."""
        from safetensors import SafetensorError

        try:
            self.accelerator.save_state(str(tmp))
            if self.accelerator.is_main_process:
                checkpoints.write_state(tmp, self.state, self.ema.shadow if self.ema else None)
        except (OSError, RuntimeError, SafetensorError) as err:
            return checkpoints.describe_write_error(err, self.args.output_dir)
        return None

    def _publish_checkpoint(self, tmp: Path, final: Path) -> None:
        """Main process: the complete temporary folder becomes ``final``; old ones are pruned."""
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        limit = self.args.checkpoints_total_limit
        if limit is not None:
            for path in checkpoints.prune_checkpoints(self.args.output_dir, limit):
                logger.info("removed %s (--checkpoints_total_limit %d)", path, limit)
        logger.info("saved %s", final)

    # -- validation and the end

    def _weights_for_eval(self) -> None:
        """Load the weights that are evaluated and published (EMA if any) into eval_model."""
        source = self.ema.shadow if self.ema is not None else self.unwrapped.state_dict()
        self.eval_model.load_state_dict(source)

    def validate(self) -> dict | None:
        """Validate on the main process (the others wait); returns the metrics there."""
        acc, step = self.accelerator, self.state.step
        metrics = None
        seconds = self.clock.elapsed()  # training time up to this step, before validating it
        with self.clock.paused():
            if acc.is_main_process:
                self._weights_for_eval()
                result, grid = self.validator.run(self.eval_model)
                b = self.validator.bicubic_metrics
                baseline = {f"{metric_registry.BASELINE_PREFIX}{key}": value for key, value in b.items()}
                metrics = {"step": step, "weights": "ema" if self.ema else "model", "images": len(self.validator),
                           "scale": self.args.scale, **result, **baseline}
                self.state.last_metrics = metrics
                self._record_validation(seconds, result)
                logger.info("step %d: %s on %d images", step, metric_registry.describe(result, b), len(self.validator))
                key = metric_registry.PRIMARY.key
                if None not in (result[key], b[key]) and result[key] < b[key]:  # None: every image identical
                    logger.warning("step %d: below bicubic (%.2f dB under it): %s", step, b[key] - result[key],
                                   report.below_bicubic_advice(self.args, self.eval_model))
                folder = Path(self.args.output_dir) / "validation"
                folder.mkdir(parents=True, exist_ok=True)
                grid.save(folder / f"step-{step:07d}.png")
                acc.log({f"val/{k}": v for k, v in {**result, **baseline}.items() if v is not None}, step=step)
                report.log_image(acc, "val/lr_bicubic_sr_hr", grid, step)
            acc.wait_for_everyone()
        self._validated_step = step
        return metrics

    def _record_validation(self, seconds: float, result: dict) -> None:
        """Append this step's validation to the run's history (checkpoints and the facts carry it).

        Args:
            seconds: the run's training time so far, over all resumed segments (``self.clock``).
            result: the validation's value of every registry metric.
        """
        step = self.state.step
        values = {key: result.get(key) for key in metric_registry.KEYS}
        entry = {"step": step, "wall_time_s": round(seconds, 2), **values}
        # A step validated again (finish() after resuming from the last checkpoint) replaces its entry.
        earlier = [e for e in self.state.validation_history if e["step"] < step]
        self.state.validation_history = [*earlier, entry]

    def finish(self) -> None:
        """Validate the last step if it was not, then write (and publish) the model folder.
        A failed publish ends the run in one line, after every process has finished."""
        acc, state = self.accelerator, self.state
        if self.has_validation and self._validated_step != state.step:
            self.validate()
        state.elapsed = self.clock.elapsed()
        loaders = self._gather_loaders()
        failure = None
        if acc.is_main_process:
            out = self._write_model_folder(loaders)
            try:
                self._publish(out)
            except RunFailed as err:
                failure = err
        acc.wait_for_everyone()
        acc.end_training()
        if failure is not None:
            raise failure

    def _write_model_folder(self, loaders: list[dict]) -> Path:
        """Main process: the output folder with the evaluated weights, facts and card."""
        args, state = self.args, self.state
        out = Path(args.output_dir)
        self._weights_for_eval()
        metrics = state.last_metrics if self.has_validation else {}
        facts = report.training_facts(args, self.accelerator, self.unwrapped, state, data=self.sources.description,
                                      terms=self.terms, loaders=loaders,
                                      steps_per_second=self.clock.steps_per_second(state.step),
                                      resumed_from=self.resumed_from)
        grids = sorted((out / "validation").glob("step-*.png"))
        grid = Image.open(grids[-1]).convert("RGB") if grids else None
        report.write_model_folder(self.eval_model, out, metrics=metrics, facts=facts,
                                  card_info=report.card_info(args, metrics, facts, self.terms),
                                  comparison_image=grid)
        logger.info("saved the %s weights of step %d to %s", "EMA" if self.ema else "final", state.step, out)
        return out

    def _publish(self, out: Path) -> None:
        if self.args.push_to_hub:
            url = report.publish(out, self.args.hub_model_id, private=self.args.hub_private_repo,
                                 commit_message=f"{type(self.unwrapped).__name__} x{self.args.scale}, "
                                                f"{self.state.step} steps")
            logger.info("published to %s", url)


def train(args: argparse.Namespace, model_class) -> None:
    """Train ``model_class`` as ``args`` say (see :mod:`sr_models.training.args`)."""
    Trainer(args, model_class).fit()
