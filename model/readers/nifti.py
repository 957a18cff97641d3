"""NIfTI-1/-2 volumes (.nii, .nii.gz) in Hounsfield units, any orientation.

The header is checked (dimensions, data type, voxel count, byte length) before any voxel
data is read or decompressed. The volume is reoriented to (Z, Y, X) axial slices in the
radiological display (Z inferior -> superior, Y anterior -> posterior, X patient right ->
left); ``to_file_layout`` undoes that so the mask file has the input's own shape and affine.
"""
from __future__ import annotations

import gzip
import io
import struct
import zlib

import nibabel as nib
import numpy as np
from nibabel.volumeutils import apply_read_scaling
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

from ..errors import InputError
from ..types import CTImage, Limits
from .detect import is_nifti_header
from .util import hu_warnings

#: Output axes (Z, Y, X) as RAS axis codes: superior, posterior, (patient) left.
DISPLAY_AXCODES = ("S", "P", "L")
_UNIT_TO_MM = {"mm": 1.0, "meter": 1000.0, "micron": 0.001, "unknown": 1.0}
_OBLIQUE_DEGREES = 1.0
_GUNZIP_CHUNK = 1 << 22   # bytes decompressed per read (bounds the temporary copies)


def _header(name: str, head: bytes):
    """Parse a NIfTI-1 or NIfTI-2 header from the first bytes of a file (422 if not one)."""
    if not is_nifti_header(head):
        raise InputError(f"{name}: not a NIfTI file (no NIfTI header)", status=422)
    size = 348 if 348 in (struct.unpack("<i", head[:4])[0], struct.unpack(">i", head[:4])[0]) else 540
    klass = nib.Nifti1Header if size == 348 else nib.Nifti2Header
    if len(head) < size:
        raise InputError(f"{name}: the NIfTI file is truncated (incomplete header)", status=422)
    try:
        header = klass.from_fileobj(io.BytesIO(head[:size]), check=False)
    except Exception:  # noqa: BLE001
        raise InputError(f"{name}: not a NIfTI file (unreadable header)", status=422) from None
    magic = bytes(header["magic"]).rstrip(b"\x00")
    if magic in (b"ni1", b"ni2"):
        raise InputError(f"{name}: a .hdr/.img NIfTI pair is not supported; upload a single "
                         ".nii or .nii.gz file", status=422)
    if magic not in (b"n+1", b"n+2"):
        raise InputError(f"{name}: not a NIfTI file (Analyze or unknown header magic)",
                         status=422)
    return header


def _check_dims(name: str, header) -> tuple[int, ...]:
    """Shape stored in the header after checking it is one 3D volume (422 otherwise)."""
    ndim = int(header["dim"][0])
    if not 1 <= ndim <= 7:
        raise InputError(f"{name}: the NIfTI header has an invalid number of dimensions "
                         f"({ndim})", status=422)
    shape = tuple(int(d) for d in header["dim"][1: ndim + 1])
    if any(d <= 0 for d in shape):
        raise InputError(f"{name}: the NIfTI header has an empty or negative dimension "
                         f"{shape}", status=422)
    if ndim < 3:
        raise InputError(f"{name}: this NIfTI is {ndim}D {shape}; a 3D CT volume is needed "
                         "(upload a single slice as PNG/JPG/DICOM instead)", status=422)
    if ndim == 4 and shape[3] != 1:
        raise InputError(f"{name}: this 4D NIfTI holds {shape[3]} volumes {shape}; upload "
                         "one 3D CT volume", status=422)
    if ndim > 4:
        raise InputError(f"{name}: this NIfTI has {ndim} dimensions {shape}; upload one 3D "
                         "CT volume", status=422)
    return shape


def _check_dtype(name: str, header) -> np.dtype:
    """Stored data type, refusing masks, colour and complex data (422)."""
    code = int(header["datatype"])
    if code == 1:
        raise InputError(f"{name}: binary (1-bit) NIfTI is a mask, not a CT volume in HU",
                         status=422)
    try:
        dtype = header.get_data_dtype()
    except Exception:  # noqa: BLE001
        raise InputError(f"{name}: NIfTI data type code {code} is not supported",
                         status=422) from None
    if dtype.kind == "V" or dtype.fields:
        raise InputError(f"{name}: colour (RGB) NIfTI is not a CT volume in HU", status=422)
    if dtype.kind not in "iuf":
        raise InputError(f"{name}: NIfTI data type {dtype} is not a CT volume in HU",
                         status=422)
    return dtype


