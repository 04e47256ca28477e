"""benchmarks/compare.py end to end on tiny models."""

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from sr_models import ESPCN, HAT

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import compare  # noqa: E402


@pytest.fixture
def setup(tmp_path):
    import skimage.data

    hr = tmp_path / "hr"
    hr.mkdir()
    for name in ("astronaut", "chelsea", "coffee"):
        Image.fromarray(getattr(skimage.data, name)()).save(hr / f"{name}.png")
    ESPCN.from_preset("espcn-tiny").save_pretrained(tmp_path / "espcn")
    HAT.from_preset("hat-tiny").save_pretrained(tmp_path / "hat")
    return tmp_path


def test_compare_writes_the_report_tables_and_plots(setup):
    out = setup / "results"
    args = compare.parse_args(["--hr", str(setup / "hr"), "--model", str(setup / "espcn"), "--model",
                               str(setup / "hat"), "--hr-size", "64", "--latency-sizes", "16", "32",
                               "--repeats", "1", "--output-dir", str(out)])
    report = compare.run(args)
    assert {p.name for p in out.iterdir()} == {"compare.md", "compare.json", "psnr_vs_latency.png",
                                               "per_image_psnr.png", "crops.png"}
    saved = json.loads((out / "compare.json").read_text())
    espcn, hat = str(setup / "espcn"), str(setup / "hat")
    assert set(saved["summary"]) == {"bicubic", espcn, hat}
    assert len(saved["per_image"][hat]["psnr"]) == 3
    cost = saved["cost"]
    assert cost[espcn]["latency_ratio"]["16"] == 1.0  # ratios are to the first model
    assert cost[hat]["parameters"] == HAT.from_preset("hat-tiny").num_parameters
    assert cost[hat]["flops_per_lr_mp"] > cost[espcn]["flops_per_lr_mp"] > 0
    assert cost[hat]["peak_rss_mb"] > 50
    assert report["training"][hat]["steps"] is None  # untrained: no facts in the card
    md = (out / "compare.md").read_text()
    assert "| bicubic |" in md and "GFLOPs" in md and "psnr_vs_latency.png" in md
    grid = Image.open(out / "crops.png")
    assert grid.size == (2 * 64 * 5, 2 * 64 * 3)  # LR | bicubic | 2 models | HR, 3 rows, 64px crops x2


def test_update_readme_replaces_only_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{compare.README_START}\nold\n{compare.README_END}\noutro\n")
    compare.update_readme("new table", readme)
    assert readme.read_text() == f"intro\n{compare.README_START}\nnew table\n{compare.README_END}\noutro\n"
