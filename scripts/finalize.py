"""Turn a finished training run into a bundled weights folder with its full model card.

The training scripts write the run's card (training facts, the validation scores of one
held-out set, the comparison strip). This adds what only the bundled weights know:

- the training data by source, counted from the file-name prefixes of the training faces
  (each source folder of the face data has its own prefix: celebahq_, alae_, london_, ...), with each source's
  licence from the two SOURCE.md files: the weights are for non-commercial research only;
- the scores on every held-out set (``--held-out NAME=DIR``) under the protocol and, with
  ``--degradation PRESET --seed N``, under that seeded realistic degradation too, each a
  result of its own in model-index (scored by sr_models.evaluation, as the study does);
- the training cost (wall time, steps, hardware) from the run's training_facts.json; for a
  run fine-tuned from other weights (``--pretrained_model_name_or_path`` a folder with
  its own training_facts.json, e.g. a bundled folder), the weights it started from
  (also the card's ``base_model``, unless they are the target's own earlier version) and
  the total cost of every stage: the chain of stages is kept in the target's
  training_facts.json (``stages``, benchmarks/stages.py), each stage with its own cost.

No regression: when the target holds weights already, they are scored beside the run on
the same held-out sets, and the run replaces them only if it beats them (higher PSNR-Y) on
every set, under the LR the weights are for (the protocol's for weights trained on bicubic
LR, the ``--degradation`` tables for weights trained on a realistic degradation).
Otherwise it stops and says where the run falls short; ``--force`` replaces them anyway
(and says so).

    python -m scripts.finalize runs/espcn-faces-v2-x4 weights/espcn-faces-x4 \\
        --held-out celeba=data/faces256v2/val --held-out studio=data/faces256v2/val_studio \\
        --degradation moderate --seed 0

The training faces are found beside the run's training folder (``train/`` for a
``train_multiscale/`` one, whose files are each face at several sizes) unless
``--train-dir`` names them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.quality import named_folder, score_sets, table_key
from benchmarks.stages import FACTS_FILE, describe_total, stage_record, stages_of
from scripts.prepare_faces import HR_SIZE, MULTISCALE_SIZES
from sr_models import load_model
from sr_models import metric_registry
from sr_models.cards import CardInfo, dataset_type
from sr_models.constants import CONFIG_FILE, HUB_ORGANISATION
from sr_models.degradations import PRESETS
from sr_models.evaluation import find_images
from sr_models.protocol import degradation_of
from sr_models.training.public import public_path
from sr_models.validation import non_negative_int

CELEBA_TERMS = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
#: The weights' licence: the strictest terms of their training data. The link is CelebA's
#: terms, the stated terms that say "non-commercial research only"; the note names every source.
LICENSE_NAME = "faces-non-commercial-research"
LICENSE_LINK = CELEBA_TERMS
#: Held-out sets the bundled weights are scored on: --held-out NAME -> (card name, model-index id).
HELD_OUT_SETS = {
    "celeba": ("CelebA-HQ held-out faces", "celeba-hq-faces-heldout"),
    "studio": ("London Set held-out studio faces", "london-studio-faces-heldout"),
}
MODEL, SHIPPED = "model", "shipped"  # the run's model and the target's current weights in the score tables


@dataclass(frozen=True)
class Source:
    """Training photos of one origin: their file-name prefixes and terms (SOURCE.md)."""

    prefixes: tuple[str, ...]
    short: str  # in the card's training facts
    what: str  # in the licence note
    licence: str


SOURCES = (
    Source(("celebahq",), "CelebA-HQ (faces/)", "CelebA-HQ faces (`faces/`, clovaai/stargan-v2 samples)",
           f"non-commercial research only ([CelebA terms]({CELEBA_TERMS}))"),
    Source(("sean", "ddnm", "stylemapgan", "celebamaskhq"), "CelebA-HQ (faces-more)",
           "CelebA-HQ faces (`faces-more/train`, SEAN, DDNM, StyleMapGAN, CelebAMask-HQ samples)",
           f"non-commercial research only ([CelebA terms]({CELEBA_TERMS}))"),
    Source(("alae",), "celebrity portraits of ALAE (faces-more)",
           "realigned celebrity portraits (`faces-more/train`, ALAE samples)",
           "no licence stated for the photos: research use only"),
    Source(("gpen", "redegnet"), "FFHQ (faces-more)", "FFHQ faces (`faces-more/train`, GPEN and ReDegNet samples)",
           "[CC BY-NC-SA 4.0](https://creativecommons.org/licenses/by-nc-sa/4.0/), each image under its own "
           "Flickr licence"),
    Source(("london",), "London Set (faces-more)",
           "Face Research Lab London Set portraits (`faces-more/train`, neutral and smiling)",
           "[CC BY 4.0](https://creativecommons.org/licenses/by/4.0/), DeBruine & Jones 2017, "
           "doi:10.6084/m9.figshare.5047666.v5"),
)


def count_sources(train_dir: Path) -> list[tuple[Source, int]]:
    """How many training faces each source gave (sources with none left out), from the
    prefix before the first "_" of each file name; an unknown prefix stops the script,
    since the card could not state that photo's licence."""
    by_prefix = {prefix: source for source in SOURCES for prefix in source.prefixes}
    faces = find_images(train_dir)
    unknown = sorted(p.name for p in faces if p.stem.split("_")[0] not in by_prefix)
    if not faces or unknown:
        raise SystemExit(f"finalize: {train_dir} holds {'no faces' if not faces else 'faces of unknown origin'} "
                         f"{unknown[:5]}; known prefixes: {sorted(by_prefix)}")
    counts = Counter(by_prefix[p.stem.split("_")[0]] for p in faces)
    return [(source, counts[source]) for source in SOURCES if counts[source]]


