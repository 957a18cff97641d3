"""Rendering: windowed grey, red translucent fill + contour, downscaling, montage."""
import io

import numpy as np
from PIL import Image

from model.preprocess import Window
from model.render import (display_grey, montage_png, montage_slices, overlay_png, overlay_rgb,
                          slice_png)


def png(data: bytes) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data))


def test_hu_is_windowed_and_display_values_kept():
    hu = np.array([[[-20.0, 40.0, 100.0, 1000.0]]], np.float32)
    assert display_grey(hu, "hu", Window(40, 120)).tolist() == [[[0, 128, 255, 255]]]
    shown = np.array([[[0.0, 17.0, 254.6]]], np.float32)
    assert display_grey(shown, "display", Window(40, 120)).tolist() == [[[0, 17, 255]]]


def test_overlay_fill_is_translucent_red_with_bright_contour():
    grey = np.full((10, 10), 100, np.uint8)
    mask = np.zeros((10, 10), bool)
    mask[2:8, 2:8] = True
    rgb = overlay_rgb(grey, mask)
    inside, outside, edge = rgb[5, 5], rgb[0, 0], rgb[2, 5]
    assert outside.tolist() == [100, 100, 100]
    assert inside.tolist() == [round(0.6 * 100 + 0.4 * 255), 60, 60]   # alpha 0.4 red
    assert edge[0] == 255 and edge[1] < 100                             # contour pixel
    assert (rgb[3:7, 3:7, 1] == 60).all()                               # interior not contour


def test_overlay_png_keeps_size_or_downscales():
    grey = np.zeros((300, 200), np.uint8)
    mask = np.zeros((300, 200), bool)
    assert png(overlay_png(grey, mask)).size == (200, 300)
    small = png(overlay_png(grey, mask, max_size=150))
    assert small.size == (100, 150) and small.mode == "RGB"


def float_overlay(grey, mask):
    """Reference: the float blend (alpha 0.4 towards pure red, rounded) and bright contour."""
    from scipy import ndimage

    rgb = np.repeat(grey.astype(np.float64)[..., None], 3, axis=2)
    rgb[mask] = 0.6 * rgb[mask] + 0.4 * np.array([255.0, 0.0, 0.0])
    out = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    out[mask & ~ndimage.binary_erosion(mask, border_value=0)] = (255, 64, 64)
    return out


def test_integer_blend_equals_float_blend_for_every_grey_value():
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    mask = np.zeros((16, 16), bool)
    mask[1:15, 1:15] = True            # interior: fill only; border rows: contour
    np.testing.assert_array_equal(overlay_rgb(grey, mask), float_overlay(grey, mask))
    inner = overlay_rgb(grey, np.ones((16, 16), bool))[1:-1, 1:-1]
    expected = np.round(0.6 * grey[1:-1, 1:-1].astype(float)[..., None] + [102.0, 0.0, 0.0])
    np.testing.assert_array_equal(inner, expected)


def test_overlay_equals_float_reference_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(60):
        shape = tuple(rng.integers(1, 40, 2))
        grey = rng.integers(0, 256, shape).astype(np.uint8)
        mask = rng.random(shape) < rng.choice([0.0, 0.02, 0.3, 0.9, 1.0])
        np.testing.assert_array_equal(overlay_rgb(grey, mask), float_overlay(grey, mask))


def test_lesion_free_slice_png_is_the_grey_image():
    grey = np.random.default_rng(1).integers(0, 256, (60, 90)).astype(np.uint8)
    empty = np.zeros(grey.shape, bool)
    picture = png(slice_png(grey, empty))
    assert picture.mode == "L"
    np.testing.assert_array_equal(np.asarray(picture), grey)
    for max_size in (None, 45, 31):    # also after downscaling: same pixels as the RGB overlay
        shown = np.asarray(png(slice_png(grey, empty, max_size)).convert("RGB"))
        np.testing.assert_array_equal(shown, np.asarray(png(overlay_png(grey, empty, max_size))))


def test_slice_png_with_lesion_is_the_overlay():
    grey = np.random.default_rng(2).integers(0, 256, (50, 40)).astype(np.uint8)
    mask = np.zeros(grey.shape, bool)
    mask[10:30, 5:20] = True
    for max_size in (None, 25):
        fast = png(slice_png(grey, mask, max_size))
        assert fast.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(fast), np.asarray(png(overlay_png(grey, mask, max_size))))


def test_montage_slices_capped_and_include_key_slice():
    assert montage_slices([3, 4, 5], 4) == [3, 4, 5]
    picked = montage_slices(list(range(40)), 17)
    assert len(picked) <= 16 and 17 in picked and picked == sorted(picked)


def test_montage_grid_size():
    tiles = [(z, np.zeros((64, 32), np.uint8), np.ones((64, 32), bool)) for z in range(5)]
    image = png(montage_png(tiles, tile_size=64, key_slice=2))
    assert image.size == (3 * 32, 2 * 64)     # 5 tiles -> 3 columns x 2 rows
    assert np.asarray(image)[40, 16, 0] > 100  # red overlay visible in first tile
