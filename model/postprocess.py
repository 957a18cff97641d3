"""Probabilities -> clean binary mask: threshold, fill holes, drop tiny components.

Arrays are (Z, Y, X). A volume (Z > 1) is cleaned in 3D with full (26-) connectivity, a
single image in 2D with full (8-) connectivity. The size limit is ``min_lesion_mm3`` when
the voxel volume is known and ``min_lesion_pixels`` (voxels of the original grid) when not.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional

import numpy as np
from scipy import ndimage


def binarize(prob: np.ndarray, threshold: float) -> np.ndarray:
    """(Z, Y, X) probabilities -> bool mask of ``prob >= threshold``."""
    return np.asarray(prob) >= np.float32(threshold)


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill enclosed holes in each (Y, X) slice of a (Z, Y, X) bool mask."""
    out = np.empty(mask.shape, dtype=bool)
    for z in range(mask.shape[0]):
        out[z] = ndimage.binary_fill_holes(mask[z]) if mask[z].any() else False
    return out


def full_connectivity(mask: np.ndarray) -> np.ndarray:
    """Structuring element: 26-connectivity in 3D for Z > 1, 8-connectivity in-plane for Z = 1."""
    if mask.shape[0] > 1:
        return np.ones((3, 3, 3), dtype=bool)
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True
    return structure


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the connected components of a (Z, Y, X) mask (see :func:`full_connectivity`)."""
    labels, count = ndimage.label(mask, structure=full_connectivity(mask))
    return labels, int(count)


def remove_small_components(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """Drop components of fewer than ``min_voxels`` voxels from a (Z, Y, X) bool mask."""
    if min_voxels <= 1 or not mask.any():
        return mask.astype(bool, copy=True)
    labels, count = label_components(mask)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels]


def min_component_voxels(settings: Mapping, voxel_volume_mm3: Optional[float]) -> int:
    """Size limit in voxels: ceil(min_lesion_mm3 / voxel volume) if known, else min_lesion_pixels."""
    if voxel_volume_mm3 is not None and voxel_volume_mm3 > 0:
        return int(math.ceil(float(settings.get("min_lesion_mm3", 0.0)) / voxel_volume_mm3 - 1e-9))
    return int(settings.get("min_lesion_pixels", 0))


def clean_mask(mask: np.ndarray, settings: Mapping, voxel_volume_mm3: Optional[float]) -> np.ndarray:
    """Binary (Z, Y, X) mask -> uint8 0/1 with holes filled and small components removed.

    settings: the config's ``postprocess`` dict (min_lesion_mm3, min_lesion_pixels, fill_holes).
    voxel_volume_mm3: slice_mm * row_mm * col_mm, or None when the spacing is unknown.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"mask must be (Z, Y, X), got shape {mask.shape}")
    if settings.get("fill_holes", True):
        mask = fill_holes_per_slice(mask)
    mask = remove_small_components(mask, min_component_voxels(settings, voxel_volume_mm3))
    return mask.astype(np.uint8)


def postprocess(prob: np.ndarray, config: Mapping, voxel_volume_mm3: Optional[float]) -> np.ndarray:
    """(Z, Y, X) probabilities -> uint8 0/1 mask using the config's threshold and postprocess."""
    return clean_mask(binarize(prob, config["threshold"]), config.get("postprocess", {}),
                      voxel_volume_mm3)