def training_faces_dir(facts: dict, given: str | None) -> Path:
    """``--train-dir``, else the run's training folder (``train/`` beside ``train_multiscale/``)."""
    if given:
        return Path(given)
    folder = Path(facts["data"]["train_source"].split(" ", 1)[-1])  # "imagefolder DIR"
    folder = folder.parent / "train" if folder.name == "train_multiscale" else folder
    if not folder.is_dir():
        raise SystemExit(f"finalize: the training faces {folder} are not a folder here; name them with --train-dir")
    return folder


def licence_note(counts: list[tuple[Source, int]], tables: list[dict]) -> str:
    """The card's licence paragraph: every source with its count and terms, and the held-out sets."""
    lines = ["**Non-commercial research use only.** The training faces come from sources with different "
             "terms, and the weights inherit the strictest of them:", ""]
    lines += [f"- {n} {source.what}: {source.licence}" for source, n in counts]
    held_out = []
    for table in tables:
        if table["degradation"] is None:
            names = [Path(p).stem for p in table["images"]]
            shown = f": {', '.join(names)}" if len(names) <= 16 else ""
            name = HELD_OUT_SETS.get(table["name"], (table["name"],))[0]
            held_out.append(f"{name}, {len(names)} image{'s' * (len(names) != 1)}{shown}")
    return "\n".join(lines + ["", f"Held out (never trained on): {'; '.join(held_out)}."])


def card_evaluations(tables: list[dict]) -> list[dict]:
    """Model-card evaluations (sr_models.cards.CardInfo) of the score tables."""
    evaluations = []
    for table in tables:
        name, slug = HELD_OUT_SETS.get(table["name"], (table["name"], None))
        evaluations.append({
            "dataset": f"{name} ({len(table['images'])}, {table['hr_size']}x{table['hr_size']})",
            "dataset_id": slug or dataset_type({"dataset": name}), "scale": table["scale"],
            "images": len(table["images"]), "bicubic": _scores(table["summary"]["bicubic"]),
            "model": _scores(table["summary"][MODEL]), "degradation": table["degradation"], "seed": table["seed"]})
    return evaluations


def _scores(summary: dict) -> dict:
    return {key: summary[key] for key in metric_registry.KEYS}


def training_data(counts: list[tuple[Source, int]], facts: dict) -> str:
    """The card's "training data" fact: the faces by source, and the scale augmentation if used."""
    total = sum(n for _, n in counts)
    text = f"{total} faces: " + ", ".join(f"{n} {source.short}" for source, n in counts)
    if facts.get("data", {}).get("train_source", "").endswith("train_multiscale"):
        sizes = "/".join(map(str, MULTISCALE_SIZES))
        text += f"; each at {sizes} px (scale augmentation, scripts.prepare_faces)"
    return text


