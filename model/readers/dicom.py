"""DICOM files -> planes in Hounsfield units (one plane per frame) with their geometry tags.

Parsing, series grouping and pixel decoding for single files; ordering slices and building
the volume is in ``dicom_series``. Error messages never quote patient fields.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, UID

from ..errors import InputError
from ..types import Limits
from .detect import magic_kind

# pydicom's value-validation warnings quote raw element bytes (patient names, IDs, birth
# dates of damaged files) into logs and stderr: reading must not validate values.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # PixelData, Float-, DoubleFloatPixelData


@dataclass
class Plane:
    """One 2D slice: (Y, X) float32 HU plus the tags needed to place it in a volume.

    iop: ImageOrientationPatient (6 floats, LPS) or None; ipp: ImagePositionPatient (3
    floats, mm, LPS) or None; pixel_spacing_mm: (row_mm, col_mm) or None.
    """

    name: str
    pixels: np.ndarray
    iop: Optional[np.ndarray]
    ipp: Optional[np.ndarray]
    pixel_spacing_mm: Optional[tuple[float, float]]
    instance: Optional[int]
    slice_thickness_mm: Optional[float]
    spacing_between_mm: Optional[float]


def parse(name: str, data: bytes) -> Dataset:
    """Bytes -> pydicom Dataset (pixel data not decoded). 422 naming the file if not DICOM."""
    has_preamble = magic_kind(data) == "dicom"
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        for _ in ds.iterall():  # convert every element now: damaged values fail here
            pass
        ok = has_preamble or any(t in ds for t in (0x00080016, 0x00280010, 0x0020000E))
    except Exception:  # noqa: BLE001 - pydicom raises many types for garbage
        ok = False
    if not ok:
        raise InputError(f"{name}: not a DICOM file (or a damaged one)", status=422)
    return ds


def is_dicomdir(ds: Dataset) -> bool:
    """True for a DICOMDIR index file (no image in it)."""
    sop = str(ds.get("SOPClassUID", "")) or str(getattr(ds, "file_meta", {}).get(
        "MediaStorageSOPClassUID", ""))
    return sop == DICOMDIR_SOP_CLASS or 0x00041220 in ds


def series_key(ds: Dataset) -> str:
    """SeriesInstanceUID ('' when missing)."""
    return str(ds.get("SeriesInstanceUID", "") or "")


def describe_series(files: list[tuple[str, Dataset]]) -> str:
    """'#3 "AXIAL 5mm" (40 files, e.g. IM1)' from SeriesNumber, SeriesDescription and file
    names only (never patient fields)."""
    first = files[0][1]
    number = first.get("SeriesNumber", None)
    label = f"#{number}" if number not in (None, "") else "no series number"
    description = str(first.get("SeriesDescription", "") or "").strip()
    count = f"{len(files)} file" + ("s" if len(files) != 1 else "")
    what = f"{label} \"{description}\"" if description else label
    return f"{what} ({count}, e.g. {files[0][0]})"


def _floats(value, count: int) -> Optional[np.ndarray]:
    """A multi-valued DS tag -> float array of ``count`` finite values, or None."""
    try:
        out = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.shape == (count,) and np.all(np.isfinite(out)) else None


def _positive(value) -> Optional[float]:
    """A DS/IS value -> positive finite float, or None."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) and out > 0 else None


def _spacing(value) -> Optional[tuple[float, float]]:
    """PixelSpacing -> (row_mm, col_mm) when both are positive, else None."""
    pair = _floats(value, 2) if value is not None else None
    if pair is None or np.any(pair <= 0):
        return None
    return float(pair[0]), float(pair[1])


def _first_item(ds: Dataset, *path: str):
    """Follow sequence keywords (first item each), returning the last item or None."""
    item = ds
    for keyword in path:
        seq = item.get(keyword, None)
        if not seq:
            return None
        item = seq[0]
    return item


def check_image(name: str, ds: Dataset) -> tuple[int, int, int]:
    """(frames, rows, columns) of a grey image, or 422 (no pixel data, colour, no size)."""
    if not any(tag in ds for tag in _PIXEL_TAGS):
        raise InputError(f"{name}: this DICOM file has no pixel data (a report or index, "
                         "not an image)", status=422)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1:
        raise InputError(f"{name}: colour DICOM ({samples} samples per pixel) is not a CT "
                         "image in HU", status=422)
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows <= 0 or cols <= 0:
        raise InputError(f"{name}: the DICOM file does not state its image size (Rows/"
                         "Columns)", status=422)
    return max(int(ds.get("NumberOfFrames", 1) or 1), 1), rows, cols


def _transfer_syntax(name: str, ds: Dataset) -> UID:
    """The transfer syntax (filled in for files without meta header); 415 if undecodable."""
    meta = ds.file_meta if hasattr(ds, "file_meta") else None
    if meta is None or "TransferSyntaxUID" not in meta:
        implicit = bool(ds.original_encoding[0]) if ds.original_encoding[0] is not None else True
        ds.file_meta = meta or pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    uid = UID(ds.file_meta.TransferSyntaxUID)
    if uid.is_compressed:
        try:
            available = pydicom.pixels.get_decoder(uid).is_available
        except Exception:  # noqa: BLE001 - NotImplementedError for unknown syntaxes
            available = False
        if not available:
            raise InputError(f"{name}: compressed DICOM ({uid.name}, {uid}) cannot be decoded "
                             "here; export the series uncompressed", status=415)
    return uid


