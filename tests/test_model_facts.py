"""The facts every architecture states for the pipeline (hub.SRModelMixin): pad_multiple,
receptive_radius, tile_overlap and bytes_per_pixel, checked for each model; the memory
estimate against the measured peak of a forward pass, and auto_tile reading it."""

import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import sr_models.pipeline as pipeline
from sr_models import ESPCN, HAT, upscale_tensor
from sr_models.architectures import REGISTRY
from sr_models.pipeline import auto_tile, default_tile_overlap


class PeakTensorBytes(TorchDispatchMode):
    """The peak of the bytes held by tensors created while active: every new storage an op
    returns counts until it is freed. Deterministic (sizes, not the allocator), so it holds
    on any CPU; kernel workspaces and allocator slack are not in it (the pipeline's
    AUTO_TILE_MEMORY_FRACTION covers those)."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self._held: dict[int, tuple] = {}

    def _free(self, key: int) -> None:
        self.live -= self._held.pop(key)[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key and key not in inputs and key not in self._held:  # views and in-place results are not new
                self._held[key] = (weakref.finalize(storage, self._free, key), storage.nbytes())
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
        return out


def _measured_bytes_per_pixel(model, side: int) -> float:
    lr = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        upscale_tensor(model, lr)  # fills the caches (plans, bias) a forward pass keeps
        with PeakTensorBytes() as tracker:
            upscale_tensor(model, lr)
    return tracker.peak / side ** 2


def _every_preset():
    for arch in REGISTRY.values():
        for name in arch.cls.presets:
            yield arch.cls, name


@pytest.mark.parametrize("cls,preset", list(_every_preset()))
@pytest.mark.parametrize("scale", [2, 4])
def test_every_model_states_the_pipeline_facts(cls, preset, scale):
    with torch.device("meta"):  # the facts come from the configuration, not from weights
        model = cls.from_preset(preset, upscale=scale)
    assert model.scale == scale and isinstance(model.pad_multiple, int) and model.pad_multiple >= 1
    assert model.receptive_radius is None or model.receptive_radius >= 0
    assert isinstance(model.tile_overlap, int) and model.tile_overlap % model.pad_multiple == 0
    assert default_tile_overlap(model) == model.tile_overlap
    assert isinstance(model.bytes_per_pixel, int) and model.bytes_per_pixel > 4 * 3 * (1 + scale ** 2)


def test_espcn_facts():
    model = ESPCN.from_preset("espcn")  # 5x5 then three 3x3 convs
    assert (model.pad_multiple, model.receptive_radius, model.tile_overlap) == (1, 2 + 1 + 1 + 1, 10)


def test_hat_facts():
    model = HAT.from_preset("hat-small")
    # the shifted windows chain context across the image: no finite radius, two windows of overlap
    assert (model.pad_multiple, model.receptive_radius, model.tile_overlap) == (8, None, 16)


# Calibration (docs/upscaling.md#auto-tiling): the estimate against the peak of a real
# forward pass, at both peaks (body at x2, upsampler at x4) and on both attention paths.
@pytest.mark.parametrize("cls,preset,scale,attn_impl", [
    (HAT, "hat-small", 4, "sdpa"),
    (HAT, "hat-small", 2, "sdpa"),
    (HAT, "hat-small", 2, "math"),
    (ESPCN, "espcn", 4, None),
    (ESPCN, "espcn-paper", 8, None),
])
def test_the_memory_estimate_is_within_a_fifth_of_the_measured_peak(cls, preset, scale, attn_impl):
    extra = {"attn_impl": attn_impl} if attn_impl else {}
    model = cls.from_preset(preset, upscale=scale, **extra).eval()
    measured = _measured_bytes_per_pixel(model, 64)
    assert 0.8 <= model.bytes_per_pixel / measured <= 1.2, (model.bytes_per_pixel, measured)


def test_the_estimate_follows_the_attention_path():
    model = HAT.from_preset("hat-small", upscale=2)
    fast = model.bytes_per_pixel
    model.set_attn_impl("math")  # materialises the attention scores
    assert model.bytes_per_pixel > 2 * fast


def test_auto_tile_sizes_tiles_by_the_models_estimate(monkeypatch):
    model = HAT.from_preset("hat-small")
    cpu = torch.device("cpu")
    # room for exactly 100 x 100 LR pixels in the planned share of the free memory
    free = 100 * 100 * model.bytes_per_pixel / pipeline.AUTO_TILE_MEMORY_FRACTION
    monkeypatch.setattr(pipeline, "free_memory_bytes", lambda device: free)
    assert auto_tile(model, 100, 100, cpu) is None
    assert auto_tile(model, 101, 100, cpu) == 96  # the largest multiple of the window that fits
    with pytest.raises(AttributeError, match="model.bytes_per_pixel"):
        pipeline.BYTES_PER_PIXEL_PER_CHANNEL


def test_a_module_without_the_tiling_facts_upscales_whole_images_only():
    """A foreign model (a benchmark's peer) with just ``scale`` and ``pad_multiple`` runs
    untiled; tiling asks for the facts by name."""
    from PIL import Image

    from sr_models import upscale

    class Nearest(torch.nn.Module):
        scale, pad_multiple = 2, 1

        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest") + self.dummy

    image = Image.new("RGB", (12, 10), (10, 20, 30))
    assert upscale(Nearest(), image).size == (24, 20)
    with pytest.raises(AttributeError, match="tile_overlap"):
        upscale(Nearest(), image, tile=8)
