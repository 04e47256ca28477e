"""The wheel: what it ships (the library, the app, bundled weights, templates, examples, the
training package and its configs, the evaluate module) and what it does not (the scripts
that built the weights, tests, benchmarks); installed, it works from another folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What a checkout may hold beside the project's files (environments, build output, data).
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
                                    ".gradio", "data", "runs", "outputs", ".pytest_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout (a build writes build/ and *.egg-info
    into its source), without build isolation: setuptools is already here, no network."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "--quiet", "-w", str(work / "dist"), str(source)], check=True)
    (path,) = (work / "dist").glob("sr_models-*.whl")
    return path


@pytest.fixture(scope="module")
def names(wheel) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_wheel_ships_the_library_the_app_and_the_training_package(names):
    for name in ("sr_models/__init__.py", "sr_models/cli.py", "sr_models/app.py", "sr_models/training/__init__.py",
                 "sr_models/training/hat.py", "sr_models/training/espcn.py",
                 "sr_models/training/configs/single_gpu.yaml", "sr_models/training/configs/cpu.yaml"):
        assert name in names, name


def test_wheel_ships_weights_templates_examples_and_the_evaluate_module_as_data(names):
    for folder in ("espcn-faces-x4", "hat-small-faces-x4"):
        for file in ("config.json", "model.safetensors", "model_card.json", "README.md"):
            assert f"sr_models/weights/{folder}/{file}" in names
    for template in ("base.md", "espcn.md", "hat.md"):
        assert f"sr_models/model_cards/{template}" in names
    assert {"sr_models/examples/astronaut.png", "sr_models/examples/LICENSE.md"} <= names
    assert {"sr_models/sr_metrics/sr_metrics.py", "sr_models/sr_metrics/README.md"} <= names


def test_wheel_ships_no_build_scripts_tests_or_benchmarks(names):
    assert not [n for n in names if n.startswith("sr_models/weights/") and n.endswith(".py")]
    top_level = {n.split("/")[0] for n in names}
    # No tests/, benchmarks/, scripts/, and no generic top-level name such as `train`.
    assert top_level == {"sr_models", "sr_models-0.1.0.dist-info"}
    assert not [n for n in names if n.endswith(".pyi") or "__pycache__" in n]


def test_wheel_entry_point_is_the_cli(wheel):
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read("sr_models-0.1.0.dist-info/entry_points.txt").decode()
    assert re.search(r"^sr-models = sr_models\.cli:main$", entry_points, re.M)


def test_installed_wheel_works_from_another_folder(wheel, tmp_path):
    """Installed (without dependencies: this environment has them) into a folder first on
    the path, run from a folder that is not the checkout: the CLI, the bundled weights, the
    app's examples, the training package and the evaluate module all come from the wheel."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                    "--target", str(site), str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    probe = """
import importlib.resources, json
import evaluate, sr_models, sr_models.training.hat as train
from sr_models import load_model
from sr_models.app import example_images
from sr_models.loading import bundled_folder
model = load_model("hat-faces")
metric = evaluate.load(str(importlib.resources.files("sr_models") / "sr_metrics"))
print(json.dumps({"sr_models": sr_models.__file__, "train": train.__file__, "weights": str(bundled_folder("hat-faces")),
                  "examples": example_images(), "pretrained": model.pretrained, "metric": metric.name}))
"""
    out = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("sr_models", "train", "weights"):
        assert Path(facts[key]).is_relative_to(site), (key, facts[key])
    assert facts["examples"] and all(Path(p).is_relative_to(site) for p in facts["examples"])
    assert facts["pretrained"] is True and facts["metric"] == "sr_metrics"
    cli = subprocess.run([str(site / "bin" / "sr-models"), "--version"], cwd=elsewhere, env=env,
                         capture_output=True, text=True)
    assert cli.returncode == 0 and "0.1.0" in cli.stdout + cli.stderr, cli.stderr


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel installed (without dependencies) into a folder of its own."""
    site = tmp_path_factory.mktemp("installed")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                    "--target", str(site), str(wheel)], check=True)
    return site


@pytest.mark.parametrize("script", ["hat", "espcn"])
def test_installed_training_scripts_run_beside_a_users_own_train_py(installed, tmp_path, script):
    """The training package has a name of the project's own: a folder holding its own
    ``train.py`` (or ``train/``) does not shadow it, as it shadowed the old top-level ``train``."""
    site = installed
    users = tmp_path / "users_project"
    users.mkdir()
    (users / "train.py").write_text("raise SystemExit('the user\'s own train.py was imported')\n")
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", f"sr_models.training.{script}", "--help"], cwd=users, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "--max_train_steps" in out.stdout
    assert Path(site / "sr_models" / "training" / f"{script}.py").is_file()


@pytest.mark.parametrize("script", ["hat", "espcn"])
def test_checkout_training_files_run_beside_a_users_own_train_py(tmp_path, script):
    """``python train/hat.py`` from a checkout (the design's entry point) works from another
    folder that holds a ``train.py`` of its own."""
    users = tmp_path / "users_project"
    users.mkdir()
    (users / "train.py").write_text("raise SystemExit('the user\'s own train.py was imported')\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "train" / f"{script}.py"), "--help"], cwd=users, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "--max_train_steps" in out.stdout


@pytest.mark.parametrize("folder", ["benchmarks", "scripts", "evaluate_modules"])
def test_no_sys_path_edits(folder):
    """Packages are imported as packages (python -m benchmarks.X, scripts.X), never by
    editing sys.path."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*.py") if "sys.path" in p.read_text()]
    assert offenders == []
