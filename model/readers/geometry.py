"""Geometry helpers: voxel -> RAS affines and the (X, Y, Z) mask-file layout.

Inside the pipeline arrays are (Z, Y, X): Z slices inferior -> superior, Y rows anterior ->
posterior, X columns patient right -> left (the usual radiological display). Mask files for
DICOM series and stacked slices are written as (X, Y, Z) arrays (the NIfTI convention: the
first index runs along image columns), with an affine mapping (i, j, k) -> RAS millimetres.
"""
from __future__ import annotations

import numpy as np

#: DICOM patient coordinates are LPS; NIfTI world coordinates are RAS.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def file_layout_xyz(array_zyx: np.ndarray) -> np.ndarray:
    """(Z, Y, X) array -> (X, Y, Z) array (a transposed view) for the mask NIfTI."""
    return np.transpose(np.asarray(array_zyx), (2, 1, 0))


def lps_affine(row_dir: np.ndarray, col_dir: np.ndarray, slice_step_mm: np.ndarray,
               origin_lps_mm: np.ndarray, row_mm: float, col_mm: float) -> np.ndarray:
    """4x4 affine (i, j, k) -> RAS mm for an (X, Y, Z) array built from DICOM geometry.

    row_dir: unit vector (LPS) along an image row, i.e. the direction of increasing column
    index i (ImageOrientationPatient[0:3]); col_dir: along a column, increasing row index j
    (ImageOrientationPatient[3:6]); slice_step_mm: LPS vector from one slice to the next;
    origin_lps_mm: ImagePositionPatient of the first slice; row_mm / col_mm: PixelSpacing
    (distance between rows, between columns).
    """
    affine = np.eye(4)
    affine[:3, 0] = np.asarray(row_dir, dtype=float) * float(col_mm)
    affine[:3, 1] = np.asarray(col_dir, dtype=float) * float(row_mm)
    affine[:3, 2] = np.asarray(slice_step_mm, dtype=float)
    affine[:3, 3] = np.asarray(origin_lps_mm, dtype=float)
    return LPS_TO_RAS @ affine


def unknown_affine(spacing_zyx_mm: tuple[float, float, float] | None = None) -> np.ndarray:
    """Affine for an (X, Y, Z) array of radiological-display slices with no stated geometry.

    Columns run to patient left, rows to posterior, slices to superior; spacing defaults to
    1 mm; origin at 0.
    """
    slice_mm, row_mm, col_mm = spacing_zyx_mm or (1.0, 1.0, 1.0)
    return lps_affine(np.array([1.0, 0, 0]), np.array([0, 1.0, 0]),
                      np.array([0, 0, float(slice_mm)]), np.zeros(3), row_mm, col_mm)
