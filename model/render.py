"""PNG pictures of a mask over its CT image (PIL only).

Grey values: HU through the model's window (level/width), display images (PNG/JPG) as they
are. Lesions: translucent red fill (alpha 0.4) and a 1-pixel bright contour.
"""
from __future__ import annotations

import io
import math
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from .postprocess import bounding_box
from .preprocess import Window

CONTOUR_RGB = np.array([255, 64, 64], dtype=np.uint8)
ALPHA_FIFTHS = 2           # fill opacity in fifths (integer arithmetic in overlay_rgb)
ALPHA = ALPHA_FIFTHS / 5   # = 0.4
MONTAGE_MAX_TILES = 16
SLICE_COMPRESS_LEVEL = 1   # per-slice viewer PNGs: fast zlib level (larger, same pixels)


def display_grey(array: np.ndarray, intensity: str, window: Window) -> np.ndarray:
    """(Z, Y, X) image -> uint8 grey: HU windowed to 0..255, display values clipped to 0..255."""
    if intensity == "hu":
        return np.round(window(array) * 255.0).astype(np.uint8)
    return np.clip(np.round(np.asarray(array, dtype=np.float32)), 0, 255).astype(np.uint8)


def contour(mask2d: np.ndarray) -> np.ndarray:
    """1-pixel inner boundary of a 2D bool mask."""
    mask2d = np.asarray(mask2d, dtype=bool)
    return mask2d & ~ndimage.binary_erosion(mask2d, border_value=0)


def overlay_rgb(grey2d: np.ndarray, mask2d: np.ndarray) -> np.ndarray:
    """(Y, X) uint8 grey + (Y, X) mask -> (Y, X, 3) uint8 RGB with red fill and contour.

    Fill: round((1 - ALPHA) * g + ALPHA * (255, 0, 0)) per channel for grey value g, in
    integers and only inside the mask's bounding box. With ALPHA = a / 5 the exact value is
    n / 5 for an integer n, never halfway between integers, so (2 n + 5) // 10 rounds it.
    """
    keep = 5 - ALPHA_FIFTHS
    grey = np.asarray(grey2d, dtype=np.uint8)
    out = np.repeat(grey[..., None], 3, axis=2)
    inside = np.asarray(mask2d, dtype=bool)
    box = bounding_box(inside)
    if box is None:
        return out
    inside, sub = inside[box], out[box]           # sub is a view into out
    kept = grey[box][inside].astype(np.uint16) * (2 * keep)
    sub[inside, 0] = (kept + (2 * 255 * ALPHA_FIFTHS + 5)) // 10
    sub[inside, 1] = sub[inside, 2] = (kept + 5) // 10
    sub[contour(inside)] = CONTOUR_RGB            # outside the box is background: same contour
    return out


def fit(image: Image.Image, max_size: Optional[int]) -> Image.Image:
    """Downscale (never upscale) so that the longer side is at most ``max_size`` pixels."""
    if not max_size or max(image.size) <= max_size:
        return image
    scale = max_size / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.BILINEAR)


def to_png(image: Image.Image, compress_level: int = 6) -> bytes:
    """PNG bytes of ``image`` (zlib ``compress_level`` 0-9: 1 is fast, 6 smaller)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=compress_level)
    return buffer.getvalue()


def overlay_png(grey2d: np.ndarray, mask2d: np.ndarray, max_size: Optional[int] = None,
                compress_level: int = 6) -> bytes:
    """RGB PNG bytes of one slice's overlay, downscaled to ``max_size`` when given."""
    return to_png(fit(Image.fromarray(overlay_rgb(grey2d, mask2d), mode="RGB"), max_size),
                  compress_level)


def slice_png(grey2d: np.ndarray, mask2d: np.ndarray, max_size: Optional[int] = None) -> bytes:
    """Fast PNG of one slice for the per-slice viewer: the overlay (RGB), or for a slice
    without lesion the plain grey image ("L" PNG: the same pixels as its RGB overlay);
    zlib level 1."""
    if not np.any(mask2d):
        grey = np.asarray(grey2d, dtype=np.uint8)
        return to_png(fit(Image.fromarray(grey, mode="L"), max_size), SLICE_COMPRESS_LEVEL)
    return overlay_png(grey2d, mask2d, max_size, SLICE_COMPRESS_LEVEL)


def montage_slices(slices_with_lesion: Sequence[int], key_slice: int,
                   max_tiles: int = MONTAGE_MAX_TILES) -> list[int]:
    """Up to ``max_tiles`` slice indices, evenly spread over those with lesion, always with key_slice."""
    slices = sorted(set(int(z) for z in slices_with_lesion))
    if len(slices) > max_tiles:
        picks = np.linspace(0, len(slices) - 1, max_tiles - 1).round().astype(int)
        slices = sorted({slices[i] for i in picks} | {int(key_slice)})
    elif key_slice not in slices:
        slices = sorted(slices + [int(key_slice)])
    return slices


def montage_png(tiles: Sequence[tuple[int, np.ndarray, np.ndarray]], tile_size: int = 256,
                key_slice: Optional[int] = None) -> bytes:
    """Grid PNG of overlays of (z, grey2d, mask2d) tiles, each labelled "z=N" with its 0-based
    slice index as in the report (the key slice marked with '*'), tiles at most tile_size px."""
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    slices = [z for z, _, _ in tiles]
    pictures = [fit(Image.fromarray(overlay_rgb(grey, mask), mode="RGB"), tile_size)
                for _, grey, mask in tiles]
    tile_w = max(t.width for t in pictures)
    tile_h = max(t.height for t in pictures)
    sheet = Image.new("RGB", (cols * tile_w, rows * tile_h), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    for i, (z, tile) in enumerate(zip(slices, pictures)):
        x0, y0 = (i % cols) * tile_w, (i // cols) * tile_h
        sheet.paste(tile, (x0, y0))
        label = f"z={z}{'*' if z == key_slice else ''}"
        draw.rectangle((x0, y0, x0 + 6 * len(label) + 6, y0 + 14), fill=(0, 0, 0))
        draw.text((x0 + 3, y0 + 2), label, fill=(255, 255, 0))
    return to_png(sheet)
