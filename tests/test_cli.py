"""The command line's upscale: batches, name clashes, failures, output files, exit codes."""

import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image

from sr_models import ESPCN
from sr_models.cli import main


@pytest.fixture
def model_dir(tmp_path):
    ESPCN.from_preset("espcn-tiny", upscale=2).save_pretrained(tmp_path / "model")
    return str(tmp_path / "model")


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg", "sub/c.png"):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / name)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    return folder


def test_folder_with_a_corrupt_file(photos, tmp_path, model_dir, capsys):
    out = tmp_path / "out"
    assert main(["-q", "upscale", str(photos), "-o", str(out), "--model", model_dir]) == 1
    err = capsys.readouterr().err
    assert "broken.png" in err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["a_x2.png", "b_x2.png", "sub/c_x2.png"]
    assert Image.open(out / "a_x2.png").size == (48, 40)


def test_existing_outputs_need_overwrite_and_inputs_are_never_overwritten(photos, tmp_path, model_dir, capsys):
    out = tmp_path / "out"
    args = ["-q", "upscale", str(photos / "a.png"), "-o", str(out), "--model", model_dir]
    assert main(args) == 0
    (out / "a_x2.png").write_bytes(b"keep me")
    assert main(args) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "a_x2.png").read_bytes() == b"keep me"
    assert main(args + ["--overwrite"]) == 0
    assert Image.open(out / "a_x2.png").size == (48, 40)

    # an output that would land on an input is refused
    Image.new("RGB", (4, 4)).save(photos / "d_x2.png")
    src = photos / "d_x2.png"
    before = src.read_bytes()
    (photos / "d.png").write_bytes(before)
    assert main(["-q", "upscale", str(photos / "d.png"), str(src), "-o", str(photos), "--model", model_dir,
                 "--overwrite"]) == 1
    assert "would overwrite an input" in capsys.readouterr().err
    assert src.read_bytes() == before


def test_globs_and_unmatched_inputs(photos, tmp_path, model_dir, capsys):
    out = tmp_path / "out"
    code = main(["-q", "upscale", str(photos / "*.png"), str(photos / "nothing-*.png"), "-o", str(out),
                 "--model", model_dir, "--tile", "8"])
    assert code == 1  # broken.png and the unmatched pattern
    assert (out / "a_x2.png").exists() and not (out / "b_x2.png").exists()
    assert "nothing-*.png" in capsys.readouterr().err


def _run(*args):
    return main(["-q", "upscale", *map(str, args)])


def _rgb(path, seed=0, size=(24, 20)):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def _written(out):
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def test_two_inputs_with_one_name_both_get_written_and_the_count_is_true(tmp_path, model_dir, capsys):
    (tmp_path / "in").mkdir()
    _rgb(tmp_path / "in" / "x.jpg", 1)
    _rgb(tmp_path / "in" / "x.png", 2)
    _rgb(tmp_path / "in" / "y.png", 3)
    out = tmp_path / "out"
    # the folder and one of its files: each file runs once
    assert _run(tmp_path / "in", tmp_path / "in" / "y.png", "-o", out, "--model", model_dir, "--overwrite") == 0
    assert _written(out) == ["x_jpg_x2.png", "x_png_x2.png", "y_x2.png"]
    assert "3 of 3 images written" in capsys.readouterr().out
    assert not np.array_equal(np.asarray(Image.open(out / "x_jpg_x2.png")), np.asarray(Image.open(out / "x_png_x2.png")))
    # run again without --overwrite: every error names an output of an earlier run
    assert _run(tmp_path / "in", "-o", out, "--model", model_dir) == 1
    captured = capsys.readouterr()
    assert "0 of 3 images written" in captured.out
    assert all(f"{name} exists" in captured.err for name in ("x_jpg_x2.png", "x_png_x2.png", "y_x2.png"))


