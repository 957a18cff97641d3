"""PNG / JPG slices: already-windowed grey display values 0..255 (no HU, no spacing).

One image -> CTImage (1, Y, X). Several images -> one volume (Z, Y, X) stacked in natural
file-name order (all the same size), slice spacing unknown.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from ..errors import InputError
from ..types import CTImage, Limits
from .detect import JPG, PNG
from .geometry import file_layout_xyz, unknown_affine
from .util import summarise

MIN_SIDE_PX = 32
_PIL_FORMAT = {PNG: "PNG", JPG: "JPEG"}
#: Pixels whose channels differ by more than this (0..255) count as coloured.
_COLOUR_DELTA = 24
_COLOUR_FRACTION = 0.02


def _open(name: str, data: bytes, kind: str, limits: Limits) -> Image.Image:
    """Open the header only and enforce the size limits before any pixel is decoded."""
    label = "PNG" if kind == PNG else "JPG"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[kind]])
    except Image.DecompressionBombError as exc:
        raise InputError(f"{name}: image is too large to decode safely", status=413,
                         detail=str(exc)) from None
    except Exception:  # noqa: BLE001 - PIL raises many types for bad headers
        raise InputError(f"{name}: not a readable {label} file (damaged or not a {label})",
                         status=422) from None
    width, height = img.size
    if width * height > limits.max_pixels_2d:
        raise InputError(f"{name}: image is {width}x{height} pixels, more than the limit of "
                         f"{limits.max_pixels_2d} pixels", status=413)
    if min(width, height) < MIN_SIDE_PX:
        raise InputError(f"{name}: image is only {width}x{height} pixels; a CT slice needs at "
                         f"least {MIN_SIDE_PX} pixels a side", status=422)
    return img


def _decode(name: str, img: Image.Image, kind: str) -> Image.Image:
    """Decode the pixels (first frame) and apply any EXIF rotation; 422 when truncated."""
    label = "PNG" if kind == PNG else "JPG"
    try:
        img.seek(0)
        img.load()
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - truncated/corrupt streams raise OSError, SyntaxError...
        raise InputError(f"{name}: the {label} file is truncated or damaged", status=422) from None


def _is_colourful(rgb: np.ndarray) -> bool:
    """True when more than 2 % of pixels of an (Y, X, 3) uint8 image are clearly coloured."""
    rgb = rgb.astype(np.int16)
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    return float(np.mean(spread > _COLOUR_DELTA)) > _COLOUR_FRACTION


def to_grey(name: str, img: Image.Image, notes: list[tuple[str, str]]) -> np.ndarray:
    """Any PIL mode -> (Y, X) float32 grey 0..255 (ITU-R 601 luminance for colour).

    16-bit grey is scaled by 1/257 (65535 -> 255); alpha is ignored.
    """
    mode = img.mode
    if mode in ("L", "LA"):
        return np.asarray(img.getchannel(0), dtype=np.float32)
    if mode.startswith("I"):
        values = np.asarray(img, dtype=np.float64)
        notes.append((name, "16-bit image scaled to 0..255 grey (value / 257); if it stores "
                            "raw CT numbers, upload NIfTI or DICOM in HU instead"))
        return (np.clip(values, 0, 65535) / 257.0).astype(np.float32)
    if mode == "F":
        return np.clip(np.asarray(img, dtype=np.float32), 0, 255)
    rgb = np.asarray(img.convert("RGB"))
    if _is_colourful(rgb):
        notes.append((name, "image is in colour; CT slices are grey — is this a CT?"))
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(grey, 0, 255).astype(np.float32)


def read_image_array(name: str, data: bytes, kind: str, limits: Limits,
                     notes: list[tuple[str, str]]) -> tuple[np.ndarray, tuple]:
    """One PNG/JPG -> ((Y, X) float32 grey 0..255, stored shape). Raises InputError."""
    img = _open(name, data, kind, limits)
    stored_shape = (img.size[1], img.size[0]) + ((len(img.getbands()),) if len(img.getbands()) > 1 else ())
    frames = getattr(img, "n_frames", 1)
    exif_orientation = img.getexif().get(0x0112, 1) if kind == JPG else 1
    img = _decode(name, img, kind)
    if frames > 1:
        notes.append((name, f"image has {frames} frames; only the first is used"))
    if exif_orientation not in (None, 1):
        notes.append((name, "rotated as its EXIF orientation tag says (as it is displayed)"))
    return to_grey(name, img, notes), stored_shape


def read_images(sources: list[tuple[str, bytes, str]], limits: Limits) -> CTImage:
    """PNG/JPG sources (already sorted) -> CTImage with intensity 'display'.

    sources: (name, bytes, kind) with kind PNG or JPG. One source -> (1, Y, X), 2D;
    several -> (Z, Y, X) volume without spacing.
    """
    found: list[tuple[str, str]] = []
    slices = []
    stored_shape: tuple = ()
    for name, data, kind in sources:
        plane, stored_shape = read_image_array(name, data, kind, limits, found)
        if slices and plane.shape != slices[0][1].shape:
            first = slices[0]
            raise InputError(
                f"images have different sizes: {first[0]} is {first[1].shape[1]}x"
                f"{first[1].shape[0]}, {name} is {plane.shape[1]}x{plane.shape[0]}; "
                "slices of one volume must all be the same size", status=422)
        slices.append((name, plane))
        if len(slices) * plane.size > limits.max_voxels:
            raise InputError(f"the {len(sources)} images hold more than the limit of "
                             f"{limits.max_voxels} voxels", status=413)
    array = np.stack([plane for _, plane in slices]).astype(np.float32, copy=False)
    kind = sources[0][2]
    warn = summarise(found)
    if len(slices) == 1:
        warn.append("PNG/JPG has no pixel spacing: areas are given in pixels unless you "
                    "enter the spacing")
        return CTImage(array=array, intensity="display", kind=kind, is_volume=False,
                       spacing_source="unknown", source_shape=stored_shape, warnings=warn)
    warn.append(f"{len(slices)} images stacked in file-name order into a volume; pixel and "
                "slice spacing are unknown (the mask NIfTI assumes 1 mm voxels)")
    return CTImage(array=array, intensity="display", kind=kind, is_volume=True,
                   spacing_source="unknown", affine=unknown_affine(),
                   to_file_layout=file_layout_xyz, source_shape=array.shape, warnings=warn)

