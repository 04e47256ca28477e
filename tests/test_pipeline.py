"""upscale(): image modes, orientation, tiling, devices, precision, errors."""

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from sr_models import ESPCN, HAT, upscale, upscale_tensor
from sr_models.metrics import bicubic_upscale, psnr_batch
from sr_models.image_io import ImageInputError, load_image
from sr_models.pipeline import auto_tile, resolve_device, upscale_tiled

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


class Nearest(torch.nn.Module):
    """x2 nearest-neighbour "model": every output pixel is an input value, so value
    ranges and precision can be checked exactly (bicubic is not a torch module)."""

    scale, pad_multiple = 2, 1
    # the facts every model states (hub.SRModelMixin): each output pixel reads one input pixel
    receptive_radius, tile_overlap, bytes_per_pixel = 0, 0, 4 * 3 * (1 + 2 ** 2)

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest") + self.dummy


def image_in_mode(mode: str, w: int = 23, h: int = 17) -> Image.Image:
    """A random image of any PIL mode the pipeline accepts."""
    rng = np.random.default_rng(1)
    values = rng.integers(0, 65536, (h, w))
    if mode == "I;16":
        return Image.fromarray(values.astype(np.uint16))
    if mode == "I;16B":
        return Image.frombytes(mode, (w, h), values.astype(">u2").tobytes())
    if mode == "I":
        return Image.fromarray(values.astype(np.int32))
    if mode == "F":
        return Image.fromarray(rng.random((h, w), dtype=np.float32))
    rgba = _photo(w, h).convert("RGBA")
    rgba.putalpha(Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)))
    if mode in ("PA", "RGBa", "La"):
        return rgba.convert(mode) if mode != "La" else rgba.convert("LA").convert("La")
    return _photo(w, h).convert(mode)


MODES = [
    ("RGB", "RGB"), ("RGBA", "RGBA"), ("RGBa", "RGBA"), ("PA", "RGBA"), ("LA", "LA"), ("La", "LA"),
    ("L", "L"), ("P", "RGB"), ("1", "L"), ("CMYK", "CMYK"), ("YCbCr", "RGB"), ("LAB", "RGB"),
    ("HSV", "RGB"), ("RGBX", "RGB"), ("I;16", "I;16"), ("I;16B", "I;16"), ("I", "I;16"), ("F", "F"),
]


@pytest.mark.parametrize("mode,expected", MODES)
def test_every_mode_round_trips_with_the_right_size_and_mode(espcn, mode, expected):
    image = image_in_mode(mode)
    assert image.mode == mode
    out = upscale(espcn, image)
    assert out.size == (46, 34)
    assert out.mode == expected


@pytest.mark.parametrize("mode,expected", MODES)
def test_the_bicubic_baseline_takes_every_mode_and_returns_what_upscale_returns(mode, expected):
    out = bicubic_upscale(image_in_mode(mode), 2)
    assert out.size == (46, 34)
    assert out.mode == expected


@pytest.mark.parametrize("value_range", [1.0, 255.0, 65535.0])
def test_float_images_keep_their_range(value_range):
    values = np.random.default_rng(2).random((5, 6), dtype=np.float32) * value_range
    out = upscale(Nearest(), Image.fromarray(values))
    assert out.mode == "F"
    np.testing.assert_allclose(np.asarray(out)[::2, ::2], values, rtol=1e-5, atol=1e-6 * value_range)


def test_float_images_with_bad_values_are_refused_by_name():
    nan = np.zeros((4, 4), np.float32)
    nan[1, 2] = np.nan
    with pytest.raises(ImageInputError, match="NaN"):
        upscale(Nearest(), Image.fromarray(nan))
    with pytest.raises(ImageInputError, match="up to 70000"):
        upscale(Nearest(), Image.fromarray(np.full((4, 4), 70000, np.float32)))


