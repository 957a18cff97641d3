"""Augmentation for CT slices: geometry applied jointly to image and mask, intensity to image.

Arrays are (H, W, C) images in [0, 1] and (H, W) masks. All 8 flips/90-degree rotations are
used because uploads come in any orientation (the training PNGs are rotated 90 degrees
relative to the usual radiological view).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from model.preprocess import Window

# The window_jitter ranges when a training config names only "p" (HU).
JITTER_LEVEL_HU = (30.0, 50.0)
JITTER_WIDTH_HU = (70.0, 120.0)


def dihedral(image: np.ndarray, mask: np.ndarray, k: int, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 symmetries of the square: rotate by k*90 degrees, then optionally mirror."""
    image, mask = np.rot90(image, k, axes=(0, 1)), np.rot90(mask, k, axes=(0, 1))
    if flip:
        image, mask = image[:, ::-1], mask[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def small_affine(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                 max_deg: float = 15.0, zoom: tuple[float, float] = (0.85, 1.15),
                 max_shift: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Random rotation, isotropic zoom and shift about the image centre (bilinear)."""
    h, w = mask.shape
    angle = np.deg2rad(rng.uniform(-max_deg, max_deg))
    scale = rng.uniform(*zoom)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / scale
    centre = np.array([h, w]) / 2.0
    shift = rng.uniform(-max_shift, max_shift, 2) * np.array([h, w])
    offset = centre - rot @ (centre + shift)
    out = np.empty_like(image)
    for c in range(image.shape[2]):
        out[..., c] = ndimage.affine_transform(image[..., c], rot, offset, order=1, mode="constant")
    return out, ndimage.affine_transform(mask, rot, offset, order=1, mode="constant")


def intensity(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma, contrast/brightness (mimics other export windows) and a little noise.

    Mild on purpose: gamma 0.6-1.6 and contrast 0.45-1.6 slowed learning so much that a
    1800-step U-Net found almost no hemorrhage on validation patients.
    """
    gamma = np.exp(rng.uniform(np.log(0.8), np.log(1.25)))
    contrast = np.exp(rng.uniform(np.log(0.75), np.log(1.33)))
    brightness = rng.uniform(-0.05, 0.05)
    out = np.power(np.clip(image, 0.0, 1.0), gamma)
    out = (out - 0.5) * contrast + 0.5 + brightness
    if rng.random() < 0.3:
        out = out + rng.normal(0.0, rng.uniform(0.005, 0.03), out.shape)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def reexport_window(image: np.ndarray, rng: np.random.Generator, source_hu: tuple[float, float],
                    level_hu: tuple[float, float] = JITTER_LEVEL_HU,
                    width_hu: tuple[float, float] = JITTER_WIDTH_HU) -> np.ndarray:
    """The image as another export window would show it.

    ``image`` holds values in [0, 1] of the window ``source_hu`` = (level, width) in HU. A width is
    drawn from ``width_hu``, then a level from the part of ``level_hu`` that keeps the new window
    inside the source one (the nearest such level if none does): outside the source window the image
    holds no information, so only windows inside it are simulated exactly. Same shape, float32 in [0, 1].
    """
    src_level, src_width = source_hu
    src_low, src_high = src_level - src_width / 2.0, src_level + src_width / 2.0
    width = min(rng.uniform(*width_hu), src_width)
    fit_low, fit_high = src_low + width / 2.0, src_high - width / 2.0    # levels that keep it inside
    low, high = max(level_hu[0], fit_low), min(level_hu[1], fit_high)
    level = rng.uniform(low, high) if high > low else float(np.clip(level_hu[0], fit_low, fit_high))
    return Window(level, width)(src_low + np.asarray(image, np.float32) * src_width)


def augment(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
            p_affine: float = 0.6, p_intensity: float = 0.5,
            window_jitter: dict | None = None, all_orientations: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Full training augmentation of one (H, W, C) image and its (H, W) mask.

    window_jitter: None (off) or {"p": probability, "source_hu": (level, width) of the images,
    optional "level_hu" / "width_hu" ranges}: that share of the samples is re-exported with
    another brain window (``reexport_window``) before the other intensity changes.
    all_orientations: False keeps every sample in its exported orientation (a diagnostic of what
    learning all 8 costs; uploads come in any orientation, so the shipped models use all 8).
    """
    k, flip = int(rng.integers(4)), bool(rng.random() < 0.5)     # drawn either way: same stream
    if all_orientations:
        image, mask = dihedral(image, mask, k, flip)
    if rng.random() < p_affine:
        image, mask = small_affine(image, mask, rng)
    if window_jitter and rng.random() < window_jitter["p"]:
        image = reexport_window(image, rng, **{k: tuple(v) for k, v in window_jitter.items() if k != "p"})
    if rng.random() < p_intensity:
        image = intensity(image, rng)
    return image, mask
