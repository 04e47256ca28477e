"""The command line's other commands: ``evaluate``, ``info``, ``convert`` (also called
``convert-hat``), ``push``, ``app`` and ``space deploy``. The library (torch, PIL) is imported inside the
functions only."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from .cli_errors import CommandError
from .cli_files import check_output_folder
from .cli_models import load_models


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .bundled import DEFAULT_MODELS
    from .evaluation import evaluate, find_images

    check_output_folder(Path(args.output_dir), "--output-dir")  # before the work, not after it
    hr_images = find_images(args.hr)[: args.limit]
    if not hr_images:
        raise CommandError(f"no images in {args.hr}")
    models = load_models(args.model or DEFAULT_MODELS, args, scale=args.scale)
    hr_size = args.hr_size or None  # 0 keeps the size
    with tqdm(total=len(hr_images), unit="img", disable=args.quiet) as bar:
        result = evaluate(models, hr_images, scale=args.scale, hr_size=hr_size, degradation=args.degradation,
                          seed=args.seed, tile=args.tile, tile_overlap=args.tile_overlap,
                          tile_workers=args.tile_workers, device=args.device,
                          dtype=args.dtype, on_image=lambda _: bar.update())
    print(f"x{args.scale}, {len(result.images)} images from {args.hr}" + (f" at {hr_size}px" if hr_size else ""))
    print(result.table())
    json_path, csv_path = result.write(args.output_dir)
    print(f"wrote {json_path} and {csv_path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .architectures import architecture_of_model
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
    print(f"format:       {architecture_of_model(model).portability(model)}")
    training_lr = ((model.card_info.training if model.card_info else None) or {}).get("degradation")
    if training_lr:  # the model card of weights the training scripts wrote says how their LR was made
        print(f"trained on:   {training_lr}")
    print("config:       " + json.dumps(model.config, sort_keys=True))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """A single weights file (an official HAT checkpoint, bare weights of a known
    architecture) -> a save_pretrained folder; the architecture is detected."""
    from .architectures import load_state_dict_file

    out = Path(args.out_dir)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise CommandError(f"{out} exists and is not empty; pass --overwrite to replace its files")
    model = load_state_dict_file(args.checkpoint)
    model.save_pretrained(out)
    print(f"converted {args.checkpoint} -> {out} ({type(model).__name__} x{model.scale}, "
          f"{model.num_parameters / 1e6:.2f} M parameters)")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from .publish import push_folder

    url = push_folder(args.folder, args.repo_id, private=args.private, revision=args.revision,
                      commit_message=args.commit_message)
    print(f"pushed {args.folder} to {args.repo_id}: {url}")
    return 0


def cmd_space_deploy(args: argparse.Namespace) -> int:
    from .space import deploy_space

    url, count = deploy_space(args.repo_id, private=args.private, token=args.token)
    print(f"deployed the app to {url} ({count} files); the Space builds and starts in a few minutes")
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
