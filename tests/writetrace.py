"""Trace file-system writes made by this process (an audit hook, inert until used).

    with trace_writes() as writes:
        ...            # writes == [(event, path), ...] afterwards

Recorded: ``open`` for writing (mode w/a/x/+ or O_WRONLY/O_RDWR/O_CREAT/O_APPEND/O_TRUNC,
including anonymous O_TMPFILE files, reported with their folder), mkstemp/mkdtemp, mkdir,
rename/replace, copyfile, link/symlink and truncate.
"""
from __future__ import annotations

import os
import sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
WRITE_EVENTS = {"tempfile.mkstemp", "tempfile.mkdtemp", "os.mkdir", "os.rename", "os.replace",
                "shutil.copyfile", "os.link", "os.symlink", "os.truncate"}
_TRACE: list = []       # while a list is appended here, writes are recorded into it


def _audit(event: str, args: tuple) -> None:
    if not _TRACE:
        return
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None))[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
            (isinstance(flags, int) and flags & WRITE_FLAGS)
        if writing:
            _TRACE[-1].append(("open", str(path)))
    elif event in WRITE_EVENTS:
        _TRACE[-1].append((event, str(args[0]) if args else ""))


sys.addaudithook(_audit)   # permanent for the process, inert unless _TRACE is non-empty


class trace_writes:
    """Context manager collecting every file-system write made inside it."""

    def __enter__(self) -> list:
        self.writes: list = []
        _TRACE.append(self.writes)
        return self.writes

    def __exit__(self, *exc) -> None:
        _TRACE.pop()
