"""Hostile file bytes made compactly in memory: bombs, forged headers, broken archives.

Decompression bombs are built from a pre-compressed block of zeros repeated (deflate blocks
that end with a full flush are independent), so a stream that expands to gigabytes costs
milliseconds and kilobytes here. Arrays follow the pipeline order (Z, Y, X).
"""
from __future__ import annotations

import functools
import gzip
import io
import struct
import zipfile
import zlib

import numpy as np

from synthetic import make_dicom, make_jpg, make_png, make_zip

_BLOCK = 1 << 20   # one pre-compressed block = 1 MiB of zeros


@functools.lru_cache(maxsize=None)
def _zero_block() -> bytes:
    """Raw deflate of 1 MiB of zeros ending on a byte boundary (Z_FULL_FLUSH): repeatable."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    return co.compress(bytes(_BLOCK)) + co.flush(zlib.Z_FULL_FLUSH)


def _deflate_zeros(prefix: bytes, n_zeros: int) -> bytes:
    """Raw deflate stream of ``prefix`` followed by ``n_zeros`` zero bytes."""
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [head.compress(prefix) + head.flush(zlib.Z_FULL_FLUSH)]
    whole, rest = divmod(n_zeros, _BLOCK)
    out.append(_zero_block() * whole)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    out.append(tail.compress(bytes(rest)) + tail.flush(zlib.Z_FINISH))
    return b"".join(out)


def _crc_zeros(crc: int, n_zeros: int) -> int:
    """CRC-32 continued over ``n_zeros`` zero bytes."""
    block = bytes(_BLOCK)
    whole, rest = divmod(n_zeros, _BLOCK)
    for _ in range(whole):
        crc = zlib.crc32(block, crc)
    return zlib.crc32(bytes(rest), crc)


def zlib_zeros(n_zeros: int) -> bytes:
    """zlib stream (header, deflate, Adler-32) of ``n_zeros`` zero bytes."""
    adler = (n_zeros % 65521) << 16 | 1
    return b"\x78\xda" + _deflate_zeros(b"", n_zeros) + struct.pack(">I", adler)


def gzip_zeros(n_zeros: int, prefix: bytes = b"") -> bytes:
    """Valid gzip of ``prefix`` + ``n_zeros`` zero bytes (a gzip bomb when n is large)."""
    crc = _crc_zeros(zlib.crc32(prefix), n_zeros)
    size = (len(prefix) + n_zeros) & 0xFFFFFFFF
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + _deflate_zeros(prefix, n_zeros) + struct.pack("<II", crc, size)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_of_zeros(width: int, height: int) -> bytes:
    """A complete, valid 8-bit grey PNG of ``width`` x ``height`` black pixels (a bomb if big)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib_zeros(height * (width + 1))   # every row: filter byte 0 + zeros
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def jpg_claiming_size(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) is edited to claim ``width`` x ``height``."""
    data = bytearray(make_jpg(shape_yx=(64, 64)))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def colour_photo(shape_yx=(240, 320)) -> bytes:
    """JPEG of a colourful gradient scene (a holiday photo, not a CT slice)."""
    y_n, x_n = shape_yx
    yy, xx = np.mgrid[0:y_n, 0:x_n]
    rgb = np.stack([xx * 255 // x_n, yy * 255 // y_n, 255 - xx * 255 // x_n], axis=-1)
    rgb[y_n // 3: y_n // 2, :, :] = (30, 160, 40)   # a green band
    return make_jpg(rgb.astype(np.uint8))


def png_16bit() -> bytes:
    """16-bit grey PNG (I;16)."""
    return make_png(mode="I;16")


def png_with_chunk_bomb(chunk: bytes = b"zTXt", expanded_bytes: int = 64 << 20) -> bytes:
    """A valid PNG plus a compressed text (zTXt) or colour-profile (iCCP) chunk that expands
    to ``expanded_bytes`` zeros."""
    data = make_png(shape_yx=(64, 64))
    payload = (b"Comment\x00\x00" if chunk == b"zTXt" else b"icc\x00\x00") + zlib_zeros(expanded_bytes)
    at = data.find(b"IDAT") - 4
    return data[:at] + _png_chunk(chunk, payload) + data[at:]


def dicom_deeply_nested(depth: int = 5000) -> bytes:
    """A valid DICOM file followed by ``depth`` nested undefined-length sequences."""
    sequence = b"\xe1\x7f\x00\x10SQ\x00\x00\xff\xff\xff\xff"       # (7FE1,1000) SQ
    item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    item_end, sequence_end = b"\xfe\xff\x0d\xe0" + bytes(4), b"\xfe\xff\xdd\xe0" + bytes(4)
    return (make_dicom(np.zeros((40, 40))) + (sequence + item) * depth
            + (item_end + sequence_end) * depth)


def nifti_header(dims: tuple, datatype: int = 4, bitpix: int = 16, vox_offset: float = 352.0,
                 pixdim=(1.0, 1.0, 1.0), magic: bytes = b"n+1") -> bytes:
    """A bare NIfTI-1 header (+ 4-byte extension flag) claiming ``dims``, with no voxel data."""
    header = bytearray(352)
    struct.pack_into("<i", header, 0, 348)
    dim = [len(dims), *dims] + [1] * (7 - len(dims))
    struct.pack_into("<8h", header, 40, *dim)
    struct.pack_into("<hh", header, 70, datatype, bitpix)
    struct.pack_into("<8f", header, 76, 1.0, *pixdim, *[1.0] * (7 - len(pixdim)))
    struct.pack_into("<f", header, 108, vox_offset)
    struct.pack_into("<f", header, 112, 1.0)          # scl_slope
    header[123] = 2                                   # xyzt_units: mm
    struct.pack_into("<h", header, 254, 1)            # sform_code
    for row, offset in enumerate((280, 296, 312)):    # srow_x/y/z = diag(pixdim)
        values = [0.0, 0.0, 0.0, 0.0]
        values[row] = pixdim[row] if row < len(pixdim) else 1.0
        struct.pack_into("<4f", header, offset, *values)
    header[344:348] = magic.ljust(4, b"\x00")
    return bytes(header)


def nifti_gzip_bomb(dims=(256, 256, 60)) -> bytes:
    """.nii.gz: a float64 volume of ``dims`` (all zeros), fully present in the gzip stream."""
    voxels = int(np.prod(dims))
    return gzip_zeros(voxels * 8, prefix=nifti_header(dims, datatype=64, bitpix=64))


def forge_zip_sizes(data: bytes, declared: int) -> bytes:
    """Rewrite every declared uncompressed size (local headers + central directory)."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = out.find(signature)
        while pos >= 0:
            struct.pack_into("<I", out, pos + offset, declared)
            pos = out.find(signature, pos + 4)
    return bytes(out)


