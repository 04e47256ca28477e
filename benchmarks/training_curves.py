"""Held-out PSNR-Y against training time, from the runs' own records: where does one model
overtake another at equal (wall-clock) training time?

Each model is a run folder or a weights folder (its ``training_facts.json``, and
``metrics.json`` for the final validation). Its points are, in cumulative steps and hours
over the stage chain (benchmarks.stages):

- the run's ``validation_history`` (the trainer records every validation), which belongs
  to the last stage;
- each stage's end: its ``scores[TABLE]`` (finalize's held-out score), else, for the last
  stage, the final validation in ``metrics.json`` (a folder without stages is one stage);
- points from a history file (``--history NAME=FILE``) for runs that recorded no history:
  ``{"points": [{"stage", "step", "psnr", "source", ["wall_time_s"]}], "conditions": {stage:
  text}}``, steps and seconds within the stage; a point without seconds is placed linearly
  in steps over the stage's wall time (marked ``"time": "interpolated"``). A record of the
  folder always wins over the file at the same step.

Wall-clock times come from whatever machine, thread count and load each stage ran under
(the JSON carries each stage's ``hardware`` and the file's ``conditions``): equal hours are
only roughly equal compute. Run from the project root:

    python -m benchmarks.training_curves      # the bundled faces pair, a fresh runs/training-curves-<time>/
    python -m benchmarks.training_curves --model a=runs/a --model b=runs/b --table val --out runs/curves
    python -m benchmarks.training_curves --write-shipped-results   # also benchmarks/results/psnr_vs_training_time.*
    python -m benchmarks.training_curves --write-shipped-results --into-cards   # and in the weights' model cards

Prints one line per ordered pair of models (does the second overtake the first?) and
writes ``training_curves.json`` and ``psnr_vs_training_time.png``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from benchmarks.outputs import SHIPPED_RESULTS, fresh_output_dir
from benchmarks.stages import FACTS_FILE, stages_of
from sr_models.metric_registry import BASELINE_PREFIX, PRIMARY, current_keys

PROJECT_ROOT = Path(__file__).resolve().parent.parent
JSON_FILE, PLOT_FILE = "training_curves.json", "psnr_vs_training_time.png"
SHIPPED_JSON = "psnr_vs_training_time.json"
#: The study's faces pair, the equal-compute pair trained from scratch beside each other
#: (their facts and final metrics, kept in the results), and the validation points of
#: hat-faces' second stage (from its log).
EQUAL_COMPUTE = SHIPPED_RESULTS / "equal_compute"
DEFAULT_MODELS = [("espcn-faces", PROJECT_ROOT / "weights/espcn-faces-x4"),
                  ("hat-faces", PROJECT_ROOT / "weights/hat-small-faces-x4"),
                  ("espcn, from scratch", EQUAL_COMPUTE / "espcn-scratch"),
                  ("hat-small, from scratch", EQUAL_COMPUTE / "hat-scratch")]
DEFAULT_HISTORIES = [("hat-faces", SHIPPED_RESULTS / "training_history_hat-faces-v3s1.json")]
KEY = PRIMARY.key  # PSNR-Y
HOUR = 3600.0
#: The plot's right panel: the first hours, where the from-scratch runs are.
ZOOM_HOURS = 1.0


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _point(stage: int, start: tuple[int, float], step: int, seconds: float, psnr: float, *, source: str,
           measured: bool = True, stage_end: bool = False) -> dict:
    """One point in cumulative steps / seconds (``start``: where its stage began)."""
    return {"steps": start[0] + step, "wall_time_s": round(start[1] + seconds, 2),
            "hours": (start[1] + seconds) / HOUR, "psnr": psnr, "stage": stage, "stage_end": stage_end,
            "source": source, "time": "measured" if measured else "interpolated"}


def _stage_starts(stages: list[dict]) -> list[tuple[int, float]]:
    """(steps, seconds) trained before each stage."""
    steps = list(itertools.accumulate((s["steps"] for s in stages[:-1]), initial=0))
    seconds = list(itertools.accumulate((s["wall_time_s"] for s in stages[:-1]), initial=0.0))
    return list(zip(steps, seconds))


def folder_points(facts: dict, metrics: dict | None, table: str) -> list[dict]:
    """The points a folder records: its run's validation history, then each stage's end score.

    Args:
        facts: its training_facts.json.
        metrics: its metrics.json (the final validation), or None.
        table: the key of ``stages[*].scores`` to read.

    Returns:
        Points (see :func:`_point`), the history first.
    """
    stages = stages_of(facts)
    starts, last = _stage_starts(stages), len(stages)
    points = [_point(last, starts[-1], e["step"], e["wall_time_s"], e[KEY], source="validation history")
              for e in facts.get("validation_history") or [] if e.get(KEY) is not None]
    for number, (stage, start) in enumerate(zip(stages, starts), start=1):
        score, source = (stage.get("scores") or {}).get(table), f"stage score ({table})"
        if score is None and number == last and metrics and metrics.get(KEY) is not None:
            score, source = metrics[KEY], "final validation (metrics.json)"
        if score is not None:
            points.append(_point(number, start, stage["steps"], stage["wall_time_s"], score, source=source,
                                 stage_end=True))
    return points


def file_points(history: dict, stages: list[dict]) -> list[dict]:
    """The points of a history file, placed on the folder's stage chain; a point without
    seconds gets its stage's wall time in proportion to its steps."""
    starts, points = _stage_starts(stages), []
    for p in history["points"]:
        stage = stages[p["stage"] - 1]
        end = p["step"] == stage["steps"]
        if p.get("wall_time_s") is not None:
            seconds = p["wall_time_s"]
        else:  # a stage's end is at its recorded time; a point inside it, where its steps put it
            seconds = stage["wall_time_s"] * p["step"] / stage["steps"]
        points.append(_point(p["stage"], starts[p["stage"] - 1], p["step"], seconds, p["psnr"], source=p["source"],
                             measured=end or p.get("wall_time_s") is not None, stage_end=end))
    return points


