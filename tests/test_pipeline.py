"""upscale(): image modes, orientation, tiling, devices, precision, errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from sr_models import ESPCN, HAT, upscale, upscale_tensor
from sr_models.metrics import psnr_batch
from sr_models.pipeline import ImageInputError, auto_tile, load_image, upscale_tiled

from conftest import load_reference


@pytest.fixture(scope="module")
def espcn():
    torch.manual_seed(0)
    return ESPCN(upscale=2).eval()


@pytest.fixture(scope="module")
def hat_x4():
    ref = load_reference(4)
    model = HAT(**ref["config"]).eval()
    model.load_state_dict(ref["weights"])
    return model


def _photo(w=23, h=17, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("mode,expected", [
    ("RGB", "RGB"), ("RGBA", "RGBA"), ("LA", "LA"), ("L", "L"), ("P", "RGB"),
    ("CMYK", "CMYK"), ("I;16", "I;16"), ("1", "L"),
])
def test_every_mode_round_trips_with_the_right_size_and_mode(espcn, mode, expected):
    image = _photo().convert(mode) if mode != "I;16" else Image.fromarray(
        np.random.default_rng(1).integers(0, 65536, (17, 23), dtype=np.uint16))
    out = upscale(espcn, image)
    assert out.size == (46, 34)
    assert out.mode == expected


def test_palette_with_transparency_keeps_alpha(espcn):
    image = _photo().convert("P")
    image.info["transparency"] = 0
    assert upscale(espcn, image).mode == "RGBA"


def test_alpha_is_bicubic_upscaled_and_reattached(espcn):
    rgba = _photo().convert("RGBA")
    alpha = Image.fromarray(np.tile(np.linspace(0, 255, 23, dtype=np.uint8), (17, 1)))
    rgba.putalpha(alpha)
    out = upscale(espcn, rgba)
    assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(alpha.resize((46, 34), Image.BICUBIC)))


def test_grey_in_grey_out_matches_the_rgb_path(espcn):
    grey = _photo().convert("L")
    out_grey = np.asarray(upscale(espcn, grey), dtype=np.float64)
    out_rgb = np.asarray(upscale(espcn, grey.convert("RGB")), dtype=np.float64).mean(axis=2)
    assert np.abs(out_grey - out_rgb).max() <= 1.0


def test_sixteen_bit_keeps_full_precision():
    """An identity-like model (bicubic is not available as a module, so use nearest via
    PixelShuffle of repeated channels) must give back values that are not multiples of 257."""

    class Nearest(torch.nn.Module):
        scale, pad_multiple = 2, 1

        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest") + self.dummy

    values = np.array([[1000, 1001], [40000, 65535]], dtype=np.uint16)
    out = np.asarray(upscale(Nearest(), Image.fromarray(values)))
    assert out.dtype == np.uint16
    assert np.array_equal(out[::2, ::2], values)


def test_exif_orientation_is_honoured(espcn, tmp_path):
    image = _photo(30, 10)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    out = upscale(espcn, tmp_path / "rotated.jpg")
    assert out.size == (20, 60)
    loaded = Image.open(tmp_path / "rotated.jpg")
    assert upscale(espcn, loaded).size == (20, 60)


@pytest.mark.parametrize("h,w,tile", [(37, 29, 16), (50, 41, 24), (17, 64, 20)])
def test_espcn_tiling_equals_untiled_once_the_overlap_covers_the_receptive_field(espcn, h, w, tile):
    lr = torch.rand(1, 3, h, w)
    with torch.no_grad():
        whole = upscale_tensor(espcn, lr)
        tiled = upscale_tiled(espcn, lr, tile, overlap=2 * espcn.receptive_radius)
    # identical up to float rounding of convolutions of differently sized inputs
    assert (whole - tiled).abs().max() < 1e-5
    image = Image.fromarray((lr[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    assert np.array_equal(np.asarray(upscale(espcn, image)), np.asarray(upscale(espcn, image, tile=tile)))


def test_espcn_tiling_without_enough_overlap_is_not_exact(espcn):
    lr = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        diff = (upscale_tensor(espcn, lr) - upscale_tiled(espcn, lr, 16, overlap=2)).abs().max()
    assert diff > 1e-3  # the exactness above is due to the overlap, not luck


@pytest.mark.parametrize("h,w", [(45, 51), (33, 70)])
def test_hat_tiling_is_seamless_with_the_default_overlap(hat_x4, h, w):
    import skimage.data

    photo = torch.from_numpy(skimage.data.astronaut()[:h, 100:100 + w] / 255.0).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        whole = upscale_tensor(hat_x4, photo).clamp(0, 1)
        tiled = upscale_tiled(hat_x4, photo, 32, overlap=16).clamp(0, 1)
    assert psnr_batch(tiled, whole, crop_border=4).item() >= 45


def test_progress_reports_every_tile(espcn):
    calls = []
    upscale(espcn, _photo(40, 30), tile=16, progress=lambda done, total: calls.append((done, total)))
    total = calls[-1][1]
    assert total > 1 and calls == [(i, total) for i in range(1, total + 1)]
    calls.clear()
    upscale(espcn, _photo(40, 30), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 1)]


def test_auto_tile_follows_free_memory(hat_x4, monkeypatch):
    import sr_models.pipeline as pipeline

    monkeypatch.setattr(pipeline, "free_memory_bytes", lambda device: 10 * 2**20)  # 10 MB free
    tile = auto_tile(hat_x4, 400, 400, torch.device("cpu"))
    assert tile is not None and tile % hat_x4.pad_multiple == 0 and tile < 400
    monkeypatch.setattr(pipeline, "free_memory_bytes", lambda device: 64 * 2**30)
    assert auto_tile(hat_x4, 400, 400, torch.device("cpu")) is None
    assert upscale(hat_x4, _photo(20, 12), tile="auto").size == (80, 48)


def test_bfloat16_autocast_stays_close_to_float32(hat_x4):
    image = _photo(24, 16)
    ref = np.asarray(upscale(hat_x4, image), dtype=np.float64)
    bf16 = np.asarray(upscale(hat_x4, image, dtype="bfloat16"), dtype=np.float64)
    assert np.abs(ref - bf16).mean() < 2.0


def test_precision_and_tile_arguments_are_checked(espcn):
    with pytest.raises(ValueError, match="bfloat16"):
        upscale(espcn, _photo(), dtype="float16", device="cpu")
    with pytest.raises(ValueError, match="dtype='int8'"):
        upscale(espcn, _photo(), dtype="int8")
    with pytest.raises(ValueError, match="tile="):
        upscale(espcn, _photo(), tile="big")


def test_bad_inputs_raise_the_dedicated_error(espcn, tmp_path):
    with pytest.raises(ImageInputError, match="empty"):
        upscale(espcn, Image.new("RGB", (0, 5)))
    with pytest.raises(ImageInputError, match="over the limit"):
        upscale(espcn, Image.new("RGB", (100, 100)), max_pixels=5000)
    (tmp_path / "fake.png").write_text("this is not an image")
    with pytest.raises(ImageInputError, match="not a readable image"):
        upscale(espcn, tmp_path / "fake.png")
    with pytest.raises(ImageInputError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageInputError, match="PIL image or a path"):
        upscale(espcn, np.zeros((4, 4, 3)))


def test_truncated_file_is_reported(espcn, tmp_path):
    _photo(64, 64).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageInputError, match="cut.png"):
        upscale(espcn, tmp_path / "cut.png")


def test_pixel_limit_is_checked_before_decoding(espcn, tmp_path):
    Image.new("L", (3000, 3000)).save(tmp_path / "big.png")
    with pytest.raises(ImageInputError, match="9.0 MP"):
        load_image(tmp_path / "big.png", max_pixels=1_000_000)
