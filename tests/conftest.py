"""Shared fixtures and test doubles: seeded RNG, the official tiny-HAT reference data, a
recording stand-in for the Hub API."""

import contextlib
import gzip
import json
import tempfile
import types
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@contextlib.contextmanager
def gradio_client_scratch(folder: Path):
    """gradio_client downloads every result through a new folder under
    tempfile.gettempdir() and leaves it there, empty: while this is open, the client's own
    tempfile (not the app's under test) puts those folders in ``folder``."""
    from gradio_client import client

    scratch = types.SimpleNamespace(gettempdir=lambda: str(folder), TemporaryDirectory=tempfile.TemporaryDirectory)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(client, "tempfile", scratch)
        yield


def load_reference(scale: int) -> dict:
    """The official tiny HAT at ``scale``: config, weights (official keys), inputs, outputs."""
    with safe_open(DATA / f"tiny_x{scale}.safetensors", "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        config = json.loads(f.metadata()["config"])
    return {
        "config": config,
        "weights": {k[len("weights."):]: v for k, v in tensors.items() if k.startswith("weights.")},
        "inputs": [tensors["input.0"], tensors["input.1"]],
        "outputs": [tensors["output.0"], tensors["output.1"]],
    }


def official_layouts() -> dict:
    with gzip.open(DATA / "official_layouts.json.gz", "rt") as f:
        return json.load(f)


class RecordingApi:
    """``huggingface_hub.HfApi`` at its boundary (what ``sr_models.publish`` calls):
    records each call in ``calls`` and returns what the real one would."""

    def __init__(self, *args, **kwargs):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", repo_id, kwargs))

    def create_commit(self, repo_id, operations, **kwargs):
        self.calls.append(("create_commit", repo_id, sorted(op.path_in_repo for op in operations), kwargs))

        class Info:
            commit_url = f"https://huggingface.co/{repo_id}/commit/abc123"
        return Info()


@pytest.fixture
def recording_api(monkeypatch) -> RecordingApi:
    """One RecordingApi that every ``HfApi()`` made by ``sr_models.publish`` returns, with a
    fake token set (no network, nothing published)."""
    import sr_models.publish as publish

    api = RecordingApi()
    monkeypatch.setattr(publish, "HfApi", lambda *args, **kwargs: api)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_value")
    return api
