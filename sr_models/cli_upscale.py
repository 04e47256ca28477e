"""``sr-models upscale``: image files, folders and globs in; one output per input and model,
planned and checked before any work, written whole; an image that fails is reported and
the run goes on. The library (torch, PIL) is imported inside the functions only."""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import NamedTuple

from .cli_errors import CommandError, OutputExists, SkippedImage, describe_failure, out_of_memory
from .cli_files import check_output_folder, name_too_long, save_atomically
from .cli_models import DEFAULT_UPSCALE_MODEL, check_run_options, load_models, model_tag
from .validation import number_in

logger = logging.getLogger("sr_models")

#: How many names of skipped files (not images, broken links) a folder run lists.
SKIPPED_NAMES_SHOWN = 5
#: From this many pixels on, a size is also said in megapixels.
MEGAPIXEL_SHOWN = 100_000


class Job(NamedTuple):
    src: Path  # the input file
    base: Path  # the output path without its suffix (.png or .tif, from the image mode)
    model: object  # the model that writes it


# --------------------------------------------------------------------------- models


def denoise_strength(text: str) -> float:
    """argparse type of ``--denoise``: a number in [0, 1] (sr_models.denoise's range)."""
    check, expected = number_in(0.0, 1.0)
    try:
        value = float(text)
    except ValueError:
        value = None
    if not check(value):
        raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
    return value


def load_upscale_models(names: list[str], args: argparse.Namespace) -> dict:
    """{name: model}; with ``--denoise``, each real-photo bundled model blended with its clean
    partner at that strength (a model without one is a usage error, exit 2)."""
    if args.denoise is None:
        return load_models(names, args)
    from .bundled import denoisable_names
    from .loading import load_model

    refused = [name for name in names if name not in denoisable_names()]
    if refused:
        raise CommandError(f"--denoise applies to the bundled real-photo models ({', '.join(denoisable_names())}), "
                           f"which have a clean partner to blend with; not to {', '.join(refused)}")
    models = {name: load_model(name, denoise=args.denoise) for name in names}
    check_run_options(args, models.values())
    return models


# --------------------------------------------------------------------------- inputs


