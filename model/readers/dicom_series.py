"""One DICOM series -> CTImage: grouping, slice order, spacing and the mask-file affine.

Slices are ordered by ImagePositionPatient projected on the slice normal (the cross
product of the ImageOrientationPatient row and column directions), falling back to
InstanceNumber and then to file names. The pipeline array is (Z, Y, X) as the pixels are
stored (rows top -> bottom, columns left -> right); the mask file is the (X, Y, Z)
transpose with a voxel -> RAS affine.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..types import CTImage, Limits
from .detect import natural_key
from .dicom import Plane, check_image, check_limits, describe_series, is_dicomdir, parse
from .dicom import read_planes, series_key
from .geometry import file_layout_xyz, lps_affine
from .util import guard, hu_warnings, summarise

_SAME_POSITION_MM = 1e-3
_UNEVEN_FRACTION = 0.1
_MAX_LISTED = 8


def _one_series(files: list[tuple[str, object]]) -> None:
    """422 listing the series (number, description, file count) when there are several."""
    groups: dict[str, list] = {}
    for name, ds in files:
        groups.setdefault(series_key(ds), []).append((name, ds))
    if len(groups) <= 1:
        return
    listed = [describe_series(g) for g in list(groups.values())[:_MAX_LISTED]]
    more = len(groups) - len(listed)
    tail = f", and {more} more" if more > 0 else ""
    raise InputError(f"the upload holds {len(groups)} DICOM series; upload one series at a "
                     f"time: {'; '.join(listed)}{tail}", status=422)


def _same_size(planes: list[Plane]) -> None:
    """422 when the slices of the series do not all have the same rows x columns."""
    first = planes[0]
    for plane in planes[1:]:
        if plane.pixels.shape != first.pixels.shape:
            raise InputError(
                f"slices of this series differ in size: {first.name} is "
                f"{first.pixels.shape[1]}x{first.pixels.shape[0]}, {plane.name} is "
                f"{plane.pixels.shape[1]}x{plane.pixels.shape[0]}", status=422)


def _orientation(planes: list[Plane]) -> np.ndarray | None:
    """The shared ImageOrientationPatient (6,), None if any is missing; 422 if they differ."""
    if any(p.iop is None for p in planes):
        return None
    first = planes[0].iop
    for plane in planes[1:]:
        if not np.allclose(plane.iop, first, atol=1e-3):
            raise InputError(f"slices of this series have different orientations "
                             f"({planes[0].name} and {plane.name}); upload one stack of "
                             "parallel slices", status=422)
    return first


def radiological_view(iop) -> bool:
    """Whether ImageOrientationPatient (LPS) puts rows toward patient left and columns toward
    posterior: the radiological view of an axial slice (gantry tilts up to ~45 degrees allowed)."""
    return iop is not None and float(iop[0]) > 0.9 and float(iop[4]) > 0.7


def _order(planes: list[Plane], iop, general: list[str]) -> tuple[list[Plane], np.ndarray | None]:
    """Sort slices; -> (planes, positions along the normal in mm, or None)."""
    if iop is not None and all(p.ipp is not None for p in planes):
        normal = np.cross(iop[:3], iop[3:])
        positions = np.array([float(p.ipp @ normal) for p in planes])
        order = np.argsort(positions, kind="stable")
        return [planes[i] for i in order], positions[order]
    if all(p.instance is not None for p in planes):
        general.append("slice positions (ImagePositionPatient/ImageOrientationPatient) are "
                       "missing: slices ordered by InstanceNumber")
        return sorted(planes, key=lambda p: p.instance), None
    general.append("slice positions and instance numbers are missing: slices ordered by "
                   "file name")
    return sorted(planes, key=lambda p: natural_key(p.name)), None


def _dedupe(planes: list[Plane], positions, general: list[str]):
    """Drop slices that repeat a position (or instance number) already present."""
    keys = positions if positions is not None else [p.instance for p in planes]
    if any(k is None for k in keys):
        return planes, positions
    keep, dropped = [0], []
    for i in range(1, len(planes)):
        if abs(float(keys[i]) - float(keys[keep[-1]])) <= _SAME_POSITION_MM:
            dropped.append(planes[i].name)
        else:
            keep.append(i)
    if dropped:
        general.append(f"{len(dropped)} slice(s) repeat the position of another slice and were "
                       f"skipped ({', '.join(dropped[:3])}{', ...' if len(dropped) > 3 else ''})")
    kept_positions = None if positions is None else positions[keep]
    return [planes[i] for i in keep], kept_positions


def _slice_step_mm(planes: list[Plane], positions, general: list[str]) -> tuple[float | None, str]:
    """Distance between slices (mm) and where it came from."""
    if positions is not None and len(positions) > 1:
        gaps = np.diff(positions)
        step = float(np.median(gaps))
        if float(gaps.max() - gaps.min()) > max(_UNEVEN_FRACTION * step, 0.01):
            general.append(f"slice spacing is uneven ({gaps.min():.2f} to {gaps.max():.2f} mm; "
                           f"slices may be missing); using the median {step:.2f} mm")
        return step, "ImagePositionPatient"
    for attr, tag in (("spacing_between_mm", "SpacingBetweenSlices"),
                      ("slice_thickness_mm", "SliceThickness")):
        value = getattr(planes[0], attr)
        if value is not None:
            general.append(f"slice spacing taken from {tag} ({value:g} mm) because slice "
                           "positions are missing")
            return value, tag
    general.append("slice spacing unknown (no slice positions, SpacingBetweenSlices or "
                   "SliceThickness): volumes cannot be given in mL")
    return None, ""


def _affine(planes: list[Plane], iop, positions, spacing, step, general: list[str]) -> np.ndarray:
    """Voxel (X, Y, Z) -> RAS affine for the mask file, assuming what is missing."""
    assumed = []
    row_mm, col_mm = spacing if spacing is not None else (1.0, 1.0)
    if spacing is None:
        assumed.append("1 mm pixels")
    if iop is None:
        assumed.append("axial orientation")
        iop = np.array([1.0, 0, 0, 0, 1.0, 0])
    normal = np.cross(iop[:3], iop[3:])
    if positions is not None:
        origin = planes[0].ipp
        vector = (planes[-1].ipp - planes[0].ipp) / max(len(planes) - 1, 1)
        if len(planes) == 1:
            vector = normal * (step or 1.0)
    else:
        origin = planes[0].ipp if planes[0].ipp is not None else np.zeros(3)
        if planes[0].ipp is None:
            assumed.append("origin 0")
        vector = normal * (step if step is not None else 1.0)
        if step is None:
            assumed.append("1 mm slices")
    if assumed:
        general.append("the mask NIfTI's geometry assumes " + ", ".join(assumed))
    return lps_affine(iop[:3], iop[3:], vector, origin, row_mm, col_mm)


def _pixel_spacing(planes: list[Plane], general: list[str]):
    """(row_mm, col_mm) of the first slice, with a warning when missing or inconsistent."""
    spacing = planes[0].pixel_spacing_mm
    if spacing is None:
        general.append("no valid PixelSpacing: in-plane spacing unknown (areas in pixels; "
                       "enter the spacing to get mm² and mL)")
    elif any(p.pixel_spacing_mm != spacing for p in planes[1:]):
        general.append(f"PixelSpacing differs between slices; using {spacing[0]:g} x "
                       f"{spacing[1]:g} mm of the first slice")
    return spacing


def _single(plane: Plane, general: list[str]) -> CTImage:
    """One slice -> 2D CTImage (1, Y, X)."""
    spacing = _pixel_spacing([plane], general)
    array = plane.pixels[None].astype(np.float32, copy=False)
    return CTImage(array=array, intensity="hu", kind="dicom", is_volume=False,
                   pixel_spacing_mm=spacing, slice_thickness_mm=plane.slice_thickness_mm,
                   spacing_source="DICOM PixelSpacing" if spacing else "unknown",
                   source_shape=plane.pixels.shape, radiological_view=radiological_view(plane.iop),
                   warnings=general)


def _volume(planes: list[Plane], general: list[str]) -> CTImage:
    """Several slices -> (Z, Y, X) volume CTImage with spacing and mask affine."""
    iop = _orientation(planes)
    planes, positions = _order(planes, iop, general)
    planes, positions = _dedupe(planes, positions, general)
    if iop is not None and abs(np.cross(iop[:3], iop[3:])[2]) < 0.8:
        general.append("the series is not axial (sagittal or coronal slices); slices are used "
                       "as stored")
    spacing = _pixel_spacing(planes, general)
    step, step_source = _slice_step_mm(planes, positions, general)
    affine = _affine(planes, iop, positions, spacing, step, general)
    array = np.stack([p.pixels for p in planes]).astype(np.float32, copy=False)
    sources = [s for s in ("PixelSpacing" if spacing else "", step_source) if s]
    return CTImage(array=array, intensity="hu", kind="dicom", is_volume=True,
                   pixel_spacing_mm=spacing, slice_thickness_mm=step,
                   spacing_source=("DICOM " + " + ".join(sources)) if sources else "unknown",
                   affine=affine, to_file_layout=file_layout_xyz,
                   source_shape=(array.shape[2], array.shape[1], array.shape[0]),
                   radiological_view=radiological_view(iop), warnings=general)


def _parse_all(sources: list[tuple[str, bytes]], general: list[str]) -> list[tuple[str, object]]:
    """Parse every file (422 naming a non-DICOM one); DICOMDIR index files are skipped."""
    files, skipped = [], []
    for name, data in sources:
        with guard(name, "DICOM file"):
            ds = parse(name, data)
            if is_dicomdir(ds):
                skipped.append(name)
                continue
            check_image(name, ds)
            files.append((name, ds))
    if skipped:
        general.append(f"skipped the DICOMDIR index file(s): {', '.join(skipped[:3])}")
    if not files:
        raise InputError("the upload holds only a DICOMDIR index and no DICOM images",
                         status=422)
    return files


def read_dicom(sources: list[tuple[str, bytes]], limits: Limits) -> CTImage:
    """DICOM files of one series (or one file, or one multi-frame file) -> CTImage in HU."""
    general: list[str] = []
    files = _parse_all(sources, general)
    _one_series(files)
    frames = [check_image(name, ds)[0] for name, ds in files]
    if max(frames) > 1 and len(files) > 1:
        raise InputError("multi-frame DICOM files mixed with other files are not supported; "
                         "upload one multi-frame file or a series of single-frame files",
                         status=415)
    check_limits(files, limits)
    notes: list[tuple[str, str]] = []
    planes: list[Plane] = []
    for name, ds in files:
        with guard(name, "DICOM file"):
            planes.extend(read_planes(name, ds, notes))
    _same_size(planes)
    bad = [p.name for p in planes if not np.all(np.isfinite(p.pixels))]
    if bad:
        raise InputError(f"{bad[0]}: the pixel data holds NaN or infinite values", status=422)
    general = summarise(notes) + general
    image = _single(planes[0], general) if len(planes) == 1 else _volume(planes, general)
    hu_warnings("the DICOM data", image.array, image.warnings)
    return image
