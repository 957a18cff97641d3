"""PNG/JPG reader: grey conversion, limits, tiny/truncated/colour images, stacking."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.errors import InputError
from model.readers import read_sources
from model.types import Limits
from synthetic import grey_image, make_jpg, make_png


def read_one(name, data, limits=None):
    return read_sources([(name, data)], limits or Limits())


def test_png_grey_round_trip_is_exact():
    grey = grey_image((40, 70))
    image = read_one("slice.png", make_png(grey))
    assert image.kind == "png" and image.intensity == "display" and not image.is_volume
    assert image.array.dtype == np.float32 and image.array.shape == (1, 40, 70)
    np.testing.assert_array_equal(image.array[0], grey.astype(np.float32))
    assert image.pixel_spacing_mm is None and image.spacing_mm is None
    assert any("no pixel spacing" in w for w in image.warnings)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "LA"])
def test_grey_content_in_other_modes_gives_the_same_grey(mode):
    grey = grey_image((48, 48))
    image = read_one("slice.png", make_png(shape_yx=(48, 48), mode=mode))
    assert np.abs(image.array[0] - grey).max() <= 1.0
    assert not any("colour" in w for w in image.warnings)


def test_16bit_png_is_scaled_to_0_255():
    image = read_one("deep.png", make_png(shape_yx=(48, 48), mode="I;16"))
    np.testing.assert_allclose(image.array[0], grey_image((48, 48)), atol=0.01)
    assert any("16-bit" in w for w in image.warnings)


def test_jpg_is_read_as_display_grey():
    grey = grey_image((64, 64))
    image = read_one("slice.jpg", make_jpg(grey, quality=100))
    assert image.kind == "jpg" and image.array.shape == (1, 64, 64)
    assert np.abs(image.array[0] - grey).mean() < 2.0


def test_colour_photo_is_accepted_with_a_warning():
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    image = read_one("holiday.jpg", make_jpg(photo))
    assert image.array.shape == (1, 64, 64)
    assert any("colour" in w and "is this a CT?" in w for w in image.warnings)


def test_exif_rotation_is_applied_and_reported():
    grey = grey_image((40, 64))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    image = read_one("phone.jpg", make_jpg(grey, quality=100, exif=exif.tobytes()))
    assert image.array.shape == (1, 64, 40)
    assert any("EXIF" in w for w in image.warnings)


@pytest.mark.parametrize("size", [(1, 1), (31, 200), (200, 20)])
def test_tiny_image_is_422(size):
    with pytest.raises(InputError) as err:
        read_one("tiny.png", make_png(np.zeros(size, np.uint8)))
    assert err.value.status == 422 and err.value.stage == "read"
    assert "tiny.png" in err.value.message and "at least 32" in err.value.message


def test_pixel_limit_is_checked_before_decoding():
    data = make_png(np.zeros((100, 100), np.uint8))
    with pytest.raises(InputError) as err:
        read_one("big.png", data, Limits(max_pixels_2d=100 * 99))
    assert err.value.status == 413 and "100x100" in err.value.message


def test_decompression_bomb_header_is_413_without_decoding():
    # A valid PNG header claiming 40000 x 40000 pixels, followed by no image data.
    header = make_png(np.zeros((40, 40), np.uint8))
    ihdr = bytearray(header[:33])
    ihdr[16:24] = (40000).to_bytes(4, "big") * 2
    import zlib
    ihdr[29:33] = zlib.crc32(bytes(ihdr[12:29])).to_bytes(4, "big")
    with pytest.raises(InputError) as err:
        read_one("bomb.png", bytes(ihdr) + header[33:])
    assert err.value.status == 413 and "bomb.png" in err.value.message


@pytest.mark.parametrize("maker,name", [(make_png, "cut.png"), (make_jpg, "cut.jpg")])
def test_truncated_image_is_422(maker, name):
    data = maker(grey_image((128, 128)))
    with pytest.raises(InputError) as err:
        read_one(name, data[: len(data) // 2])
    assert err.value.status == 422 and name in err.value.message
    assert "truncated" in err.value.message or "damaged" in err.value.message


def test_text_named_png_is_422_not_a_png():
    with pytest.raises(InputError) as err:
        read_one("notes.png", b"hello, this is not an image at all")
    assert err.value.status == 422 and "not a readable PNG" in err.value.message


def test_several_images_stack_in_natural_name_order():
    planes = [np.full((40, 40), value, np.uint8) for value in (10, 20, 30)]
    sources = [("slice10.png", make_png(planes[2])), ("slice2.png", make_png(planes[1])),
               ("slice1.png", make_png(planes[0]))]
    image = read_sources(sources, Limits())
    assert image.is_volume and image.array.shape == (3, 40, 40)
    assert [float(image.array[z, 0, 0]) for z in range(3)] == [10.0, 20.0, 30.0]
    assert image.spacing_mm is None and image.affine.shape == (4, 4)
    assert image.to_file_layout(image.array).shape == (40, 40, 3)
    assert any("file-name order" in w for w in image.warnings)


def test_stack_of_different_sizes_is_422():
    sources = [("a.png", make_png(np.zeros((40, 40), np.uint8))),
               ("b.png", make_png(np.zeros((40, 48), np.uint8)))]
    with pytest.raises(InputError) as err:
        read_sources(sources, Limits())
    assert err.value.status == 422 and "different sizes" in err.value.message
    assert "a.png" in err.value.message and "b.png" in err.value.message


def test_png_with_alpha_ignores_transparency():
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., :3] = 90
    image = read_one("alpha.png", make_png(rgba))
    assert float(image.array.mean()) == pytest.approx(90.0, abs=1.0)


def test_gif_is_415_naming_the_format():
    buf = io.BytesIO()
    Image.fromarray(grey_image((40, 40))).save(buf, format="GIF")
    with pytest.raises(InputError) as err:
        read_one("scan.gif", buf.getvalue())
    assert err.value.status == 415 and "GIF" in err.value.message