def collect_inputs(inputs: list[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(file, path relative to the output folder) for files, folders (recursive) and globs,
    each file once; plus the inputs that matched nothing. Files in folders that are not
    images by their suffix are listed in an INFO line, broken symbolic links in a warning."""
    from .evaluation import IMAGE_SUFFIXES, scan_folder

    found: dict[Path, tuple[Path, Path]] = {}  # by resolved path: a file named twice runs once
    unmatched: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images, others = scan_folder(path)
            files = [(f, f.relative_to(path)) for f in images]
            _list_skipped(path, "file(s) that are not images by their suffix", others, logging.INFO)
            _list_skipped(path, "broken symbolic link(s)", _broken_links(path), logging.WARNING)
        elif path.is_file():
            files = [(path, Path(path.name))]
        else:
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            files = [(m, Path(m.name)) for m in matches if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES]
            broken = [m for m in matches if not m.exists()]  # glob lists links whose target is gone
            _list_skipped(None, "broken symbolic link(s)", broken, logging.WARNING)
            if not files and not broken:
                unmatched.append(item)
        for src, rel in files:
            found.setdefault(src.resolve(), (src, rel))
    return list(found.values()), unmatched


def _broken_links(folder: Path) -> list[Path]:
    """Symbolic links under ``folder`` whose target is gone (folder scans leave them out,
    as they are no files), hidden ones excepted as in the scan."""
    return sorted(p for p in folder.rglob("*") if p.is_symlink() and not p.exists()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _list_skipped(folder: Path | None, what: str, paths: list[Path], level: int) -> None:
    """One line: ``FOLDER: skipped N WHAT: a, b, c, d, e and 2 more`` (names relative to it)."""
    if not paths:
        return
    names = ", ".join(str(p.relative_to(folder) if folder else p) for p in paths[:SKIPPED_NAMES_SHOWN])
    more = f" and {len(paths) - SKIPPED_NAMES_SHOWN} more" if len(paths) > SKIPPED_NAMES_SHOWN else ""
    logger.log(level, "%sskipped %d %s: %s%s", f"{folder}: " if folder else "", len(paths), what, names, more)


# --------------------------------------------------------------------------- outputs


def model_tags(names: list[str], always: bool) -> list[str | None]:
    """Each model's part of its output names (``<name>_<model>_x<scale>``): none for one
    model unless ``always`` (--model-in-name), so that the default stays ``<name>_x<scale>``;
    with several models, every name carries its model and no two models share one."""
    if len(names) == 1 and not always:
        return [None]
    tags = [model_tag(name) for name in names]
    shared = [tag for tag, count in Counter(tags).items() if count > 1]
    if shared:
        raise CommandError(f"--model: several models would write outputs named after {shared[0]!r}; give each "
                           "model once (rename a folder if two have one name)")
    return tags


def _output_base(out_dir: Path, rel: Path, scale: int, keep_suffix: bool, tag: str | None) -> Path:
    stem = f"{rel.stem}_{rel.suffix[1:].lower()}" if keep_suffix else rel.stem
    return out_dir / rel.parent / (f"{stem}_{tag}_x{scale}" if tag else f"{stem}_x{scale}")


def plan_outputs(files: list[tuple[Path, Path]], out_dir: Path, scale: int,
                 tag: str | None = None) -> tuple[list[tuple[Path, Path]], list[list[Path]]]:
    """One output base per input, before anything runs: ``<name>[_<tag>]_x<scale>``, or
    ``<name>_<suffix>[_<tag>]_x<scale>`` for inputs that share a name (``x.jpg`` and ``x.png``
    give ``x_jpg_x4.png`` and ``x_png_x4.png``). Names are compared ignoring case, as macOS
    and Windows do. Returns ((input, base) in input order, groups of inputs that would
    still write one file, e.g. ``x.png`` and ``X.PNG``: those are skipped)."""
    plain = [_output_base(out_dir, rel, scale, False, tag) for _, rel in files]
    shared = Counter(str(base).casefold() for base in plain)
    bases = [_output_base(out_dir, rel, scale, True, tag) if shared[str(base).casefold()] > 1 else base
             for (_, rel), base in zip(files, plain)]
    sources: dict[str, list[Path]] = defaultdict(list)
    for (src, _), base in zip(files, bases):
        sources[str(base).casefold()].append(src)
    planned = [(src, base) for (src, _), base in zip(files, bases) if len(sources[str(base).casefold()]) == 1]
    return planned, [srcs for srcs in sources.values() if len(srcs) > 1]


def describe_pixels(count: int) -> str:
    """``480 pixels``, ``16,777,216 pixels (16.8 MP)``: exact, so that a refused size and
    its limit never read the same, with megapixels for a size a person thinks of in MP."""
    text = f"{count:,} pixels"
    return f"{text} ({count / 1e6:.1f} MP)" if count >= MEGAPIXEL_SHOWN else text


def _destination(job: Job, inputs: set[Path], args: argparse.Namespace, max_pixels: int) -> tuple[Path, str]:
    """(output path, PIL format) of a job, checked before any work: PNG, or TIFF for the
    modes PNG cannot hold (read from the file's header, as is the size)."""
    from .image_io import file_format, open_image

    with open_image(job.src, max_pixels=sys.maxsize) as probe:  # the size is checked below, in the CLI's words
        image_format, suffix = file_format(probe.mode)
        width, height = probe.size
    if width * height > max_pixels:
        raise SkippedImage(f"{job.src} is {width}x{height} = {describe_pixels(width * height)}, over the limit of "
                           f"{describe_pixels(max_pixels)}; skipped (--max-pixels sets the limit)")
    dst = job.base.with_name(job.base.name + suffix)
    too_long = name_too_long(dst)  # first: a path with too long a name cannot even be looked up
    if too_long:
        raise SkippedImage(f"{job.src}: cannot write {dst}: {too_long}; rename the input")
    if dst.resolve() in inputs:
        raise SkippedImage(f"{job.src}: output {dst} would overwrite an input; skipped")
    if os.path.lexists(dst) and not args.overwrite:
        raise OutputExists(f"{job.src}: {dst} exists; skipped (--overwrite replaces it, --skip-existing skips "
                           "it without an error)")
    return dst, image_format


# --------------------------------------------------------------------------- the run


def cmd_upscale(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    out_dir = Path(args.output)
    names = args.model or [DEFAULT_UPSCALE_MODEL]
    tags = model_tags(names, args.model_in_name)
    files, unmatched = collect_inputs(args.inputs)
    for item in unmatched:
        print(f"error: {item}: no such file, folder or matching image", file=sys.stderr)
    if not files:
        raise CommandError("no input images")
    check_output_folder(out_dir, "-o")
    models = load_upscale_models(names, args)
    jobs, clashes = [], []
    for model, tag in zip(models.values(), tags):
        planned, clashes = plan_outputs(files, out_dir, model.scale, tag)  # the same groups for every model
        jobs += [Job(src, base, model) for src, base in planned]
    for srcs in clashes:
        print(f"error: {', '.join(map(str, srcs))} would write the same output; skipped (rename one)", file=sys.stderr)
    inputs = {src.resolve() for src, _ in files}
    outcomes: Counter[str] = Counter()
    with tqdm(jobs, unit="img", disable=args.quiet) as bar:  # closed on Ctrl-C / SIGTERM too
        for job in bar:
            outcomes[_run_job(job, inputs, args, bar)] += 1
    total = len(files) * len(models)
    failed = total - outcomes["written"] - outcomes["existing"]
    summary = [f"{outcomes['written']} of {total} images written to {out_dir}"]
    if outcomes["existing"]:
        summary.append(f"{outcomes['existing']} existing, skipped")
    if failed:
        summary.append(f"{failed} failed")
    print("; ".join(summary))
    return 1 if failed or unmatched else 0


def _run_job(job: Job, inputs: set[Path], args: argparse.Namespace, bar) -> str:
    """Upscale one image with one model: "written", "existing" (kept, as asked) or "failed"
    (said in one line; the run goes on)."""
    from tqdm import tqdm

    bar.set_postfix_str(job.src.name)
    try:
        _upscale_one(job, inputs, args, bar)
        return "written"
    except OutputExists as err:
        if args.skip_existing:
            logger.debug("%s", err)
            return "existing"
        tqdm.write(f"error: {describe_failure(job.src, err)}", file=sys.stderr)
    except Exception as err:  # noqa: BLE001 - one image's failure is reported, the run goes on
        tqdm.write(f"error: {describe_failure(job.src, err)}", file=sys.stderr)
        logger.debug("%s failed", job.src, exc_info=err)
        if out_of_memory(err):
            _release_gpu_cache()
    return "failed"


def _upscale_one(job: Job, inputs: set[Path], args: argparse.Namespace, bar) -> None:
    """Upscale and write one image (SkippedImage when its output may not be written)."""
    from .image_io import DEFAULT_MAX_PIXELS
    from .pipeline import upscale

    max_pixels = args.max_pixels or DEFAULT_MAX_PIXELS
    dst, image_format = _destination(job, inputs, args, max_pixels)
    result = upscale(job.model, job.src, tile=args.tile, tile_overlap=args.tile_overlap,
                     tile_workers=args.tile_workers, device=args.device,
                     dtype=args.dtype, max_pixels=max_pixels,
                     progress=lambda done, total: bar.set_postfix_str(f"{job.src.name} tile {done}/{total}",
                                                                      refresh=False))
    save_atomically(result, dst, image_format, overwrite=args.overwrite)


def _release_gpu_cache() -> None:
    """After an out-of-memory error, so that the next image starts from a clean slate."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
