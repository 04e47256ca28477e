"""The study in one command: does the transformer beat the CNN, and at what cost?

Quality (every metric of sr_models.metric_registry, by the protocol, mean and per image) of
bicubic and every model on one or more held-out HR sets, optionally also under a seeded
realistic degradation beside the protocol; cost per model (parameters, FLOPs per LR megapixel, CPU latency at several
LR sizes with the ratio to the first model measured in the same run, peak memory);
training cost summed over each model's training stages; plots; a markdown report. Run
from the project root:

    python -m benchmarks.compare --hr data/faces256/val                  # the bundled ESPCN and HAT
    python -m benchmarks.compare --hr celeba=data/faces256v2/val --hr studio=data/faces256v2/val_studio \\
        --degradation moderate --seed 0 --peers all --threads 1 --update-readme
    python -m benchmarks.compare --hr DIR --model espcn-faces --model user/other-hat

``--hr NAME=DIR`` names a set (plain ``--hr DIR`` is named after its folder); the first set
is the main benchmark (its summary is plotted against latency, its crops are shown).
``--degradation PRESET`` (sr_models.degradations) adds a quality table per set whose LR
images are drawn with ``--seed``: one fixed LR per image, so the numbers are reproducible.
``--peer KEY`` (repeatable; ``--peers all``) adds reference rows of models people use
instead of ours, run through their own packages (benchmarks/peers.py; an absent package
is skipped with one line saying how to install it). ``--threads N`` fixes the CPU threads
of our models and of the peers.

Writes compare.md, compare.json, psnr_vs_latency.png, per_image_psnr_<table>.png per
quality table and crops_<table>.png for the main set into a fresh, untracked
``runs/compare-<time>/`` (or ``--output-dir``), so that a rerun never overwrites the shipped
results. Only an explicit flag writes those: ``--write-shipped-results`` writes
benchmarks/results/, and ``--update-readme`` (which implies it, unless ``--output-dir`` is
given) also rewrites the blocks between ``<!-- results:start -->`` and
``<!-- results:end -->``: the short quality table in README.md (one row per method, one
column per table) and the full report in docs/study.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmarks import peers as peer_models
from benchmarks.cost import costs, training_cost
from benchmarks.machine import describe
from benchmarks.outputs import SHIPPED_RESULTS, fresh_output_dir
from benchmarks.plots import write_plots
from benchmarks.quality import named_folder, score_sets
from benchmarks.report import README, STUDY, markdown, update_pages
from sr_models import load_model
from sr_models.degradations import PRESETS
from sr_models.loading import DEFAULT_MODELS
from sr_models.validation import non_negative_int, positive_int



def peer_facts(models: dict, threads: int) -> dict:
    """What the report says about each peer that ran: its data, licence and threads."""
    return {name: {"key": m.peer.key, "trained_on": m.peer.trained_on, "licence": m.peer.licence,
                   "threads": threads if m.peer.sets_threads else "not settable (the package's own)"}
            for name, m in models.items()}


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    ours = {name: load_model(name, scale=args.scale).eval() for name in args.model}
    peers = peer_models.load_peers(args.peer, threads=torch.get_num_threads())
    models = {**ours, **peers}
    quality = score_sets(models, args.hr, degradations=[None, *([args.degradation] if args.degradation else [])],
                         seed=args.seed, scale=args.scale, hr_size=args.hr_size, limit=args.limit)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "scale": args.scale, "hr_size": args.hr_size, "quality": quality,
        "machine": describe(), "repeats": args.repeats, "latency_sizes": args.latency_sizes,
        "cost": costs(models, args.latency_sizes, args.repeats),
        "training": {name: training_cost(name, m) for name, m in ours.items()},
        "peers": peer_facts(peers, torch.get_num_threads()),
    }
    (out / "compare.json").write_text(json.dumps(report, indent=2))
    write_plots(models, report, out, args.limit)
    text = markdown(report)
    (out / "compare.md").write_text(text)
    if args.update_readme:
        update_pages(report, out, Path(args.readme), Path(args.study))
    print(text)
    print(f"compare: wrote {out}")
    return report


def output_dir(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """Where this run writes: --output-dir, the shipped results when asked for, else a fresh folder."""
    shipped = args.write_shipped_results or args.update_readme
    if args.output_dir and args.write_shipped_results:
        parser.error("--write-shipped-results writes benchmarks/results/; leave out --output-dir")
    if args.output_dir:
        return Path(args.output_dir)
    return SHIPPED_RESULTS if shipped else fresh_output_dir("compare")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hr", required=True, action="append", type=named_folder, metavar="[NAME=]DIR",
                        help="a held-out set of HR images (repeatable; the first is the main benchmark)")
    parser.add_argument("--model", action="append", help="model name, folder or repo id (repeatable); "
                                                         f"default: {' '.join(DEFAULT_MODELS)}")
    parser.add_argument("--peer", "--peers", action="append", default=[],
                        choices=[*peer_models.PEERS, peer_models.ALL],
                        help="a reference model run through its own package (repeatable; 'all': every one)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads of our models and the peers (default: torch's)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--hr-size", type=int, default=256, help="HR side (centre crop + resize); 0 keeps it")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each set only")
    parser.add_argument("--degradation", choices=sorted(PRESETS), default=None,
                        help="also score every set with LR images from this realistic degradation preset")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of --degradation's LR images (default: 0)")
    parser.add_argument("--latency-sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output-dir", default=None,
                        help="default: a fresh runs/compare-<time>/ (benchmarks/results/ only when asked for)")
    parser.add_argument("--write-shipped-results", action="store_true",
                        help="write the shipped benchmarks/results/ (the plots docs/study.md links)")
    parser.add_argument("--update-readme", action="store_true",
                        help="rewrite the results blocks of --readme (short table) and --study (full report); "
                             "implies --write-shipped-results unless --output-dir is given")
    parser.add_argument("--readme", default=str(README), help="default: %(default)s")
    parser.add_argument("--study", default=str(STUDY), help="default: %(default)s")
    args = parser.parse_args(argv)
    args.model = args.model or list(DEFAULT_MODELS)
    args.hr_size = args.hr_size or None
    args.output_dir = str(output_dir(parser, args))
    return args


if __name__ == "__main__":
    run(parse_args())