def test_inputs_that_would_still_write_one_file_are_refused_by_name(tmp_path, model_dir, capsys):
    (tmp_path / "in").mkdir()
    _rgb(tmp_path / "in" / "x.png", 1)
    _rgb(tmp_path / "in" / "x.PNG", 2)  # same name once the suffix is lower-cased
    _rgb(tmp_path / "in" / "Y.png", 3)  # Y_x2.png and y_x2.png are one file on macOS and Windows
    _rgb(tmp_path / "in" / "y.png", 4)
    _rgb(tmp_path / "in" / "z.png", 5)
    out = tmp_path / "out"
    assert _run(tmp_path / "in", "-o", out, "--model", model_dir) == 1
    captured = capsys.readouterr()
    assert "x.png" in captured.err and "x.PNG" in captured.err and "same output" in captured.err
    assert "Y.png" in captured.err and "y.png" in captured.err
    assert _written(out) == ["z_x2.png"] and "1 of 5 images written" in captured.out


def test_a_failing_image_is_reported_and_the_run_goes_on(photos, tmp_path, model_dir, monkeypatch, capsys):
    import sr_models.pipeline as pipeline

    real_upscale = pipeline.upscale

    def fails_on_b(model, image, **kwargs):
        if str(image).endswith("b.jpg"):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_upscale(model, image, **kwargs)

    monkeypatch.setattr(pipeline, "upscale", fails_on_b)
    out = tmp_path / "out"
    assert _run(photos, "-o", out, "--model", model_dir) == 1
    captured = capsys.readouterr()
    assert _written(out) == ["a_x2.png", "sub/c_x2.png"]  # the images after b.jpg ran too
    assert "b.jpg" in captured.err and "out of memory" in captured.err and "--tile" in captured.err
    assert "broken.png" in captured.err
    assert "2 of 4 images written" in captured.out and "2 failed" in captured.out


@pytest.mark.parametrize("flag,tile", [([], "auto"), (["--tile", "none"], None), (["--tile", "64"], 64)])
def test_large_images_are_tiled_automatically_unless_told_otherwise(photos, tmp_path, model_dir, monkeypatch,
                                                                    flag, tile):
    import sr_models.pipeline as pipeline

    seen = []
    real_upscale = pipeline.upscale
    monkeypatch.setattr(pipeline, "upscale", lambda model, image, **kw: seen.append(kw["tile"]) or real_upscale(
        model, image, **kw))
    assert _run(photos / "a.png", "-o", tmp_path / "out", "--model", model_dir, *flag) == 0
    assert seen == [tile]


