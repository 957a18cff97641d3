"""Small helpers shared by the readers: warning summaries and error wrapping."""
from __future__ import annotations

import contextlib
from typing import Iterator

from ..errors import InputError


def summarise(notes: list[tuple[str, str]]) -> list[str]:
    """Per-file notes (name, text) -> user warnings, one line per distinct text.

    One file: 'name: text'. Several files with the same text: 'text (N files, e.g. name)'.
    """
    by_text: dict[str, list[str]] = {}
    for name, text in notes:
        by_text.setdefault(text, []).append(name)
    out = []
    for text, names in by_text.items():
        if len(names) == 1:
            out.append(f"{names[0]}: {text}")
        else:
            out.append(f"{text} ({len(names)} files, e.g. {names[0]})")
    return out


@contextlib.contextmanager
def guard(name: str, what: str) -> Iterator[None]:
    """Turn any unexpected library exception into InputError 422 naming ``name``.

    ``what`` says what was being read ("NIfTI file", "DICOM file", ...). InputError passes
    through unchanged; MemoryError becomes 413.
    """
    try:
        yield
    except InputError:
        raise
    except MemoryError:
        raise InputError(f"{name}: too large to read in the available memory",
                         status=413) from None
    except Exception as exc:  # noqa: BLE001 - the point is to catch everything
        raise InputError(f"{name}: could not read this {what}; it is damaged or uses a "
                         "variant that is not supported", status=422,
                         detail=type(exc).__name__) from None


def hu_warnings(label: str, array, out: list[str]) -> None:
    """Append a warning when an HU array's values do not look like Hounsfield units.

    CT in HU has air near -1000; data with no negative values or a maximum <= 1 was most
    likely normalised or stored without its rescale.
    """
    low, high = float(array.min()), float(array.max())
    if high <= 1 or low >= 0:
        out.append(f"{label}: values range from {low:g} to {high:g} and do not look like "
                   "Hounsfield units (air is about -1000 HU); results may be wrong")