def test_cmyk_comes_back_as_cmyk_with_the_same_colours():
    image = image_in_mode("CMYK", 6, 5)
    out = upscale(Nearest(), image)
    assert out.mode == "CMYK"
    # exact: nearest copies values, and rounding to 8 bits absorbs the float32 error
    assert np.array_equal(np.asarray(out.convert("RGB"))[::2, ::2], np.asarray(image.convert("RGB")))


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
    values = np.array([[1000, 1001], [40000, 65535]], dtype=np.uint16)
    out = np.asarray(upscale(Nearest(), Image.fromarray(values)))
    assert out.dtype == np.uint16
    assert np.array_equal(out[::2, ::2], values)  # exact: rounding absorbs float32 error


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
    # identical up to float rounding of convolutions of differently sized inputs (6e-8 seen)
    assert (whole - tiled).abs().max() < 1e-5
    image = Image.fromarray((lr[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    untiled_8bit = np.asarray(upscale(espcn, image), dtype=np.int16)
    tiled_8bit = np.asarray(upscale(espcn, image, tile=tile), dtype=np.int16)
    # Rounding to 8 bits can flip a value that lies within 1e-5 of a half level (1 of
    # 13,056 on one CPU): at most one level, in well under 1% of the values anywhere.
    diff = np.abs(untiled_8bit - tiled_8bit)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


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


def _png(path, width, height, rows, interlace=0):
    """A PNG of 8-bit RGB whose compressed data holds ``rows`` (filter byte + pixels per
    row, passes one after another when interlaced): a complete zlib stream, whatever the
    header says."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, interlace)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
                     + chunk(b"IEND", b""))
    return path


def test_pixel_data_that_ends_early_is_an_error_naming_the_file(tmp_path):
    """A header of 6000x6000 with data for 64 rows: PIL decodes it without an error, the
    rest black, and it was upscaled for 6 minutes (issue 19, item 10)."""
    row = b"\0" + bytes(range(256)) * 70 + bytes(3 * 6000 - 256 * 70)
    path = _png(tmp_path / "cut.png", 6000, 6000, [row] * 64)
    assert path.stat().st_size < 10_000
    with pytest.raises(ImageInputError, match=r"cut\.png: corrupt image data \(truncated pixel data: 1,152,064 of "
                                              r"the 108,006,000 bytes a 6000x6000 image needs\)"):
        load_image(path)


def test_complete_pngs_whose_last_row_is_black_or_interlaced_are_read(tmp_path):
    black_bottom = np.zeros((6, 5, 3), np.uint8)
    black_bottom[:3] = 200
    Image.fromarray(black_bottom).save(tmp_path / "black.png")
    assert np.array_equal(np.asarray(load_image(tmp_path / "black.png")), black_bottom)
    # Adam7 passes of a 3x2 image: pass 1 has pixel (0, 0), pass 4 (2, 0), pass 6 (1, 0), pass 7 row 1
    passes = [b"\0" + bytes(3), b"\0" + bytes(3), b"\0" + bytes(3), b"\0" + bytes(9)]
    assert load_image(_png(tmp_path / "adam7.png", 3, 2, passes, interlace=1)).size == (3, 2)
    with pytest.raises(ImageInputError, match="truncated pixel data"):
        load_image(_png(tmp_path / "adam7-cut.png", 3, 2, passes[:3], interlace=1))


def test_pixel_limit_is_checked_before_decoding(espcn, tmp_path):
    Image.new("L", (3000, 3000)).save(tmp_path / "big.png")
    with pytest.raises(ImageInputError, match="9.0 MP"):
        load_image(tmp_path / "big.png", max_pixels=1_000_000)


def _animated_gif(path, frames=3):
    rng = np.random.default_rng(3)
    images = [Image.fromarray(rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)).convert("P") for _ in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)


def test_an_animated_image_gives_its_first_frame_with_a_warning(tmp_path, caplog):
    _animated_gif(tmp_path / "anim.gif")
    first = Image.open(tmp_path / "anim.gif").convert("RGB")
    with caplog.at_level("WARNING", logger="sr_models"):
        out = upscale(Nearest(), tmp_path / "anim.gif")
    assert "anim.gif is animated (3 frames); only the first frame is used" in caplog.text
    assert np.array_equal(np.asarray(out)[::2, ::2], np.asarray(first))  # exact, as for CMYK above
    caplog.clear()
    with caplog.at_level("WARNING", logger="sr_models"):
        upscale(Nearest(), Image.open(tmp_path / "anim.gif"))  # a PIL image: the same warning
    assert "animated (3 frames)" in caplog.text


@pytest.mark.parametrize("kwargs,message", [
    ({"tile": 0}, "tile=0 is invalid"),
    ({"tile": -8}, "tile=-8 is invalid"),
    ({"tile": 16, "tile_overlap": -1}, "tile_overlap=-1 is invalid"),
    ({"tile": "auto", "tile_overlap": -1}, "tile_overlap=-1 is invalid"),
    ({"tile_overlap": 2.5}, "tile_overlap=2.5 is invalid"),
    ({"tile": 16, "tile_overlap": 16}, "must be smaller than tile=16"),
    ({"tile": 16, "tile_workers": 0}, "tile_workers=0 is invalid"),
    ({"tile_workers": 1.5}, "tile_workers=1.5 is invalid"),
    ({"tile_workers": True}, "tile_workers=True is invalid"),
])
def test_tile_arguments_are_checked_before_any_work_whatever_the_image_size(espcn, kwargs, message):
    with pytest.raises(ValueError, match=message):
        upscale(espcn, _photo(4, 4), **kwargs)  # smaller than every tile: no tiling would happen


def test_auto_tiles_always_leave_room_for_the_overlap(espcn, monkeypatch):
    import sr_models.pipeline as pipeline

    monkeypatch.setattr(pipeline, "free_memory_bytes", lambda device: 1)  # smallest possible tiles
    calls = []
    out = upscale(espcn, _photo(60, 50), tile="auto", tile_overlap=12, progress=lambda d, t: calls.append(t))
    assert out.size == (120, 100) and calls[-1] > 1


def test_unavailable_or_unknown_devices_are_value_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="'cuda' is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="'cuda:1' is not available"):
        resolve_device("cuda:1")
    with pytest.raises(ValueError, match="device='gpu' is invalid"):
        resolve_device("gpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_the_meta_device_is_a_usage_error_and_the_model_stays_where_it_was(espcn):
    """"meta" holds no data: it once moved the caller's model there for good (issue 19, item 12)."""
    with pytest.raises(ValueError, match="device 'meta' cannot run a model here"):
        upscale(espcn, Image.new("RGB", (8, 8)), device="meta")
    assert all(p.device.type == "cpu" and not p.is_meta for p in espcn.parameters())
    with pytest.raises(ValueError, match="device 'meta'"):
        resolve_device(torch.device("meta"))