def base_facts(facts: dict) -> dict | None:
    """The training facts of the weights a fine-tuning run started from, when they are a
    local folder written by the training scripts (None for a run from scratch)."""
    start = facts.get("pretrained_from")
    if not start or not (Path(start) / FACTS_FILE).is_file():
        return None
    return json.loads((Path(start) / FACTS_FILE).read_text())


def stage_chain(facts: dict, run_dir: Path, tables: list[dict]) -> list[dict]:
    """The stages of the finalized weights: those of the weights the run started from, then
    the run itself with its cost and its held-out PSNR-Y per table."""
    base = base_facts(facts)
    scores = {table_key(t): round(t["summary"][MODEL][metric_registry.PRIMARY.key], 4) for t in tables}
    this = stage_record(facts, run=run_dir.name, scores=scores)
    # finalizing the same run again (--force) must not count it twice
    same = ("run", "steps", "wall_time_s")
    earlier = [s for s in stages_of(base) if [s[k] for k in same] != [this[k] for k in same]] if base else []
    return earlier + [this]


def finalized_card(info: CardInfo, facts: dict, counts: list[tuple[Source, int]], tables: list[dict],
                   target: Path, stages: list[dict]) -> CardInfo:
    """The run's card with the bundled weights' licence, data, scores and training cost."""
    info.license, info.license_name, info.license_link = "other", LICENSE_NAME, LICENSE_LINK
    info.licence_note = licence_note(counts, tables)
    info.faces = True
    info.repo_id = f"{HUB_ORGANISATION}/{target.name}"
    info.evaluations = card_evaluations(tables)
    info.training_degradation = facts.get("degradation")
    info.training["dataset"] = training_data(counts, facts)
    for key in ("steps", "wall_time_s", "hardware"):
        if facts.get(key) is not None:
            info.training[key] = facts[key]
    if len(stages) > 1:  # fine-tuned from local weights with their own training facts
        base = f"{HUB_ORGANISATION}/{Path(facts['pretrained_from']).name}"
        earlier = "the previous " if base == info.repo_id else ""  # a stage of these same weights
        info.base_model = None if earlier else base
        info.training["fine_tuned_from"] = f"{earlier}{base} ({describe_total(stages[:-1])})"
        info.training["total_cost"] = describe_total(stages)
    return info


def shipped_model(target: Path):
    """The weights ``target`` holds now (None when it holds none yet)."""
    return load_model(str(target)) if (target / CONFIG_FILE).is_file() else None


def checked_lr(facts: dict, degradation: str | None) -> str | None:
    """The LR the no-regression check compares under: the protocol's (None) for weights
    trained on bicubic LR, the --degradation tables for weights trained on a realistic one."""
    if not degradation_of(facts.get("degradation")).realistic:
        return None
    if degradation is None:
        raise SystemExit("finalize: these weights were trained on a realistic degradation; the check against the "
                         "shipped weights is made under it: give --degradation PRESET --seed N")
    return degradation


def check_no_regression(tables: list[dict], lr: str | None, force: bool) -> None:
    """Stop unless the run beats the shipped weights (higher PSNR-Y) on every held-out set
    under ``lr``; ``force`` replaces them anyway, saying so."""
    key = metric_registry.PRIMARY.key
    rows = [(t["name"], t["summary"][MODEL][key], t["summary"][SHIPPED][key]) for t in tables if t["degradation"] == lr]
    for name, new, old in rows:
        print(f"finalize: {name}, LR {lr or 'bicubic'}: this run {new:.2f} dB, shipped {old:.2f} dB ({new - old:+.2f})")
    worse = [name for name, new, old in rows if new <= old]
    if worse and not force:
        raise SystemExit(f"finalize: not replacing the shipped weights: this run does not beat them on "
                         f"{', '.join(worse)} (PSNR-Y above). Train on, or pass --force to replace them anyway.")
    if worse:
        print(f"finalize: --force: replacing the shipped weights, which score higher on {', '.join(worse)}")


