"""The command line: ``sr-models COMMAND`` (also ``python -m sr_models COMMAND``).

Commands: ``upscale`` (images in, PNG / TIFF out), ``evaluate`` (the protocol on an HR
folder), ``info`` (what a model is), ``convert`` (a weights file, e.g. an official HAT
checkpoint -> folder; ``convert-hat`` is its earlier name), ``push`` (folder -> Hub repo),
``app`` (the Gradio app) and ``space deploy`` (the app -> a Hugging Face Space).

Errors are one line on stderr (``-v`` adds the traceback). Exit codes: 0 done; 1 a
runtime failure (an image that failed in a batch, out of memory, a missing optional
dependency, an unexpected error); 2 a usage or input error (a bad argument, an unknown
model, a bad config.json or checkpoint, no network for the Hub, a missing file); 130
Ctrl-C and 143 SIGTERM, after the same clean-up.

This module holds the parser and main(); the commands live in cli_upscale.py and
cli_commands.py, on top of cli_models.py (which models), cli_files.py (output files) and
cli_errors.py (how failures are said). All of them import only the standard library at
import time, so ``--help`` answers at once: torch, PIL and the library's modules are
imported by the commands that use them.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager

from . import __version__
from .cli_commands import cmd_app, cmd_convert, cmd_evaluate, cmd_info, cmd_push, cmd_space_deploy
from .cli_errors import CommandError, Terminated
from .cli_models import DEFAULT_UPSCALE_MODEL, help_names
from .cli_upscale import cmd_upscale, denoise_strength
from .validation import non_negative_int, positive_int

logger = logging.getLogger("sr_models")

#: LR choices of ``evaluate --degradation``: the protocol, then the presets of
#: sr_models.degradations (named here so that --help imports no torch; a test keeps them equal).
EVALUATION_DEGRADATIONS = ("bicubic", "moderate", "realesrgan")


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


# --------------------------------------------------------------------------- parser


def _tile(value: str) -> int | str | None:
    if value in ("auto", "none"):
        return None if value == "none" else value
    try:
        return positive_int(value)
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


class _HelpFormatter(argparse.HelpFormatter):
    """Fills in the model names of a help text ({bundled}, {default_models}) from
    sr_models.loading, the one list, when the text is shown: only ``COMMAND --help`` pays
    for importing the library; ``sr-models --help`` and every parse do not."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if text and "{" in text:
            for placeholder, names in help_names().items():
                text = text.replace(placeholder, names)
        return text


def _run_options() -> argparse.ArgumentParser:
    """Options shared by upscale and evaluate."""
    run = argparse.ArgumentParser(add_help=False)
    run.add_argument("--tile", type=_tile, default="auto", metavar="N|auto|none",
                     help="LR tile side in pixels; 'auto' tiles only an image that would not fit in half the "
                          "free memory; 'none' never tiles (default: %(default)s)")
    run.add_argument("--tile-overlap", type=non_negative_int, default=None, metavar="N",
                     help="LR pixels shared by neighbouring tiles (default: ESPCN's receptive field, "
                          "two attention windows for HAT)")
    run.add_argument("--tile-workers", type=positive_int, default=1, metavar="N",
                     help="on the CPU, tiles run at once, each on one thread: often faster than one tile on "
                          "every thread, with N tiles' memory (default: %(default)s)")
    run.add_argument("--device", default=None, help="cuda, cuda:N, mps or cpu (default: the best available)")
    run.add_argument("--dtype", default=None,
                     help="autocast precision: bfloat16 or float16 (default: float32, no autocast)")
    run.add_argument("--random-weights", action="store_true",
                     help="allow a preset name (espcn, hat-s, ...): a model with random, untrained weights")
    return run


def _add_upscale(commands, parents) -> None:
    up = commands.add_parser(
        "upscale", parents=parents, formatter_class=_HelpFormatter, help="super-resolve image files, folders or globs",
        description="Super-resolve images. Outputs are <name>_x<scale>.png (.tif for float and CMYK images); inputs "
                    "that share a name (x.jpg, x.png) give <name>_<suffix>_x<scale>; with several models (or "
                    "--model-in-name) every name carries its model: <name>_<model>_x<scale>. A failed image is "
                    "reported and the run goes on.")
    up.add_argument("inputs", nargs="+", help="image files, folders (recursive) or glob patterns")
    up.add_argument("-o", "--output", required=True, help="output folder")
    up.add_argument("--model", action="append", default=None,
                    help="bundled weights ({bundled}), a save_pretrained folder, a Hub repo id or an official .pth; "
                         f"repeatable: each model upscales every input (default: {DEFAULT_UPSCALE_MODEL})")
    up.add_argument("--model-in-name", action="store_true",
                    help="put the model in every output name, <name>_<model>_x<scale> (always so with several "
                         "--model), so that runs of other models can write into the same folder")
    existing = up.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing outputs (inputs never are)")
    existing.add_argument("--skip-existing", action="store_true",
                          help="leave existing outputs as they are and count them apart, not as failures (to "
                               "resume a run)")
    up.add_argument("--max-pixels", type=positive_int, default=None, metavar="N",
                    help="refuse larger inputs (default: 40 MP, the library's limit)")
    up.add_argument("--denoise", type=denoise_strength, default=None, metavar="S",
                    help="for the bundled real-photo models (*-real) only: blend them with the clean model "
                         "they were fine-tuned from; 1 = the real-photo model as shipped, 0 = the clean model, "
                         "lower keeps more detail and more noise (default: the real-photo model as shipped)")
    up.set_defaults(func=cmd_upscale)


def _add_evaluate(commands, parents) -> None:
    ev = commands.add_parser("evaluate", parents=parents, formatter_class=_HelpFormatter,
                             help="PSNR / SSIM of bicubic and models on an HR folder")
    ev.add_argument("--model", action="append", default=None,
                    help="a model to evaluate: bundled weights ({bundled}), a save_pretrained folder, a Hub repo "
                         "id or an official .pth (repeatable; default: {default_models})")
    ev.add_argument("--hr", required=True, help="folder of HR images")
    ev.add_argument("--scale", type=positive_int, default=4, metavar="N",
                    help="upscaling factor: the HR is degraded by it and every model must have it (default: %(default)s)")
    ev.add_argument("--hr-size", type=non_negative_int, default=256, metavar="N",
                    help="HR side after centre crop and resize; 0 keeps the size (default: %(default)s)")
    ev.add_argument("--limit", type=positive_int, default=None, metavar="N", help="evaluate the first N images only")
    ev.add_argument("--degradation", choices=EVALUATION_DEGRADATIONS, default="bicubic",
                    help="how the LR inputs are made: bicubic = the protocol's PIL bicubic downscale; a realistic "
                         "degradation preset (blur, noise, JPEG; sr_models.degradations) gives every image one "
                         "fixed LR for a given --seed (default: %(default)s)")
    ev.add_argument("--seed", type=non_negative_int, default=0, metavar="N",
                    help="seed of a realistic --degradation (default: %(default)s)")
    ev.add_argument("--output-dir", default="evaluation",
                    help="where results.json and results.csv go (default: %(default)s)")
    ev.set_defaults(func=cmd_evaluate)


def _add_model_tools(commands, parents) -> None:
    info = commands.add_parser("info", parents=parents, formatter_class=_HelpFormatter,
                               help="architecture, weights, config and scale of a model")
    info.add_argument("model", help="bundled weights ({bundled}), a save_pretrained folder, a Hub repo id, an "
                                    "official .pth, or a preset")
    info.set_defaults(func=cmd_info)

    convert = commands.add_parser(
        "convert", aliases=["convert-hat"], parents=parents, help="a weights file -> save_pretrained folder",
        description="Convert a single weights file into a save_pretrained folder; the architecture is detected from "
                    "its keys and the configuration inferred from its shapes. convert-hat is the same command.")
    convert.add_argument("checkpoint", help="an official HAT .pth (params_ema / params) or .safetensors, or the "
                                            "bare state dict of a model of this library (e.g. an ESPCN)")
    convert.add_argument("out_dir")
    convert.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    convert.set_defaults(func=cmd_convert)

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


def _add_space(commands, parents) -> None:
    space = commands.add_parser("space", help="the app as a Hugging Face Space: space deploy")
    actions = space.add_subparsers(dest="space_command", required=True, metavar="ACTION")
    deploy = actions.add_parser(
        "deploy", parents=parents, help="create or update a Gradio Space running the app, in one commit",
        description="Upload the app to a Gradio Space (created if missing): app.py, the sr_models package, the "
                    "bundled weights, the examples, requirements.txt (with PyTorch's CPU wheels) and a README.md "
                    "whose front matter is this checkout's. Run it from a source checkout.")
    deploy.add_argument("--repo-id", required=True, help="USER/NAME of the Space")
    deploy.add_argument("--private", action="store_true", help="create the Space as private")
    deploy.add_argument("--token", default=None,
                        help="a Hub token with write access (default: the login of `hf auth login`, or HF_TOKEN)")
    deploy.set_defaults(func=cmd_space_deploy)


def build_parser() -> argparse.ArgumentParser:
    log_options = _log_options()
    parser = argparse.ArgumentParser(
        prog="sr-models", parents=[log_options], description="ESPCN and HAT super-resolution.",
        epilog="exit codes: 0 done, 1 a runtime failure (e.g. an image that failed), 2 a usage or input error, "
               "130 interrupted (Ctrl-C), 143 terminated (SIGTERM)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_upscale(commands, [log_options, _run_options()])
    _add_evaluate(commands, [log_options, _run_options()])
    _add_model_tools(commands, [log_options])
    _add_space(commands, [log_options])
    return parser


# --------------------------------------------------------------------------- main


def _exit_code(err: BaseException) -> int:
    """2 for what the user can fix in the command or its inputs, 1 for the rest."""
    from .hub import WeightsMismatchError
    from .publish import PublishError

    usage = (CommandError, ValueError, TypeError, OSError, WeightsMismatchError, PublishError)
    return 2 if isinstance(err, usage) else 1


def _raise_terminated(signum: int, frame) -> None:
    raise Terminated


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises Terminated wherever the command is, as Ctrl-C raises KeyboardInterrupt,
    so that a stopped run unwinds and cleans up the same way. Only the main thread may set
    a handler; the one before is restored after (main() leaves no trace)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)  # None: set outside Python


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "app":
        args.app_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.verbose, args.quiet = getattr(args, "verbose", False), getattr(args, "quiet", False)
    with command_logging(args.verbose, args.quiet), sigterm_as_interrupt():
        try:
            return args.func(args)
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (Terminated): 128 + the signal, as shells say
            stopped = isinstance(err, Terminated)
            print("terminated" if stopped else "interrupted", file=sys.stderr)
            return 128 + (signal.SIGTERM if stopped else signal.SIGINT)
        except BrokenPipeError:  # the reader went away (| head): stop quietly, as other tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except Exception as err:  # noqa: BLE001 - every error ends as one line (the traceback with -v)
            print(f"error: {' '.join(str(err).split()) or type(err).__name__}", file=sys.stderr)
            logger.debug("traceback", exc_info=err)
            return _exit_code(err)
