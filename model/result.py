"""SegmentationResult: the mask, its measurements and lazily rendered files of one input."""
from __future__ import annotations

import functools
import gzip
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from PIL import Image

from . import render
from .errors import PipelineError
from .measure import Measurements
from .preprocess import config_window
from .runtime import num_threads
from .types import CTImage

MAX_LISTED_LESIONS = 100  # report lists the largest lesions; lesion_count counts all
MASK_GZIP_LEVEL = 1       # .mask.nii.gz: mostly zeros, level 1 is ~as small and much faster


def _rendering(method):
    """Make a rendering failure a PipelineError of stage 'render'."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except PipelineError:
            raise
        except Exception as exc:  # noqa: BLE001 - one clear message, no stack trace
            raise PipelineError(f"cannot render {method.__name__}: {type(exc).__name__}: {exc}",
                                stage="render") from exc
    return wrapper


def _round(value: Optional[float], digits: int = 3) -> Optional[float]:
    return None if value is None else round(float(value), digits)


@dataclass
class SegmentationResult:
    """mask: uint8 (Z, Y, X) 0/1 on the input's grid; image: the CTImage it was computed from."""

    name: str
    image: CTImage
    mask: np.ndarray
    config: dict
    runtime: str
    measurements: Measurements
    warnings: list[str]
    timings_ms: dict
    orientation: dict = field(default_factory=dict)   # see pipeline.orientation_turns

    @property
    def is_volume(self) -> bool:
        return bool(self.image.is_volume or self.mask.shape[0] > 1)

    def report(self) -> dict:
        """JSON-serializable summary (volumes in mL, areas in mm^2, spacing [slice, row, col] mm)."""
        m = self.measurements
        spacing = self.image.spacing_mm
        return {
            "name": self.name,
            "model": {"name": self.config.get("name"), "version": self.config.get("version"),
                      "runtime": self.runtime, "threshold": self.config.get("threshold")},
            "volume_ml": _round(m.volume_ml, 4),
            "lesion_voxels": m.lesion_voxels,
            "spacing_mm": None if spacing is None else [round(v, 6) for v in spacing],
            "pixel_spacing_mm": (None if self.image.pixel_spacing_mm is None
                                 else [round(float(v), 6) for v in self.image.pixel_spacing_mm]),
            "spacing_source": self.image.spacing_source,
            "lesions": m.lesions[:MAX_LISTED_LESIONS],
            "lesion_count": len(m.lesions),
            "largest_lesion_ml": m.lesions[0]["volume_ml"] if m.lesions else None,
            "abc2_ml": _round(m.abc2_ml, 4),
            "abc2_axes_mm": m.abc2_axes_mm,
            "slice_areas_mm2": m.slice_areas_mm2,
            "slice_areas_pixels": m.slice_areas_pixels,
            "slices_with_lesion": m.slices_with_lesion,
            "key_slice": m.key_slice,
            "shape": [int(v) for v in self.mask.shape],
            "is_volume": self.is_volume,
            "input_kind": self.image.kind,
            "orientation": dict(self.orientation),
            "warnings": list(self.warnings) + self._listing_warning(),
            "timings_ms": dict(self.timings_ms),
        }

    def _listing_warning(self) -> list[str]:
        extra = len(self.measurements.lesions) - MAX_LISTED_LESIONS
        return [f"only the {MAX_LISTED_LESIONS} largest of {len(self.measurements.lesions)} lesions "
                "are listed"] if extra > 0 else []

    @_rendering
    def mask_file(self) -> tuple[str, bytes]:
        """(".mask.png", PNG 0/255 of the input's width x height) for a 2D input, else
        (".mask.nii.gz", gzipped NIfTI uint8 0/1 with the input volume's shape and affine)."""
        if not self.is_volume:
            buffer = io.BytesIO()
            Image.fromarray((self.mask[0] * 255).astype(np.uint8), mode="L").save(buffer, format="PNG")
            return ".mask.png", buffer.getvalue()
        return ".mask.nii.gz", self._nifti_gz()

    def _nifti_gz(self) -> bytes:
        """The mask NIfTI gzipped at level 1 (mostly zeros: fast and small), streamed by
        nibabel slab by slab into the compressor (no full-size copy of the file)."""
        buffer = io.BytesIO()
        nifti = self._nifti()
        with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=MASK_GZIP_LEVEL,
                           mtime=0) as stream:
            nifti.to_file_map(nifti.make_file_map({"image": stream}))
        return buffer.getvalue()

    def _nifti(self):
        """Mask as a Nifti1Image in the input file's layout (default: (X, Y, Z) with a spacing affine).

        The voxel array may be a view of ``self.mask`` (nibabel writes it in file order).
        """
        import nibabel as nib

        if self.image.to_file_layout is not None:
            data = self.image.to_file_layout(self.mask)
        else:
            data = self.mask.transpose(2, 1, 0)
        affine = self.image.affine
        if affine is None:
            slice_mm, row_mm, col_mm = self.image.spacing_mm or (1.0, 1.0, 1.0)
            affine = np.diag([col_mm, row_mm, slice_mm, 1.0])
        nifti = nib.Nifti1Image(np.asarray(data, dtype=np.uint8), np.asarray(affine, float))
        nifti.header.set_data_dtype(np.uint8)
        nifti.header.set_xyzt_units("mm")
        code = 1 if self.image.affine is not None else 0
        nifti.set_qform(np.asarray(affine, float), code=code)
        nifti.set_sform(np.asarray(affine, float), code=code)
        return nifti

    def _grey(self, z: int) -> np.ndarray:
        """uint8 (Y, X) display grey of slice z (HU through the model's window)."""
        return render.display_grey(self.image.array[z], self.image.intensity, config_window(self.config))

    @_rendering
    def overlay_png(self, max_size: Optional[int] = None) -> bytes:
        """Overlay of the key slice (largest lesion area; middle slice without lesion)."""
        z = self.measurements.key_slice
        return render.overlay_png(self._grey(z), self.mask[z], max_size)

    @_rendering
    def slice_overlays_png(self, max_size: int = 512) -> list[bytes]:
        """One overlay PNG per slice, z = 0..Z-1, longer side at most ``max_size`` pixels
        (fast zlib level; a slice without lesion is a grey PNG of the same pixels).

        Slices are encoded on ``ICH_THREADS`` threads: zlib releases the GIL, and nothing
        else runs during rendering (inference is over)."""
        def one(z: int) -> bytes:
            return render.slice_png(self._grey(z), self.mask[z], max_size)

        depth = self.mask.shape[0]
        if depth == 1 or num_threads() == 1:
            return [one(z) for z in range(depth)]
        with ThreadPoolExecutor(max_workers=num_threads()) as pool:
            return list(pool.map(one, range(depth)))

    @_rendering
    def montage_png(self, tile_size: int = 256) -> Optional[bytes]:
        """Grid of up to 16 slices with lesion incl. the key slice; None for 2D or without lesion."""
        m = self.measurements
        if not self.is_volume or not m.slices_with_lesion:
            return None
        slices = render.montage_slices(m.slices_with_lesion, m.key_slice)
        tiles = [(z, self._grey(z), self.mask[z]) for z in slices]
        return render.montage_png(tiles, tile_size, key_slice=m.key_slice)
