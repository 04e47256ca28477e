"""``sr-models space deploy`` (sr_models.space) against a stand-in HfApi with the real one's
signatures: the repo it creates, the exact files it uploads, the README it writes."""

from importlib import metadata
from pathlib import Path
from unittest.mock import create_autospec

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, RepoUrl
from huggingface_hub.repocard import RepoCard
from huggingface_hub.repocard_data import SpaceCardData

from sr_models import space
from sr_models.bundled import BUNDLED
from sr_models.cli import main
from sr_models.publish import PublishError

GRADIO = metadata.version("gradio")
FRONT_MATTER = """---
title: A title
emoji: 🔍
colorFrom: indigo
colorTo: gray
sdk: gradio
sdk_version: 1.0.0
app_file: app.py
license: apache-2.0
short_description: Short words
---

# The project's own README, with links to docs/ the Space has not
"""


def _api(existing=(".gitattributes", "README.md")):
    """A stand-in HfApi: autospec'd, so a call the real client does not take fails."""
    api = create_autospec(HfApi, instance=True)
    api.create_repo.return_value = RepoUrl("https://huggingface.co/spaces/you/name")
    api.list_repo_files.return_value = list(existing)
    return api


def _write(path: Path, content: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


@pytest.fixture
def checkout(tmp_path):
    """A source checkout with what a Space needs and what it must not get."""
    root = tmp_path / "project"
    (root / "README.md").parent.mkdir(parents=True)
    (root / "README.md").write_text(FRONT_MATTER)
    (root / "requirements.txt").write_text(f"torch==2.13.0\ngradio=={GRADIO}\n")
    for name in ("app.py", "sr_models/__init__.py", "sr_models/app.py", "sr_models/training/__init__.py",
                 "examples/a.png", "examples/LICENSE.md", "sr_models/__pycache__/app.cpython-311.pyc",
                 "sr_models/app.pyi", "sr_models/.hidden.py", "examples/.DS_Store", "tests/test_a.py",
                 "data/faces/val/0.png", "runs/x/model.safetensors", "weights/my-run/model.safetensors",
                 ".git/config", "benchmarks/compare.py", "docs/app.md"):
        _write(root / name)
    for entry in BUNDLED.values():
        for name in ("config.json", "model.safetensors", "README.md", ".cache/lock"):
            _write(root / "weights" / entry.folder / name)
    return root


def _expected_files() -> list[str]:
    weights = [f"weights/{e.folder}/{name}" for e in BUNDLED.values()
               for name in ("README.md", "config.json", "model.safetensors")]
    return sorted(["README.md", "app.py", "requirements.txt", "sr_models/__init__.py", "sr_models/app.py",
                   "sr_models/training/__init__.py", "examples/LICENSE.md", "examples/a.png", *weights])


def test_deploy_creates_a_gradio_space_and_commits_exactly_its_files(checkout):
    api = _api()
    url, count = space.deploy_space("you/name", token="hf_test", root=checkout, api=api)
    assert url == "https://huggingface.co/spaces/you/name" and count == len(_expected_files())
    api.create_repo.assert_called_once_with("you/name", repo_type="space", space_sdk="gradio", private=None,
                                            exist_ok=True)
    api.list_repo_files.assert_called_once_with("you/name", repo_type="space")
    (repo_id, operations), kwargs = api.create_commit.call_args
    assert repo_id == "you/name" and kwargs["repo_type"] == "space"
    assert all(isinstance(op, CommitOperationAdd) for op in operations)
    assert [op.path_in_repo for op in operations] == _expected_files()
    local = {op.path_in_repo: op.path_or_fileobj for op in operations}
    assert local["weights/hat-small-real-x4/model.safetensors"] == str(
        checkout / "weights/hat-small-real-x4/model.safetensors")


def test_deploy_private_and_stale_files_deleted(checkout):
    api = _api(existing=[".gitattributes", "README.md", "app.py", "sr_models/old.py", "weights/old/model.safetensors"])
    space.deploy_space("you/name", private=True, token="hf_test", root=checkout, api=api)
    assert api.create_repo.call_args.kwargs["private"] is True
    operations = api.create_commit.call_args.args[1]
    deleted = [op.path_in_repo for op in operations if isinstance(op, CommitOperationDelete)]
    assert deleted == ["sr_models/old.py", "weights/old/model.safetensors"]  # .gitattributes stays


def test_the_space_readme_front_matter(checkout):
    operations = space.space_operations(checkout)
    text = next(op for op in operations if op.path_in_repo == "README.md").path_or_fileobj.decode()
    card = RepoCard(text)
    data = card.data.to_dict()
    assert data == {"title": "A title", "emoji": "🔍", "colorFrom": "indigo", "colorTo": "gray", "sdk": "gradio",
                    "sdk_version": GRADIO, "app_file": "app.py", "license": "apache-2.0",
                    "short_description": "Short words"}
    assert SpaceCardData(**data).sdk_version == GRADIO
    assert "docs/" not in card.text and "# A title" in card.text


def test_the_space_requirements_take_torch_from_the_cpu_index(checkout):
    operations = space.space_operations(checkout)
    text = next(op for op in operations if op.path_in_repo == "requirements.txt").path_or_fileobj.decode()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == ["--extra-index-url https://download.pytorch.org/whl/cpu", "torch==2.13.0", f"gradio=={GRADIO}"]


def test_a_gradio_pin_other_than_the_installed_one_is_refused_before_any_request(checkout):
    (checkout / "requirements.txt").write_text("gradio==0.0.1\n")
    api = _api()
    with pytest.raises(PublishError, match=f"pins gradio==0.0.1, but gradio {GRADIO} is installed"):
        space.deploy_space("you/name", token="hf_test", root=checkout, api=api)
    assert api.method_calls == []


@pytest.mark.parametrize("replace, message", [
    ("colorTo: gray", "colorTo='grey' is not a Space colour"),
    ("short_description: Short words", "short_description has 61 characters"),
    ("emoji: 🔍\n", "lacks emoji"),
])
def test_front_matter_the_hub_would_refuse_is_refused(checkout, replace, message):
    new = {"colorTo: gray": "colorTo: grey", "short_description: Short words": "short_description: " + "x" * 61,
           "emoji: 🔍\n": ""}[replace]
    (checkout / "README.md").write_text(FRONT_MATTER.replace(replace, new))
    with pytest.raises(PublishError, match=message):
        space.space_operations(checkout)


def test_a_folder_that_is_not_a_checkout_is_refused(checkout):
    (checkout / "app.py").unlink()
    with pytest.raises(PublishError, match=r"not a source checkout of sr-models \(missing app.py\)"):
        space.space_files(checkout)


@pytest.mark.parametrize("repo_id", ["name", "a/b/c", "you/bad name"])
def test_a_bad_repo_id_is_refused(checkout, repo_id):
    with pytest.raises(PublishError, match="--repo-id must look like USER/NAME"):
        space.deploy_space(repo_id, token="hf_test", root=checkout, api=_api())


def test_no_login_is_refused_before_any_request(checkout, monkeypatch):
    monkeypatch.setattr("sr_models.publish.get_token", lambda: None)
    api = _api()
    with pytest.raises(PublishError, match="not logged in"):
        space.deploy_space("you/name", root=checkout, api=api)
    assert api.method_calls == []


def test_the_real_checkout_gives_the_app_its_files():
    files = space.space_files()
    assert {"app.py", "requirements.txt", "sr_models/app.py", "sr_models/space.py", "examples/LICENSE.md"} <= set(files)
    assert {f"weights/{e.folder}/model.safetensors" for e in BUNDLED.values()} <= set(files)
    assert not [p for p in files if p.startswith(("tests/", "data/", "runs/", "benchmarks/", "docs/"))
                or "__pycache__" in p or p.endswith((".pyc", ".pyi"))]


def test_the_command_deploys_and_says_where(monkeypatch, capsys):
    api = _api()
    monkeypatch.setattr(space, "HfApi", lambda token: api)
    assert main(["space", "deploy", "--repo-id", "you/name", "--token", "hf_test"]) == 0
    assert "deployed the app to https://huggingface.co/spaces/you/name" in capsys.readouterr().out
    assert api.create_commit.call_count == 1


def test_an_unreachable_hub_is_one_line_and_exit_2(monkeypatch, capsys):
    api = _api()
    api.create_repo.side_effect = ConnectionError("no route to host")
    monkeypatch.setattr(space, "HfApi", lambda token: api)
    assert main(["space", "deploy", "--repo-id", "you/name", "--token", "hf_test"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the Hugging Face Hub") and "you/name" in err
    assert len(err.strip().splitlines()) == 1
    api.create_commit.assert_not_called()
