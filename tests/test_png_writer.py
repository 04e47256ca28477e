"""The app's fast PNG writer (sr_models.png_writer): files any reader takes, pixel for pixel."""

import zlib

import numpy as np
import pytest
from PIL import Image

from sr_models.png_writer import encode_rgb, save_png


@pytest.mark.parametrize("height,width", [(1, 1), (1, 7), (5, 1), (37, 53), (300, 200)])
def test_rgb_round_trips_exactly_through_pil(tmp_path, height, width):
    pixels = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    save_png(Image.fromarray(pixels), tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as back:
        assert back.format == "PNG" and back.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(back), pixels)


def test_the_stream_is_one_valid_zlib_stream_whose_checksum_covers_every_row():
    pixels = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    png = encode_rgb(pixels)
    length = int.from_bytes(png[33:37], "big")
    assert png[37:41] == b"IDAT"
    scanlines = zlib.decompress(png[41:41 + length])  # raises on a bad stream or Adler-32
    assert len(scanlines) == 64 * (48 * 3 + 1)


def test_a_smooth_photo_compresses_about_as_well_as_pils_encoder(tmp_path):
    x = np.linspace(0, 1, 256)
    photo = (np.stack([np.outer(x, x), np.outer(x, 1 - x), np.outer(1 - x, x)], -1) * 255).astype(np.uint8)
    save_png(Image.fromarray(photo), tmp_path / "fast.png")
    Image.fromarray(photo).save(tmp_path / "pil.png", compress_level=1)
    assert (tmp_path / "fast.png").stat().st_size < 1.5 * (tmp_path / "pil.png").stat().st_size


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16"])
def test_other_modes_are_written_by_pil_in_their_mode(tmp_path, mode):
    image = Image.new(mode, (9, 4), 7)
    save_png(image, tmp_path / "b.png")
    with Image.open(tmp_path / "b.png") as back:
        assert back.mode == mode and back.getpixel((3, 2)) == image.getpixel((3, 2))