def _merged(own: list[dict], extra: list[dict]) -> list[dict]:
    """Points by cumulative step: the folder's own record wins over a history file, and a
    stage's end score over a validation of the same step."""
    by_step = {p["steps"]: p for p in extra}
    for p in sorted(own, key=lambda p: p["stage_end"]):
        by_step[p["steps"]] = p
    return [by_step[step] for step in sorted(by_step)]


def _bicubic(facts: dict, metrics: dict | None) -> float | None:
    """The bicubic PSNR-Y of the validation images: the facts' baseline, else metrics.json's."""
    recorded = (facts.get("validation_bicubic") or {}).get(KEY)
    return recorded if recorded is not None else (metrics or {}).get(f"{BASELINE_PREFIX}{KEY}")


def model_record(name: str, folder: Path, table: str, history: dict | None = None) -> dict:
    """Everything known about one model's training against time.

    Args:
        name: the model's name in the plot and the JSON.
        folder: a run or weights folder with training_facts.json.
        table: which ``stages[*].scores`` to read (the held-out set the validation used).
        history: a history file's content (:func:`file_points`), or None.

    Returns:
        name, folder, points (sorted by steps), bicubic PSNR-Y, the machine of the last run,
        and each stage's cost, hardware and (from the file) conditions.
    """
    facts = json.loads((folder / FACTS_FILE).read_text())
    metrics = _read_json(folder / "metrics.json")
    metrics = current_keys(metrics) if metrics else None
    stages = stages_of(facts)
    extra = file_points(history, stages) if history else []
    conditions = (history or {}).get("conditions", {})
    shown = folder.resolve().relative_to(PROJECT_ROOT) if folder.resolve().is_relative_to(PROJECT_ROOT) else folder
    return {"name": name, "folder": str(shown), "table": table,
            "points": _merged(folder_points(facts, metrics, table), extra),
            "bicubic_psnr": _bicubic(facts, metrics), "hardware": facts.get("hardware"),
            "stages": [{"stage": n, "steps": s["steps"], "wall_time_s": s["wall_time_s"], "hardware": s.get("hardware"),
                        "conditions": conditions.get(str(n))} for n, s in enumerate(stages, start=1)],
            "sources": (history or {}).get("about")}


# --------------------------------------------------------------------------- overtaking


