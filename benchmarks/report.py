"""The study's report: the markdown of compare.md and of docs/study.md's results block,
the README's short quality table, and the rewriting of both pages' blocks."""

from __future__ import annotations

import os
import re
from pathlib import Path

from benchmarks.child import PROJECT_ROOT
from benchmarks.plots import PSNR_VS_LATENCY, crops_file, per_image_file
from sr_models.cards import format_duration
from sr_models.constants import PROTOCOL
from sr_models import metric_registry
from sr_models.metric_registry import PRIMARY
from sr_models.protocol import BICUBIC, describe_lr

RESULTS_START, RESULTS_END = "<!-- results:start -->", "<!-- results:end -->"
README = PROJECT_ROOT / "README.md"
STUDY = PROJECT_ROOT / "docs" / "study.md"


def quality_table(summary: dict) -> list[str]:
    """A quality table in markdown.

    Args:
        summary: method -> its means (``Evaluation.to_json()["summary"]``).

    Returns:
        The lines: one row per method, one column per registry metric ("-" where the table has
        no value: one written before the metric existed, or images too small for it), and the
        gain in PSNR over bicubic.
    """
    metrics, base = metric_registry.METRICS, summary[BICUBIC][PRIMARY.key]
    lines = ["| method | " + " | ".join(m.header for m in metrics) + f" | gain over bicubic ({PRIMARY.unit}) |",
             "|---" * (len(metrics) + 2) + "|"]
    return lines + [f"| {name} | " + " | ".join(m.show(s.get(m.key)) for m in metrics)
                    + f" | {s[PRIMARY.key] - base:+.2f} |" for name, s in summary.items()]


