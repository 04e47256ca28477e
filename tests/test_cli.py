"""The command line: upscale batches, evaluate tables, exit codes."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from sr_models import ESPCN
from sr_models.__main__ import main
from sr_models.metrics import bicubic_upscale, degrade, psnr


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


def test_bad_arguments_give_one_line_errors(photos, tmp_path, capsys):
    assert main(["upscale", str(photos / "a.png"), "-o", str(tmp_path), "--model", "no-such-model"]) == 2
    assert "neither a preset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["upscale", "x.png", "-o", str(tmp_path), "--model", "espcn", "--tile", "huge"])


def test_evaluate_writes_table_json_and_csv(tmp_path, model_dir, capsys):
    import skimage.data

    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(hr_dir / "astronaut.png")
    Image.fromarray(skimage.data.chelsea()).save(hr_dir / "chelsea.png")
    (hr_dir / "junk.png").write_text("junk")
    code = main(["-q", "evaluate", "--model", model_dir, "--model", "espcn-tiny", "--hr", str(hr_dir),
                 "--scale", "2", "--hr-size", "0", "--output-dir", str(tmp_path / "res")])
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


def test_evaluate_refuses_a_model_of_another_scale(tmp_path, model_dir, capsys):
    (tmp_path / "hr").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "hr" / "x.png")
    assert main(["-q", "evaluate", "--model", model_dir, "--hr", str(tmp_path / "hr"), "--scale", "4"]) == 2
    assert "x2" in capsys.readouterr().err
