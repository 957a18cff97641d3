"""Synthetic test data made in memory (no real scans): PNG/JPG, NIfTI, DICOM, zip.

Shared by the test suites. Arrays follow the pipeline convention (Z, Y, X); spacing tuples
are (slice_mm, row_mm, col_mm) unless a name says otherwise.
"""
from __future__ import annotations

import gzip
import io
import random
import zipfile
from pathlib import Path

import numpy as np

#: Where the real (read-only) data lives relative to the repository root.
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / ".." / "shared" / "data"


def ct_phantom(shape_zyx=(6, 48, 48), blob_hu=70.0) -> np.ndarray:
    """(Z, Y, X) float32 head-like phantom in HU: air -1000, skull 1000, brain 35 and a
    bleed (``blob_hu``) whose centre moves with the slice, so every slice is different."""
    z_n, y_n, x_n = shape_zyx
    yy, xx = np.mgrid[0:y_n, 0:x_n]
    cy, cx = (y_n - 1) / 2, (x_n - 1) / 2
    radius = np.hypot((yy - cy) / (y_n / 2), (xx - cx) / (x_n / 2))
    vol = np.full(shape_zyx, -1000.0, dtype=np.float32)
    for z in range(z_n):
        plane = vol[z]
        plane[radius < 0.9] = 1000.0
        plane[radius < 0.8] = 35.0
        by, bx = int(cy + (z - z_n / 2) * 2) % y_n, int(x_n * 0.35)
        plane[(yy - by) ** 2 + (xx - bx) ** 2 < (y_n / 8) ** 2] = blob_hu
        plane[0, 0] = -1000.0 + z  # a per-slice marker
    return vol


def grey_image(shape_yx=(64, 64), seed=0) -> np.ndarray:
    """(Y, X) uint8 test picture: a bright ring on a dark background plus mild noise."""
    rng = np.random.default_rng(seed)
    y_n, x_n = shape_yx
    yy, xx = np.mgrid[0:y_n, 0:x_n]
    radius = np.hypot((yy - y_n / 2) / (y_n / 2), (xx - x_n / 2) / (x_n / 2))
    img = np.where(radius < 0.8, 120, 10).astype(np.int16) + (radius < 0.6) * 60
    return np.clip(img + rng.integers(0, 5, size=img.shape), 0, 255).astype(np.uint8)


def make_png(array=None, shape_yx=(64, 64), mode="L", **save_kwargs) -> bytes:
    """PNG bytes. ``array``: (Y, X) uint8/uint16 or (Y, X, 3|4) uint8; else a grey picture
    converted to ``mode`` ('L', 'RGB', 'RGBA', 'P', 'LA', 'I;16')."""
    from PIL import Image

    if array is None:
        grey = grey_image(shape_yx)
        if mode == "I;16":
            img = Image.fromarray(grey.astype(np.uint16) * 257)
        else:
            img = Image.fromarray(grey, mode="L").convert(mode)
    else:
        img = Image.fromarray(np.asarray(array))
    buf = io.BytesIO()
    img.save(buf, format="PNG", **save_kwargs)
    return buf.getvalue()


def make_jpg(array=None, shape_yx=(64, 64), mode="L", quality=95, exif=None) -> bytes:
    """JPEG bytes of ``array`` ((Y, X) or (Y, X, 3) uint8) or of a grey picture in ``mode``."""
    from PIL import Image

    img = Image.fromarray(grey_image(shape_yx) if array is None else np.asarray(array))
    if array is None and mode != "L":
        img = img.convert(mode)
    buf = io.BytesIO()
    kwargs = {"quality": quality}
    if exif is not None:
        kwargs["exif"] = exif
    img.save(buf, format="JPEG", **kwargs)
    return buf.getvalue()


