"""Probabilities -> clean binary mask: threshold, fill holes, drop tiny or unconfident components.

Arrays are (Z, Y, X). A volume (Z > 1) is cleaned in 3D with full (26-) connectivity, a
single image in 2D with full (8-) connectivity. The size limit is ``min_lesion_mm3`` when
the voxel volume is known and ``min_lesion_pixels`` (voxels of the original grid) when not.
Optionally (``core_threshold`` set) a component is kept only if it also holds at least
``min_core_mm3`` / ``min_core_pixels`` of voxels with probability >= ``core_threshold``: its
confident core, which a model's false positives on lesion-free heads mostly lack.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np
from scipy import ndimage

_CROSS = ndimage.generate_binary_structure(2, 1)   # 4-connectivity in a slice


def binarize(prob: np.ndarray, threshold: float) -> np.ndarray:
    """(Z, Y, X) probabilities -> bool mask of ``prob >= threshold``."""
    return np.asarray(prob) >= np.float32(threshold)


def bounding_box(mask: np.ndarray) -> Optional[tuple[slice, ...]]:
    """Slices (one per axis) of the smallest box holding every set element of an N-D mask;
    None when nothing is set."""
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def fill_holes_2d(mask2d: np.ndarray) -> np.ndarray:
    """Same result as ``ndimage.binary_fill_holes(mask2d)``: background (4-connected, the
    default structure) not connected to the array's edge is filled. One labelling pass
    instead of an iterated dilation."""
    background, count = ndimage.label(~mask2d, structure=_CROSS)
    reaches_edge = np.zeros(count + 1, dtype=bool)
    for edge in (background[0], background[-1], background[:, 0], background[:, -1]):
        reaches_edge[edge] = True
    reaches_edge[0] = False            # label 0 = the mask itself: kept
    return ~reaches_edge[background]


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill enclosed holes in each (Y, X) slice of a (Z, Y, X) bool mask.

    Only each slice's bounding box of set pixels is processed: a background pixel on the
    box's edge is connected to the outside of the box, which is all background and reaches
    the slice's edge, so it is never a hole, exactly as in the whole slice.
    """
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros(mask.shape, dtype=bool)
    for z in range(mask.shape[0]):
        box = bounding_box(mask[z])
        if box is not None:
            out[z][box] = fill_holes_2d(mask[z][box])
    return out


def full_connectivity(mask: np.ndarray) -> np.ndarray:
    """Structuring element: 26-connectivity in 3D for Z > 1, 8-connectivity in-plane for Z = 1."""
    if mask.shape[0] > 1:
        return np.ones((3, 3, 3), dtype=bool)
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True
    return structure


@dataclass
class Components:
    """Connected components of a (Z, Y, X) mask, labelled inside a box that holds them all.

    labels: int32 array of the box's shape, 1..count on the components, 0 elsewhere, numbered
    exactly as ``ndimage.label`` numbers the whole mask (raster order of each component's
    first voxel, which a box does not change). box: (z, y, x) slices of the box in the volume.
    """

    labels: np.ndarray
    count: int
    box: tuple[slice, slice, slice]

    def offsets(self) -> tuple[int, int, int]:
        """(z, y, x) of the box's first voxel in the volume."""
        return tuple(int(s.start) for s in self.box)

    def keep(self, keep: np.ndarray) -> None:
        """Keep only the components with ``keep[label]`` True (bool, count + 1 long), renumbered
        1..n in their order, in place."""
        keep = np.asarray(keep, dtype=bool).copy()
        keep[0] = False
        kept = int(np.count_nonzero(keep))
        if kept < self.count:
            new_ids = np.zeros(self.count + 1, dtype=self.labels.dtype)
            new_ids[keep] = np.arange(1, kept + 1, dtype=self.labels.dtype)
            flat = self.labels.reshape(-1)             # a view: labels are C-contiguous
            voxels = np.flatnonzero(flat)              # only labelled voxels, in place
            flat[voxels] = new_ids[flat[voxels]]
            self.count = kept

    def lesion_mask(self, label: int, shape: tuple[int, int, int]) -> np.ndarray:
        """bool (Z, Y, X) mask of the volume's ``shape`` holding only component ``label``."""
        out = np.zeros(shape, dtype=bool)
        out[self.box] = self.labels == label
        return out


