"""Model cards and publishing: rendering, save/load round trip, push with HfApi mocked."""

import dataclasses
import os
import re
import subprocess
import sys

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from PIL import Image

from sr_models import ESPCN, HAT, load_model, publish
from sr_models.__main__ import main
from sr_models.cards import CardInfo, dataset_type, realistic_training, render_model_card
from sr_models.loading import BUNDLED, bundled_folder
from sr_models.protocol import degradation_of
from sr_models.publish import PublishError

INFO = CardInfo(
    evaluations=[{"dataset": "CelebA-HQ held-out faces", "dataset_id": "celeba-hq-heldout", "scale": 4,
                  "images": 8, "bicubic": {"psnr": 28.123, "ssim": 0.81}, "model": {"psnr": 29.456, "ssim": 0.8421}}],
    training={"steps": 2000, "images_seen": 32000, "wall_time_s": 5400.0, "hardware": "2-core CPU",
              "precision": "no", "dataset": "faces folder"},
    datasets=["someone/ffhq-256"],
    base_model="someone/hat-pretrained",
    license="cc-by-nc-sa-4.0",
    licence_note="Weights: CC BY-NC-SA 4.0 (trained on FFHQ).",
    faces=True,
    repo_id="me/hat-faces",
)


@pytest.mark.parametrize("preset", ["hat-tiny", "espcn-tiny"])
def test_rendered_card_parses_and_holds_the_metrics(tmp_path, preset):
    model = load_model(preset, random_weights=True)
    card = render_model_card(model, INFO, comparison_image="comparison.png")
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    data = loaded.data
    assert data.library_name == "sr-models" and data.pipeline_tag == "image-to-image"
    assert data.license == "cc-by-nc-sa-4.0" and data.datasets == ["someone/ffhq-256"]
    assert data.base_model == "someone/hat-pretrained"
    values = {(r.dataset_name, r.metric_type): r.metric_value for r in data.eval_results}
    # the card rounds the stored scores (PSNR to 0.01 dB, SSIM to 4 digits)
    assert values == pytest.approx({("CelebA-HQ held-out faces", "psnr"): 29.46,
                                    ("CelebA-HQ held-out faces", "ssim"): 0.8421}, abs=1e-9)
    text = loaded.text
    assert f"{type(model).__name__}.from_pretrained(\"me/hat-faces\")" in text
    assert "28.12 / 0.8100" in text and "+1.33" in text  # the bicubic vs model table
    assert "1 h 30 min" in text and "32,000" in text  # training facts
    assert "comparison.png" in text and "CC BY-NC-SA" in text and "@inproceedings" in text


def test_card_without_facts_says_so():
    text = render_model_card(ESPCN.from_preset("espcn-tiny")).text
    assert "Not evaluated yet" in text and "no training facts" in text