def value_at(points: list[dict], hours: float) -> dict | None:
    """The model's last recorded point at or before ``hours`` (what it had reached), or None."""
    reached = [p for p in points if p["hours"] <= hours]
    return max(reached, key=lambda p: p["hours"]) if reached else None


def _describe(p: dict) -> str:
    return f"{p['psnr']:.2f} dB at {p['hours']:.2f} h ({p['steps']:,} steps)"


def overtaking(first: dict, second: dict) -> dict:
    """Whether the records show ``second`` overtaking ``first`` at equal training time.

    At every recorded time of either model where both have a record, each model counts with
    its last point so far. The verdict is "overtakes" at the first such time where
    ``second`` is above after having been at or below; "ahead at first comparison" when it
    is above at the first one (the crossing, if any, is not recorded); else "not shown".

    Args:
        first, second: records of :func:`model_record`.

    Returns:
        first, second, verdict, the two points compared (``at_second``, ``at_first``; None
        when not shown), whether ``first``'s point is its last record held past its end
        (``first_held_past_its_records``), and the sentence that says it.
    """
    times = sorted({p["hours"] for p in first["points"] + second["points"]})
    compared = [(value_at(first["points"], t), value_at(second["points"], t)) for t in times]
    compared = [(a, b) for a, b in compared if a is not None and b is not None]
    verdict, at = "not shown", (None, None)
    for index, (a, b) in enumerate(compared):
        if b["psnr"] > a["psnr"]:
            verdict, at = ("overtakes" if index else "ahead at first comparison"), (a, b)
            break
    a, b = at
    held = b is not None and b["hours"] > first["points"][-1]["hours"]
    return {"first": first["name"], "second": second["name"], "verdict": verdict, "at_second": b, "at_first": a,
            "compared_times": len(compared), "first_held_past_its_records": held,
            "sentence": _sentence(first, second, verdict, a, b, held, len(compared))}


def _sentence(first: dict, second: dict, verdict: str, a: dict | None, b: dict | None, held: bool,
              compared: int) -> str:
    """The verdict of :func:`overtaking` in words, saying what the records leave open."""
    one, two = first["name"], second["name"]
    if verdict == "not shown":
        return (f"{two} vs {one}: the records do not show {two} above {one} at equal training time "
                f"({compared} times where both have a record)")
    held_note = f" (the last record of {one}: it was not trained longer)" if held else ""
    text = f"{two} vs {one}: {two} {_describe(b)} is above {one} {_describe(a)}{held_note}"
    if verdict == "overtakes":
        return f"{text}: {two} overtakes {one} there (first recorded point)"
    return (f"{text}, already at the first time both have a record: where {two} passed {one} is not "
            f"recorded ({two} has no point before {b['hours']:.2f} h)")


# --------------------------------------------------------------------------- output


def plot(records: list[dict], path: Path) -> None:
    """PSNR-Y against cumulative hours, all of it on the left and the first ZOOM_HOURS on
    the right: one line per model, large markers at stage ends (hollow where the time is
    interpolated), bicubic dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (whole, zoom) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [3, 2]})
    _draw(whole, records)
    _draw(zoom, records)
    whole.set_title("held-out PSNR-Y against training time (squares: stage ends)", fontsize=10)
    zoom.set_title(f"the first {ZOOM_HOURS:g} h", fontsize=10)
    shown = [p["psnr"] for r in records for p in r["points"] if p["hours"] <= ZOOM_HOURS]
    zoom.set_xlim(0, ZOOM_HOURS)
    if shown:
        zoom.set_ylim(min(shown) - 0.1, max(shown) + 0.1)
    zoom.set_ylabel("")
    zoom.set_xlabel("cumulative training time (h)")
    whole.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _draw(ax, records: list[dict]) -> None:
    """Every model's line and stage ends, and the bicubic lines, on one panel."""
    for record in records:
        points = record["points"]
        line, = ax.plot([p["hours"] for p in points], [p["psnr"] for p in points], marker="o", ms=3,
                        label=record["name"])
        ends = [p for p in points if p["stage_end"]]
        # scatter, not plot: it leaves the lines' colour cycle alone.
        ax.scatter([p["hours"] for p in ends], [p["psnr"] for p in ends], marker="s", s=64, zorder=3,
                   facecolors=[line.get_color() if p["time"] == "measured" else "none" for p in ends],
                   edgecolors=line.get_color())
    for value in sorted({round(r["bicubic_psnr"], 4) for r in records if r["bicubic_psnr"] is not None}):
        ax.axhline(value, color="grey", ls="--", lw=1, label=f"bicubic ({value:.2f} dB)")
    ax.set_xlabel("cumulative training time (h, wall clock; machines and loads differ)")
    ax.set_ylabel(f"{PRIMARY.header}, held-out ({records[0]['table']})")
    ax.set_xlim(left=0)  # the time before the first record is part of the story: nothing is recorded there