def test_presets_need_an_explicit_opt_in_to_random_weights(photos, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(photos / "a.png", "-o", out, "--model", "espcn-tiny") == 2
    assert "random" in capsys.readouterr().err and not out.exists()
    assert _run(photos / "a.png", "-o", out, "--model", "espcn-tiny", "--random-weights") == 0
    assert _written(out) == ["a_x4.png"]


def test_float_and_cmyk_images_are_written_in_a_format_that_holds_them(tmp_path, model_dir, capsys):
    (tmp_path / "in").mkdir()
    values = np.random.default_rng(4).random((20, 24), dtype=np.float32)  # 0..1: black before the fix
    Image.fromarray(values).save(tmp_path / "in" / "float.tif")
    Image.open(tmp_path / "in" / "float.tif").verify()
    _rgb(tmp_path / "in" / "rgb.png")
    Image.open(tmp_path / "in" / "rgb.png").convert("CMYK").save(tmp_path / "in" / "print.jpg")
    out = tmp_path / "out"
    assert _run(tmp_path / "in", "-o", out, "--model", model_dir) == 0
    assert _written(out) == ["float_x2.tif", "print_x2.tif", "rgb_x2.png"]
    upscaled = Image.open(out / "float_x2.tif")
    assert upscaled.mode == "F" and upscaled.size == (48, 40)
    assert 0 <= np.asarray(upscaled).min() and np.asarray(upscaled).max() <= 1 and np.asarray(upscaled).mean() > 0.1
    assert Image.open(out / "print_x2.tif").mode == "CMYK"


def test_an_animated_gif_in_a_folder_gives_its_first_frame_and_other_files_are_listed(tmp_path, model_dir,
                                                                                      capsys):
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(5)
    frames = [Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).convert("P") for _ in range(3)]
    frames[0].save(tmp_path / "in" / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert main(["upscale", str(tmp_path / "in"), "-o", str(out), "--model", model_dir]) == 0
    captured = capsys.readouterr()
    assert _written(out) == ["anim_x2.png"]
    assert "anim.gif is animated (3 frames); only the first frame is used" in captured.err
    assert "skipped 1 file(s) that are not images by their suffix: notes.txt" in captured.err


def test_outputs_get_the_usual_file_mode_and_partial_files_are_never_inputs(photos, tmp_path, model_dir,
                                                                             monkeypatch, capsys):
    old_umask = os.umask(0o022)
    try:
        out = tmp_path / "out"
        assert _run(photos / "a.png", "-o", out, "--model", model_dir) == 0
        assert stat.S_IMODE((out / "a_x2.png").stat().st_mode) == 0o644  # mkstemp gave 0600
        # a write that dies half-way leaves nothing behind under any name
        real_save = Image.Image.save

        def dies_half_way(self, fp, format=None, **params):
            fp.write(b"\x89PNG half")
            raise OSError("No space left on device")

        monkeypatch.setattr(Image.Image, "save", dies_half_way)
        assert _run(photos / "b.jpg", "-o", out, "--model", model_dir) == 1
        err = capsys.readouterr().err
        assert "b.jpg" in err and "No space left on device" in err
        assert _written(out) == ["a_x2.png"]
        monkeypatch.setattr(Image.Image, "save", real_save)
        # what a killed run leaves (a hidden .partial file) is not taken as an input by a later run
        (out / ".c_x2.png.partial-1234abcd").write_bytes(b"\x89PNG half")
        assert _run(out, "-o", tmp_path / "again", "--model", model_dir) == 0
        assert _written(tmp_path / "again") == ["a_x2_x2.png"]
    finally:
        os.umask(old_umask)


def test_a_missing_gpu_and_bad_tiling_are_usage_errors(photos, tmp_path, model_dir, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _run(photos / "a.png", "-o", tmp_path / "out", "--model", model_dir, "--device", "cuda") == 2
    err = capsys.readouterr().err
    assert "'cuda' is not available" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _run(photos / "a.png", "-o", tmp_path / "out", "--model", model_dir, "--tile", "8",
                "--tile-overlap", "8") == 2
    assert "must be smaller than tile=8" in capsys.readouterr().err
    assert _run(photos / "a.png", "-o", tmp_path / "out", "--model", model_dir, "--dtype", "int8") == 2
    assert "dtype='int8'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    for bad in (["--tile-overlap", "-1"], ["--tile", "0"], ["--tile", "huge"], ["--max-pixels", "0"],
                ["--tile-workers", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            _run(photos / "a.png", "-o", tmp_path / "out", "--model", model_dir, *bad)
        assert exit_info.value.code == 2
        assert bad[1] in capsys.readouterr().err


def test_tiles_in_workers_write_the_same_image(photos, tmp_path, model_dir):
    for workers in ("1", "3"):
        assert _run(photos / "a.png", "-o", tmp_path / workers, "--model", model_dir, "--tile", "8",
                    "--tile-workers", workers) == 0
    one, three = (np.asarray(Image.open(tmp_path / w / "a_x2.png"), dtype=np.int16) for w in ("1", "3"))
    assert np.abs(one - three).max() <= 1  # ESPCN's tiles are exact: float rounding at most


def test_an_unknown_model_is_a_one_line_usage_error(photos, tmp_path, capsys):
    assert _run(photos / "a.png", "-o", tmp_path, "--model", "no-such-model") == 2
    err = capsys.readouterr().err
    assert "'no-such-model' is neither" in err and len(err.strip().splitlines()) == 1
