"""Command line: ``python -m sr_models COMMAND`` (also installed as ``sr-models``).

Commands: ``info`` (what a model is) and ``convert-hat`` (official checkpoint -> folder).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .hat import OfficialCheckpointError, load_official
from .loading import load_model

logger = logging.getLogger("sr_models")


class CommandError(Exception):
    """A user mistake: printed as one line, exit code 2."""


def cmd_info(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    config = {k: v for k, v in (model._hub_mixin_config or {}).items()}
    print(f"model:        {args.model}")
    print(f"architecture: {type(model).__name__}")
    print(f"scale:        x{model.scale}")
    print(f"parameters:   {model.num_parameters:,} ({model.num_parameters / 1e6:.2f} M)")
    print(f"pad multiple: {model.pad_multiple}")
    print("config:       " + json.dumps(config, sort_keys=True))
    return 0


def cmd_convert_hat(args: argparse.Namespace) -> int:
    out = Path(args.out_dir)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise CommandError(f"{out} exists and is not empty; pass --overwrite to replace its files")
    model = load_official(args.checkpoint)
    model.save_pretrained(out)
    print(f"converted {args.checkpoint} -> {out} (HAT x{model.scale}, {model.num_parameters / 1e6:.2f} M parameters)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sr-models", description="ESPCN and HAT super-resolution.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="architecture, config, parameters and scale of a model")
    info.add_argument("model", help="preset name, save_pretrained folder, Hub repo id, or official .pth")
    info.set_defaults(func=cmd_info)

    convert = commands.add_parser("convert-hat", help="official HAT checkpoint -> save_pretrained folder")
    convert.add_argument("checkpoint", help="official .pth (params_ema / params) or .safetensors")
    convert.add_argument("out_dir")
    convert.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    convert.set_defaults(func=cmd_convert_hat)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s")
    try:
        return args.func(args)
    except (CommandError, OfficialCheckpointError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
