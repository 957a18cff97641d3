"""Readers: uploaded bytes -> ``model.types.CTImage`` (float32 (Z, Y, X)).

Public API::

    read_sources(sources, limits) -> CTImage      # sources: [(file name, bytes)]
    sources_from_path(path, limits) -> [(name, bytes)]
    input_stem(name) -> str                       # 'scan.nii.gz' -> 'scan'

Accepted: one PNG/JPG (2D, display grey 0..255) or several (stacked in natural file-name
order); one NIfTI (.nii/.nii.gz, HU); DICOM files of one series (HU); a .zip holding any of
these. Every failure is an ``InputError`` (stage 'read') naming the file and the problem:
400 nothing uploaded / missing path, 413 too large, 415 unsupported type, 422 unusable
content. No other exception escapes ``read_sources``. Nothing is written to disk.
"""
from __future__ import annotations

from ..errors import InputError
from ..types import CTImage, Limits
from .archive import unzip
from .detect import DICOM, GZIP, JPG, NIFTI, PNG, ZIP, SUPPORTED, detect_kind, input_stem
from .detect import natural_key, unknown_type_error
from .dicom_series import read_dicom
from .image2d import read_images
from .nifti import read_nifti
from .paths import sources_from_path
from .util import guard

__all__ = ["read_sources", "sources_from_path", "input_stem"]

_LABEL = {PNG: "PNG", JPG: "JPG", NIFTI: "NIfTI", DICOM: "DICOM"}


def _check_sources(sources, limits: Limits) -> None:
    """400 for no/ill-formed sources, 413 for too many files or bytes."""
    if not isinstance(sources, (list, tuple)) or not sources:
        raise InputError("no file was uploaded", status=400)
    for item in sources:
        if (not isinstance(item, (list, tuple)) or len(item) != 2
                or not isinstance(item[1], (bytes, bytearray, memoryview))):
            raise InputError("each upload must be a (file name, bytes) pair", status=400)
    if len(sources) > limits.max_files:
        raise InputError(f"{len(sources)} files were uploaded, more than the limit of "
                         f"{limits.max_files}", status=413)
    total = sum(len(data) for _, data in sources)
    if total > limits.max_upload_bytes:
        raise InputError(f"the upload is {total} bytes, more than the limit of "
                         f"{limits.max_upload_bytes}", status=413)


def _classify(name: str, data: bytes, limits: Limits, notes: list[str]) -> list[tuple]:
    """One source -> [(name, bytes, kind)]; a zip yields its usable members."""
    kind = detect_kind(name, data)
    if kind is None:
        raise unknown_type_error(name, data)
    if kind != ZIP:
        return [(name, data, NIFTI if kind == GZIP else kind)]
    with guard(name, "zip archive"):
        members = unzip(name, data, limits)
    out, skipped = [], []
    for member, content in members:
        member_kind = detect_kind(member, content) if content else None
        if member_kind is None:
            skipped.append(member)
        else:
            out.append((member, content, NIFTI if member_kind == GZIP else member_kind))
    if not out:
        raise InputError(f"{name}: the archive holds no supported files; it must contain "
                         f"{SUPPORTED}", status=415)
    if skipped:
        notes.append(f"{name}: skipped {len(skipped)} empty or unrecognised file(s) in the "
                     f"archive ({', '.join(skipped[:3])}{', ...' if len(skipped) > 3 else ''})")
    return out


def _one_kind(items: list[tuple]) -> str:
    """The common kind of all sources (PNG and JPG mix as 'images'); 422 for a mixture."""
    kinds = {PNG if kind == JPG else kind for _, _, kind in items}
    if len(kinds) == 1:
        return kinds.pop()
    examples = {}
    for name, _, kind in items:
        examples.setdefault(kind, name)
    listed = ", ".join(f"{_LABEL[k]} ({n})" for k, n in examples.items())
    raise InputError(f"the upload mixes file types: {listed}; upload one scan of one type",
                     status=422)


def _read(sources, limits: Limits) -> CTImage:
    """read_sources without the final safety net."""
    _check_sources(sources, limits)
    notes: list[str] = []
    items = []
    for name, data in sources:
        items.extend(_classify(str(name), bytes(data), limits, notes))
    if len(items) > limits.max_files:
        raise InputError(f"the upload holds {len(items)} files, more than the limit of "
                         f"{limits.max_files}", status=413)
    items.sort(key=lambda item: natural_key(item[0]))
    kind = _one_kind(items)
    if kind == NIFTI:
        if len(items) > 1:
            raise InputError(f"{len(items)} NIfTI files were uploaded ({items[0][0]}, "
                             f"{items[1][0]}, ...); upload one volume at a time", status=422)
        with guard(items[0][0], "NIfTI file"):
            image = read_nifti(items[0][0], items[0][1], limits)
    elif kind == DICOM:
        image = read_dicom([(name, data) for name, data, _ in items], limits)
    else:
        with guard(items[0][0] if len(items) == 1 else "the images", "image"):
            image = read_images(items, limits)
    image.warnings[:0] = notes
    return image


def read_sources(sources: list[tuple[str, bytes]], limits: Limits | None = None) -> CTImage:
    """Uploaded (file name, bytes) pairs -> CTImage. Raises only InputError (stage 'read')."""
    limits = limits or Limits()
    try:
        return _read(sources, limits)
    except InputError as exc:
        exc.stage = "read"
        raise
    except MemoryError:
        raise InputError("the upload is too large to read in the available memory",
                         status=413) from None
    except Exception as exc:  # noqa: BLE001 - the contract: nothing else escapes
        raise InputError("the upload could not be read: a file is damaged or uses an "
                         "unsupported variant", status=422, detail=type(exc).__name__) from None
