"""Synthetic head-CT inputs made by the bench (no real scans): a 512x512 PNG slice and a
512x512x35 HU NIfTI volume.

Arrays are (Z, Y, X) in Hounsfield units (HU). The volume is stored the usual NIfTI way,
(X, Y, Z) with a diagonal affine of (col_mm, row_mm, slice_mm) = (0.45, 0.45, 5.0) mm.
"""
from __future__ import annotations

import gzip
import io

import numpy as np

SHAPE_ZYX = (35, 512, 512)
SPACING_ZYX_MM = (5.0, 0.45, 0.45)
WINDOW_LEVEL_HU, WINDOW_WIDTH_HU = 40.0, 120.0


def head_phantom(shape_zyx: tuple[int, int, int] = SHAPE_ZYX, seed: int = 0) -> np.ndarray:
    """(Z, Y, X) float32 HU: air -1000, skull ~1000, brain ~35, CSF ~5, a bleed ~70 HU in
    the middle third of the slices, and Gaussian noise (sd 4 HU) like a real scan.

    The head is an ellipse that shrinks towards the top and bottom slices.
    """
    depth, rows, cols = shape_zyx
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    cy, cx = (rows - 1) / 2.0, (cols - 1) / 2.0
    volume = np.full(shape_zyx, -1000.0, dtype=np.float32)
    for z in range(depth):
        t = (z - (depth - 1) / 2.0) / max(1.0, depth / 2.0)          # -1 .. 1 along the head
        scale = max(0.25, float(np.sqrt(max(0.0, 1.0 - 0.8 * t * t))))
        r = np.hypot((yy - cy) / (0.42 * rows * scale), (xx - cx) / (0.36 * cols * scale))
        plane = volume[z]
        plane[r < 1.0] = 1000.0
        plane[r < 0.92] = 35.0
        plane[np.hypot((yy - cy) / (0.08 * rows * scale), (xx - cx) / (0.03 * cols)) < 1.0] = 5.0
        if abs(t) < 0.35:  # a bleed in the middle third
            by, bx = cy - 0.12 * rows, cx + 0.12 * cols
            plane[np.hypot(yy - by, xx - bx) < 0.07 * rows * (1.0 - abs(t))] = 70.0
    volume += rng.normal(0.0, 4.0, size=shape_zyx).astype(np.float32)
    return volume


def to_display_uint8(plane_hu: np.ndarray) -> np.ndarray:
    """(Y, X) HU -> uint8 through the brain window (level 40, width 120 HU), like the dataset PNGs."""
    low = WINDOW_LEVEL_HU - WINDOW_WIDTH_HU / 2.0
    unit = np.clip((plane_hu - low) / WINDOW_WIDTH_HU, 0.0, 1.0)
    return np.round(unit * 255.0).astype(np.uint8)


def png_slice_bytes(volume_hu: np.ndarray, z: int | None = None) -> bytes:
    """PNG (8-bit grey, brain window) of slice ``z`` (default: the middle) of a (Z, Y, X) volume."""
    from PIL import Image

    z = volume_hu.shape[0] // 2 if z is None else z
    buffer = io.BytesIO()
    Image.fromarray(to_display_uint8(volume_hu[z]), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def nifti_bytes(volume_hu: np.ndarray, spacing_zyx_mm=SPACING_ZYX_MM) -> bytes:
    """Gzipped NIfTI-1 (.nii.gz) of a (Z, Y, X) HU volume as int16, stored (X, Y, Z)."""
    import nibabel as nib

    slice_mm, row_mm, col_mm = spacing_zyx_mm
    data = np.round(volume_hu).astype(np.int16).transpose(2, 1, 0)
    image = nib.Nifti1Image(np.ascontiguousarray(data), np.diag([col_mm, row_mm, slice_mm, 1.0]))
    image.header.set_xyzt_units("mm")
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    return gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)