def check_header(name: str, head: bytes, limits: Limits) -> tuple[object, tuple, int]:
    """Validate the header: -> (header, stored shape, total file bytes it implies).

    Raises 422 for wrong dimensionality/type, 413 when it claims more than
    ``limits.max_voxels`` voxels or more than ``limits.max_decompressed_bytes`` bytes.
    """
    header = _header(name, head)
    shape = _check_dims(name, header)
    dtype = _check_dtype(name, header)
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > limits.max_voxels:
        raise InputError(f"{name}: the volume has {voxels} voxels {shape}, more than the "
                         f"limit of {limits.max_voxels}", status=413)
    offset = int(header["vox_offset"])
    first_voxel = max(offset, 544 if isinstance(header, nib.Nifti2Header) else 352)
    needed = first_voxel + voxels * dtype.itemsize
    if needed > limits.max_decompressed_bytes:
        raise InputError(f"{name}: the volume needs {needed} bytes, more than the limit of "
                         f"{limits.max_decompressed_bytes}", status=413)
    return header, shape, needed


def gunzip_nifti(name: str, data: bytes, limits: Limits) -> bytearray:
    """Decompress a .nii.gz, reading the header first and never more than it implies.

    The data grows in one buffer as it is decompressed (no joined copies, and no more memory
    than the stream really holds). Raises 413 when the header claims too much, 422 when the
    stream is damaged, ends early or does not hold a NIfTI file.
    """
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            raw = bytearray(stream.read(544))
            if not is_nifti_header(raw):
                raise InputError(f"{name}: gzip-compressed, but not a NIfTI file inside",
                                 status=422)
            needed = check_header(name, bytes(raw), limits)[2]
            while len(raw) < needed:
                chunk = stream.read(min(_GUNZIP_CHUNK, needed - len(raw)))
                if not chunk:
                    break
                raw += chunk
    except (EOFError, OSError, zlib.error):
        raise InputError(f"{name}: the gzip data is damaged or ends early", status=422) from None
    return raw


def _orientation(name: str, affine: np.ndarray, header, notes: list[str]) -> tuple[np.ndarray, bool]:
    """io_orientation of the affine (one row per stored axis), identity when unusable, and
    whether the header states an orientation at all."""
    stated = not (int(header["sform_code"]) == 0 and int(header["qform_code"]) == 0)
    if not stated:
        notes.append(f"{name}: the NIfTI header has no orientation (qform/sform codes 0); "
                     "assumed the default (Analyze) orientation")
    ornt = io_orientation(affine) if np.all(np.isfinite(affine)) else np.full((3, 2), np.nan)
    if np.any(np.isnan(ornt)):
        notes.append(f"{name}: the NIfTI affine is degenerate; assumed the array is stored "
                     "in RAS order")
        return axcodes2ornt(("R", "A", "S")), False
    angles = np.degrees(nib.affines.obliquity(affine))
    if np.nanmax(np.abs(angles)) > _OBLIQUE_DEGREES:
        notes.append(f"{name}: the volume is oblique (up to {np.nanmax(np.abs(angles)):.0f}° "
                     "from the scanner axes); shown along the nearest axes")
    return ornt, stated


def _spacing_zyx(name: str, header, transform: np.ndarray, notes: list[str]):
    """Header zooms (stored axes) -> (slice_mm, row_mm, col_mm) in display order, or None."""
    zooms = np.asarray(header.get_zooms()[:3], dtype=np.float64)
    unit = header.get_xyzt_units()[0]
    if unit == "unknown":
        notes.append(f"{name}: the NIfTI header does not state the spatial unit; assumed "
                     "millimetres")
    zooms = zooms * _UNIT_TO_MM.get(unit, 1.0)
    if not (np.all(np.isfinite(zooms)) and np.all(zooms > 0)):
        notes.append(f"{name}: the NIfTI voxel sizes {tuple(float(z) for z in zooms)} are "
                     "missing or invalid; spacing unknown (enter it to get volumes in mL)")
        return None
    out = np.empty(3)
    out[transform[:, 0].astype(int)] = zooms
    return tuple(float(v) for v in out)


def _refuse_mask(name: str, array: np.ndarray) -> None:
    """422 when the volume holds only 0 and 1 (a mask uploaded instead of the CT)."""
    if float(array.min()) >= 0 and float(array.max()) <= 1 and np.all((array == 0) | (array == 1)):
        raise InputError(f"{name}: the volume holds only 0 and 1: this looks like a mask, not "
                         "a CT volume in HU", status=422)


class _BufferReader:
    """Minimal read-only file over a bytes-like buffer, without copying the buffer."""

    def __init__(self, buffer) -> None:
        self._view, self._pos = memoryview(buffer), 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view)
        if size is not None and size >= 0:
            end = min(end, self._pos + size)
        out = bytes(self._view[self._pos:end])
        self._pos = end
        return out

    def tell(self) -> int:
        return self._pos


def _image_header(header, raw):
    """The header as nibabel reads it for an image (checked and fixed, with extensions)."""
    return type(header).from_fileobj(_BufferReader(raw))


