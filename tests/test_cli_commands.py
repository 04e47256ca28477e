"""The command line's parser and its other commands: help, version, log flags, info,
evaluate, app; every error one line with the documented exit code."""

import csv
import json
import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_models import ESPCN, __version__
from sr_models.cli import main
from sr_models.metrics import bicubic_upscale, degrade, psnr


@pytest.fixture
def model_dir(tmp_path):
    ESPCN.from_preset("espcn-tiny", upscale=2).save_pretrained(tmp_path / "model")
    return str(tmp_path / "model")


def _one_line_error(capsys, expected: str) -> None:
    err = capsys.readouterr().err
    assert expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


# --------------------------------------------------------------------------- parser


def test_help_imports_neither_torch_nor_pil():
    code = ("import sys, sr_models.cli as cli; cli.build_parser().format_help(); "
            "heavy = [m for m in ('torch', 'PIL', 'numpy', 'sr_models.pipeline') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
    proc = subprocess.run([sys.executable, "-m", "sr_models", "--help"], capture_output=True, text=True, check=True)
    assert "upscale" in proc.stdout and "exit codes" in proc.stdout


def _help(capsys, *command) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # independent of the terminal width


def test_version_and_defaults_are_shown(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"sr-models {__version__}"
    evaluate_help = _help(capsys, "evaluate")
    assert "(default: 256)" in evaluate_help and "(default: evaluation)" in evaluate_help
    assert "upscaling factor" in evaluate_help and "(default: 4)" in evaluate_help
    upscale_help = _help(capsys, "upscale")
    from sr_models.image_io import DEFAULT_MAX_PIXELS

    assert f"(default: {DEFAULT_MAX_PIXELS / 1e6:.0f} MP" in upscale_help and "(default: hat-faces)" in upscale_help
    assert "(default: auto)" in upscale_help


def test_help_texts_name_the_models_the_library_has(monkeypatch, capsys):
    """From sr_models.bundled, never a copy: the real-photo pair included, evaluate's true default."""
    import sr_models.bundled as bundled
    import sr_models.loading as loading

    assert loading.BUNDLED is bundled.BUNDLED and loading.DEFAULT_MODELS is bundled.DEFAULT_MODELS  # old home
    monkeypatch.setenv("COLUMNS", "1000")  # no line breaks inside a hyphenated name
    evaluate_help = _help(capsys, "evaluate")
    assert f"(repeatable; default: {', '.join(bundled.DEFAULT_MODELS)})" in evaluate_help
    for command in ("upscale", "evaluate", "info"):
        text = _help(capsys, command)
        assert f"bundled weights ({', '.join(bundled.BUNDLED)})" in text, command
        assert "espcn-real" in text and "hat-real" in text
    monkeypatch.setattr(bundled, "DEFAULT_MODELS", ["one-model"])
    monkeypatch.setattr(bundled, "BUNDLED", dict.fromkeys(["one-model", "other-model"]))
    assert "(repeatable; default: one-model)" in _help(capsys, "evaluate")
    assert "bundled weights (one-model, other-model)" in _help(capsys, "upscale")


@pytest.mark.parametrize("command", ["upscale", "evaluate", "info", "convert"])
def test_command_help_imports_no_torch(command):
    """Help answers at once: the model names come from sr_models.bundled, the argument types
    from sr_models.validation, neither of which imports torch."""
    code = (f"import sys\nfrom sr_models.cli import main\ntry:\n    main([{command!r}, '--help'])\n"
            "except SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.startswith(f"usage: sr-models {command}") and proc.stderr.strip() == "False"


def test_the_module_entry_point_is_the_cli():
    import sr_models.__main__ as entry
    import sr_models.cli as cli

    assert entry.main is cli.main  # the sr-models console script's target
    proc = subprocess.run([sys.executable, "-m", "sr_models", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and __version__ in proc.stdout


@pytest.mark.parametrize("position", ["before", "after"])
def test_quiet_and_verbose_work_before_and_after_the_command(position, tmp_path, capsys):
    def run(flag, *args):
        argv = [flag, *args] if position == "before" else [*args, flag]
        return main(argv)

    assert run("-q", "info", str(tmp_path / "missing")) == 2
    assert run("-v", "info", str(tmp_path / "missing")) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err  # -v: the traceback after the one-line error
    with pytest.raises(SystemExit):
        run("--bogus", "info", "x")


# --------------------------------------------------------------------------- info


def test_info_says_whether_the_weights_are_trained(model_dir, capsys):
    assert main(["info", "espcn-tiny"]) == 0
    out = capsys.readouterr().out
    assert "weights:      random (untrained preset)" in out and "ESPCN" in out
    assert main(["info", model_dir]) == 0
    assert f"weights:      pretrained ({model_dir})" in capsys.readouterr().out
    assert main(["info", "espcn-faces"]) == 0
    assert "weights:      pretrained (bundled weights/" in capsys.readouterr().out


def test_info_says_what_lr_the_bundled_weights_were_trained_on(capsys):
    assert main(["info", "hat-faces"]) == 0
    assert "trained on:   bicubic (PIL bicubic downscale, the evaluation protocol)" in capsys.readouterr().out
    assert main(["info", "espcn-real"]) == 0
    assert "trained on:   realistic (Real-ESRGAN-style blur, resize, noise and JPEG, first order; preset 'moderate')" \
        in capsys.readouterr().out
    assert main(["info", "espcn-tiny"]) == 0  # a preset has no training to speak of
    assert "trained on" not in capsys.readouterr().out


def test_info_says_plainly_when_hat_weights_need_sr_models(capsys):
    """global_residual is not in the official forward: other tools would give a wrong image."""
    assert main(["info", "hat-tiny"]) == 0
    assert "format:       official HAT layout and forward" in capsys.readouterr().out
    assert main(["info", "hat-faces"]) == 0  # bundled: trained with global_residual
    assert "needs sr-models: global_residual=True" in capsys.readouterr().out


@pytest.mark.parametrize("config", ["[1, 2]", "null", '{"architecture": "ESPCN", "upscale": 4.0}', "{not json"])
def test_info_on_a_bad_config_is_one_line_with_exit_code_2(model_dir, config, capsys):
    (Path(model_dir) / "config.json").write_text(config)
    assert main(["info", model_dir]) == 2
    _one_line_error(capsys, "config.json")


def test_info_on_weights_of_another_shape_is_one_line_with_exit_code_2(model_dir, tmp_path, capsys):
    config_path = tmp_path / "model" / "config.json"
    config = json.loads(config_path.read_text())
    config["channels"] = [c + 1 for c in config["channels"]]
    config_path.write_text(json.dumps(config))
    assert main(["info", model_dir]) == 2
    _one_line_error(capsys, "do not fit ESPCN")


def _closed_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE", "hub-unreachable"])
def test_info_of_a_repo_id_without_the_hub_is_one_line(tmp_path, offline):
    """No retry lines of the CLI's or the Hub client's: one error naming the repo id."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}
    env.pop("HF_TOKEN", None)
    env.pop("HF_HUB_CACHE", None)
    env.pop("HF_HUB_OFFLINE", None)
    env.update({"HF_HUB_OFFLINE": "1"} if offline else {})
    proc = subprocess.run([sys.executable, "-m", "sr_models", "info", "you/x"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "'you/x'" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr


def test_an_unexpected_failure_is_one_line_with_exit_code_1(monkeypatch, capsys):
    import sr_models.loading as loading

    def broken(*args, **kwargs):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(loading, "load_model", broken)
    assert main(["info", "espcn-tiny"]) == 1
    _one_line_error(capsys, "error: something broke")


# --------------------------------------------------------------------------- evaluate


def test_evaluate_writes_table_json_and_csv(tmp_path, model_dir, capsys):
    import skimage.data

    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(hr_dir / "astronaut.png")
    Image.fromarray(skimage.data.chelsea()).save(hr_dir / "chelsea.png")
    (hr_dir / "junk.png").write_text("junk")
    code = main(["-q", "evaluate", "--model", model_dir, "--model", "espcn-tiny", "--random-weights",
                 "--hr", str(hr_dir), "--scale", "2", "--hr-size", "0", "--output-dir", str(tmp_path / "res")])
    assert code == 0
    table = capsys.readouterr().out
    assert "bicubic" in table and "PSNR-Y" in table
    result = json.loads((tmp_path / "res" / "results.json").read_text())
    assert len(result["images"]) == 2
    # the bicubic number is the protocol's: the known answer for astronaut at x2
    assert result["per_image"]["bicubic"]["psnr"][0] == pytest.approx(31.71, abs=0.02)
    hr = Image.fromarray(skimage.data.chelsea())
    hr = hr.crop((0, 0, hr.width // 2 * 2, hr.height // 2 * 2))
    expected = psnr(bicubic_upscale(degrade(hr, 2), 2), hr, crop_border=2)
    assert result["per_image"]["bicubic"]["psnr"][1] == pytest.approx(expected, abs=1e-9)
    rows = list(csv.DictReader((tmp_path / "res" / "results.csv").open()))
    assert len(rows) == 2 * 3 and {r["method"] for r in rows} == {"bicubic", model_dir, "espcn-tiny"}


def test_evaluate_defaults_to_the_bundled_models(tmp_path, monkeypatch, capsys):
    import sr_models.loading as loading

    asked = []

    def tiny(name, **kwargs):
        asked.append(name)
        return ESPCN.from_preset("espcn-tiny", upscale=2)

    monkeypatch.setattr(loading, "load_model", tiny)
    (tmp_path / "hr").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "hr/a.png")
    assert main(["-q", "evaluate", "--hr", str(tmp_path / "hr"), "--scale", "2", "--hr-size", "0",
                 "--output-dir", str(tmp_path / "res")]) == 0
    assert asked == list(loading.DEFAULT_MODELS)


def test_evaluate_under_a_seeded_realistic_degradation_records_it(tmp_path, model_dir, capsys):
    hr = tmp_path / "hr"
    hr.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(hr / f"{i}.png")

    def run(*options) -> dict:
        out = tmp_path / "-".join(options or ("default",))
        assert main(["-q", "evaluate", "--model", model_dir, "--hr", str(hr), "--scale", "2", "--hr-size", "0",
                     "--output-dir", str(out), *options]) == 0
        return json.loads((out / "results.json").read_text())

    realistic = run("--degradation", "moderate", "--seed", "5")
    assert "LR: realistic degradation 'moderate', seed 5" in capsys.readouterr().out
    assert (realistic["degradation"], realistic["seed"]) == ("moderate", 5)
    assert run("--degradation", "moderate", "--seed", "5")["summary"]["bicubic"]["psnr"] == \
        realistic["summary"]["bicubic"]["psnr"]  # reproducible
    default = run()
    assert default["degradation"] is None and "(the protocol)" in capsys.readouterr().out
    assert default["summary"]["bicubic"]["psnr"] != pytest.approx(realistic["summary"]["bicubic"]["psnr"], abs=0.01)


def test_evaluate_offers_the_protocol_and_every_degradation_preset():
    from sr_models.cli import EVALUATION_DEGRADATIONS
    from sr_models.degradations import PRESETS

    assert EVALUATION_DEGRADATIONS[0] == "bicubic" and set(EVALUATION_DEGRADATIONS[1:]) == set(PRESETS)


def test_evaluate_refuses_a_model_of_another_scale(tmp_path, model_dir, capsys):
    (tmp_path / "hr").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "hr" / "x.png")
    assert main(["-q", "evaluate", "--model", model_dir, "--hr", str(tmp_path / "hr"), "--scale", "4"]) == 2
    _one_line_error(capsys, "x2")


@pytest.mark.parametrize("where", ["afile/x", "/proc/x"])
def test_evaluate_checks_its_output_folder_before_the_work(where, tmp_path, monkeypatch, capsys):
    import sr_models.loading as loading

    if where.startswith("/proc") and not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    (tmp_path / "afile").write_text("a file")
    output = where if where.startswith("/") else str(tmp_path / where)
    loaded = []
    monkeypatch.setattr(loading, "load_model", lambda name, **kwargs: loaded.append(name))
    (tmp_path / "hr").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "hr" / "a.png")
    assert main(["-q", "evaluate", "--hr", str(tmp_path / "hr"), "--output-dir", output]) == 2
    _one_line_error(capsys, f"--output-dir {output}")
    assert loaded == []


# --------------------------------------------------------------------------- app


def test_app_launches_the_packaged_app_with_its_options(monkeypatch):
    launched = []
    fake = types.ModuleType("sr_models.app")
    fake.main = launched.append
    monkeypatch.setitem(sys.modules, "sr_models.app", fake)
    assert main(["app", "--port", "7861", "--share"]) == 0
    assert launched == [["--port", "7861", "--share"]]


def test_app_without_gradio_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "sr_models.app", raising=False)
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ModuleNotFoundError
    assert main(["app"]) == 1
    _one_line_error(capsys, "pip install 'sr-models[app]'")