def test_save_load_round_trip_keeps_weights_config_and_card(tmp_path):
    model = HAT.from_preset("hat-tiny", upscale=2)
    model.training_curve_image = Image.new("RGB", (16, 12), "blue")
    model.save_pretrained(tmp_path, card_info=INFO, comparison_image=Image.new("RGB", (32, 8), "red"))
    assert {p.name for p in tmp_path.iterdir()} == {
        "README.md", "config.json", "model.safetensors", "model_card.json", "comparison.png", "training_curve.png"}
    loaded = HAT.from_pretrained(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert loaded.config == model.config
    assert loaded.card_info == INFO and loaded.comparison_image.size == (32, 8)
    assert loaded.training_curve_image.size == (16, 12) and "](training_curve.png)" in (tmp_path / "README.md").read_text()
    # re-saving a loaded model writes the same card (what push_to_hub uploads)
    loaded.save_pretrained(tmp_path / "again")
    assert (tmp_path / "again" / "README.md").read_text() == (tmp_path / "README.md").read_text()


def front_matter(text: str) -> dict:
    """The YAML metadata block at the top of a card, parsed."""
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "the card has no front matter"
    return yaml.safe_load(match.group(1))


NON_COMMERCIAL = dataclasses.replace(
    INFO, license="other", license_name="celeba-hq-non-commercial-research",
    license_link="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
    licence_note="Trained on CelebA-HQ: non-commercial research use only.",
    evaluations=[{**INFO.evaluations[0], "dataset": "CelebA-HQ held-out faces (9, 256x256)", "dataset_id": None}])


@pytest.mark.parametrize("cls,preset", [(HAT, "hat-tiny"), (ESPCN, "espcn-tiny")])
def test_a_card_under_another_licence_names_it_links_it_and_never_says_apache(cls, preset):
    text = str(render_model_card(cls.from_preset(preset), NON_COMMERCIAL))
    meta = front_matter(text)
    assert meta["license"] == "other" and meta["license_name"] == "celeba-hq-non-commercial-research"
    assert meta["license_link"] == "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
    assert "[celeba-hq-non-commercial-research](https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html)" in text
    assert "apache" not in text.lower()  # the code's licence is not the weights'


def test_licence_other_without_its_name_and_link_is_refused_before_anything_is_written(tmp_path):
    info = dataclasses.replace(NON_COMMERCIAL, license_link=None)
    with pytest.raises(ValueError, match="license 'other' needs license_name and license_link"):
        info.check_licence()
    model = ESPCN.from_preset("espcn-tiny")
    model.save_pretrained(tmp_path / "model")
    before = {p.name: p.read_bytes() for p in (tmp_path / "model").iterdir()}
    with pytest.raises(ValueError, match="license_link"):
        model.save_pretrained(tmp_path / "model", card_info=info)
    with pytest.raises(ValueError, match="license_link"):
        model.save_pretrained(tmp_path / "new", card_info=info)
    # a save is complete or nothing: the folder that was there is untouched, no new one
    assert {p.name: p.read_bytes() for p in (tmp_path / "model").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_the_hat_card_says_plainly_when_the_weights_need_sr_models():
    """With global_residual the official forward gives a wrong image: the card must not
    claim that official-HAT tools can run the weights; without it, it may."""
    portable = str(render_model_card(HAT.from_preset("hat-tiny")))
    assert "also open in tools that read official HAT checkpoints" in portable
    ours = str(render_model_card(HAT.from_preset("hat-tiny", global_residual=True)))
    assert "these weights need\nsr-models" in ours and "also open in tools" not in ours


def test_a_card_without_a_stated_licence_claims_none():
    card = ESPCN.from_preset("espcn-tiny").generate_model_card()
    assert "license" not in front_matter(str(card)) and "apache" not in str(card).lower()
    assert "The licence of these weights is not stated." in str(card)


@pytest.mark.parametrize("evaluation,expected", [
    ({"dataset": "FFHQ (held out)", "dataset_id": "someone/ffhq-256"}, "someone/ffhq-256"),
    ({"dataset": "CelebA-HQ held-out faces (9, 256x256)", "dataset_id": "celeba-hq-faces-heldout"},
     "celeba-hq-faces-heldout"),
    ({"dataset": "CelebA-HQ held-out faces (9, 256x256)"}, "celeba-hq-held-out-faces-9-256x256"),
    ({"dataset": "my faces", "dataset_id": "my faces / val"}, "my-faces-val"),
])
def test_model_index_dataset_type_is_an_id_never_free_text(evaluation, expected):
    assert dataset_type(evaluation) == expected
    meta = front_matter(str(render_model_card(ESPCN.from_preset("espcn-tiny"), dataclasses.replace(
        INFO, evaluations=[{**INFO.evaluations[0], "dataset_id": None, **evaluation}]))))
    assert meta["model-index"][0]["results"][0]["dataset"]["type"] == expected


REALISTIC = dataclasses.replace(INFO, evaluations=[
    {**INFO.evaluations[0], "dataset": "London studio faces (held out)", "dataset_id": "london-studio-faces-heldout"},
    {**INFO.evaluations[0], "dataset": "London studio faces (held out)", "dataset_id": "london-studio-faces-heldout",
     "degradation": "moderate", "seed": 0, "bicubic": {"psnr": 26.5, "ssim": 0.75},
     "model": {"psnr": 26.61, "ssim": 0.76}},
])


def test_a_realistic_degradation_is_a_result_of_its_own_in_model_index_and_table():
    text = str(render_model_card(ESPCN.from_preset("espcn-tiny"), REALISTIC))
    results = front_matter(text)["model-index"][0]["results"]
    names = [r["dataset"]["name"] for r in results]
    assert names == ["London studio faces (held out)",
                     "London studio faces (held out), realistic degradation 'moderate' seed 0"]
    assert all(r["dataset"]["type"] == "london-studio-faces-heldout" for r in results)  # the same data
    assert [r["dataset"].get("config") for r in results] == [None, "realistic-moderate-seed0"]
    assert [m["value"] for m in results[1]["metrics"]] == [26.61, 0.76]
    rows = [line for line in text.splitlines() if line.startswith("| London studio faces")]
    assert len(rows) == 2 and "realistic degradation 'moderate' seed 0 | x4 | 8 | 26.50 / 0.7500" in rows[1]
    assert "Rows that name a realistic degradation change only the LR" in text
    # bicubic-trained weights evaluated on both: trained (not "trained and evaluated") for bicubic
    assert "- Trained for the **bicubic** degradation" in text
    assert not re.search(r"[A-Za-z]\n\d", text)


@pytest.mark.parametrize("spec,expected", [
    ("bicubic", "- Trained and evaluated for the **bicubic**"),
    ("moderate", "- Trained on **synthetic realistic degradations**"),
])
def test_the_card_states_the_training_degradation(spec, expected):
    """Which kind is read from the structured record (sr_models.protocol), the words shown as written."""
    trained = degradation_of(spec)
    info = dataclasses.replace(INFO, training={**INFO.training, "degradation": str(trained)},
                               training_degradation=trained.to_dict())
    text = str(render_model_card(HAT.from_preset("hat-tiny"), info))
    assert f"| training degradation | {trained} |" in text and expected in text
    assert "Rows that name a realistic degradation" not in text  # no such row here
    # the words alone decide nothing: a card without the record is of bicubic-trained weights
    words_only = dataclasses.replace(info, training_degradation=None)
    assert realistic_training(words_only) is None


@pytest.mark.parametrize("cls,preset,rows", [
    (HAT, "hat-s", ["- residual groups: 6, of depths 6, 6, 6, 6, 6, 6", "- attention heads per group: 6, 6, 6, 6, 6, 6",
                    "- window size: 16", "- compress ratio: 24", "- squeeze factor: 24", "- embedding dimension: 144"]),
    (ESPCN, "espcn", ["- conv layers: 64 → 64 → 32 → 3·4²", "- kernel sizes: 5, 3, 3, 3", "- activation: relu"]),
])
def test_each_configuration_entry_is_one_line(cls, preset, rows):
    text = str(render_model_card(cls.from_preset(preset), INFO))
    lines = text.splitlines()
    assert all(row in lines for row in rows)
    # no phrase broken across lines ("depths\n3, 3, 3"): a line never starts with a number
    # after a line that ends in a word
    assert not re.search(r"[A-Za-z]\n\d", text)


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_cards_state_the_weights_licence_and_are_up_to_date(name):
    folder = bundled_folder(name)
    text = (folder / "README.md").read_text()
    meta = front_matter(text)
    assert meta["license"] == "other" and meta["license_name"] and meta["license_link"].startswith("https://")
    assert "apache" not in text.lower() and "non-commercial" in text
    from scripts.finalize import HELD_OUT_SETS

    types = [result["dataset"]["type"] for result in meta["model-index"][0]["results"]]
    assert "celeba-hq-faces-heldout" in types  # the main benchmark; every other set is one finalize names
    assert set(types) <= {slug for _, slug in HELD_OUT_SETS.values()}
    assert not re.search(r"[A-Za-z]\n\d", text)
    # README.md is what the current templates render from the folder's model_card.json
    assert str(load_model(folder).generate_model_card()) == str(ModelCard(text))


def test_push_to_hub_of_the_mixin_uploads_the_real_card(tmp_path, monkeypatch):
    """The mixin saves into a temporary folder and uploads it: that folder holds our card."""
    import huggingface_hub.hub_mixin as hub_mixin

    uploaded = {}

    class FakeApi:
        def __init__(self, *a, **k):
            pass

        def create_repo(self, repo_id, **kwargs):
            from huggingface_hub import RepoUrl

            return RepoUrl(f"https://huggingface.co/{repo_id}")

        def upload_folder(self, *, folder_path, **kwargs):
            uploaded["card"] = (os.path.join(folder_path, "README.md"), open(os.path.join(folder_path, "README.md")).read())
            return "commit"

    monkeypatch.setattr(hub_mixin, "HfApi", FakeApi)
    model = ESPCN.from_preset("espcn-tiny")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(publish, "get_token", lambda: None)
    with pytest.raises(PublishError, match="^not logged in to the Hugging Face Hub"):  # as `sr-models push`
        model.push_to_hub("me/espcn")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_value")
    monkeypatch.setattr(publish, "get_token", lambda: "hf_secret_token_value")
    model.card_info = INFO
    model.push_to_hub("me/espcn")
    card = uploaded["card"][1]
    assert "CelebA-HQ held-out faces" in card and "sr-models" in card
    assert front_matter(card)["license"] == "cc-by-nc-sa-4.0" and "apache" not in card.lower()


@pytest.fixture
def saved(tmp_path):
    folder = tmp_path / "model"
    ESPCN.from_preset("espcn-tiny").save_pretrained(folder, card_info=INFO,
                                                    comparison_image=Image.new("RGB", (8, 8)))
    (folder / ".cache").mkdir()
    (folder / ".cache" / "junk").write_text("local only")
    # a training output folder also holds resumable checkpoints, logs and grids: not published
    for local in ("checkpoint-500", "logs", "validation"):
        (folder / local).mkdir()
        (folder / local / "state.bin").write_bytes(b"\0" * 10)
    (folder / "samples").mkdir()
    (folder / "samples" / "face.png").write_bytes(b"png")
    return folder


def test_push_creates_the_repo_and_makes_one_commit_with_the_folder(saved, recording_api, capsys):
    api = recording_api
    code = main(["push", str(saved), "--repo-id", "me/espcn-faces", "--private", "--revision", "v1",
                 "--commit-message", "first"])
    assert code == 0
    assert api.calls[0] == ("create_repo", "me/espcn-faces", {"private": True, "exist_ok": True, "repo_type": "model"})
    assert api.calls[1][0] == "create_branch" and api.calls[1][2]["branch"] == "v1"
    commits = [c for c in api.calls if c[0] == "create_commit"]
    assert len(commits) == 1
    assert commits[0][2] == ["README.md", "comparison.png", "config.json", "model.safetensors", "model_card.json",
                             "samples/face.png"]
    assert commits[0][3]["revision"] == "v1" and commits[0][3]["commit_message"] == "first"
    out = capsys.readouterr()
    assert "hf_secret_token_value" not in out.out + out.err
    assert "commit/abc123" in out.out


@pytest.mark.parametrize("setup,message", [
    ("missing", "is not a folder"),
    ("incomplete", "missing model.safetensors"),
    ("no-login", "not logged in"),
    ("bad-id", "USER/NAME"),
])
def test_push_errors_are_one_line(saved, tmp_path, monkeypatch, recording_api, capsys, setup, message):
    import sr_models.publish as publish

    folder, repo = saved, "me/x"
    if setup == "missing":
        folder = tmp_path / "nope"
    elif setup == "incomplete":
        (saved / "model.safetensors").unlink()
    elif setup == "no-login":
        monkeypatch.delenv("HF_TOKEN")
        monkeypatch.setattr(publish, "get_token", lambda: None)
    elif setup == "bad-id":
        repo = "just-a-name"
    assert main(["push", str(folder), "--repo-id", repo]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "hf_secret" not in err


def test_push_without_network_is_a_one_line_error(saved, tmp_path):
    """The real HfApi against an unreachable endpoint (read at import: a new process)."""
    env = {**os.environ, "HF_TOKEN": "hf_secret_token_value", "HF_ENDPOINT": "http://127.0.0.1:9",
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"}
    proc = subprocess.run([sys.executable, "-m", "sr_models", "push", str(saved), "--repo-id", "me/x"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "cannot reach the Hugging Face Hub" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "hf_secret" not in proc.stderr + proc.stdout