def decode(name: str, ds: Dataset) -> np.ndarray:
    """Stored pixel values as (frames, Y, X). 415 undecodable, 422 damaged/truncated."""
    uid = _transfer_syntax(name, ds)
    try:
        pixels = ds.pixel_array
    except (NotImplementedError, RuntimeError):
        raise InputError(f"{name}: the pixel data ({uid.name}) cannot be decoded here",
                         status=415) from None
    except Exception:  # noqa: BLE001
        raise InputError(f"{name}: the pixel data is damaged or truncated", status=422) from None
    frames, rows, cols = check_image(name, ds)
    return np.asarray(pixels).reshape(frames, rows, cols)


def _rescale(ds: Dataset):
    """(slope, intercept) from the data set or an enhanced file's shared groups, or None."""
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    shared = _first_item(ds, "SharedFunctionalGroupsSequence", "PixelValueTransformationSequence")
    if shared is not None:
        return float(shared.get("RescaleSlope", 1) or 1), float(shared.get("RescaleIntercept", 0) or 0)
    return None


def to_hu(name: str, ds: Dataset, stored: np.ndarray, notes: list[tuple[str, str]]) -> np.ndarray:
    """Stored values (F, Y, X) -> float32 HU through the modality LUT / rescale tags."""
    if "ModalityLUTSequence" in ds:
        hu = pydicom.pixels.apply_modality_lut(stored, ds)
    else:
        rescale = _rescale(ds)
        if rescale is None:
            notes.append((name, "no RescaleSlope/RescaleIntercept: assumed the stored values "
                                "are HU (slope 1, intercept 0)"))
            rescale = (1.0, 0.0)
        if "PerFrameFunctionalGroupsSequence" in ds and _per_frame_rescale(ds):
            raise InputError(f"{name}: multi-frame DICOM with a different rescale per frame is "
                             "not supported", status=415)
        hu = stored.astype(np.float64) * rescale[0] + rescale[1]
    modality = str(ds.get("Modality", "") or "")
    if modality and modality != "CT":
        notes.append((name, f"DICOM Modality is '{modality}', not 'CT'; values were read as HU"))
    return np.asarray(hu, dtype=np.float32)


def _per_frame_rescale(ds: Dataset) -> bool:
    """True when frames of an enhanced file carry their own rescale values."""
    return any("PixelValueTransformationSequence" in item
               for item in ds.PerFrameFunctionalGroupsSequence)


def planes_of(name: str, ds: Dataset, hu: np.ndarray, notes: list[tuple[str, str]]) -> list[Plane]:
    """(F, Y, X) HU of one file -> Plane per frame, with geometry from classic or
    enhanced (functional group) tags."""
    frames = hu.shape[0]
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    measures = _first_item(shared, "PixelMeasuresSequence") if shared is not None else None
    orient = _first_item(shared, "PlaneOrientationSequence") if shared is not None else None
    source = measures if measures is not None else ds
    iop_source = orient if orient is not None else ds
    iop = _floats(iop_source.get("ImageOrientationPatient", None) or [], 6)
    spacing = _spacing(source.get("PixelSpacing", None))
    thickness = _positive(source.get("SliceThickness", None))
    between = _positive(source.get("SpacingBetweenSlices", None) or ds.get("SpacingBetweenSlices", None))
    instance = ds.get("InstanceNumber", None)
    instance = int(instance) if instance not in (None, "") else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence", None) or []
    out = []
    for f in range(frames):
        ipp_value = ds.get("ImagePositionPatient", None) if frames == 1 else None
        if len(per_frame) == frames:
            position = _first_item(per_frame[f], "PlanePositionSequence")
            if position is not None and "ImagePositionPatient" in position:
                ipp_value = position.ImagePositionPatient
        label = name if frames == 1 else f"{name} frame {f + 1}"
        out.append(Plane(label, hu[f], iop, _floats(ipp_value or [], 3), spacing,
                         instance if frames == 1 else f + 1, thickness, between))
    if frames > 1 and any(p.ipp is None for p in out):
        notes.append((name, "multi-frame DICOM without per-frame positions: frames used in "
                            "stored order"))
    return out


def read_planes(name: str, ds: Dataset, notes: list[tuple[str, str]]) -> list[Plane]:
    """One parsed DICOM file -> its planes in HU (decodes the pixel data)."""
    stored = decode(name, ds)
    return planes_of(name, ds, to_hu(name, ds, stored, notes), notes)


def check_limits(files: list[tuple[str, Dataset]], limits: Limits) -> None:
    """413 before decoding when any plane or the whole series holds too many pixels."""
    total = 0
    for name, ds in files:
        frames, rows, cols = check_image(name, ds)
        if rows * cols > limits.max_pixels_2d:
            raise InputError(f"{name}: the image is {cols}x{rows} pixels, more than the limit "
                             f"of {limits.max_pixels_2d}", status=413)
        total += frames * rows * cols
    if total > limits.max_voxels:
        raise InputError(f"the DICOM series holds {total} voxels, more than the limit of "
                         f"{limits.max_voxels}", status=413)
