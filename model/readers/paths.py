"""Local paths (CLI) -> (name, bytes) sources for ``read_sources``.

A file is one source (a .zip stays one source). A folder yields its regular files,
recursively, in natural order, skipping hidden entries, symlinked folders, and files whose
type is not recognised (README.txt, LOCKFILE and the like that scanner exports carry).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from ..types import Limits
from .detect import SUPPORTED, detect_kind, natural_key


def _read_file(path: Path, name: str) -> bytes:
    """Bytes of one file; 400 when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{name}: cannot read the file ({exc.strerror or 'I/O error'})",
                         status=400) from None


def _folder_files(folder: Path) -> list[Path]:
    """Regular, non-hidden files under ``folder`` (recursive, symlinked folders not followed)."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(root) / f for f in files if not f.startswith("."))
    return sorted((p for p in found if p.is_file()),
                  key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def sources_from_path(path, limits: Limits | None = None) -> list[tuple[str, bytes]]:
    """A file -> [(basename, bytes)]; a folder -> [(relative path, bytes)] of its scan files.

    Raises InputError: 400 missing/unreadable path, 413 more than ``limits.max_upload_bytes``
    in total or more than ``limits.max_files`` files, 415 a folder with no supported files.
    """
    limits = limits or Limits()
    target = Path(path)
    if not target.exists():
        raise InputError(f"{path}: no such file or folder", status=400)
    if target.is_file():
        size = target.stat().st_size
        if size > limits.max_upload_bytes:
            raise InputError(f"{target.name}: the file is {size} bytes, more than the limit of "
                             f"{limits.max_upload_bytes}", status=413)
        return [(target.name, _read_file(target, target.name))]
    if not target.is_dir():
        raise InputError(f"{path}: not a regular file or folder", status=400)
    files = _folder_files(target)
    if len(files) > limits.max_files:
        raise InputError(f"{path}: the folder holds {len(files)} files, more than the limit "
                         f"of {limits.max_files}", status=413)
    total = sum(p.stat().st_size for p in files)
    if total > limits.max_upload_bytes:
        raise InputError(f"{path}: the folder holds {total} bytes, more than the limit of "
                         f"{limits.max_upload_bytes}", status=413)
    sources = []
    for file in files:
        name = file.relative_to(target).as_posix()
        data = _read_file(file, name)
        if data and detect_kind(name, data) is not None:
            sources.append((name, data))
    if not sources:
        raise InputError(f"{path}: the folder holds no supported files ({SUPPORTED})",
                         status=415)
    return sources
