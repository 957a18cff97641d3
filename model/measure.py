"""Measurements of a (Z, Y, X) uint8 mask in real units from the voxel spacing.

spacing_mm is (slice_mm, row_mm, col_mm); pixel_spacing_mm is (row_mm, col_mm). Volumes are
in millilitres (1 mL = 1000 mm^3), areas in mm^2. Unknown spacing gives None, never a guess.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull

from .postprocess import Components, label_components

MM3_PER_ML = 1000.0
SPACING_HINT = ("pass it with --spacing ROW_MM COL_MM SLICE_MM (CLI) or the 'spacing' field "
                "(API: [row_mm, col_mm, slice_mm])")


@dataclass
class Measurements:
    volume_ml: Optional[float]
    lesion_voxels: int
    slice_areas_pixels: list[int]
    slice_areas_mm2: Optional[list[float]]
    lesions: list[dict]
    abc2_ml: Optional[float]
    abc2_axes_mm: Optional[dict]
    key_slice: int  # slice of largest lesion area; the middle slice when there is no lesion
    warnings: list[str] = field(default_factory=list)

    @property
    def slices_with_lesion(self) -> list[int]:
        return [z for z, area in enumerate(self.slice_areas_pixels) if area > 0]


def _product(sizes_mm) -> Optional[float]:
    return None if sizes_mm is None else float(np.prod(np.asarray(sizes_mm, dtype=np.float64)))


def voxel_volume_mm3(spacing_mm: Optional[tuple[float, float, float]]) -> Optional[float]:
    """slice_mm * row_mm * col_mm, or None."""
    return _product(spacing_mm)


def pixel_area_mm2(pixel_spacing_mm: Optional[tuple[float, float]]) -> Optional[float]:
    """row_mm * col_mm, or None."""
    return _product(pixel_spacing_mm)


def lesion_table(mask: np.ndarray, spacing_mm, components: Optional[Components] = None
                 ) -> tuple[list[dict], Optional[Components]]:
    """3D connected lesions of a (Z, Y, X) mask, largest first, ids 1..n; also its components
    (None when there is no lesion).

    Each lesion: id, label (its number in the components), voxels, volume_ml (None without
    spacing), slices [z_first, z_last], centroid_zyx (voxel coordinates of the volume).
    components: those of this very mask (``postprocess.clean_and_label``) to skip labelling.
    """
    if components is None:
        components = label_components(mask)
    if components is None or components.count == 0:
        return [], None
    count, labels = components.count, components.labels
    local = np.nonzero(labels)
    owner = labels[local]
    coords = [axis + offset for axis, offset in zip(local, components.offsets())]  # volume voxels
    sizes = np.bincount(owner, minlength=count + 1)[1:]
    centroids = np.stack([np.bincount(owner, weights=axis, minlength=count + 1)[1:] / sizes
                          for axis in coords], axis=1)
    boxes = ndimage.find_objects(labels)
    z0 = components.offsets()[0]
    voxel_mm3 = voxel_volume_mm3(spacing_mm)
    lesions = []
    for label in np.argsort(-sizes, kind="stable"):
        lesions.append({
            "label": int(label + 1),
            "voxels": int(sizes[label]),
            "volume_ml": None if voxel_mm3 is None else round(sizes[label] * voxel_mm3 / MM3_PER_ML, 4),
            "slices": [z0 + int(boxes[label][0].start), z0 + int(boxes[label][0].stop - 1)],
            "centroid_zyx": [round(float(c), 2) for c in centroids[label]],
        })
    for rank, lesion in enumerate(lesions, start=1):
        lesion["id"] = rank
    return lesions, components


def pixel_corners_mm(region: np.ndarray, pixel_spacing_mm: tuple[float, float]) -> np.ndarray:
    """(K, 2) in-plane (row, col) coordinates in mm of the corners of the edge pixels of a 2D mask."""
    region = np.asarray(region, dtype=bool)
    boundary = region & ~ndimage.binary_erosion(region)  # interior pixels cannot be on the hull
    rows, cols = np.nonzero(boundary)
    offsets = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    corners = np.stack([rows, cols], axis=1)[:, None, :] + offsets[None, :, :]
    return np.unique(corners.reshape(-1, 2), axis=0) * np.asarray(pixel_spacing_mm, dtype=np.float64)


def diameters_mm(region: np.ndarray, pixel_spacing_mm: tuple[float, float]) -> tuple[float, float]:
    """(A, B) of a 2D mask: longest diameter in mm, and the extent perpendicular to it in mm.

    Pixels are treated as rectangles of pixel_spacing_mm; A is the largest distance between
    two points of the region, B its width along the direction perpendicular to A.
    """
    points = pixel_corners_mm(region, pixel_spacing_mm)
    hull = points[ConvexHull(points).vertices]
    dist = np.linalg.norm(hull[:, None, :] - hull[None, :, :], axis=-1)
    i, j = np.unravel_index(np.argmax(dist), dist.shape)
    a_mm = float(dist[i, j])
    direction = (hull[j] - hull[i]) / a_mm
    normal = np.array([-direction[1], direction[0]])
    projection = hull @ normal
    return a_mm, float(projection.max() - projection.min())


def abc_over_2(lesion_mask: np.ndarray, spacing_mm) -> tuple[float, dict]:
    """ABC/2 volume estimate (mL) of one lesion's (Z, Y, X) mask and its axes in mm.

    A, B on the lesion's slice of largest area; C = number of slices with the lesion * slice_mm.
    """
    slice_mm, row_mm, col_mm = spacing_mm
    areas = lesion_mask.reshape(lesion_mask.shape[0], -1).sum(axis=1)
    key = int(np.argmax(areas))
    a_mm, b_mm = diameters_mm(lesion_mask[key], (row_mm, col_mm))
    c_mm = int(np.count_nonzero(areas)) * slice_mm
    axes = {"a_mm": round(a_mm, 2), "b_mm": round(b_mm, 2), "c_mm": round(c_mm, 2), "slice": key}
    return a_mm * b_mm * c_mm / 2.0 / MM3_PER_ML, axes


def spacing_warning(pixel_spacing_mm, slice_thickness_mm) -> Optional[str]:
    """Why volumes cannot be computed and how to supply the spacing, or None if they can."""
    if pixel_spacing_mm is None and slice_thickness_mm is None:
        missing = "the voxel spacing"
    elif pixel_spacing_mm is None:
        missing = "the in-plane pixel spacing"
    elif slice_thickness_mm is None:
        missing = "the slice thickness"
    else:
        return None
    return f"volume in mL not computed: the input does not record {missing}; " + SPACING_HINT


def measure(mask: np.ndarray, pixel_spacing_mm: Optional[tuple[float, float]] = None,
            slice_thickness_mm: Optional[float] = None,
            components: Optional[Components] = None) -> Measurements:
    """Measure a (Z, Y, X) 0/1 mask. Spacing arguments in mm; None when unknown.

    components: those of this very mask from ``postprocess.clean_and_label``, so that it is
    not labelled twice; None = label it here (nothing to label when it is empty).
    """
    mask = np.asarray(mask)
    spacing = None
    if pixel_spacing_mm is not None and slice_thickness_mm is not None:
        spacing = (float(slice_thickness_mm), *map(float, pixel_spacing_mm))
    areas = np.count_nonzero(mask.reshape(mask.shape[0], -1), axis=1).astype(int)
    areas_mm2 = None
    if pixel_spacing_mm is not None:
        pixel_mm2 = float(pixel_spacing_mm[0]) * float(pixel_spacing_mm[1])
        areas_mm2 = [round(int(a) * pixel_mm2, 3) for a in areas]
    voxels = int(areas.sum())
    lesions, components = lesion_table(mask, spacing, components) if voxels else ([], None)
    volume = None if spacing is None else voxels * voxel_volume_mm3(spacing) / MM3_PER_ML
    abc2, axes = None, None
    if spacing is not None and lesions:
        abc2, axes = abc_over_2(components.lesion_mask(lesions[0]["label"], mask.shape), spacing)
    for lesion in lesions:
        del lesion["label"]
    warnings = [] if spacing is not None else [spacing_warning(pixel_spacing_mm, slice_thickness_mm)]
    key = int(np.argmax(areas)) if voxels else mask.shape[0] // 2
    return Measurements(volume_ml=volume, lesion_voxels=voxels, slice_areas_pixels=areas.tolist(),
                        slice_areas_mm2=areas_mm2, lesions=lesions, abc2_ml=abc2,
                        abc2_axes_mm=axes, key_slice=key, warnings=warnings)