def label_components(mask: np.ndarray, min_voxels: int = 0) -> Optional[Components]:
    """Components of a (Z, Y, X) mask (see :func:`full_connectivity`), labelled in its
    bounding box only, without those of fewer than ``min_voxels`` voxels (the others keep
    their order, renumbered 1..n). None when the mask is empty."""
    box = bounding_box(mask)
    if box is None:
        return None
    crop = np.asarray(mask[box], dtype=bool)
    labels, count = ndimage.label(crop, structure=full_connectivity(mask))
    components = Components(labels=labels, count=int(count), box=box)
    if min_voxels > 1:
        components.keep(np.bincount(labels[crop], minlength=count + 1) >= min_voxels)
    return components


def remove_small_components(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """Drop components of fewer than ``min_voxels`` voxels from a (Z, Y, X) bool mask."""
    components = label_components(mask, min_voxels) if min_voxels > 1 else None
    if components is None:
        return mask.astype(bool, copy=True)
    out = np.zeros(mask.shape, dtype=bool)
    out[components.box] = components.labels > 0
    return out


# The training data's geometry, which it does not record: a typical 0.45 x 0.45 x 5 mm head CT
# voxel. Used to turn a size limit chosen in voxels of 3D volumes into one for a single slice.
TYPICAL_SLICE_MM = 5.0
TYPICAL_PIXEL_MM2 = 0.45 * 0.45
TYPICAL_VOXEL_MM3 = TYPICAL_PIXEL_MM2 * TYPICAL_SLICE_MM


def central_slab_fraction(volume_mm3: float, slice_mm: float) -> float:
    """Share of a sphere of ``volume_mm3`` that lies in its central slab ``slice_mm`` thick
    (1.0 when the slab holds all of it)."""
    if volume_mm3 <= 0:
        return 1.0
    radius = (3.0 * volume_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0)
    if slice_mm >= 2.0 * radius:
        return 1.0
    return math.pi * slice_mm * (radius ** 2 - slice_mm ** 2 / 12.0) / volume_mm3


def single_slice_settings(settings: Mapping, spacing_mm: Optional[tuple[float, float, float]]) -> dict:
    """Postprocessing settings for one slice (a 2D upload): the size limits, chosen for 3D
    lesions, become the area of the central slice of the smallest lesion kept (a sphere of the
    minimum volume) — otherwise a bleed whose slice is smaller than the whole 3D minimum would
    always be removed. spacing_mm: (slice, row, col) in mm, or None (typical CT voxel assumed).
    """
    out = dict(settings)
    slice_mm = float(spacing_mm[0]) if spacing_mm else TYPICAL_SLICE_MM
    for part in ("lesion", "core"):      # the core limit scales like the lesion's
        if f"min_{part}_pixels" not in settings and f"min_{part}_mm3" not in settings:
            continue
        pixels = int(settings.get(f"min_{part}_pixels", 0))
        out[f"min_{part}_pixels"] = int(math.ceil(
            pixels * central_slab_fraction(pixels * TYPICAL_VOXEL_MM3, TYPICAL_SLICE_MM) - 1e-9))
        mm3 = float(settings.get(f"min_{part}_mm3", 0.0))
        out[f"min_{part}_mm3"] = mm3 * central_slab_fraction(mm3, slice_mm)
    return out


def min_component_voxels(settings: Mapping, voxel_volume_mm3: Optional[float], part: str = "lesion") -> int:
    """Limit in voxels: ceil(min_{part}_mm3 / voxel volume) if known, else min_{part}_pixels.
    part: "lesion" (a component's size) or "core" (its voxels >= core_threshold)."""
    if voxel_volume_mm3 is not None and voxel_volume_mm3 > 0:
        return int(math.ceil(float(settings.get(f"min_{part}_mm3", 0.0)) / voxel_volume_mm3 - 1e-9))
    return int(settings.get(f"min_{part}_pixels", 0))


def min_area_pixels(settings: Mapping, pixel_area_mm2: Optional[float]) -> int:
    """Cross-section limit in pixels: ceil(min_lesion_area_mm2 / pixel area) if the in-plane
    spacing is known, else min_lesion_area_pixels (0 when the config has no area rule)."""
    if pixel_area_mm2 is not None and pixel_area_mm2 > 0:
        return int(math.ceil(float(settings.get("min_lesion_area_mm2", 0.0)) / pixel_area_mm2 - 1e-9))
    return int(settings.get("min_lesion_area_pixels", 0))


def largest_cross_sections(labels: np.ndarray, count: int) -> np.ndarray:
    """(count + 1,) int64: for each label of a (Z, Y, X) label array, the most pixels it holds
    in any one slice (index 0: the background)."""
    largest = np.zeros(count + 1, dtype=np.int64)
    for plane in labels:
        np.maximum(largest, np.bincount(plane.ravel(), minlength=count + 1), out=largest)
    return largest


def drop_thin(components: Components, min_pixels: int) -> None:
    """Keep the components whose largest single-slice cross-section holds at least
    ``min_pixels`` pixels, in place. Bleeds are compact; the false lesions along the falx,
    tentorium and sinuses run thin over many slices, so their total size is no guide."""
    components.keep(largest_cross_sections(components.labels, components.count) >= min_pixels)


def has_core_rule(settings: Mapping) -> bool:
    return settings.get("core_threshold") is not None


def drop_unconfident(components: Components, core: np.ndarray, min_voxels: int) -> None:
    """Keep the components holding at least ``min_voxels`` voxels of ``core`` (bool (Z, Y, X),
    probability >= core_threshold), in place."""
    counts = np.bincount(components.labels[np.asarray(core[components.box], dtype=bool)],
                         minlength=components.count + 1)
    components.keep(counts >= max(min_voxels, 1))          # keep() never keeps label 0


def clean_and_label(mask: np.ndarray, settings: Mapping, voxel_volume_mm3: Optional[float],
                    core: Optional[np.ndarray] = None, pixel_area_mm2: Optional[float] = None
                    ) -> tuple[np.ndarray, Optional[Components]]:
    """Binary (Z, Y, X) mask -> (uint8 0/1 mask with holes filled and small components
    removed, its :class:`Components`, None when it is empty).

    Pass the components to ``measure.measure`` so that the volume is labelled only once.
    settings: the config's ``postprocess`` dict (min_lesion_mm3, min_lesion_pixels, fill_holes;
    with core_threshold also min_core_mm3, min_core_pixels, and then ``core`` is required:
    bool (Z, Y, X) of probability >= core_threshold; with min_lesion_area_pixels /
    min_lesion_area_mm2 a component's largest single-slice cross-section must reach it).
    voxel_volume_mm3: slice_mm * row_mm * col_mm; pixel_area_mm2: row_mm * col_mm; each None
    when unknown.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"mask must be (Z, Y, X), got shape {mask.shape}")
    if has_core_rule(settings) and (core is None or core.shape != mask.shape):
        raise ValueError("the core rule needs the (Z, Y, X) mask of confident voxels")
    if settings.get("fill_holes", True):
        mask = fill_holes_per_slice(mask)
    components = label_components(mask, min_component_voxels(settings, voxel_volume_mm3))
    if components is not None and has_core_rule(settings):
        drop_unconfident(components, core, min_component_voxels(settings, voxel_volume_mm3, "core"))
    min_area = min_area_pixels(settings, pixel_area_mm2)
    if components is not None and min_area > 1:
        drop_thin(components, min_area)
    out = np.zeros(mask.shape, dtype=np.uint8)
    if components is None or components.count == 0:
        return out, None
    out[components.box] = components.labels > 0
    return out, components


def clean_mask(mask: np.ndarray, settings: Mapping, voxel_volume_mm3: Optional[float]) -> np.ndarray:
    """Binary (Z, Y, X) mask -> uint8 0/1 with holes filled and small components removed.

    settings: the config's ``postprocess`` dict (min_lesion_mm3, min_lesion_pixels, fill_holes).
    voxel_volume_mm3: slice_mm * row_mm * col_mm, or None when the spacing is unknown.
    """
    return clean_and_label(mask, settings, voxel_volume_mm3)[0]


def core_mask(prob: np.ndarray, settings: Mapping) -> Optional[np.ndarray]:
    """bool (Z, Y, X) of ``prob >= core_threshold``, or None when the settings have no core rule."""
    return binarize(prob, settings["core_threshold"]) if has_core_rule(settings) else None


def postprocess(prob: np.ndarray, config: Mapping, voxel_volume_mm3: Optional[float],
                pixel_area_mm2: Optional[float] = None) -> np.ndarray:
    """(Z, Y, X) probabilities -> uint8 0/1 mask using the config's threshold and postprocess."""
    settings = config.get("postprocess", {})
    return clean_and_label(binarize(prob, config["threshold"]), settings, voxel_volume_mm3,
                           core_mask(prob, settings), pixel_area_mm2)[0]