def set_zip_encrypted(data: bytes) -> bytes:
    """Set the 'encrypted' flag bit on every entry (local headers + central directory)."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = out.find(signature)
        while pos >= 0:
            out[pos + offset] |= 0x01
            pos = out.find(signature, pos + 4)
    return bytes(out)


def zip_of_zeros(n_bytes: int, member: str = "scan.dcm") -> bytes:
    """A zip holding one deflated member of ``n_bytes`` zeros (an honest zip bomb)."""
    return make_zip([(member, bytes(n_bytes))])


def zip_with_many_files(count: int) -> bytes:
    """A zip of ``count`` one-byte members (stored, so it stays about 100 bytes per member)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        for i in range(count):
            archive.writestr(f"f{i:05d}.dcm", b"\x00")
    return buf.getvalue()


def empty_zip() -> bytes:
    """A zip archive with no entries (only the end-of-central-directory record)."""
    return make_zip([])


def dicom_compressed_garbage() -> bytes:
    """A DICOM file declaring JPEG 2000 pixel data whose fragments are not a JPEG 2000 stream."""
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    ds = pydicom.dcmread(io.BytesIO(make_dicom(np.zeros((40, 40)))))
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\x00\x01not a jpeg 2000 codestream" * 4])
    ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def dicom_without_pixels() -> bytes:
    """A DICOM data set with every image tag except Pixel Data."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(make_dicom(np.zeros((40, 40)))))
    del ds.PixelData
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def dicom_edit(**keywords) -> bytes:
    """A valid 40x40 CT DICOM file with the given keywords overwritten after creation."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(make_dicom(np.zeros((40, 40)))))
    for keyword, value in keywords.items():
        setattr(ds, keyword, value)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def dicomdir_only() -> bytes:
    """A DICOMDIR index file (Media Storage Directory SOP class, no image)."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.FileSetID = "EXPORT"
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def flip_bytes(data: bytes, start: int, count: int = 8) -> bytes:
    """``data`` with ``count`` bytes from ``start`` inverted (simulated corruption)."""
    out = bytearray(data)
    for i in range(start, min(start + count, len(out))):
        out[i] ^= 0xFF
    return bytes(out)


def png_idat_offset(data: bytes) -> int:
    """Offset of the first IDAT chunk's data in PNG bytes."""
    return data.find(b"IDAT") + 4