def _stored_voxels(name: str, raw, header) -> np.ndarray:
    """Read-only view of the voxel data in ``raw``: the file's dtype and shape, Fortran order
    (as nibabel's ArrayProxy reads it), without copying."""
    shape = tuple(int(d) for d in header.get_data_shape())
    dtype = header.get_data_dtype()
    offset = int(header.get_data_offset())
    count = int(np.prod(shape, dtype=np.int64))
    if offset < 0 or offset + count * dtype.itemsize > len(raw):
        raise InputError(f"{name}: the NIfTI file is truncated: the header needs "
                         f"{offset + count * dtype.itemsize} bytes, the file has {len(raw)}",
                         status=422)
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape, order="F")


def _float32_hu(array: np.ndarray, header) -> tuple[np.ndarray, bool]:
    """Stored values (any view) -> contiguous float32 with scl_slope/scl_inter applied exactly
    as nibabel's ``np.asarray(image.dataobj, dtype=np.float32)``; also whether it may hold
    non-finite values (float data or scaling)."""
    slope, inter = header.get_slope_inter()
    slope = np.asanyarray(1.0 if slope is None else slope)
    inter = np.asanyarray(0.0 if inter is None else inter)
    if np.can_cast(slope, np.float32):
        slope = slope.astype(np.float32)
    if np.can_cast(inter, np.float32):
        inter = inter.astype(np.float32)
    scaled = apply_read_scaling(array, slope, inter)
    maybe_bad = scaled is not array or array.dtype.kind == "f"
    return np.ascontiguousarray(scaled, dtype=np.float32), maybe_bad


def stores_grey_levels(header) -> bool:
    """Does the file hold 8-bit display grey levels rather than HU? An unscaled uint8 volume
    cannot hold CT numbers (air is about -1000 HU, bone over 1000): it is a windowed export,
    like a PNG stack, and is read as one (``intensity == "display"``)."""
    slope, inter = header.get_slope_inter()
    unscaled = slope in (None, 1.0) and inter in (None, 0.0)
    return header.get_data_dtype() == np.uint8 and unscaled


def read_nifti(name: str, data: bytes, limits: Limits) -> CTImage:
    """NIfTI bytes (.nii or .nii.gz) -> CTImage (Z, Y, X) float32, kind 'nifti': HU, or grey
    levels 0..255 for an unscaled 8-bit file (see :func:`stores_grey_levels`).

    The voxels are reoriented as a view in the stored dtype and converted to float32 once.
    """
    raw = gunzip_nifti(name, data, limits) if data[:2] == b"\x1f\x8b" else data
    header, shape, needed = check_header(name, bytes(raw[:544]), limits)
    if len(raw) < needed:
        raise InputError(f"{name}: the NIfTI file is truncated: the header needs {needed} "
                         f"bytes, the file has {len(raw)}", status=422)
    image_header = _image_header(header, raw)
    stored = _stored_voxels(name, raw, image_header).reshape(shape[:3])
    notes: list[str] = []
    affine = np.asarray(image_header.get_best_affine(), dtype=np.float64)
    start, oriented = _orientation(name, affine, image_header, notes)
    target = axcodes2ornt(DISPLAY_AXCODES)
    forward, backward = ornt_transform(start, target), ornt_transform(target, start)
    display, maybe_bad = _float32_hu(apply_orientation(stored, forward), image_header)
    del stored, raw
    bad = display.size - int(np.count_nonzero(np.isfinite(display))) if maybe_bad else 0
    if bad:
        raise InputError(f"{name}: {bad} voxels are NaN or infinite; a CT volume in HU must "
                         "be finite (the file was rejected, not repaired)", status=422)
    spacing = _spacing_zyx(name, header, forward, notes)  # unrepaired header: never invent
    _refuse_mask(name, display)
    intensity = "display" if stores_grey_levels(image_header) else "hu"
    if intensity == "hu":
        hu_warnings(name, display, notes)
    else:
        notes.append(f"{name}: 8-bit values without a rescale cannot be Hounsfield units; read as "
                     "already-windowed grey levels 0-255, like a PNG export (results are only right if it "
                     "was exported in the brain window the models were trained on), with the header's spacing")

    def to_file_layout(array_zyx: np.ndarray) -> np.ndarray:
        """(Z, Y, X) array in display order -> the input file's array shape and axis order
        (a flipped/transposed view, no copy)."""
        return apply_orientation(np.asarray(array_zyx), backward).reshape(shape)

    return CTImage(
        array=display, intensity=intensity, kind="nifti", is_volume=True,
        pixel_spacing_mm=None if spacing is None else (spacing[1], spacing[2]),
        slice_thickness_mm=None if spacing is None else spacing[0],
        spacing_source="NIfTI header" if spacing is not None else "unknown",
        affine=affine.copy(), to_file_layout=to_file_layout, source_shape=shape,
        radiological_view=oriented, warnings=notes)
