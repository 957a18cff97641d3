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

    def to_hu(self, grey: np.ndarray) -> np.ndarray:
        """Grey values 0..255 of an image exported with this window -> float32 HU, same shape.

        Inside the window the export is undone exactly (up to its 8-bit rounding). Grey 0 and 255
        only say "at or beyond the window's edge": they become BELOW_WINDOW_HU / ABOVE_WINDOW_HU, so
        air stays black and the skull white in any other window, instead of turning grey at the edge.
        """
        grey = np.asarray(grey, dtype=np.float32)
        low = np.float32(self.level - self.width / 2.0)
        hu = low + np.clip(grey, 0.0, 255.0) / np.float32(255.0) * np.float32(self.width)
        hu[grey <= 0.0] = BELOW_WINDOW_HU
        hu[grey >= 255.0] = ABOVE_WINDOW_HU
        return hu


BELOW_WINDOW_HU = -1024.0   # air
ABOVE_WINDOW_HU = 3071.0    # the top of the 12-bit CT range (dense bone, metal)
MAX_EXPORT_WIDTH_HU = 4096.0


def parse_export_window(value) -> Window | None:
    """The window (level, width) in HU that PNG/JPG grey values were exported with, as the user
    states it: None, a (level, width) pair, or the string "level,width". Raises InputError (400)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, Window):
        value = (value.level, value.width)       # checked like any other
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        level, width = (float(v) for v in parts)
    except (TypeError, ValueError):
        raise InputError(f"export window must be two numbers in HU, level and width (e.g. 40,80), got {str(value)[:40]!r}",
                         stage="read", status=400) from None
    if not (np.isfinite(level) and np.isfinite(width) and 0.0 < width <= MAX_EXPORT_WIDTH_HU
            and BELOW_WINDOW_HU <= level <= ABOVE_WINDOW_HU):
        raise InputError(f"export window level must lie in [{BELOW_WINDOW_HU:g}, {ABOVE_WINDOW_HU:g}] HU and its "
                         f"width in (0, {MAX_EXPORT_WIDTH_HU:g}] HU, got level {level:g}, width {width:g}",
                         stage="read", status=400)
    return Window(level, width)


def config_window(config: dict) -> Window:
    """The model's input window, from its NAME.json."""
    return Window(float(config["window"]["level"]), float(config["window"]["width"]))


def unstated_window_note(model_window: Window) -> str:
    """The warning for PNG/JPG grey values segmented without a stated export window: they are taken as
    exported in the model's own window. Measured (README, *Other exports*): an unstated L40/W80 export
    flagged 5 (U-Net) and 17 (two-branch) of 31 lesion-free CV patients, stated 0 and 2."""
    return (f"grey values taken as exported in the model's window L{model_window.level:g}/W{model_window.width:g} HU: "
            "if these slices were exported with another window, state it (export window), since an unstated "
            "narrower window adds false lesions and loses bleeds")


def apply_export_window(array: np.ndarray, intensity: str, window: Window | None,
                        model_window: Window) -> tuple[np.ndarray, str, list[str]]:
    """(array, intensity, notes) with grey values turned into HU when the user stated their export window.

    ``array``: (Z, Y, X) as read; ``intensity``: "display" (grey 0..255) or "hu". An HU input keeps its
    values (the window does not apply; a note says so), as does any input when ``window`` is None (grey
    values are then taken as exported in ``model_window``, the model's own; a note says so).
    """
    if window is None:
        return array, intensity, [unstated_window_note(model_window)] if intensity == "display" else []
    if intensity == "hu":
        return array, intensity, [f"export window L{window.level:g}/W{window.width:g} ignored: this input is "
                                  "already in HU"]
    return window.to_hu(array), "hu", [f"grey values read as an export in window L{window.level:g}/W{window.width:g} "
                                       "HU (as you stated) and re-windowed for the model"]


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


def stack_input(small: np.ndarray, context: int, mirrored: np.ndarray | None = None) -> np.ndarray:
    """(Z, h, w) slices on the model grid -> (Z, h, w, C) network input.

    Channel ``context`` is the slice itself, the others its neighbours (2.5D), C = 2*context+1;
    with ``mirrored`` ((Z, h, w): each slice mirrored about the head's midline, ``model.symmetry``)
    that slice's mirror is one more channel, the last.
    """
    x = small[context_indices(small.shape[0], context)].transpose(0, 2, 3, 1)
    if mirrored is not None:
        x = np.concatenate([x, mirrored[..., None]], axis=-1)
    return np.ascontiguousarray(x, dtype=np.float32)


def model_input(unit: np.ndarray, size: tuple[int, int], context: int, mirror: bool = False,
                line=None) -> np.ndarray:
    """(Z, Y, X) image in [0, 1] -> (Z, size[0], size[1], C) float32 network input (``stack_input``).

    A single slice (Z = 1) repeats itself in every context channel, which the models are trained
    to accept. ``mirror``: add the mirror channel, about ``line`` (a ``model.symmetry.Midline`` on
    the model grid, found for the whole stack so that every chunk of it uses the same one) or, when
    None, about the midline of ``unit`` itself.
    """
    small = resize_slices(unit, size)
    if not mirror:
        return stack_input(small, context)
    from .symmetry import mirror_slices, stack_midline   # here: symmetry -> orientation -> this module
    return stack_input(small, context, mirror_slices(small, line if line is not None else stack_midline(small)))


def resize_back(prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(Z, h, w) probabilities on the model grid -> (Z, Y, X) on the original grid."""
    return resize_slices(prob, shape)
