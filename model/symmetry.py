"""The head's midline and each slice mirrored about it: the "mirror channel" a model may ask for.

Most bleeds are one-sided. A network on the 224 x 224 model grid sees ~125 pixels around a pixel,
less than the distance between a lateral bleed and the same place in the other hemisphere; a
slice mirrored about the head's long axis (the falx) puts that contralateral tissue on the same
pixel. The axis comes from the head's pixels, not from the image axes, so it needs no orientation:
flipping or turning the slices flips or turns the axis with them.

Arrays are (Z, Y, X) float32 in [0, 1] (the unit range of ``model.preprocess.to_unit_range``) on
the model grid; the axis is in that grid's pixel coordinates (row, column).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
from scipy import ndimage

from .orientation import OrientationEstimator, largest_filled_component

HEAD_LEVEL = OrientationEstimator.head_level   # unit intensity of soft tissue at L40/W120


class Midline(NamedTuple):
    """The head's long axis: a point on it (row, col), the unit vector across it (row, col) and
    the head's half-width across it (pixels, 2 standard deviations: exact for a uniform ellipse)."""

    centre: np.ndarray
    across: np.ndarray
    half_width: float


def head_masks(image: np.ndarray) -> np.ndarray:
    """(Z, Y, X) unit-range image -> (Z, Y, X) bool: per slice, the largest tissue component
    with its holes filled (the scanner table and noise are dropped)."""
    out = np.zeros(image.shape, dtype=bool)
    for z, plane in enumerate(image):
        found = largest_filled_component(ndimage.binary_opening(plane > HEAD_LEVEL, iterations=1))
        if found is not None:
            out[z] = found[0]
    return out


def midline(head: np.ndarray) -> Optional[Midline]:
    """(Z, Y, X) head masks -> the principal axis of all slices' head pixels together, or None
    when the stack holds fewer than 3 head pixels. A head is longer front to back than side to
    side, so the axis runs along the falx; one axis per stack keeps the slices consistent."""
    footprint = head.sum(axis=0)
    ys, xs = np.nonzero(footprint)
    if len(ys) < 3:
        return None
    weights = footprint[ys, xs].astype(np.float64)
    centre = np.array([np.average(ys, weights=weights), np.average(xs, weights=weights)])
    values, vectors = np.linalg.eigh(np.cov(np.stack([ys, xs]), aweights=weights))
    return Midline(centre, vectors[:, 0], 2.0 * float(np.sqrt(max(values[0], 1e-9))))  # smaller eigenvalue


def signed_distance(line: Midline, shape: tuple[int, int]) -> np.ndarray:
    """(Y, X) float64: each pixel's signed distance (pixels) from ``line``, positive along ``across``."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    return (yy - line.centre[0]) * line.across[0] + (xx - line.centre[1]) * line.across[1]


def mirror_slices(image: np.ndarray, line: Optional[Midline]) -> np.ndarray:
    """(Z, Y, X) slices -> the same slices mirrored about ``line`` (bilinear; 0 where the mirror
    falls outside the slice). No line (no head found): the slices themselves, i.e. no asymmetry."""
    image = np.asarray(image, dtype=np.float32)
    if line is None:
        return image.copy()
    yy, xx = np.mgrid[0:image.shape[1], 0:image.shape[2]].astype(np.float64)
    signed = signed_distance(line, image.shape[1:])
    coords = np.stack([yy - 2.0 * signed * line.across[0], xx - 2.0 * signed * line.across[1]])
    return np.stack([ndimage.map_coordinates(plane, coords, order=1, mode="constant", cval=0.0)
                     for plane in image]).astype(np.float32)


def stack_midline(image: np.ndarray) -> Optional[Midline]:
    """(Z, Y, X) unit-range stack -> its head's midline (None without a head)."""
    return midline(head_masks(np.asarray(image, dtype=np.float32)))


def mirrored_stack(image: np.ndarray) -> np.ndarray:
    """(Z, Y, X) unit-range stack -> every slice mirrored about the stack's own midline."""
    return mirror_slices(image, stack_midline(image))
