"""Where a voxel lies in the head: maps for the learned component rule's location features.

All maps are (Z, Y, X) float32 on the grid of the unit-range image they come from and are
unchanged (up to the same flip / quarter turn) when the slices are flipped or turned, so they
need no orientation. Distances are relative to the head's size, so they need no pixel spacing.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from model.orientation import OrientationEstimator
from model.symmetry import head_masks, midline, signed_distance

# Unit intensity of bone (>= ~96 HU at L40/W120), as the orientation estimator finds the skull.
BONE_LEVEL = OrientationEstimator.bone_level
BONE_CONTACT_PX = 2  # grid pixels: "against bone" (~2 mm on a 224 grid of a 512 x 0.45 mm slice)


def depth_map(head: np.ndarray) -> np.ndarray:
    """(Z, Y, X) head masks -> distance to the head's outline over the slice's head radius
    (sqrt(area / pi)): about 0 at the scalp, about 1 at the centre of a round head, 0 outside."""
    out = np.zeros(head.shape, dtype=np.float32)
    for z, plane in enumerate(head):
        area = int(plane.sum())
        if area:
            out[z] = ndimage.distance_transform_edt(plane) / np.sqrt(area / np.pi)
    return out


def midline_map(head: np.ndarray) -> np.ndarray:
    """(Z, Y, X) head masks -> distance from the head's long axis (``model.symmetry.midline``)
    over the head's half-width. Zeros when the stack holds no head."""
    out = np.zeros(head.shape, dtype=np.float32)
    line = midline(head)
    if line is None:
        return out
    out[:] = (np.abs(signed_distance(line, head.shape[1:])) / line.half_width).astype(np.float32)
    return out


def bone_contact_map(image: np.ndarray) -> np.ndarray:
    """(Z, Y, X) unit-range image -> 1.0 where a pixel lies within BONE_CONTACT_PX of bone
    in its slice, else 0.0."""
    bone = image >= BONE_LEVEL
    structure = np.zeros((1, 3, 3), bool)
    structure[0] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_dilation(bone, structure, iterations=BONE_CONTACT_PX).astype(np.float32)


def location_maps(image: np.ndarray) -> np.ndarray:
    """(Z, Y, X) unit-range image -> (3, Z, Y, X): depth, midline distance, bone contact."""
    head = head_masks(image)
    return np.stack([depth_map(head), midline_map(head), bone_contact_map(image)])
