"""Request mix of scripts/loadtest.py, made with the standard library only.

Valid: a 256x256 8-bit PNG slice of a head phantom (brain window) and a 128x128x16 int16
NIfTI volume in HU (0.5 x 0.5 x 5 mm). Invalid: truncated PNG, text named .nii, GIF, a
header claiming 2048^3 voxels, unknown model, bad spacing, no file. Each kind carries the
HTTP status the service must answer.
"""
from __future__ import annotations

import gzip
import math
import struct
import sys
import uuid
import zlib
from array import array


def _phantom_value(y: int, x: int, z: int, size: int, depth: int) -> tuple[float, bool]:
    """HU at voxel (z, y, x) of a head phantom: air, skull ring, brain, a bleed on mid slices."""
    r = math.hypot((y - size / 2) / (size / 2), (x - size / 2) / (size / 2))
    if r >= 0.9:
        return -1000.0, False
    if r >= 0.8:
        return 1000.0, False
    bleed = abs(z - depth / 2) < depth / 4 and math.hypot(y - size * 0.4, x - size * 0.35) < size / 10
    return (70.0, True) if bleed else (35.0, False)


def png_slice(size: int = 256) -> bytes:
    """8-bit grey PNG of the middle phantom slice in a brain window (L40/W120)."""
    rows = bytearray()
    for y in range(size):
        rows.append(0)   # filter: none
        for x in range(size):
            hu, _ = _phantom_value(y, x, 1, size, 2)
            rows.append(max(0, min(255, round((hu - (40 - 60)) * 255 / 120))))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(rows)))
            + chunk(b"IEND", b""))


def nifti_header(dims: tuple, pixdim=(0.5, 0.5, 5.0), datatype: int = 4, bitpix: int = 16) -> bytes:
    """NIfTI-1 header (352 bytes incl. extension flag), diagonal sform in mm."""
    header = bytearray(352)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, len(dims), *dims, *[1] * (7 - len(dims)))
    struct.pack_into("<hh", header, 70, datatype, bitpix)
    struct.pack_into("<8f", header, 76, 1.0, *pixdim, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into("<ff", header, 108, 352.0, 1.0)     # vox_offset, scl_slope
    header[123] = 2                                      # mm
    struct.pack_into("<h", header, 254, 1)               # sform_code
    for row in range(3):
        values = [0.0] * 4
        values[row] = pixdim[row]
        struct.pack_into("<4f", header, 280 + 16 * row, *values)
    header[344:348] = b"n+1\x00"
    return bytes(header)


def nifti_volume(size: int = 128, depth: int = 16) -> bytes:
    """.nii.gz int16 HU phantom stored (X, Y, Z) = (size, size, depth), 0.5x0.5x5 mm."""
    voxels = array("h")
    for z in range(depth):
        for y in range(size):
            voxels.extend(int(_phantom_value(y, x, z, size, depth)[0]) for x in range(size))
    if sys.byteorder != "little":
        voxels.byteswap()
    return gzip.compress(nifti_header((size, size, depth)) + voxels.tobytes(), compresslevel=6)


def request_kinds() -> list[dict]:
    """Request kinds: name, weight, files [(name, bytes)], form fields, expected status."""
    png, nii = png_slice(), nifti_volume()
    return [
        {"kind": "valid_png", "weight": 45, "files": [("slice.png", png)], "fields": {}, "expect": 200},
        {"kind": "valid_nifti", "weight": 25, "files": [("head.nii.gz", nii)], "fields": {},
         "expect": 200},
        {"kind": "truncated_png", "weight": 5, "files": [("bad.png", png[:200])], "fields": {},
         "expect": 422},
        {"kind": "text_as_nifti", "weight": 5, "files": [("notes.nii", b"not a scan\n" * 40)],
         "fields": {}, "expect": 422},
        {"kind": "gif", "weight": 4, "files": [("a.gif", b"GIF89a" + bytes(200))], "fields": {},
         "expect": 415},
        {"kind": "huge_header", "weight": 4, "files": [("big.nii", nifti_header((2048, 2048, 2048)))],
         "fields": {}, "expect": 413},
        {"kind": "unknown_model", "weight": 4, "files": [("slice.png", png)],
         "fields": {"model": "resnet"}, "expect": 400},
        {"kind": "bad_spacing", "weight": 4, "files": [("slice.png", png)],
         "fields": {"spacing": "abc,0"}, "expect": 400},
        {"kind": "no_file", "weight": 4, "files": [], "fields": {"model": "unet"}, "expect": 400},
    ]


def multipart(files: list, fields: dict) -> tuple[str, bytes]:
    """(content type, body) of multipart/form-data with file parts named 'file'."""
    boundary = "load" + uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    for name, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                     f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
                     + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)