def run(args: argparse.Namespace) -> dict:
    """Read every model, compare every ordered pair, print the verdicts, write JSON and PNG."""
    histories = {name: json.loads(Path(path).read_text()) for name, path in args.history}
    records = [model_record(name, Path(folder), args.table, histories.get(name)) for name, folder in args.model]
    pairs = [overtaking(a, b) for a, b in itertools.permutations(records, 2)]
    report = {"about": "held-out PSNR-Y against cumulative wall-clock training time, from the runs' own records; "
                       "stages ran on different machines, thread counts and loads (see each stage)",
              "table": args.table, "models": records, "overtaking": pairs}
    folders = [Path(args.out)] + ([SHIPPED_RESULTS] if args.write_shipped_results else [])
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        json_name = SHIPPED_JSON if folder == SHIPPED_RESULTS else JSON_FILE
        (folder / json_name).write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
        plot(records, folder / PLOT_FILE)
        print(f"training_curves: wrote {folder / json_name} and {folder / PLOT_FILE}")
    if args.into_cards:
        put_in_cards([Path(folder) for _, folder in args.model], Path(args.out) / PLOT_FILE)
    for pair in pairs:
        print(pair["sentence"])
    return report


def put_in_cards(folders: list[Path], plot_file: Path) -> None:
    """The plot as the training-curve picture of each saved model among ``folders`` (those
    with a config.json; a run that has not finished has none), re-saved in place:
    ``save_pretrained`` replaces the model's files together, so a failure leaves the folder
    as it was."""
    from PIL import Image

    from sr_models import load_model
    from sr_models.constants import CONFIG_FILE

    with Image.open(plot_file) as opened:
        image = opened.convert("RGB")
    for folder in folders:
        if not (folder / CONFIG_FILE).is_file():
            print(f"training_curves: {folder} holds no saved model; its card is left as it is")
            continue
        model = load_model(folder)
        model.training_curve_image = image
        model.save_pretrained(folder)
        print(f"training_curves: the plot is now in {folder}'s model card")


def named_path(text: str) -> tuple[str, Path]:
    """``NAME=PATH`` of --model and --history."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", type=named_path, default=None, metavar="NAME=FOLDER",
                        help="a run or weights folder (repeatable; default: the bundled faces pair)")
    parser.add_argument("--history", action="append", type=named_path, default=None, metavar="NAME=FILE",
                        help="points a run's facts lack (repeatable; default with the default models: "
                             f"{DEFAULT_HISTORIES[0][1].relative_to(PROJECT_ROOT)})")
    parser.add_argument("--table", default="celeba",
                        help="the stage scores to read: the held-out set the validation used (default: %(default)s)")
    parser.add_argument("--out", default=None, help="output folder (default: a fresh runs/training-curves-<time>/)")
    parser.add_argument("--write-shipped-results", action="store_true",
                        help=f"also write {PLOT_FILE} and {SHIPPED_JSON} to benchmarks/results/")
    parser.add_argument("--into-cards", action="store_true",
                        help="also put the plot in the model card of every --model folder that holds a saved model")
    args = parser.parse_args(argv)
    if args.model is None:
        args.model, args.history = DEFAULT_MODELS, args.history or DEFAULT_HISTORIES
    args.history = args.history or []
    if len({name for name, _ in args.model}) < 2:
        parser.error("give at least two models with different names (--model NAME=FOLDER)")
    args.out = args.out or str(fresh_output_dir("training-curves"))
    return args


if __name__ == "__main__":
    run(parse_args())
