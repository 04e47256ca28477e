"""sr_models/training/args.py: the scripts' command line, checked before anything is trained (in process)."""

import pytest

from sr_models.training import errors
from sr_models.training import espcn as espcn_script
from sr_models.training import hat as hat_script
from sr_models.training.data import DataError


@pytest.fixture
def logged_in(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")


@pytest.fixture
def logged_out(monkeypatch, tmp_path):
    """No token anywhere huggingface_hub looks without the network."""
    import huggingface_hub.constants

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


def usage_error(script, argv, capsys) -> str:
    """parse_args must stop with argparse's usage error (exit code 2); returns stderr."""
    with pytest.raises(SystemExit) as exc:
        script.parse_args(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("script, argv, message", [
    (hat_script, ["--model", "hat-s", "--pretrained_model_name_or_path", "x.pth"], "--model cannot be combined"),
    (hat_script, ["--embed_dim", "64", "--pretrained_model_name_or_path", "x.pth"], "--embed_dim cannot be combined"),
    (espcn_script, ["--gradient_checkpointing"], "ESPCN has no gradient checkpointing"),
    (hat_script, ["--hr_patch_size", "250"], "not a multiple of --scale 4"),
    (hat_script, ["--train_data_dir", "/no/such/folder"], "no such folder"),
    (hat_script, ["--train_data_dir", ".", "--dataset_name", "user/data"], "not both"),
    (hat_script, ["--lr_milestones", "10", "5"], "must be increasing"),
    (hat_script, ["--model", "hat-xl"], "invalid choice: 'hat-xl'"),
    (hat_script, ["--train_batch_size", "0"], "must be >= 1"),
    (espcn_script, ["--mixed_precision", "fp8"], "invalid choice: 'fp8'"),
    (hat_script, ["--resume_from_checkpoint", "/no/checkpoint-5"], "no such folder"),
    (hat_script, ["--ema_decay", "1"], "--ema_decay must be in [0, 1)"),
    (espcn_script, ["--data_license", "CC BY 4.0"], "not a Hub licence id"),
    (espcn_script, ["--data_license", "other"], "--data_license other needs --data_license_name"),
    (espcn_script, ["--data_license", "other", "--data_license_link", "https://e.com"], "needs --data_license_name"),
    (espcn_script, ["--data_license_name", "mine"], "--data_license_name needs --data_license"),
    (espcn_script, ["--data_license_link", "https://example.com/terms"], "--data_license_link needs --data_license"),
])
def test_argument_mistakes_get_argparse_errors(script, argv, message, capsys):
    assert message in usage_error(script, argv, capsys)


def test_defaults_follow_the_official_recipes():
    hat = hat_script.parse_args([])
    assert (hat.model, hat.scale, hat.hr_patch_size, hat.dataset_name) == ("hat", 4, 256, "merkol/ffhq-256")
    assert (hat.adam_beta2, hat.loss, hat.lr_scheduler) == (0.99, "l1", "multistep")
    assert hat.learning_rate == pytest.approx(2e-4)
    assert hat.output_dir == "outputs/hat-x4" and hat.model_overrides == {}
    small = hat_script.parse_args(["--model", "hat-small", "--scale", "2", "--depths", "2", "2", "--window_size", "8"])
    assert small.hr_patch_size == 128 and small.model_overrides == {"depths": [2, 2], "window_size": 8}
    espcn = espcn_script.parse_args(["--channels", "32", "16"])
    assert espcn.model == "espcn" and espcn.lr_scheduler == "cosine" and espcn.model_overrides == {"channels": [32, 16]}
    assert espcn.data_license is None  # resolved at start-up: declared for the default dataset, else the card's


def test_the_data_licence_is_a_flag():
    args = espcn_script.parse_args(["--data_license", "other", "--data_license_link", "https://example.com/terms",
                                    "--data_license_name", "my-terms"])
    assert (args.data_license, args.data_license_link, args.data_license_name) == (
        "other", "https://example.com/terms", "my-terms")
    assert espcn_script.parse_args(["--data_license", "cc-by-4.0"]).data_license == "cc-by-4.0"


def test_push_to_hub_without_a_login_stops_before_training(logged_out, capsys):
    err = usage_error(espcn_script, ["--push_to_hub", "--hub_model_id", "me/espcn-faces"], capsys)
    assert "not logged in" in err and "HF_TOKEN" in err and "Traceback" not in err


def test_push_to_hub_with_a_token_parses(logged_in):
    args = espcn_script.parse_args(["--push_to_hub", "--hub_model_id", "me/espcn-faces"])
    assert args.push_to_hub and args.hub_model_id == "me/espcn-faces"


@pytest.mark.parametrize("repo_id", ["espcn-faces", "me/espcn/faces", "me/bad name", "me/"])
def test_hub_model_id_must_be_user_slash_name(logged_in, repo_id, capsys):
    err = usage_error(espcn_script, ["--push_to_hub", "--hub_model_id", repo_id], capsys)
    assert "--hub_model_id" in err


def test_push_to_hub_needs_a_repo_id(logged_in, capsys):
    assert "needs --hub_model_id" in usage_error(hat_script, ["--push_to_hub"], capsys)


@pytest.mark.parametrize("error, code", [
    (errors.UsageError("--report_to wandb: the package is not installed"), 2),
    (DataError("--train_data_dir faces: no image files in it"), 2),
    (errors.TrainingDiverged("the loss is nan at step 3"), 1),
])
def test_a_failed_run_ends_in_one_line_and_an_exit_code(error, code, capsys):
    def main(args):
        raise error

    with pytest.raises(SystemExit) as exc:
        errors.run(main, lambda: None)
    assert exc.value.code == code
    assert capsys.readouterr().err == f"error: {error}\n"
