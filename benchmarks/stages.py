"""The training cost of weights trained in stages across sessions.

Each stage is one training run that fine-tunes the weights the previous stage shipped (no
optimizer state is carried between sessions), and records its own cost. scripts.finalize
keeps the chain of stages in the bundled folder's training_facts.json (``stages``); the
weights' cost is the sum of their stages, in the model card and in the study
(benchmarks.compare). A folder finalized before stages were recorded counts as one stage:
its own run.
"""

from __future__ import annotations

import json
from pathlib import Path

from sr_models.cards import format_duration

FACTS_FILE = "training_facts.json"
#: What a stage costs; the weights' totals sum these over their stages.
COST_KEYS = ("steps", "images_seen", "wall_time_s")


def stage_record(facts: dict, run: str | None = None, scores: dict | None = None) -> dict:
    """One stage as the chain keeps it: the run's folder name, the weights it started from,
    its cost, where it ran, and (when finalize scored it) its held-out PSNR-Y by table."""
    return {"run": run, "started_from": facts.get("pretrained_from"), **{k: facts.get(k) for k in COST_KEYS},
            "hardware": facts.get("hardware"), "scores": scores or {}}


def stages_of(facts: dict) -> list[dict]:
    """The stages behind a folder's training facts: the recorded chain, else its run alone."""
    return list(facts.get("stages") or [stage_record(facts)])


def read_stages(folder: Path | None) -> list[dict] | None:
    """The stages of a weights folder, or None when it has no training facts."""
    facts_file = Path(folder) / FACTS_FILE if folder else None
    if facts_file is None or not facts_file.is_file():
        return None
    return stages_of(json.loads(facts_file.read_text()))


def total(stages: list[dict]) -> dict:
    """The summed cost (None where no stage recorded that cost) and the number of stages."""
    sums = {}
    for key in COST_KEYS:
        values = [s.get(key) for s in stages if s.get(key) is not None]
        sums[key] = sum(values) if values else None
    return {**sums, "stages": len(stages)}


def describe_stage(stage: dict) -> str:
    return f"{stage['steps']:,} steps ({format_duration(stage['wall_time_s'])})"


def describe_total(stages: list[dict]) -> str:
    """The card's "total training cost": the sum, then each stage, e.g. "14,000 steps,
    2 h 35 min in 2 stages: 6,000 steps (1 h 15 min), then 8,000 steps (1 h 20 min)"."""
    summed = total(stages)
    text = f"{summed['steps']:,} steps, {format_duration(summed['wall_time_s'])}"
    if len(stages) == 1:
        return text
    return f"{text} in {len(stages)} stages: " + ", then ".join(describe_stage(s) for s in stages)