def _or_dash(value, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def cost_table(report: dict) -> list[str]:
    cost, sizes = report["cost"], report["latency_sizes"]
    first = next(iter(cost))
    lines = [f"**Cost** — {report['machine']}; latency = median of {report['repeats']} runs of one "
             f"forward pass; ratio to {first} measured in the same run; peak RSS of a fresh process "
             f"upscaling one {max(sizes)}² LR image (— for peers, which run outside torch).", ""]
    header = "| model | parameters | GFLOPs / LR MP | " + " | ".join(f"latency {s}² (ms, ×{first})" for s in sizes)
    lines += [header + " | peak RSS (MB) |", "|---" * (4 + len(sizes)) + "|"]
    for name, c in cost.items():
        latency = " | ".join(f"{c['latency_s'][s] * 1000:.1f} (×{c['latency_ratio'][s]:.1f})" for s in sizes)
        gflops = None if c["flops_per_lr_mp"] is None else c["flops_per_lr_mp"] / 1e9
        lines.append(f"| {name} | {c['parameters']:,} | {_or_dash(gflops, '.1f')} | {latency} | "
                     f"{_or_dash(c['peak_rss_mb'], '.0f')} |")
    return lines


def training_table(training: dict) -> list[str]:
    lines = ["**Training cost**, summed over each model's training stages (each stage fine-tunes the weights "
             "the previous one shipped; from the weights' training_facts.json, else the model card)", "",
             "| model | stages | steps | images seen | wall time | hardware | precision |",
             "|---|---|---|---|---|---|---|"]
    for name, t in training.items():
        wall = format_duration(t["wall_time_s"]) if t.get("wall_time_s") else "—"
        precision = {"no": "fp32"}.get(t.get("precision"), t.get("precision"))
        lines.append(f"| {name} | {t['stages']} | {_or_dash(t.get('steps'), ',')} | "
                     f"{_or_dash(t.get('images_seen'), ',')} | {wall} | {t.get('hardware') or '—'} | "
                     f"{precision or '—'} |")
    return lines


def peers_table(peers: dict) -> list[str]:
    """What each peer is: not ours, trained by its authors on other data, under its own licence."""
    if not peers:
        return []
    lines = ["**Peers** — not ours: models people use instead, run through their own packages on this CPU "
             "(benchmarks/peers.py), as references.", "",
             "| peer | trained on | licence | threads |", "|---|---|---|---|"]
    rows = [f"| {name} | {p['trained_on']} | {p['licence']} | {p['threads']} |" for name, p in peers.items()]
    return lines + rows + [""]


def protocol_line(report: dict) -> str:
    line = f"Protocol: {PROTOCOL}."
    if any(t["degradation"] for t in report["quality"]):
        line += (" Tables marked with a realistic degradation change only the LR: drawn by "
                 "sr_models.degradations from the preset with the seed given, one fixed LR per image.")
    return line


def quality_section(table: dict, report: dict, plot) -> list[str]:
    """One quality table with its heading, per-image plot and, for the main set, its crops."""
    lines = [f"**Quality — {table['name']}**, LR: {describe_lr(table['degradation'], table['seed'])}. "
             f"{len(table['images'])} held-out HR images from `{table['hr_dir']}`, x{report['scale']}, "
             f"HR {report['hr_size'] or 'as is'}.", ""]
    lines += quality_table(table["summary"])
    lines += ["", f"![Per-image PSNR, {table['name']}]({plot(per_image_file(table))})"]
    crops = crops_file(table, report)
    if crops:
        columns = " | ".join(["LR", BICUBIC, *report["cost"], "HR"])
        lines += ["", f"![Crops, {table['name']}: {columns}]({plot(crops)})"]
    return lines + [""]


def markdown(report: dict, plots_dir: str = ".") -> str:
    """The full report; plots are linked as ``plots_dir/<file>`` (relative to the page)."""
    def plot(name: str) -> str:
        return name if plots_dir == "." else f"{plots_dir}/{name}"

    lines = [protocol_line(report), ""]
    for table in report["quality"]:
        lines += quality_section(table, report, plot)
    lines += cost_table(report) + [""] + training_table(report["training"]) + [""] + peers_table(report["peers"])
    lines += [f"![PSNR vs latency, {report['quality'][0]['name']}]({plot(PSNR_VS_LATENCY)})", ""]
    return "\n".join(lines)


def column_label(table: dict) -> str:
    lr = "" if table["degradation"] is None else f", {table['degradation']} seed {table['seed']}"
    return f"{table['name']}{lr} ({len(table['images'])})"


def summary_markdown(report: dict, study_link: str) -> str:
    """The README's short block: one row per method, one column per quality table holding
    every metric all the tables have, and one line that links the study."""
    tables = report["quality"]
    lines = ["| method | " + " | ".join(column_label(t) for t in tables) + " |", "|---" * (1 + len(tables)) + "|"]
    shown = [m for m in metric_registry.METRICS if all(m.key in t["summary"][BICUBIC] for t in tables)]
    for method in tables[0]["summary"]:
        cells = []
        for table in tables:
            s, base = table["summary"][method], table["summary"][BICUBIC][PRIMARY.key]
            gain = "" if method == BICUBIC else f" ({s[PRIMARY.key] - base:+.2f})"
            cells.append(" / ".join(m.show(s[m.key]) for m in shown) + gain)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    realistic = "; columns naming a degradation: realistic LR (sr_models.degradations)" \
        if any(t["degradation"] for t in tables) else ""
    headers = " / ".join(m.header for m in shown)
    lines += ["", f"{headers}, gain over bicubic in brackets; x{report['scale']}, held-out images "
                  f"(count in brackets), the evaluation protocol{realistic}. Cost, training cost, per-image "
                  f"scores and plots: [{study_link}]({study_link})."]
    return "\n".join(lines)


def relative(path: Path, page: Path) -> str:
    """``path`` as a link from the markdown file ``page`` (POSIX separators)."""
    return Path(os.path.relpath(path.resolve(), page.resolve().parent)).as_posix()


def replace_block(content: str, text: str, page: Path) -> str:
    """``content`` with the text between the results markers replaced by ``text``."""
    if RESULTS_START not in content or RESULTS_END not in content:
        raise SystemExit(f"{page} has no {RESULTS_START} ... {RESULTS_END} block")
    pattern = re.compile(re.escape(RESULTS_START) + ".*?" + re.escape(RESULTS_END), re.S)
    return pattern.sub(lambda _: f"{RESULTS_START}\n{text}\n{RESULTS_END}", content, count=1)


def update_pages(report: dict, results_dir: Path, readme: Path = README, study: Path = STUDY) -> None:
    """Rewrite the results blocks: the short table in ``readme``, the full report in
    ``study``. Both pages are checked before either is written."""
    pages = {
        study: markdown(report, plots_dir=relative(results_dir, study)),
        readme: summary_markdown(report, study_link=relative(study, readme)),
    }
    new = {page: replace_block(page.read_text(), text, page) for page, text in pages.items()}
    for page, content in new.items():
        page.write_text(content)