def make_nifti(array, affine=None, dtype=None, gz=False, version=1, units="mm",
               zooms=None) -> bytes:
    """NIfTI bytes (.nii, or .nii.gz when ``gz``) of ``array`` in the *file's* axis order.

    affine: 4x4 voxel -> RAS (default diag(0.5, 0.5, 5)); dtype: stored data type;
    zooms: override pixdim (e.g. zeros) after the affine has set them.
    """
    import nibabel as nib

    array = np.asarray(array)
    if dtype is not None:
        array = array.astype(dtype)
    affine = np.diag([0.5, 0.5, 5.0, 1.0]) if affine is None else np.asarray(affine, float)
    klass = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    image = klass(array, affine)
    image.header.set_xyzt_units(xyz=units)
    if zooms is not None:
        image.header.set_zooms(tuple(zooms) + image.header.get_zooms()[len(zooms):])
    raw = image.to_bytes()
    return gzip.compress(raw) if gz else raw


def make_dicom(pixels, *, ipp=(0.0, 0.0, 0.0), iop=(1, 0, 0, 0, 1, 0), pixel_spacing=(0.5, 0.5),
               rescale=(1.0, -1024.0), instance=1, series_uid="1.2.826.0.1.3680043.8.498.1",
               series_number=3, description="AXIAL HEAD", slice_thickness=5.0,
               modality="CT", preamble=True, transfer_syntax=None, **extra) -> bytes:
    """One CT DICOM file. ``pixels``: (Y, X) stored int16 values (HU = value * slope +
    intercept). Pass None for a tag to leave it out; ``extra`` sets further keywords."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    pixels = np.asarray(pixels, dtype=np.int16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.7"
    ds.PatientName, ds.PatientID = "SECRET^PATIENT", "SECRET-ID-42"
    optional = {"Modality": modality, "SeriesInstanceUID": series_uid,
                "SeriesNumber": series_number, "SeriesDescription": description,
                "InstanceNumber": instance, "SliceThickness": slice_thickness,
                "ImagePositionPatient": None if ipp is None else [float(v) for v in ipp],
                "ImageOrientationPatient": None if iop is None else [float(v) for v in iop],
                "PixelSpacing": None if pixel_spacing is None else [float(v) for v in pixel_spacing],
                "RescaleSlope": None if rescale is None else rescale[0],
                "RescaleIntercept": None if rescale is None else rescale[1]}
    optional.update(extra)
    for keyword, value in optional.items():
        if value is not None:
            setattr(ds, keyword, value)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = pixels.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    return data if preamble else data[132:]


def hu_to_stored(hu, rescale=(1.0, -1024.0)) -> np.ndarray:
    """HU -> int16 stored values for ``make_dicom`` with the same ``rescale``."""
    return np.round((np.asarray(hu, dtype=np.float64) - rescale[1]) / rescale[0]).astype(np.int16)


def make_dicom_series(n=6, shape_yx=(48, 48), spacing_mm=(5.0, 0.5, 0.5), shuffle=True,
                      iop=(1, 0, 0, 0, 1, 0), origin=(-12.0, -12.0, 30.0), volume=None,
                      seed=0, names="IM{:04d}.dcm", **dicom_kwargs) -> list[tuple[str, bytes]]:
    """A series of ``n`` single-frame DICOM files of ``volume`` (Z, Y, X HU; default
    ``ct_phantom``) with slice z at ``origin + z * slice_mm * normal``.

    File names follow ``names`` but are assigned in shuffled order when ``shuffle`` (so
    neither names nor list order give the slice order); instance numbers are correct.
    """
    slice_mm, row_mm, col_mm = spacing_mm
    vol = ct_phantom((n,) + tuple(shape_yx)) if volume is None else np.asarray(volume)
    normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
    order = list(range(n))
    if shuffle:
        random.Random(seed).shuffle(order)
    files = []
    for rank, z in enumerate(order):
        ipp = np.asarray(origin, float) + z * slice_mm * normal
        data = make_dicom(hu_to_stored(vol[z]), ipp=tuple(ipp), iop=iop,
                          pixel_spacing=(row_mm, col_mm), instance=z + 1,
                          slice_thickness=slice_mm, **dicom_kwargs)
        files.append((names.format(rank + 1), data))
    return files


def make_zip(members, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """Zip bytes holding ``members`` [(path inside the archive, bytes)]."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buf.getvalue()
