"""Data passed between pipeline stages.

Axis order everywhere inside the pipeline: ``(Z, Y, X)`` = (slice, row, column). A 2D
image is a volume with Z = 1. Spacing is in millimetres and follows the same order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np


@dataclass(frozen=True)
class Limits:
    """Resource limits applied while reading untrusted input (all configurable)."""

    max_upload_bytes: int = 256 * 1024 * 1024
    max_voxels: int = 512 * 512 * 1024          # after decoding, whole volume
    max_pixels_2d: int = 8192 * 8192            # per decoded 2D image
    max_files: int = 2000                       # DICOM files in one upload / zip members
    max_decompressed_bytes: int = 1024 * 1024 * 1024  # zip / gzip expansion cap


@dataclass
class CTImage:
    """What every reader returns.

    array: float32 (Z, Y, X). ``intensity == "hu"``: Hounsfield units (NIfTI, DICOM);
        ``intensity == "display"``: already-windowed grey values 0..255 (PNG/JPG).
        Rows run top to bottom, columns left to right of the image as displayed.
    pixel_spacing_mm: (row_mm, col_mm) or None when unknown (PNG/JPG).
    slice_thickness_mm: spacing between slices in mm, or None when unknown.
    spacing_source: where the spacing came from ("nifti header", "DICOM PixelSpacing",
        "user", "unknown", ...), reported to the user.
    affine: 4x4 voxel->RAS world matrix of the *output mask file* (NIfTI/DICOM), or None (2D).
    to_file_layout: maps a (Z, Y, X) array back to the array layout of the mask file that is
        written (for NIfTI: the input file's own axis order, so shape and affine match it).
    kind: "png", "jpg", "nifti", "dicom".
    is_volume: True for NIfTI and DICOM series (3D output, .mask.nii.gz).
    source_shape: shape of the original data as stored in the file (before reorientation).
    radiological_view: True when the file's geometry shows the slices are in the radiological
        view (rows anterior -> posterior, columns patient right -> left); False when unknown
        (PNG/JPG, DICOM without ImageOrientationPatient, NIfTI without an orientation).
    warnings: everything the reader had to assume.
    """

    array: np.ndarray
    intensity: str
    kind: str
    is_volume: bool
    pixel_spacing_mm: Optional[tuple[float, float]] = None
    slice_thickness_mm: Optional[float] = None
    spacing_source: str = "unknown"
    affine: Optional[np.ndarray] = None
    to_file_layout: Optional[Callable[[np.ndarray], np.ndarray]] = None
    source_shape: tuple = ()
    radiological_view: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def spacing_mm(self) -> Optional[tuple[float, float, float]]:
        """(slice_mm, row_mm, col_mm) when all three are known, else None."""
        if self.pixel_spacing_mm is None or self.slice_thickness_mm is None:
            return None
        return (float(self.slice_thickness_mm), *map(float, self.pixel_spacing_mm))
