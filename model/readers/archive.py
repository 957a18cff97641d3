"""Safe in-memory extraction of an uploaded .zip (nothing is written to disk).

Policy: at most ``Limits.max_files`` members; at most ``Limits.max_decompressed_bytes`` in
total, checked against the sizes the archive declares *and* counted while reading (a zip
bomb stops at the limit -> 413). Members whose path is absolute or contains '..' make the
whole archive invalid (422: such an archive was not made by a scanner export, so it is
refused rather than partly read). Nested archives and encrypted members -> 422.
Folders, ``__MACOSX/``, hidden files (``.DS_Store``, ``._x``) and ``Thumbs.db`` are skipped.
"""
from __future__ import annotations

import io
import re
import zipfile

from ..errors import InputError
from ..types import Limits
from .detect import ZIP, base_name, magic_kind

_CHUNK_BYTES = 1 << 20
_JUNK_NAMES = {"thumbs.db", "desktop.ini"}
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".7z", ".rar")


def _is_junk(member: str) -> bool:
    """True for OS metadata entries that are never scan data."""
    parts = [p for p in re.split(r"[\\/]", member) if p and p != "."]
    if not parts or parts[0] == "__MACOSX":
        return True
    return any(p.startswith(".") for p in parts) or parts[-1].lower() in _JUNK_NAMES


def _is_unsafe(member: str) -> bool:
    """True for absolute paths, drive letters and '..' components."""
    if member.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", member):
        return True
    return any(p == ".." for p in re.split(r"[\\/]", member))


def _members(name: str, archive: zipfile.ZipFile, limits: Limits) -> list[zipfile.ZipInfo]:
    """Members to read, after the name, encryption, count and declared-size checks."""
    chosen = []
    for info in archive.infolist():
        if _is_unsafe(info.filename):
            raise InputError(f"{name}: the archive contains an unsafe path "
                             f"({info.filename!r}: absolute or with '..'); it was refused",
                             status=422)
        if info.is_dir() or _is_junk(info.filename):
            continue
        if info.flag_bits & 0x1:
            raise InputError(f"{name}: the archive is encrypted (password-protected); upload "
                             "an unencrypted zip", status=422)
        if info.filename.lower().endswith(_ARCHIVE_SUFFIXES):
            raise InputError(f"{name}: nested archives are not supported "
                             f"({info.filename}); put the files directly in one zip",
                             status=422)
        chosen.append(info)
    if len(chosen) > limits.max_files:
        raise InputError(f"{name}: the archive holds {len(chosen)} files, more than the limit "
                         f"of {limits.max_files}", status=413)
    declared = sum(info.file_size for info in chosen)
    if declared > limits.max_decompressed_bytes:
        raise InputError(f"{name}: the archive expands to {declared} bytes, more than the "
                         f"limit of {limits.max_decompressed_bytes}", status=413)
    return chosen


def _read_member(name: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                 budget: int) -> bytes:
    """Read one member in chunks, stopping (413) as soon as ``budget`` bytes are exceeded."""
    out = bytearray()
    try:
        with archive.open(info) as stream:
            while True:
                chunk = stream.read(min(_CHUNK_BYTES, budget + 1 - len(out)))
                if not chunk:
                    break
                out += chunk
                if len(out) > budget:
                    raise InputError(f"{name}: the archive expands to more than the limit of "
                                     "decompressed bytes (zip bomb?)", status=413)
    except InputError:
        raise
    except NotImplementedError:
        raise InputError(f"{name}: {info.filename} uses a compression method that is not "
                         "supported", status=422) from None
    except Exception:  # noqa: BLE001 - BadZipFile (CRC), zlib.error, EOFError...
        raise InputError(f"{name}: {info.filename} is damaged inside the archive",
                         status=422) from None
    return bytes(out)


def unzip(name: str, data: bytes, limits: Limits) -> list[tuple[str, bytes]]:
    """Zip bytes -> [(f"{zip name}/{member path}", member bytes)] for the usable members.

    Raises InputError: 422 not a zip / damaged / unsafe path / encrypted / nested archive /
    no files; 413 too many members or too many decompressed bytes.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - BadZipFile, OSError, ValueError, ...
        raise InputError(f"{name}: not a valid zip archive (damaged or truncated)",
                         status=422) from None
    with archive:
        members = _members(name, archive, limits)
        if not members:
            raise InputError(f"{name}: the archive contains no files", status=422)
        out, used = [], 0
        for info in members:
            content = _read_member(name, archive, info, limits.max_decompressed_bytes - used)
            used += len(content)
            if magic_kind(content) == ZIP:
                raise InputError(f"{name}: nested archives are not supported "
                                 f"({info.filename}); put the files directly in one zip",
                                 status=422)
            out.append((f"{base_name(name)}/{info.filename}", content))
    return out