def write_folder(model, info: CardInfo, run_dir: Path, target: Path, facts: dict) -> None:
    """Replace ``target`` (only a weights folder or an empty one) by the finalized folder,
    with the run's metrics (in sr_models.metric_registry's keys, older ones renamed) and its
    training facts (``facts``: with the stages)."""
    if target.resolve() == run_dir.resolve():
        raise SystemExit("finalize: the target is the run folder itself")
    if target.exists() and any(target.iterdir()) and not (target / CONFIG_FILE).is_file():
        raise SystemExit(f"finalize: {target} is not a weights folder (no {CONFIG_FILE}); not replacing it")
    # The whole folder is written beside the target and swapped in only when complete: a
    # failure leaves the shipped weights as they were, and no stale file survives.
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        model.save_pretrained(fresh, card_info=info)
        if (run_dir / "metrics.json").is_file():
            metrics = metric_registry.current_keys(json.loads((run_dir / "metrics.json").read_text()))
            (fresh / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (fresh / FACTS_FILE).write_text(json.dumps(facts, indent=2) + "\n")
        _swap_in(fresh, target)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def _swap_in(fresh: Path, target: Path) -> None:
    """Put ``fresh`` where ``target`` is; the old folder is removed only once it is replaced."""
    if not target.exists():
        os.replace(fresh, target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, old)
    try:
        os.replace(fresh, target)
    except OSError:
        os.replace(old, target)
        raise
    shutil.rmtree(old)


def public_facts(facts: dict) -> dict:
    """The run's facts with every absolute path in its recorded command named as the
    training scripts name paths in what they publish (never the machine's own folders)."""
    command = facts.get("command")
    if not command:
        return facts
    words = [public_path(w) if os.path.isabs(w) else w for w in shlex.split(command)]
    return {**facts, "command": shlex.join(words)}


def main(args: argparse.Namespace) -> None:
    run_dir, target = Path(args.run_dir), Path(args.target)
    model = load_model(str(run_dir))
    facts_file = run_dir / FACTS_FILE
    if model.card_info is None or not facts_file.is_file():
        raise SystemExit(f"{run_dir} has no model_card.json or training_facts.json: "
                         "was it written by train/espcn.py or train/hat.py?")
    facts = public_facts(json.loads(facts_file.read_text()))
    if facts.get("command") and model.card_info.training.get("command"):
        model.card_info.training["command"] = facts["command"]
    counts = count_sources(training_faces_dir(facts, args.train_dir))
    shipped = shipped_model(target)
    lr = checked_lr(facts, args.degradation) if shipped else None
    degradations = [None, *([args.degradation] if args.degradation else [])]
    tables = score_sets({MODEL: model, **({SHIPPED: shipped} if shipped else {})}, args.held_out,
                        degradations=degradations, seed=args.seed, scale=model.scale, hr_size=HR_SIZE)
    if shipped:
        check_no_regression(tables, lr, args.force)
    stages = stage_chain(facts, run_dir, tables)
    info = finalized_card(model.card_info, facts, counts, tables, target, stages)
    write_folder(model, info, run_dir, target, {**facts, "stages": stages})
    size = sum(p.stat().st_size for p in target.iterdir()) / 1e6
    key = metric_registry.PRIMARY.key
    for evaluation in info.evaluations:
        gain = evaluation["model"][key] - evaluation["bicubic"][key]
        print(f"{evaluation['dataset']}, LR {evaluation['degradation'] or 'bicubic'}: "
              f"{evaluation['model'][key]:.2f} dB ({gain:+.2f} over bicubic)")
    print(f"{target}: {size:.1f} MB")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="the training run's output folder (--output_dir)")
    parser.add_argument("target", help="the bundled folder to write (replaced if it is a weights folder)")
    parser.add_argument("--held-out", action="append", required=True, type=named_folder, metavar="NAME=DIR",
                        help=f"a held-out set to score (repeatable; names {sorted(HELD_OUT_SETS)} get their "
                             "card names, e.g. celeba=data/faces256v2/val)")
    parser.add_argument("--degradation", choices=sorted(PRESETS), default=None,
                        help="also score every set under this seeded realistic degradation")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of --degradation (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="replace the target's weights even where this run does not beat them")
    parser.add_argument("--train-dir", default=None,
                        help="the training faces, one file per face (default: from training_facts.json)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
