"""The command line's upscale outputs: another run writing the same file, existing outputs
skipped on a re-run, outputs named after their model, long names, the output folder and
the inputs checked before any work, sizes said in numbers a person reads."""

import errno
import os

import numpy as np
import pytest
from PIL import Image

from sr_models import ESPCN
from sr_models.cli import main
from sr_models.cli_files import name_max, partial_path
from sr_models.cli_upscale import describe_pixels


def _model(folder):
    ESPCN.from_preset("espcn-tiny", upscale=2).save_pretrained(folder)
    return str(folder)


@pytest.fixture
def model_dir(tmp_path):
    return _model(tmp_path / "model")


@pytest.fixture
def photo(tmp_path):
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / "a.png"
    _rgb(path)
    return path


def _rgb(path, seed=0):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path)


def _run(*args):
    return main(["-q", "upscale", *map(str, args)])


def _files(folder):
    """Every file under ``folder``, hidden ones (partial files) included."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _one_line_error(capsys, expected):
    err = capsys.readouterr().err
    assert expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


# --------------------------------------------------------------------------- another run, existing outputs


def _another_run_writes(monkeypatch, path):
    """While this run upscales, another one writes ``path`` (after this run checked it)."""
    import sr_models.pipeline as pipeline

    real_upscale = pipeline.upscale

    def upscale_while_another_run_writes(model, image, **kwargs):
        result = real_upscale(model, image, **kwargs)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"another run")
        return result

    monkeypatch.setattr(pipeline, "upscale", upscale_while_another_run_writes)


@pytest.mark.parametrize("hard_links", [True, False], ids=["hard-links", "no-hard-links"])
def test_an_output_another_run_wrote_meanwhile_is_kept_and_reported(photo, tmp_path, model_dir, monkeypatch,
                                                                    capsys, hard_links):
    if not hard_links:  # FAT, exFAT, some network file systems
        def no_link(src, dst, **kwargs):
            raise PermissionError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_link)
    out = tmp_path / "out"
    assert _run(photo, "-o", out, "--model", model_dir) == 0  # nothing in the way: written
    assert Image.open(out / "a_x2.png").size == (48, 40)
    (out / "a_x2.png").unlink()

    _another_run_writes(monkeypatch, out / "a_x2.png")
    assert _run(photo, "-o", out, "--model", model_dir) == 1
    captured = capsys.readouterr()
    assert "a_x2.png appeared while this run worked" in captured.err and "0 of 1 images written" in captured.out
    assert (out / "a_x2.png").read_bytes() == b"another run" and _files(out) == ["a_x2.png"]

    (out / "a_x2.png").unlink()
    assert _run(photo, "-o", out, "--model", model_dir, "--skip-existing") == 0
    assert "0 of 1 images written" in capsys.readouterr().out
    assert (out / "a_x2.png").read_bytes() == b"another run"

    (out / "a_x2.png").unlink()
    assert _run(photo, "-o", out, "--model", model_dir, "--overwrite") == 0
    assert Image.open(out / "a_x2.png").size == (48, 40) and _files(out) == ["a_x2.png"]


def test_skip_existing_resumes_a_run_without_failures(tmp_path, model_dir, capsys):
    (tmp_path / "in").mkdir()
    for seed, name in enumerate(("a", "b", "c")):
        _rgb(tmp_path / "in" / f"{name}.png", seed)
    out = tmp_path / "out"
    assert _run(tmp_path / "in" / "a.png", "-o", out, "--model", model_dir) == 0
    before = (out / "a_x2.png").read_bytes()
    capsys.readouterr()
    assert _run(tmp_path / "in", "-o", out, "--model", model_dir, "--skip-existing") == 0
    captured = capsys.readouterr()
    assert f"2 of 3 images written to {out}; 1 existing, skipped" in captured.out and captured.err == ""
    assert (out / "a_x2.png").read_bytes() == before
    assert _run(tmp_path / "in", "-o", out, "--model", model_dir, "--skip-existing") == 0
    assert f"0 of 3 images written to {out}; 3 existing, skipped" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        _run(tmp_path / "in", "-o", out, "--model", model_dir, "--skip-existing", "--overwrite")
    assert exit_info.value.code == 2 and "not allowed with" in capsys.readouterr().err


# --------------------------------------------------------------------------- names


def test_several_models_write_outputs_named_after_each(photo, tmp_path, capsys):
    espcn, other = _model(tmp_path / "espcn-a"), _model(tmp_path / "espcn-b")
    out = tmp_path / "out"
    assert _run(photo, "-o", out, "--model", espcn, "--model", other) == 0
    assert _files(out) == ["a_espcn-a_x2.png", "a_espcn-b_x2.png"]
    assert "2 of 2 images written" in capsys.readouterr().out
    # one model at a time into the same folder: --model-in-name keeps them apart
    assert _run(photo, "-o", tmp_path / "one", "--model", espcn, "--model-in-name") == 0
    assert _run(photo, "-o", tmp_path / "one", "--model", other, "--model-in-name") == 0
    assert _files(tmp_path / "one") == ["a_espcn-a_x2.png", "a_espcn-b_x2.png"]
    # a single model without it keeps the plain name
    assert _run(photo, "-o", tmp_path / "plain", "--model", espcn) == 0
    assert _files(tmp_path / "plain") == ["a_x2.png"]


def test_two_models_that_would_share_output_names_are_a_usage_error(photo, tmp_path, model_dir, capsys):
    other = _model(tmp_path / "elsewhere" / "model")  # the same folder name as model_dir
    assert _run(photo, "-o", tmp_path / "out", "--model", model_dir, "--model", other) == 2
    _one_line_error(capsys, "outputs named after 'model'")
    assert not (tmp_path / "out").exists()


def test_a_long_input_name_whose_output_name_fits_is_written(tmp_path, model_dir, capsys):
    """The partial file's name is longer than the output's: it must fit too."""
    stem = "p" * (name_max(tmp_path) - 15)  # <stem>_x2.png fits; .<stem>_x2.png.partial-XXXXXXXX did not
    _rgb(tmp_path / f"{stem}.png")
    out = tmp_path / "out"
    assert _run(tmp_path / f"{stem}.png", "-o", out, "--model", model_dir) == 0
    assert _files(out) == [f"{stem}_x2.png"]


def test_an_output_name_over_the_limit_is_one_error_before_the_work(tmp_path, model_dir, monkeypatch, capsys):
    import sr_models.pipeline as pipeline

    stem = "q" * (name_max(tmp_path) - 4)  # the input fits; <stem>_x2.png does not
    _rgb(tmp_path / f"{stem}.png")
    monkeypatch.setattr(pipeline, "upscale", lambda *args, **kwargs: pytest.fail("upscaled"))
    assert _run(tmp_path / f"{stem}.png", "-o", tmp_path / "out", "--model", model_dir) == 1
    _one_line_error(capsys, f"bytes, over the file system's {name_max(tmp_path)}; rename the input")


def test_partial_names_fit_the_file_system_and_keep_whole_characters(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "pathconf", lambda path, name: 40)
    partial = partial_path(tmp_path / ("é" * 30 + ".png"))  # 62 bytes in UTF-8
    assert len(os.fsencode(partial.name)) == 40  # 1 + 11 x 2 + 17: whole characters only
    assert partial.name.startswith(".éé") and ".partial-" in partial.name and partial.parent == tmp_path
    assert partial_path(tmp_path / "a_x4.png").name.startswith(".a_x4.png.partial-")  # short names kept whole


# --------------------------------------------------------------------------- checked before any work


@pytest.fixture
def no_model_loads(monkeypatch):
    import sr_models.loading as loading

    loaded = []
    monkeypatch.setattr(loading, "load_model", lambda name, **kwargs: loaded.append(name))
    return loaded


@pytest.mark.parametrize("target", ["afile", "afile/sub"])
def test_an_output_folder_that_is_a_file_is_one_usage_error(photo, tmp_path, no_model_loads, capsys, target):
    (tmp_path / "afile").write_text("a file")
    assert _run(photo, "-o", tmp_path / target, "--model", "hat-faces") == 2
    _one_line_error(capsys, f"{tmp_path / 'afile'} is a file, not a folder")
    assert no_model_loads == [] and (tmp_path / "afile").read_text() == "a file"


def test_a_relative_model_path_that_is_no_model_says_what_is_wrong(photo, tmp_path, monkeypatch, capsys):
    _model(tmp_path / "weights" / "espcn-x2")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert _run(photo, "-o", tmp_path / "out", "--model", "../weights") == 2
    err = _one_line_error(capsys, "../weights is not a model folder")
    assert "espcn-x2" in err  # the model folders it holds
    assert _run(photo, "-o", tmp_path / "out", "--model", "../wieghts") == 2  # a typo: not taken for a repo id
    err = _one_line_error(capsys, "no file or folder '../wieghts'")
    assert "hat-real" in err  # the bundled names, the real-photo pair included
    assert _run(photo, "-o", tmp_path / "out", "--model", "../weights/espcn-x2") == 0


def test_an_image_over_max_pixels_says_both_sizes_in_numbers(photo, tmp_path, model_dir, capsys):
    assert _run(photo, "-o", tmp_path / "out", "--model", model_dir, "--max-pixels", "10") == 1
    _one_line_error(capsys, "a.png is 24x20 = 480 pixels, over the limit of 10 pixels; skipped (--max-pixels")
    assert not (tmp_path / "out").exists() or _files(tmp_path / "out") == []
    assert describe_pixels(16_777_217) == "16,777,217 pixels (16.8 MP)"  # never "16.8 MP over 16.8 MP"
    assert describe_pixels(16_777_217) != describe_pixels(16_777_216)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
def test_broken_symbolic_links_among_the_inputs_are_listed_as_skipped(photo, tmp_path, model_dir, capsys):
    os.symlink(tmp_path / "gone.png", photo.parent / "b.png")
    out = tmp_path / "out"
    assert main(["upscale", str(photo.parent), "-o", str(out), "--model", model_dir]) == 0
    err = capsys.readouterr().err
    assert f"warning: {photo.parent}: skipped 1 broken symbolic link(s): b.png" in err
    assert _files(out) == ["a_x2.png"]
    # named on its own (or by a glob), it is listed too, and is no input image
    assert _run(photo.parent / "b.png", "-o", out, "--model", model_dir) == 2
    err = capsys.readouterr().err
    assert f"skipped 1 broken symbolic link(s): {photo.parent / 'b.png'}" in err and "no input images" in err
