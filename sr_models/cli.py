"""The command line: ``sr-models COMMAND`` (also ``python -m sr_models COMMAND``).

Commands: ``upscale`` (images in, PNG / TIFF out), ``evaluate`` (the protocol on an HR
folder), ``info`` (what a model is), ``convert-hat`` (official checkpoint -> folder),
``push`` (folder -> Hub repo) and ``app`` (the Gradio app).

Errors are one line on stderr (``-v`` adds the traceback). Exit codes: 0 done; 1 a
runtime failure (an image that failed in a batch, out of memory, a missing optional
dependency, an unexpected error); 2 a usage or input error (a bad argument, an unknown
model, a bad config.json or checkpoint, no network for the Hub, a missing file).

This module imports only the standard library at import time, so ``--help`` answers at
once: torch, PIL and the library's modules are imported by the commands that use them.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import logging
import os
import secrets
import sys
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from . import __version__

logger = logging.getLogger("sr_models")

#: Marks the temporary file an output is written to before its rename (after a hidden
#: dot: ``.a_x4.png.partial-1f2e3d4c``); neither hidden names nor this suffix are inputs.
PARTIAL_MARK = ".partial-"
#: How many skipped non-image files a folder run names.
SKIPPED_NAMES_SHOWN = 5
#: LR choices of ``evaluate --degradation``: the protocol, then the presets of
#: sr_models.degradations (named here so that --help imports no torch; a test keeps them equal).
EVALUATION_DEGRADATIONS = ("bicubic", "moderate", "realesrgan")


class CommandError(Exception):
    """A user mistake: printed as one line, exit code 2."""


class SkippedImage(Exception):
    """One image of a batch that is not written (the message names it); the run goes on."""


class Job(NamedTuple):
    src: Path  # the input file
    base: Path  # the output path without its suffix (.png or .tif, from the image mode)


# --------------------------------------------------------------------------- logging


class _TqdmHandler(logging.Handler):
    """Log records as ``level: message`` lines through tqdm, so they never break a bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(f"{record.levelname.lower()}: {self.format(record)}", file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


@contextmanager
def command_logging(verbose: bool, quiet: bool):
    """The library's log (warnings such as an animated input) on stderr while a command
    runs: DEBUG with -v, WARNING with -q, INFO otherwise. The logger is restored after,
    so that main() leaves no trace in a process that goes on (tests, notebooks)."""
    handler, level = _TqdmHandler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# --------------------------------------------------------------------------- inputs and outputs


def collect_inputs(inputs: list[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(file, path relative to the output folder) for files, folders (recursive) and globs,
    each file once; plus the inputs that matched nothing. Files in folders that are not
    images by their suffix are named in an INFO line."""
    from .evaluation import IMAGE_SUFFIXES, scan_folder

    found: dict[Path, tuple[Path, Path]] = {}  # by resolved path: a file named twice runs once
    unmatched: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images, others = scan_folder(path)
            files = [(f, f.relative_to(path)) for f in images]
            if others:
                names = ", ".join(str(f.relative_to(path)) for f in others[:SKIPPED_NAMES_SHOWN])
                more = f" and {len(others) - SKIPPED_NAMES_SHOWN} more" if len(others) > SKIPPED_NAMES_SHOWN else ""
                logger.info("%s: skipped %d file(s) that are not images by their suffix: %s%s",
                            path, len(others), names, more)
        elif path.is_file():
            files = [(path, Path(path.name))]
        else:
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            files = [(m, Path(m.name)) for m in matches if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES]
            if not files:
                unmatched.append(item)
        for src, rel in files:
            found.setdefault(src.resolve(), (src, rel))
    return list(found.values()), unmatched


def _output_base(out_dir: Path, rel: Path, scale: int, keep_suffix: bool) -> Path:
    stem = f"{rel.stem}_{rel.suffix[1:].lower()}" if keep_suffix else rel.stem
    return out_dir / rel.parent / f"{stem}_x{scale}"


def plan_outputs(files: list[tuple[Path, Path]], out_dir: Path, scale: int) -> tuple[list[Job], list[list[Path]]]:
    """One output per input, before anything runs: ``<name>_x<scale>``, or
    ``<name>_<suffix>_x<scale>`` for inputs that share a name (``x.jpg`` and ``x.png`` give
    ``x_jpg_x4.png`` and ``x_png_x4.png``). Names are compared ignoring case, as macOS and
    Windows do. Returns (jobs in input order, groups of inputs that would still write one
    file, e.g. ``x.png`` and ``X.PNG``: those are skipped)."""
    plain = [_output_base(out_dir, rel, scale, keep_suffix=False) for _, rel in files]
    shared = Counter(str(base).casefold() for base in plain)
    bases = [_output_base(out_dir, rel, scale, keep_suffix=True) if shared[str(base).casefold()] > 1 else base
             for (_, rel), base in zip(files, plain)]
    sources: dict[str, list[Path]] = defaultdict(list)
    for (src, _), base in zip(files, bases):
        sources[str(base).casefold()].append(src)
    jobs = [Job(src, base) for (src, _), base in zip(files, bases) if len(sources[str(base).casefold()]) == 1]
    return jobs, [srcs for srcs in sources.values() if len(srcs) > 1]


def save_atomically(image, path: Path, image_format: str) -> None:
    """Write ``image`` through a hidden temporary file beside ``path`` (``.NAME.partial-XXXX``),
    renamed once complete: a killed run leaves no half-written image under a real name, and
    what it leaves is never read as an input. The file mode is the usual one (0666 less the
    umask), as for any file the user creates."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{PARTIAL_MARK}{secrets.token_hex(4)}")
    try:
        with open(tmp, "xb") as f:
            image.save(f, format=image_format)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _destination(job: Job, inputs: set[Path], overwrite: bool) -> tuple[Path, str]:
    """(output path, PIL format) of a job, checked before any work: PNG, or TIFF for the
    modes PNG cannot hold (read from the file's header)."""
    from .image_io import file_format, open_image

    with open_image(job.src, max_pixels=sys.maxsize) as probe:  # the size limit is upscale()'s
        image_format, suffix = file_format(probe.mode)
    dst = job.base.with_name(job.base.name + suffix)
    if dst.resolve() in inputs:
        raise SkippedImage(f"{job.src}: output {dst} would overwrite an input; skipped")
    if dst.exists() and not overwrite:
        raise SkippedImage(f"{job.src}: {dst} exists; skipped (use --overwrite to replace it)")
    return dst, image_format


def _out_of_memory(err: Exception) -> bool:
    return isinstance(err, MemoryError) or "out of memory" in str(err).lower()


def _describe_failure(src: Path, err: Exception) -> str:
    """One line naming the image and what went wrong (with a hint for out of memory)."""
    text = " ".join(str(err).split()) or type(err).__name__
    if not isinstance(err, (ValueError, OSError, SkippedImage)):
        text = f"{type(err).__name__}: {text}"
    if str(src) not in text:
        text = f"{src}: {text}"
    if _out_of_memory(err):
        text += " (out of memory: try a smaller --tile, e.g. --tile 256)"
    return text


def _release_gpu_cache() -> None:
    """After an out-of-memory error, so that the next image starts from a clean slate."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- commands


def _check_run_options(args: argparse.Namespace, models) -> None:
    """Device, precision and tiling are checked once, before any image (exit 2)."""
    from .pipeline import autocast_context, check_tiling, resolve_device

    autocast_context(resolve_device(args.device), args.dtype)
    for model in models:
        check_tiling(model, args.tile, args.tile_overlap)


def cmd_upscale(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .loading import load_model

    files, unmatched = collect_inputs(args.inputs)
    for item in unmatched:
        print(f"error: {item}: no such file, folder or matching image", file=sys.stderr)
    if not files:
        raise CommandError("no input images")
    model = load_model(args.model, random_weights=args.random_weights)
    _check_run_options(args, [model])
    out_dir = Path(args.output)
    jobs, clashes = plan_outputs(files, out_dir, model.scale)
    for srcs in clashes:
        print(f"error: {', '.join(map(str, srcs))} would write the same output; skipped (rename one)", file=sys.stderr)
    inputs = {src.resolve() for src, _ in files}
    written = 0
    bar = tqdm(jobs, unit="img", disable=args.quiet)
    for job in bar:
        bar.set_postfix_str(job.src.name)
        try:
            _upscale_one(model, job, inputs, args, bar)
            written += 1
        except Exception as err:  # noqa: BLE001 - one image's failure is reported, the run goes on
            tqdm.write(f"error: {_describe_failure(job.src, err)}", file=sys.stderr)
            logger.debug("%s failed", job.src, exc_info=err)
            if _out_of_memory(err):
                _release_gpu_cache()
    bar.close()
    failed = len(files) - written
    print(f"{written} of {len(files)} images written to {out_dir}" + (f"; {failed} failed" if failed else ""))
    return 1 if failed or unmatched else 0


def _upscale_one(model, job: Job, inputs: set[Path], args: argparse.Namespace, bar) -> None:
    """Upscale and write one image (SkippedImage when its output may not be written)."""
    from .image_io import DEFAULT_MAX_PIXELS
    from .pipeline import upscale

    dst, image_format = _destination(job, inputs, args.overwrite)
    result = upscale(model, job.src, tile=args.tile, tile_overlap=args.tile_overlap, device=args.device,
                     dtype=args.dtype, max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
                     progress=lambda done, total: bar.set_postfix_str(f"{job.src.name} tile {done}/{total}",
                                                                      refresh=False))
    save_atomically(result, dst, image_format)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .evaluation import evaluate, find_images
    from .loading import DEFAULT_MODELS, load_model

    hr_images = find_images(args.hr)[: args.limit]
    if not hr_images:
        raise CommandError(f"no images in {args.hr}")
    models = {name: load_model(name, scale=args.scale, random_weights=args.random_weights)
              for name in args.model or DEFAULT_MODELS}
    _check_run_options(args, models.values())
    hr_size = args.hr_size or None  # 0 keeps the size
    bar = tqdm(total=len(hr_images), unit="img", disable=args.quiet)
    result = evaluate(models, hr_images, scale=args.scale, hr_size=hr_size, degradation=args.degradation,
                      seed=args.seed, tile=args.tile, tile_overlap=args.tile_overlap, device=args.device,
                      dtype=args.dtype, on_image=lambda _: bar.update())
    bar.close()
    print(f"x{args.scale}, {len(result.images)} images from {args.hr}" + (f" at {hr_size}px" if hr_size else ""))
    print(result.table())
    json_path, csv_path = result.write(args.output_dir)
    print(f"wrote {json_path} and {csv_path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import json

    from .loading import BUNDLED, load_bundled, load_model

    if args.model in BUNDLED:
        model, source = load_bundled(args.model)
    else:  # a preset is only described here, never used to upscale
        model, source = load_model(args.model, random_weights=True), args.model
    print(f"model:        {args.model}")
    print(f"architecture: {type(model).__name__}")
    print(f"weights:      {f'pretrained ({source})' if model.pretrained else 'random (untrained preset)'}")
    print(f"scale:        x{model.scale}")
    print(f"parameters:   {model.num_parameters:,} ({model.num_parameters / 1e6:.2f} M)")
    print(f"pad multiple: {model.pad_multiple}")
    print(f"format:       {_portability(model)}")
    training_lr = ((model.card_info.training if model.card_info else None) or {}).get("degradation")
    if training_lr:  # the model card of weights the training scripts wrote says how their LR was made
        print(f"trained on:   {training_lr}")
    print("config:       " + json.dumps(model.config, sort_keys=True))
    return 0


def _portability(model) -> str:
    """Whether other tools can run these weights (the card says the same)."""
    if type(model).__name__ != "HAT":
        return "sr-models"
    if model.config.get("global_residual"):
        return ("official HAT layout, but needs sr-models: global_residual=True is not in the official forward "
                "(tools that read official HAT files load it and give a wrong image)")
    return "official HAT layout and forward (opens in tools that read official HAT checkpoints)"


def cmd_convert_hat(args: argparse.Namespace) -> int:
    from .convert_hat import load_official

    out = Path(args.out_dir)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise CommandError(f"{out} exists and is not empty; pass --overwrite to replace its files")
    model = load_official(args.checkpoint)
    model.save_pretrained(out)
    print(f"converted {args.checkpoint} -> {out} (HAT x{model.scale}, {model.num_parameters / 1e6:.2f} M parameters)")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from .publish import push_folder

    url = push_folder(args.folder, args.repo_id, private=args.private, revision=args.revision,
                      commit_message=args.commit_message)
    print(f"pushed {args.folder} to {args.repo_id}: {url}")
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    """The Gradio app (sr_models/app.py), with the options its own parser takes."""
    try:
        app = importlib.import_module("sr_models.app")
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] != "gradio":
            raise
        print("error: the app needs gradio: pip install 'sr-models[app]'", file=sys.stderr)
        return 1
    app.main(args.app_args)
    return 0


# --------------------------------------------------------------------------- parser


def _positive_int(value: str) -> int:
    return _bounded_int(value, 1, "a positive integer")


def _non_negative_int(value: str) -> int:
    return _bounded_int(value, 0, "an integer >= 0")


def _bounded_int(value: str, lowest: int, expected: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = lowest - 1
    if number < lowest:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
    return number


def _tile(value: str) -> int | str | None:
    if value in ("auto", "none"):
        return None if value == "none" else value
    try:
        return _positive_int(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, 'auto' or 'none', got {value!r}") from None


def _log_options() -> argparse.ArgumentParser:
    """-v / -q, accepted before and after the command (unset unless given: see main)."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="debug log, and the traceback of an error")
    options.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                         help="no progress bars; warnings and errors only")
    return options


def _run_options() -> argparse.ArgumentParser:
    """Options shared by upscale and evaluate."""
    run = argparse.ArgumentParser(add_help=False)
    run.add_argument("--tile", type=_tile, default="auto", metavar="N|auto|none",
                     help="LR tile side in pixels; 'auto' tiles only an image that would not fit in half the "
                          "free memory; 'none' never tiles (default: %(default)s)")
    run.add_argument("--tile-overlap", type=_non_negative_int, default=None, metavar="N",
                     help="LR pixels shared by neighbouring tiles (default: ESPCN's receptive field, "
                          "two attention windows for HAT)")
    run.add_argument("--device", default=None, help="cuda, cuda:N, mps or cpu (default: the best available)")
    run.add_argument("--dtype", default=None,
                     help="autocast precision: bfloat16 or float16 (default: float32, no autocast)")
    run.add_argument("--random-weights", action="store_true",
                     help="allow a preset name (espcn, hat-s, ...): a model with random, untrained weights")
    return run


def _add_upscale(commands, parents) -> None:
    up = commands.add_parser("upscale", parents=parents, help="super-resolve image files, folders or globs",
                             description="Super-resolve images. Outputs are <name>_x<scale>.png (.tif for float "
                                         "and CMYK images); inputs that share a name (x.jpg, x.png) give "
                                         "<name>_<suffix>_x<scale>. A failed image is reported and the run goes on.")
    up.add_argument("inputs", nargs="+", help="image files, folders (recursive) or glob patterns")
    up.add_argument("-o", "--output", required=True, help="output folder")
    up.add_argument("--model", default="hat-faces",
                    help="bundled weights (hat-faces, espcn-faces), a save_pretrained folder, a Hub repo id or "
                         "an official .pth (default: %(default)s)")
    up.add_argument("--overwrite", action="store_true", help="replace existing outputs (inputs never are)")
    up.add_argument("--max-pixels", type=_positive_int, default=None, metavar="N",
                    help="refuse larger inputs (default: 40 MP, the library's limit)")
    up.set_defaults(func=cmd_upscale)


def _add_evaluate(commands, parents) -> None:
    ev = commands.add_parser("evaluate", parents=parents, help="PSNR / SSIM of bicubic and models on an HR folder")
    ev.add_argument("--model", action="append", default=None,
                    help="a model to evaluate (repeatable; default: every bundled model)")
    ev.add_argument("--hr", required=True, help="folder of HR images")
    ev.add_argument("--scale", type=_positive_int, default=4, metavar="N",
                    help="upscaling factor: the HR is degraded by it and every model must have it (default: %(default)s)")
    ev.add_argument("--hr-size", type=_non_negative_int, default=256, metavar="N",
                    help="HR side after centre crop and resize; 0 keeps the size (default: %(default)s)")
    ev.add_argument("--limit", type=_positive_int, default=None, metavar="N", help="evaluate the first N images only")
    ev.add_argument("--degradation", choices=EVALUATION_DEGRADATIONS, default="bicubic",
                    help="how the LR inputs are made: bicubic = the protocol's PIL bicubic downscale; a realistic "
                         "degradation preset (blur, noise, JPEG; sr_models.degradations) gives every image one "
                         "fixed LR for a given --seed (default: %(default)s)")
    ev.add_argument("--seed", type=_non_negative_int, default=0, metavar="N",
                    help="seed of a realistic --degradation (default: %(default)s)")
    ev.add_argument("--output-dir", default="evaluation",
                    help="where results.json and results.csv go (default: %(default)s)")
    ev.set_defaults(func=cmd_evaluate)


def _add_model_tools(commands, parents) -> None:
    info = commands.add_parser("info", parents=parents, help="architecture, weights, config and scale of a model")
    info.add_argument("model", help="bundled name, save_pretrained folder, Hub repo id, official .pth, or preset")
    info.set_defaults(func=cmd_info)

    convert = commands.add_parser("convert-hat", parents=parents, help="official HAT checkpoint -> save_pretrained folder")
    convert.add_argument("checkpoint", help="official .pth (params_ema / params) or .safetensors")
    convert.add_argument("out_dir")
    convert.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    convert.set_defaults(func=cmd_convert_hat)

    push = commands.add_parser("push", parents=parents, help="publish a saved model folder to the Hub in one commit")
    push.add_argument("folder", help="a save_pretrained folder (config.json, model.safetensors, README.md)")
    push.add_argument("--repo-id", required=True, help="USER/NAME on the Hub (created if missing)")
    push.add_argument("--private", action="store_true", help="create the repo as private")
    push.add_argument("--revision", default=None, help="branch to commit to (created if missing; default: main)")
    push.add_argument("--commit-message", default=None)
    push.set_defaults(func=cmd_push)

    # add_help=False: --help goes on to the app's own parser, which lists its options
    app = commands.add_parser("app", parents=parents, add_help=False,
                              help="launch the Gradio app (needs the [app] extra): --host, --port N, --share")
    app.set_defaults(func=cmd_app)


def build_parser() -> argparse.ArgumentParser:
    log_options = _log_options()
    parser = argparse.ArgumentParser(
        prog="sr-models", parents=[log_options], description="ESPCN and HAT super-resolution.",
        epilog="exit codes: 0 done, 1 a runtime failure (e.g. an image that failed), 2 a usage or input error")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_upscale(commands, [log_options, _run_options()])
    _add_evaluate(commands, [log_options, _run_options()])
    _add_model_tools(commands, [log_options])
    return parser


# --------------------------------------------------------------------------- main


def _exit_code(err: BaseException) -> int:
    """2 for what the user can fix in the command or its inputs, 1 for the rest."""
    from .hub import WeightsMismatchError
    from .publish import PublishError

    usage = (CommandError, ValueError, TypeError, OSError, WeightsMismatchError, PublishError)
    return 2 if isinstance(err, usage) else 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "app":
        args.app_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.verbose, args.quiet = getattr(args, "verbose", False), getattr(args, "quiet", False)
    with command_logging(args.verbose, args.quiet):
        try:
            return args.func(args)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # the reader went away (| head): stop quietly, as other tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except Exception as err:  # noqa: BLE001 - every error ends as one line (the traceback with -v)
            print(f"error: {' '.join(str(err).split()) or type(err).__name__}", file=sys.stderr)
            logger.debug("traceback", exc_info=err)
            return _exit_code(err)
