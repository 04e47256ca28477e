"""The run's validation history (issue 23 item 5; sr_models/training/trainer.py,
checkpoints.py, report.py): one entry per validation with the run's own training seconds,
carried by every checkpoint so that a resumed run continues it, and written into
training_facts.json beside the bicubic baseline."""

import json
from pathlib import Path

import pytest
# The in-process run helpers of the trainer's tests (fixtures: images, make_trainer).
from test_train_trainer import images, make_trainer, run_in_process, tiny_args  # noqa: F401

from sr_models import metric_registry
from sr_models.training import checkpoints


def facts_of(out: Path) -> dict:
    return json.loads((out / "training_facts.json").read_text())


def test_every_validation_is_recorded_with_its_training_seconds(images, tmp_path, make_trainer):  # noqa: F811
    out = run_in_process(make_trainer, images, tmp_path / "out", "--max_train_steps", "3")
    facts = facts_of(out)
    history = facts["validation_history"]
    assert [entry["step"] for entry in history] == [1, 2, 3]  # --validation_steps 1
    seconds = [entry["wall_time_s"] for entry in history]
    # Rounded to 0.01 s as recorded, a tiny model's steps may take the same hundredth (or none
    # on a fast CPU): the seconds never go back, and never pass the run's own.
    assert 0 <= seconds[0] <= seconds[1] <= seconds[2] <= facts["wall_time_s"]
    metrics = json.loads((out / "metrics.json").read_text())
    for key in metric_registry.KEYS:
        assert history[-1][key] == pytest.approx(metrics[key], abs=1e-9)  # the last validation is the final one
        assert facts["validation_bicubic"][key] == pytest.approx(metrics[f"bicubic_{key}"], abs=1e-9)


def test_a_resumed_run_keeps_the_earlier_entries(images, tmp_path, make_trainer):  # noqa: F811
    out = run_in_process(make_trainer, images, tmp_path / "out")
    checkpoint = out / "checkpoint-1"
    first, _ = checkpoints.read_state(checkpoint)
    assert [entry["step"] for entry in first.validation_history] == [1]  # validated before it was saved
    make_trainer(tiny_args(images, out, "--max_train_steps", "3", "--resume_from_checkpoint", str(checkpoint))).fit()
    history = facts_of(out)["validation_history"]
    assert [entry["step"] for entry in history] == [1, 2, 3]
    assert history[0] == first.validation_history[0]  # the earlier run's entry, unchanged
    assert history[0]["wall_time_s"] < history[1]["wall_time_s"] < history[2]["wall_time_s"]


def test_a_checkpoint_without_a_history_resumes_with_the_new_entries_only(images, tmp_path, make_trainer):  # noqa: F811
    """Checkpoints written before the history was recorded lack the key."""
    out = run_in_process(make_trainer, images, tmp_path / "out")
    state_file = out / "checkpoint-1" / checkpoints.STATE_FILE
    raw = json.loads(state_file.read_text())
    del raw["validation_history"]
    state_file.write_text(json.dumps(raw))
    make_trainer(tiny_args(images, out, "--resume_from_checkpoint", str(out / "checkpoint-1"))).fit()
    assert [entry["step"] for entry in facts_of(out)["validation_history"]] == [2]


def test_validating_the_last_step_again_replaces_its_entry(images, tmp_path, make_trainer):  # noqa: F811
    """A run resumed from its last checkpoint validates that step again in finish()."""
    out = run_in_process(make_trainer, images, tmp_path / "out")
    make_trainer(tiny_args(images, out, "--resume_from_checkpoint", str(out / "checkpoint-2"))).fit()
    assert [entry["step"] for entry in facts_of(out)["validation_history"]] == [1, 2]
