"""Command line: ``python -m sr_models COMMAND`` (also installed as ``sr-models``).

Commands: ``upscale`` (images in, PNGs out), ``evaluate`` (the protocol on an HR
folder), ``info`` (what a model is), ``convert-hat`` (official checkpoint -> folder) and
``push`` (folder -> Hub repo).
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from .evaluation import IMAGE_SUFFIXES, evaluate, find_images
from .convert_hat import OfficialCheckpointError, load_official
from .loading import load_model
from .pipeline import DEFAULT_MAX_PIXELS, DTYPES, ImageInputError, upscale
from .publish import PublishError, push_folder

logger = logging.getLogger("sr_models")


class CommandError(Exception):
    """A user mistake: printed as one line, exit code 2."""


def collect_inputs(inputs: list[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(file, path relative to the output folder) for files, folders (recursive) and globs;
    plus the inputs that matched nothing."""
    found: list[tuple[Path, Path]] = []
    unmatched: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += [(f, f.relative_to(path)) for f in find_images(path)]
        elif path.is_file():
            found.append((path, Path(path.name)))
        else:
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            files = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES]
            if files:
                found += [(f, Path(f.name)) for f in files]
            else:
                unmatched.append(item)
    return found, unmatched


def save_atomically(image, path: Path) -> None:
    """Write a PNG through a temporary file, so an interrupted run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cmd_upscale(args: argparse.Namespace) -> int:
    files, unmatched = collect_inputs(args.inputs)
    for item in unmatched:
        print(f"error: {item}: no such file, folder or matching image", file=sys.stderr)
    if not files:
        raise CommandError("no input images")
    model = load_model(args.model)
    out_dir = Path(args.output)
    inputs = {f.resolve() for f, _ in files}
    failures = len(unmatched)
    bar = tqdm(files, unit="img", disable=args.quiet)
    for src, rel in bar:
        dst = out_dir / rel.parent / f"{rel.stem}_x{model.scale}.png"
        bar.set_postfix_str(src.name)
        if dst.resolve() in inputs:
            tqdm.write(f"error: {src}: output {dst} would overwrite an input; skipped", file=sys.stderr)
            failures += 1
            continue
        if dst.exists() and not args.overwrite:
            tqdm.write(f"error: {dst} exists; skipped (use --overwrite to replace it)", file=sys.stderr)
            failures += 1
            continue
        try:
            result = upscale(model, src, tile=args.tile, tile_overlap=args.tile_overlap, device=args.device,
                             dtype=args.dtype, max_pixels=args.max_pixels,
                             progress=lambda done, total: bar.set_postfix_str(f"{src.name} tile {done}/{total}", refresh=False))
            save_atomically(result, dst)
        except (ImageInputError, OSError) as err:
            tqdm.write(f"error: {err}", file=sys.stderr)
            failures += 1
    bar.close()
    print(f"{len(files) - failures + len(unmatched)} of {len(files)} images written to {out_dir}"
          + (f"; {failures} failed" if failures else ""))
    return 1 if failures else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    hr_images = find_images(args.hr)
    if args.limit:
        hr_images = hr_images[: args.limit]
    if not hr_images:
        raise CommandError(f"no images in {args.hr}")
    models = {name: load_model(name, scale=args.scale) for name in args.model or ["espcn-faces", "hat-faces"]}
    bar = tqdm(total=len(hr_images), unit="img", disable=args.quiet)
    result = evaluate(models, hr_images, scale=args.scale, hr_size=args.hr_size, tile=args.tile,
                      device=args.device, dtype=args.dtype, on_image=lambda _: bar.update())
    bar.close()
    print(f"x{args.scale}, {len(result.images)} images from {args.hr}" + (f" at {args.hr_size}px" if args.hr_size else ""))
    print(result.table())
    json_path, csv_path = result.write(args.output_dir)
    print(f"wrote {json_path} and {csv_path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    config = model.config
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


def cmd_push(args: argparse.Namespace) -> int:
    url = push_folder(args.folder, args.repo_id, private=args.private, revision=args.revision,
                      commit_message=args.commit_message)
    print(f"pushed {args.folder} to {args.repo_id}: {url}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sr-models", description="ESPCN and HAT super-resolution.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    commands = parser.add_subparsers(dest="command", required=True)

    run = argparse.ArgumentParser(add_help=False)  # options shared by upscale and evaluate
    run.add_argument("--tile", type=_tile, default=None, help="LR tile side in pixels, or 'auto' (default: no tiling)")
    run.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    run.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="autocast precision (default float32)")

    up = commands.add_parser("upscale", parents=[run], help="super-resolve image files, folders or globs")
    up.add_argument("inputs", nargs="+", help="image files, folders (recursive) or glob patterns")
    up.add_argument("-o", "--output", required=True, help="output folder (PNG files named <name>_x<scale>.png)")
    up.add_argument("--model", default="hat-faces",
                    help="bundled weights (hat-faces, espcn-faces; the default is hat-faces), save_pretrained "
                         "folder, Hub repo id, official .pth, or a preset (random weights)")
    up.add_argument("--tile-overlap", type=int, default=None, help="LR pixels shared by neighbouring tiles")
    up.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    up.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger inputs")
    up.set_defaults(func=cmd_upscale)

    ev = commands.add_parser("evaluate", parents=[run], help="PSNR / SSIM of bicubic and models on an HR folder")
    ev.add_argument("--model", action="append", default=None,
                    help="a model to evaluate (repeatable; default: espcn-faces and hat-faces)")
    ev.add_argument("--hr", required=True, help="folder of HR images")
    ev.add_argument("--scale", type=int, default=4)
    ev.add_argument("--hr-size", type=int, default=256, help="HR side after centre crop and resize; 0 keeps the size")
    ev.add_argument("--limit", type=int, default=None, help="evaluate the first N images only")
    ev.add_argument("--output-dir", default="evaluation", help="where results.json and results.csv go")
    ev.set_defaults(func=cmd_evaluate)

    info = commands.add_parser("info", help="architecture, config, parameters and scale of a model")
    info.add_argument("model", help="preset name, save_pretrained folder, Hub repo id, or official .pth")
    info.set_defaults(func=cmd_info)

    convert = commands.add_parser("convert-hat", help="official HAT checkpoint -> save_pretrained folder")
    convert.add_argument("checkpoint", help="official .pth (params_ema / params) or .safetensors")
    convert.add_argument("out_dir")
    convert.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    convert.set_defaults(func=cmd_convert_hat)

    push = commands.add_parser("push", help="publish a saved model folder to the Hub in one commit")
    push.add_argument("folder", help="a save_pretrained folder (config.json, model.safetensors, README.md)")
    push.add_argument("--repo-id", required=True, help="USER/NAME on the Hub (created if missing)")
    push.add_argument("--private", action="store_true", help="create the repo as private")
    push.add_argument("--revision", default=None, help="branch to commit to (created if missing)")
    push.add_argument("--commit-message", default=None)
    push.set_defaults(func=cmd_push)
    return parser


def _tile(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {value!r}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "hr_size", None) == 0:
        args.hr_size = None
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s")
    try:
        return args.func(args)
    except (CommandError, OfficialCheckpointError, PublishError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
