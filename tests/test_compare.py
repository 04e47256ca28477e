"""benchmarks/compare.py end to end on tiny models, and the pages its --update-readme writes."""

import json

import pytest
from PIL import Image

from benchmarks import compare
from sr_models import ESPCN, HAT
from sr_models.loading import DEFAULT_MODELS

START, END = compare.RESULTS_START, compare.RESULTS_END


def _page() -> str:
    return f"intro\n{START}\nold\n{END}\noutro\n"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One run of the study on two tiny models and three photographs, with --update-readme
    pointed at a README.md and a docs/study.md in a temporary project."""
    import skimage.data

    root = tmp_path_factory.mktemp("project")
    hr = root / "hr"
    hr.mkdir()
    for name in ("astronaut", "chelsea", "coffee"):
        Image.fromarray(getattr(skimage.data, name)()).save(hr / f"{name}.png")
    ESPCN.from_preset("espcn-tiny").save_pretrained(root / "espcn")
    HAT.from_preset("hat-tiny").save_pretrained(root / "hat")
    (root / "docs").mkdir()
    readme, study_page = root / "README.md", root / "docs" / "study.md"
    readme.write_text(_page())
    study_page.write_text(_page())
    args = compare.parse_args([
        "--hr", str(hr), "--model", str(root / "espcn"), "--model", str(root / "hat"), "--hr-size", "64",
        "--latency-sizes", "16", "32", "--repeats", "1", "--output-dir", str(root / "benchmarks" / "results"),
        "--update-readme", "--readme", str(readme), "--study", str(study_page)])
    report = compare.run(args)
    return {"root": root, "report": report, "out": root / "benchmarks" / "results", "readme": readme,
            "study": study_page, "espcn": str(root / "espcn"), "hat": str(root / "hat")}


def test_compare_writes_the_report_tables_and_plots(study):
    out, espcn, hat = study["out"], study["espcn"], study["hat"]
    assert {p.name for p in out.iterdir()} == {"compare.md", "compare.json", "psnr_vs_latency.png",
                                               "per_image_psnr.png", "crops.png"}
    saved = json.loads((out / "compare.json").read_text())
    assert set(saved["summary"]) == {"bicubic", espcn, hat}
    assert len(saved["per_image"][hat]["psnr"]) == 3
    cost = saved["cost"]
    assert cost[espcn]["latency_ratio"]["16"] == pytest.approx(1.0)  # ratios are to the first model
    assert cost[hat]["parameters"] == HAT.from_preset("hat-tiny").num_parameters
    assert cost[hat]["flops_per_lr_mp"] > cost[espcn]["flops_per_lr_mp"] > 0
    assert cost[hat]["peak_rss_mb"] > 50  # measured in a child process (benchmarks.memory)
    assert study["report"]["training"][hat]["steps"] is None  # untrained: no facts in the card
    assert "threads" in saved["machine"]  # the one machine description (benchmarks/machine.py)
    md = (out / "compare.md").read_text()
    assert "| bicubic |" in md and "GFLOPs" in md and "](psnr_vs_latency.png)" in md
    grid = Image.open(out / "crops.png")
    assert grid.size == (2 * 64 * 5, 2 * 64 * 3)  # LR | bicubic | 2 models | HR, 3 rows, 64px crops x2


def test_update_readme_writes_the_short_table_in_the_readme(study):
    readme = study["readme"].read_text()
    assert readme.startswith(f"intro\n{START}\n") and readme.endswith(f"\n{END}\noutro\n")
    block = readme.split(START)[1].split(END)[0]
    assert "| bicubic | " in block and f"| {study['hat']} | " in block and "gain over bicubic" in block
    assert "GFLOPs" not in block and "Training cost" not in block and ".png" not in block  # short: quality only
    assert "[docs/study.md](docs/study.md)" in block  # the link, relative to the README


def test_update_readme_writes_the_full_report_in_the_study_page(study):
    page = study["study"].read_text()
    assert page.startswith(f"intro\n{START}\n") and page.endswith(f"\n{END}\noutro\n")
    block = page.split(START)[1].split(END)[0]
    assert "| bicubic | " in block and "GFLOPs" in block and "Training cost" in block
    # Plots linked relative to docs/study.md, and they exist there.
    links = [line.split("](")[1].rstrip(")") for line in block.splitlines() if line.startswith("![")]
    assert links == ["../benchmarks/results/psnr_vs_latency.png", "../benchmarks/results/per_image_psnr.png",
                     "../benchmarks/results/crops.png"]
    assert all((study["study"].parent / link).is_file() for link in links)


def test_update_pages_checks_both_pages_before_writing_either(study, tmp_path):
    readme, page = tmp_path / "README.md", tmp_path / "study.md"
    readme.write_text(_page())
    page.write_text("a study page without the markers\n")
    with pytest.raises(SystemExit, match="no <!-- results:start -->"):
        compare.update_pages(study["report"], study["out"], readme=readme, study=page)
    assert readme.read_text() == _page()


def test_default_models_are_the_bundled_ones():
    assert compare.parse_args(["--hr", "faces"]).model == DEFAULT_MODELS
