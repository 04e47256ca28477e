"""sr_models/training/args.py: the scripts' command line, checked before anything is trained (in process)."""

import pytest

from sr_models.training import data, errors, report
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
    (hat_script, ["--ema_decay", "1"], "--ema_decay: must be in [0, 1)"),
    (espcn_script, ["--data_license", "CC BY 4.0"], "not a Hub licence id"),
    (espcn_script, ["--data_license", "other"], "--data_license other needs --data_license_name"),
    (espcn_script, ["--data_license", "other", "--data_license_link", "https://e.com"], "needs --data_license_name"),
    (espcn_script, ["--data_license_name", "mine"], "--data_license_name needs --data_license"),
    (espcn_script, ["--data_license_link", "https://example.com/terms"], "--data_license_link needs --data_license"),
    # issue 19: each of these used to end in a traceback during or after start-up
    (espcn_script, ["--adam_beta1", "2"], "--adam_beta1: must be in [0, 1), got 2"),
    (espcn_script, ["--adam_beta2", "-1"], "--adam_beta2: must be in [0, 1), got -1"),
    (espcn_script, ["--adam_epsilon", "-1"], "--adam_epsilon: must be a number > 0, got -1"),
    (espcn_script, ["--adam_weight_decay", "-1"], "--adam_weight_decay: must be a number >= 0, got -1"),
    (espcn_script, ["--seed", "-1"], "--seed: must be in [0, 4294967295], got -1"),
    (espcn_script, ["--learning_rate", "1e300"], "--learning_rate 1e+300 is too large"),
    (espcn_script, ["--learning_rate", "inf"], "--learning_rate: must be a number > 0, got inf"),
    (espcn_script, ["--output_dir", "/proc/foo"], "--output_dir /proc/foo: cannot write there"),
])
def test_argument_mistakes_get_argparse_errors(script, argv, message, capsys):
    assert message in usage_error(script, argv, capsys)


def test_a_noise_sigma_of_1e308_is_refused_at_start_up(tmp_path, capsys):
    config = tmp_path / "noise.json"
    config.write_text('{"first": {"noise_sigma": [1, 1e308]}}')
    err = usage_error(hat_script, ["--degradation", "realistic", "--degradation_config", str(config)], capsys)
    assert "first.noise_sigma=[1, 1e+308] is invalid: noise over 255 levels" in err and "Traceback" not in err


def test_settings_that_run_but_are_probably_wrong_are_warned_about():
    args = espcn_script.parse_args(["--max_train_steps", "100", "--lr_warmup_steps", "500", "--use_ema",
                                    "--no_ema_warmup"])
    warnings = report.startup_warnings(args, data.DataTerms())
    assert any("--lr_warmup_steps 500 is not shorter than the run (--max_train_steps 100)" in w for w in warnings)
    assert any("90% of the published EMA weights is still the starting point" in w for w in warnings)
    assert not report.startup_warnings(espcn_script.parse_args(["--use_ema"]), data.DEFAULT_DATASET_TERMS)


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
    (errors.RunFailed("no space left on the device of out while saving checkpoint-3"), 1),
])
def test_a_failed_run_ends_in_one_line_and_an_exit_code(error, code, capsys):
    def main(args):
        raise error

    with pytest.raises(SystemExit) as exc:
        errors.run(main, lambda: None)
    assert exc.value.code == code
    assert capsys.readouterr().err == f"error: {error}\n"
