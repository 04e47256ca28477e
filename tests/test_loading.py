"""load_model: presets only with random_weights=True, bundled weights and their override
variables, names that are none of the accepted kinds."""

import json

import pytest
from huggingface_hub.errors import LocalEntryNotFoundError
from safetensors.torch import save_file

import sr_models.hub as hub
from huggingface_hub import constants as hub_constants
from sr_models import ESPCN, HAT, load_model
from sr_models.loading import BUNDLED, DEFAULT_MODELS, bundled_folder, load_bundled


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch):
    """The bundled weights themselves, whatever the environment running the tests says."""
    for entry in BUNDLED.values():
        monkeypatch.delenv(entry.env_var, raising=False)


@pytest.mark.parametrize("preset", ["espcn", "hat-s", "espcn-tiny"])
def test_a_preset_name_is_refused_without_the_random_weights_opt_in(preset):
    with pytest.raises(ValueError) as err:
        load_model(preset)
    assert str(err.value) == (
        f"{preset!r} is a preset: a fresh model with random (untrained) weights; pass random_weights=True "
        "(CLI: --random-weights) to use it, or load trained weights: espcn-faces, hat-faces, a folder, a repo id")


def test_a_preset_with_the_opt_in_is_a_fresh_untrained_model():
    model = load_model("hat-tiny", scale=2, random_weights=True, window_size=4)
    assert isinstance(model, HAT) and model.scale == 2 and model.config["window_size"] == 4
    assert model.pretrained is False


def test_every_loaded_model_says_it_is_pretrained(tmp_path):
    ESPCN.from_preset("espcn-tiny").save_pretrained(tmp_path / "folder")
    save_file(HAT.from_preset("hat-tiny").state_dict(), tmp_path / "official.safetensors")
    for source in ["espcn-faces", "hat-faces", tmp_path / "folder", tmp_path / "official.safetensors"]:
        assert load_model(source).pretrained is True, source
    # random_weights allows a preset; it changes nothing for trained weights
    assert load_model(tmp_path / "folder", random_weights=True).pretrained is True


def test_load_model_explains_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="neither bundled weights"):
        load_model("no-such-preset")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="not a checkpoint"):
        load_model(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path)
    HAT.from_preset("hat-tiny").save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match="is a x4 model, but scale=2"):
        load_model(tmp_path / "m", scale=2)


def test_a_relative_folder_that_is_not_a_model_folder_says_what_is_wrong(tmp_path, monkeypatch):
    """``--model ../weights`` was reported as an invalid repo id (issue 19, item 14)."""
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    with pytest.raises(ValueError) as err:
        load_model("../weights")
    assert str(err.value).startswith(f"there is no file or folder '../weights' (from {tmp_path / 'work'})")
    assert "repo id" not in str(err.value).split(",")[0]

    (tmp_path / "weights").mkdir()
    ESPCN.from_preset("espcn-tiny").save_pretrained(tmp_path / "weights" / "espcn-x4")
    (tmp_path / "weights" / "notes.txt").write_text("")
    for load in (load_model, ESPCN.from_pretrained):
        with pytest.raises(FileNotFoundError, match=r"^\.\./weights is not a model folder \(no config\.json\); "
                                                    "the model folders in it: espcn-x4$"):
            load("../weights")
    (tmp_path / "weights" / "espcn-x4").rename(tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match=r"is not a model folder: it has no config\.json \(it holds notes\.txt\)"):
        load_model("../weights")


def test_a_repo_the_hub_does_not_have_is_named(monkeypatch):
    import httpx2
    from huggingface_hub.errors import RepositoryNotFoundError

    def not_found(*args, **kwargs):
        response = httpx2.Response(404, request=httpx2.Request("HEAD", "https://hub.invalid/you/x"))
        raise RepositoryNotFoundError("404 Client Error. Repository Not Found\nmore lines", response=response)

    monkeypatch.setattr(hub, "get_hf_file_metadata", not_found)  # the Hub answers, then says the same again
    monkeypatch.setattr(hub, "hf_hub_download", not_found)
    with pytest.raises(FileNotFoundError, match=r"^no model 'you/x' on the Hugging Face Hub \(.*\), or it is "
                                                "private or gated"):
        load_model("you/x")


def test_the_registry_names_each_bundled_folder_with_its_architecture():
    assert DEFAULT_MODELS == ["espcn-faces", "hat-faces"]
    for name, entry in BUNDLED.items():
        config = json.loads((bundled_folder(name) / "config.json").read_text())
        assert config["architecture"] == entry.architecture


@pytest.mark.parametrize("name,arch", [("espcn-faces", "ESPCN"), ("hat-faces", "HAT")])
def test_bundled_weights_load_with_their_cards(name, arch):
    model = load_model(name)
    assert type(model).__name__ == arch and model.scale == 4 and not model.training
    assert model.card_info.faces and "non-commercial" in model.card_info.licence_note
    evaluation = model.card_info.evaluations[0]
    assert evaluation["model"]["psnr"] > evaluation["bicubic"]["psnr"] + 1.0


def test_an_override_of_the_same_architecture_replaces_the_bundled_weights(tmp_path, monkeypatch):
    model = ESPCN.from_preset("espcn-tiny")
    model.save_pretrained(tmp_path / "mine")
    monkeypatch.setenv("SR_ESPCN_MODEL", str(tmp_path / "mine"))
    loaded, source = load_bundled("espcn-faces")
    assert loaded.config == model.config and source == f"{tmp_path / 'mine'} (from SR_ESPCN_MODEL)"
    monkeypatch.setenv("SR_HAT_MODEL", "hat-faces")  # its own name: the bundled weights, no loop
    assert load_bundled("hat-faces")[1] == "bundled weights/hat-small-faces-x4"


def test_an_override_that_cannot_be_fetched_falls_back_with_a_warning(monkeypatch, caplog):
    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("offline and not in the cache")

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "hf_hub_download", offline)
    monkeypatch.setenv("SR_HAT_MODEL", "someone/not-cached")
    model, source = load_bundled("hat-faces")
    assert isinstance(model, HAT) and source == "bundled weights/hat-small-faces-x4"
    assert "SR_HAT_MODEL=someone/not-cached cannot be fetched" in caplog.text


@pytest.mark.parametrize("override,message", [
    ("hat-s", "SR_HAT_MODEL='hat-s' is a preset: a fresh model with random (untrained) weights"),
    ("espcn-faces", "SR_HAT_MODEL='espcn-faces' holds ESPCN weights, but SR_HAT_MODEL replaces the bundled HAT"),
    ("espcn-folder", "holds ESPCN weights, but SR_HAT_MODEL replaces the bundled HAT weights (hat-faces)"),
    ("broken-folder", "must hold a JSON object"),
    ("not/a/repo/id", "neither bundled weights"),
])
def test_a_misconfigured_override_is_an_error_not_a_fallback(tmp_path, monkeypatch, override, message):
    if override == "espcn-folder":
        override = str(tmp_path / "espcn")
        ESPCN.from_preset("espcn-tiny").save_pretrained(override)
    elif override == "broken-folder":
        override = str(tmp_path / "broken")
        ESPCN.from_preset("espcn-tiny").save_pretrained(override)
        (tmp_path / "broken" / "config.json").write_text("[]")
    monkeypatch.setenv("SR_HAT_MODEL", override)
    with pytest.raises(ValueError) as err:
        load_bundled("hat-faces")
    assert message in str(err.value)
    with pytest.raises(ValueError):
        load_model("hat-faces")  # the same path: bundled names go through load_bundled
