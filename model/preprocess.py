"""Preprocessing: intensity window, 2.5D slice context and resizing to the model grid.

All functions are array-in/array-out. Training (``training/``) and serving use these very
functions with the settings from the weights JSON, so the two cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import InputError


@dataclass(frozen=True)
class Window:
    """CT intensity window: maps HU in [level - width/2, level + width/2] linearly to [0, 1].

    The training PNGs were exported with level 40 HU, width 120 HU (brain window).
    """

    level: float = 40.0
    width: float = 120.0

    def __call__(self, hu: np.ndarray) -> np.ndarray:
        low = self.level - self.width / 2.0
        out = (np.asarray(hu, dtype=np.float32) - np.float32(low)) / np.float32(self.width)
        return np.clip(out, 0.0, 1.0, out=out)


def to_unit_range(array: np.ndarray, intensity: str, window: Window) -> np.ndarray:
    """(Z, Y, X) image -> float32 in [0, 1]: HU through ``window``, display values / 255."""
    if intensity == "hu":
        return window(array)
    if intensity == "display":
        return np.clip(np.asarray(array, dtype=np.float32) / np.float32(255.0), 0.0, 1.0)
    raise InputError(f"unknown intensity kind {intensity!r}", stage="preprocess", status=422)


def resize_slices(stack: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of each (Y, X) slice of a (N, Y, X) float array to (N, size[0], size[1]).

    PIL's bilinear filter widens its support when shrinking (antialiasing), so a 512->224
    downsample averages rather than skips pixels.
    """
    stack = np.asarray(stack, dtype=np.float32)
    rows, cols = int(size[0]), int(size[1])
    if stack.shape[1:] == (rows, cols):
        return stack.copy()
    out = np.empty((stack.shape[0], rows, cols), dtype=np.float32)
    for i, plane in enumerate(stack):
        out[i] = np.asarray(Image.fromarray(plane, mode="F").resize((cols, rows), Image.BILINEAR))
    return out


def context_indices(num_slices: int, context: int) -> np.ndarray:
    """(Z, 2*context+1) slice indices of each slice's neighbours, clamped at the ends."""
    offsets = np.arange(-context, context + 1)
    return np.clip(np.arange(num_slices)[:, None] + offsets[None, :], 0, num_slices - 1)


def model_input(unit: np.ndarray, size: tuple[int, int], context: int) -> np.ndarray:
    """(Z, Y, X) image in [0, 1] -> (Z, size[0], size[1], 2*context+1) float32 network input.

    Channel ``context`` is the slice itself, the others its neighbours (2.5D). A single
    slice (Z = 1) repeats itself in every channel, which the models are trained to accept.
    """
    small = resize_slices(unit, size)
    return np.ascontiguousarray(small[context_indices(small.shape[0], context)].transpose(0, 2, 3, 1))


def resize_back(prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(Z, h, w) probabilities on the model grid -> (Z, Y, X) on the original grid."""
    return resize_slices(prob, shape)
