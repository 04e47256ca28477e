"""benchmarks/training_curves.py on fake facts folders: points over a stage chain, history
files, the overtaking verdicts, and the files written."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from benchmarks import training_curves as tc

HOUR = 3600.0


def folder(tmp_path: Path, name: str, facts: dict, metrics: dict | None = None) -> Path:
    path = tmp_path / name
    path.mkdir()
    (path / "training_facts.json").write_text(json.dumps(facts))
    if metrics is not None:
        (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def single_run(tmp_path: Path, name="fast", hours=0.5, psnr=30.0) -> Path:
    """A folder without stages or history: its final validation is its one record."""
    return folder(tmp_path, name, {"steps": 1000, "wall_time_s": hours * HOUR, "hardware": "1 x CPU"},
                  {"psnr_y": psnr, "bicubic_psnr_y": 29.0})  # legacy keys, read through current_keys


def staged(tmp_path: Path, history=None, name="slow") -> Path:
    """Two stages of 1 h each; the second scored 31.0 on 'celeba', the first not at all."""
    stages = [{"steps": 100, "wall_time_s": HOUR, "hardware": "machine A", "scores": {}},
              {"steps": 200, "wall_time_s": HOUR, "hardware": "machine B", "scores": {"celeba": 31.0}}]
    facts = {"steps": 200, "wall_time_s": HOUR, "hardware": "machine B", "stages": stages,
             "validation_history": history or [], "validation_bicubic": {"psnr": 29.0}}
    return folder(tmp_path, name, facts, {"psnr": 30.99, "bicubic_psnr": 29.0})


def test_a_folder_without_stages_is_one_end_point_from_its_final_validation(tmp_path):
    record = tc.model_record("fast", single_run(tmp_path), "celeba")
    [point] = record["points"]
    assert (point["steps"], point["psnr"], point["stage_end"]) == (1000, 30.0, True)
    assert point["hours"] == pytest.approx(0.5) and point["source"].startswith("final validation")
    assert record["bicubic_psnr"] == pytest.approx(29.0) and record["stages"][0]["hardware"] == "1 x CPU"


def test_the_history_belongs_to_the_last_stage_and_the_table_score_wins_at_its_end(tmp_path):
    history = [{"step": 100, "wall_time_s": 1800.0, "psnr": 30.5}, {"step": 200, "wall_time_s": HOUR, "psnr": 30.99}]
    record = tc.model_record("slow", staged(tmp_path, history), "celeba")
    steps = [(p["steps"], p["psnr"]) for p in record["points"]]
    assert steps == [(200, 30.5), (300, 31.0)]  # after stage 1's 100 steps; stage 1 has no score
    assert [p["hours"] for p in record["points"]] == pytest.approx([1.5, 2.0])
    assert [s["hardware"] for s in record["stages"]] == ["machine A", "machine B"]


def test_a_history_file_fills_what_the_folder_lacks_with_interpolated_times(tmp_path):
    history = {"conditions": {"2": "1 thread"}, "points": [
        {"stage": 1, "step": 100, "psnr": 30.2, "source": "v1 card"},
        {"stage": 2, "step": 50, "psnr": 30.4, "source": "log"},
        {"stage": 2, "step": 200, "psnr": 30.9, "source": "log"}]}  # the folder's score wins here
    record = tc.model_record("slow", staged(tmp_path), "celeba", history)
    points = record["points"]
    assert [(p["steps"], p["psnr"], p["time"]) for p in points] == [
        (100, 30.2, "measured"), (150, 30.4, "interpolated"), (300, 31.0, "measured")]
    assert points[1]["hours"] == pytest.approx(1.25)  # 50 of stage 2's 200 steps, of its hour
    assert record["stages"][1]["conditions"] == "1 thread"


def record(name, *points):
    return {"name": name, "points": [{"hours": h, "steps": int(h * 1000), "psnr": v} for h, v in points]}


def test_overtaking_is_the_first_point_above_after_being_below():
    first, second = record("a", (0.5, 30.0), (1.0, 30.5)), record("b", (0.25, 29.0), (0.75, 30.2), (1.5, 30.6))
    verdict = tc.overtaking(first, second)
    assert verdict["verdict"] == "overtakes" and verdict["at_second"]["hours"] == pytest.approx(0.75)
    assert verdict["at_first"]["psnr"] == pytest.approx(30.0) and not verdict["first_held_past_its_records"]
    assert "b overtakes a" in verdict["sentence"] and "0.75 h" in verdict["sentence"]


def test_ahead_at_the_first_comparison_says_the_crossing_is_not_recorded():
    verdict = tc.overtaking(record("a", (0.6, 30.79)), record("b", (1.24, 31.01), (3.4, 31.12)))
    assert verdict["verdict"] == "ahead at first comparison" and verdict["first_held_past_its_records"]
    assert "not recorded" in verdict["sentence"] and "not trained longer" in verdict["sentence"]


def test_no_overtaking_and_no_common_time_are_not_shown():
    assert tc.overtaking(record("a", (0.5, 31.0)), record("b", (1.0, 30.0)))["verdict"] == "not shown"
    apart = tc.overtaking(record("a", (2.0, 30.0)), record("b", (1.0, 31.0)))
    # Compared at 2 h only (a has nothing before): b's point of 1 h, held there.
    assert apart["verdict"] == "ahead at first comparison" and apart["at_second"]["hours"] == pytest.approx(1.0)
    assert tc.overtaking(record("a", (2.0, 30.0)), record("b"))["compared_times"] == 0


def test_the_cli_writes_json_and_png_and_prints_one_line_per_ordered_pair(tmp_path, capsys):
    fast, slow = single_run(tmp_path), staged(tmp_path)
    out = tmp_path / "out"
    report = tc.run(tc.parse_args(["--model", f"fast={fast}", "--model", f"slow={slow}", "--out", str(out)]))
    written = json.loads((out / tc.JSON_FILE).read_text())
    assert written == json.loads(json.dumps(report)) and (out / tc.PLOT_FILE).stat().st_size > 0
    assert [(p["first"], p["second"]) for p in written["overtaking"]] == [("fast", "slow"), ("slow", "fast")]
    lines = capsys.readouterr().out.splitlines()
    assert "slow vs fast: slow 31.00 dB at 2.00 h" in lines[-2] and lines[-1].startswith("fast vs slow")
    with pytest.raises(SystemExit):
        tc.parse_args(["--model", f"fast={fast}"])


def test_into_cards_puts_the_plot_in_each_saved_models_card_and_leaves_the_weights(tmp_path, capsys):
    from safetensors.torch import load_file

    from sr_models import ESPCN, load_model
    from sr_models.cards import CardInfo

    fast, slow = single_run(tmp_path), staged(tmp_path)
    model = ESPCN.from_preset("espcn-tiny")
    model.save_pretrained(fast, card_info=CardInfo(training={"steps": 1000}),
                          comparison_image=Image.new("RGB", (8, 8), "red"))
    weights = load_file(fast / "model.safetensors")
    tc.run(tc.parse_args(["--model", f"fast={fast}", "--model", f"slow={slow}", "--out", str(tmp_path / "out"),
                          "--into-cards"]))
    loaded = load_model(fast)
    assert loaded.training_curve_image.size == Image.open(tmp_path / "out" / tc.PLOT_FILE).size
    assert loaded.comparison_image.size == (8, 8)
    assert all(torch.equal(weights[k], v) for k, v in load_file(fast / "model.safetensors").items())
    card = (fast / "README.md").read_text()
    assert "](training_curve.png)" in card and "](comparison.png)" in card
    assert not (slow / "training_curve.png").exists()  # a facts folder without a model is left alone
    assert f"{slow} holds no saved model" in capsys.readouterr().out


def test_the_default_models_are_all_in_the_project_with_their_records():
    for name, folder in tc.DEFAULT_MODELS:
        facts = json.loads((folder / "training_facts.json").read_text())
        assert facts.get("validation_history") or facts.get("stages") or facts.get("steps"), name  # something to plot
