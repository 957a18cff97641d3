"""File type detection (magic bytes first, file-name extension second) and name helpers.

Nothing here decodes pixels; at most a DICOM header is parsed to tell a DICOM file that
lacks the 128-byte preamble from random bytes.
"""
from __future__ import annotations

import io
import re
import struct
from pathlib import PurePosixPath

from ..errors import InputError

#: Kinds a source can have after detection.
PNG, JPG, GZIP, ZIP, DICOM, NIFTI = "png", "jpg", "gzip", "zip", "dicom", "nifti"

_SUFFIXES = (".nii.gz", ".png", ".jpg", ".jpeg", ".nii", ".dcm", ".dicom", ".zip")

#: Extension -> the kind the name claims.
_EXT_KIND = {
    ".png": PNG, ".jpg": JPG, ".jpeg": JPG, ".nii": NIFTI, ".gz": GZIP,
    ".dcm": DICOM, ".dicom": DICOM, ".ima": DICOM, ".zip": ZIP,
}

#: Recognised but unsupported formats, for a helpful 415 message.
_OTHER_MAGIC = (
    (b"GIF8", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"7z\xbc\xaf", "7-Zip"),
    (b"Rar!", "RAR"), (b"BZh", "bzip2"), (b"\xfd7zXZ", "xz"),
)

SUPPORTED = "PNG, JPG, NIfTI (.nii/.nii.gz), DICOM (files, folder or .zip)"


def base_name(name: str) -> str:
    """Last path component of an upload name ('a/b\\c.dcm' -> 'c.dcm')."""
    return re.split(r"[\\/]", str(name))[-1]


def input_stem(name: str) -> str:
    """File name without folders and one known suffix: 'scan.nii.gz' -> 'scan'.

    Strips .png .jpg .jpeg .nii .nii.gz .dcm .dicom .zip (case-insensitive); returns
    'input' when nothing is left.
    """
    base = base_name(name)
    lower = base.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return base if base and base.lower() not in _SUFFIXES else "input"


def natural_key(name: str) -> list:
    """Sort key that orders 'slice2' before 'slice10' (digits compared as numbers)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower())
            for part in re.split(r"(\d+)", str(name)) if part != ""]


def extension_kind(name: str) -> str | None:
    """The kind a file name claims by its extension, or None."""
    suffix = PurePosixPath(base_name(name).lower()).suffix
    return _EXT_KIND.get(suffix)


def is_nifti_header(data: bytes) -> bool:
    """True when ``data`` starts with a NIfTI-1/-2 (or Analyze) header size: 348 or 540."""
    if len(data) < 4:
        return False
    return any(struct.unpack(fmt, data[:4])[0] in (348, 540) for fmt in ("<i", ">i"))


def magic_kind(data: bytes) -> str | None:
    """Kind from the leading bytes only, or None when no supported signature matches."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPG
    if data.startswith(b"\x1f\x8b"):
        return GZIP
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return ZIP
    if len(data) >= 132 and data[128:132] == b"DICM":
        return DICOM
    if is_nifti_header(data):
        return NIFTI
    return None


def other_format(data: bytes) -> str | None:
    """Name of a recognised but unsupported format (GIF, TIFF, PDF, ...), or None."""
    for magic, label in _OTHER_MAGIC:
        if data.startswith(magic):
            return label
    return None


def looks_like_dicom(data: bytes) -> bool:
    """True when ``data`` parses as a DICOM data set without preamble and has image tags."""
    import pydicom

    if len(data) < 8 or data[:1] not in (b"\x02", b"\x08", b"\x10", b"\x18", b"\x20", b"\x28"):
        return False
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
        return any(tag in ds for tag in (0x00080016, 0x00280010, 0x0020000D, 0x0020000E))
    except Exception:  # noqa: BLE001 - any parse failure means "not DICOM"
        return False


def detect_kind(name: str, data: bytes) -> str | None:
    """Kind of one source: magic bytes first, then extension, then a DICOM parse probe.

    Returns one of PNG/JPG/GZIP/ZIP/DICOM/NIFTI, or None when the type is unknown.
    Raises InputError 422 for an empty file.
    """
    if len(data) == 0:
        raise InputError(f"{name}: the file is empty", status=422)
    kind = magic_kind(data)
    if kind is not None:
        return kind
    claimed = extension_kind(name)
    if claimed is not None:
        return claimed
    if looks_like_dicom(data):
        return DICOM
    return None


def unknown_type_error(name: str, data: bytes) -> InputError:
    """415 error for a file whose type is not supported, naming the format when known."""
    label = other_format(data)
    what = f"is a {label} file, which is not supported" if label else "has an unknown file type"
    return InputError(f"{name} {what}; upload {SUPPORTED}", status=415)
