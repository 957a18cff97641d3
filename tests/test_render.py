"""Rendering: windowed grey, red translucent fill + contour, downscaling, montage."""
import io

import numpy as np
from PIL import Image

from model.preprocess import Window
from model.render import (display_grey, montage_png, montage_slices, overlay_png, overlay_rgb)


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


def test_montage_slices_capped_and_include_key_slice():
    assert montage_slices([3, 4, 5], 4) == [3, 4, 5]
    picked = montage_slices(list(range(40)), 17)
    assert len(picked) <= 16 and 17 in picked and picked == sorted(picked)


def test_montage_grid_size():
    tiles = [(z, np.zeros((64, 32), np.uint8), np.ones((64, 32), bool)) for z in range(5)]
    image = png(montage_png(tiles, tile_size=64, key_slice=2))
    assert image.size == (3 * 32, 2 * 64)     # 5 tiles -> 3 columns x 2 rows
    assert np.asarray(image)[40, 16, 0] > 100  # red overlay visible in first tile
