"""Catalogue of malformed and hostile uploads, each tried on POST /segment and on the CLI.

Every case makes its bytes in memory (``files()`` -> [(file name, bytes)]). Bombs are
small because the service under test runs with low limits set through its environment
variables (:data:`TEST_ENV`): 4 MiB uploads, 4 M voxels, 200 files, 16 MiB decompressed.

``status``/``words``: the HTTP status expected and words (lower case) that the JSON
``error`` + ``detail`` must contain; for a 200 the words must appear in a warning.
``cli_exit``/``cli_words``: the same for ``python -m model segment`` (default exit 0 for
a 200 case, else 1; None: no CLI equivalent). ``words`` entries may list alternatives as "a|b".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

import hostile as h
from synthetic import ct_phantom, make_dicom, make_dicom_series, make_jpg, make_nifti, make_png
from synthetic import make_zip

MIB = 1 << 20
TEST_ENV = {"ICH_MAX_UPLOAD_MB": "4", "ICH_MAX_VOXELS": "4000000", "ICH_MAX_FILES": "200",
            "ICH_MAX_DECOMPRESSED_MB": "16"}


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    files: Callable[[], list]
    status: int
    words: tuple = ()
    form: dict = field(default_factory=dict)
    cli_exit: Optional[int] = -1           # -1: 0 for a 200 case, else 1; None: no CLI form
    cli_words: Optional[tuple] = None      # None: same as ``words``
    cli_args: tuple = ()
    raw_body: bool = False                 # send the first file as a non-multipart body
    report: dict = field(default_factory=dict)   # 200 only: expected report fields

    def __post_init__(self):
        if self.cli_exit == -1:
            object.__setattr__(self, "cli_exit", 0 if self.status == 200 else 1)

    @property
    def expected_cli_words(self) -> tuple:
        return self.words if self.cli_words is None else self.cli_words


# ---------- valid building blocks ----------

def png() -> bytes:
    return make_png(shape_yx=(64, 64))


def nii(array_zyx=None, gz=False, **kwargs) -> bytes:
    """NIfTI of a (Z, Y, X) array (default: 6 x 48 x 48 int16 HU phantom), stored (X, Y, Z)."""
    vol = ct_phantom((6, 48, 48)) if array_zyx is None else array_zyx
    kwargs.setdefault("dtype", np.int16)
    return make_nifti(np.asarray(vol).transpose(2, 1, 0), gz=gz, **kwargs)


def nan_volume(value: float) -> np.ndarray:
    vol = ct_phantom((6, 48, 48))
    vol[3, 20:22, 20:22] = value
    return vol


def rgb_nifti() -> bytes:
    import nibabel as nib

    rgb = np.zeros((48, 48, 6), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    return nib.Nifti1Image(rgb, np.eye(4)).to_bytes()


def negative_spacing_nifti() -> bytes:
    import nibabel as nib

    img = nib.Nifti1Image(ct_phantom((6, 48, 48)).transpose(2, 1, 0).astype(np.int16),
                          np.diag([0.5, 0.5, 5.0, 1.0]))
    img.header["pixdim"][1:4] = [-0.5, -0.5, -5.0]
    img.header.set_xyzt_units("mm")
    return img.to_bytes()


def series(n=3, uid="1.2.826.0.1.3680043.8.498.1", number=3, **kw) -> list:
    return make_dicom_series(n, (40, 40), series_uid=uid, series_number=number, **kw)


def one(name: str, data_fn: Callable[[], bytes]) -> Callable[[], list]:
    return lambda: [(name, data_fn())]


def random_bytes(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


_DCM = lambda: make_dicom(np.zeros((40, 40)))  # noqa: E731
_NIIGZ = lambda: nii(gz=True)                  # noqa: E731

CASES: list[Case] = [
    # ---- the request itself ----
    Case("no_file", "multipart request without a file", lambda: [], 400, ("no file",),
         cli_exit=2, cli_words=("required",)),
    Case("empty_file", "a 0-byte file", one("scan.png", lambda: b""), 422,
         ("scan.png: the file is empty",), cli_words=("empty",)),
    Case("not_multipart", "raw PNG body instead of multipart/form-data", one("a.png", png),
         415, ("multipart",), raw_body=True, cli_exit=None),
    Case("unknown_model", "model=resnet50", one("a.png", png), 400, ("unknown model",),
         form={"model": "resnet50"}, cli_exit=2, cli_args=("--model", "resnet50")),
    Case("model_name_too_long", "a 200-character model name", one("a.png", png), 400,
         ("unknown model",), form={"model": "x" * 200}, cli_exit=2,
         cli_args=("--model", "x" * 200)),
    Case("model_without_weights", "two_branch when only unet is trained", one("a.png", png),
         503, ("no trained weights", "two_branch"), form={"model": "two_branch"}, cli_exit=2,
         cli_args=("--model", "two_branch")),
    Case("spacing_zero", "spacing 0,0", one("a.png", png), 400, ("spacing",),
         form={"spacing": "0,0"}, cli_exit=2, cli_args=("--spacing", "0", "0")),
    Case("spacing_negative", "spacing -0.5,0.5", one("a.png", png), 400, ("spacing",),
         form={"spacing": "-0.5,0.5"}, cli_exit=2, cli_args=("--spacing", "-0.5", "0.5")),
    Case("spacing_nan", "spacing nan,0.5", one("a.png", png), 400, ("spacing",),
         form={"spacing": "nan,0.5"}, cli_exit=2, cli_args=("--spacing", "nan", "0.5")),
    Case("spacing_not_a_number", "spacing abc,0.5", one("a.png", png), 400,
         ("spacing", "not a number"), form={"spacing": "abc,0.5"}, cli_exit=2,
         cli_words=("spacing", "invalid float"), cli_args=("--spacing", "abc", "0.5")),
    Case("spacing_one_value", "spacing with one number", one("a.png", png), 400, ("spacing",),
         form={"spacing": "0.5"}, cli_exit=2, cli_args=("--spacing", "0.5")),
    Case("spacing_absurd", "spacing 1000,1000 mm", one("a.png", png), 400, ("spacing",),
         form={"spacing": "1000,1000"}, cli_exit=2, cli_args=("--spacing", "1000", "1000")),
    Case("export_window_zero_width", "export window 40,0", one("a.png", png), 400, ("export window", "width"),
         form={"export_window": "40,0"}, cli_exit=2, cli_args=("--export-window", "40", "0")),
    Case("export_window_not_numbers", "export window abc,80", one("a.png", png), 400, ("export window",),
         form={"export_window": "abc,80"}, cli_exit=2, cli_words=("export-window", "invalid float"),
         cli_args=("--export-window", "abc", "80")),
    Case("export_window_one_value", "export window with one number", one("a.png", png), 400,
         ("export window", "two numbers"), form={"export_window": "40"}, cli_exit=2, cli_words=("export-window",),
         cli_args=("--export-window", "40")),
    Case("export_window_for_hu", "export window 40,80 given for a NIfTI in HU", one("a.nii", nii), 200,
         ("ignored",), form={"export_window": "40,80"}, cli_args=("--export-window", "40", "80"),
         report={"is_volume": True}),
    Case("upload_over_limit", "5 MiB upload, limit 4 MiB",
         one("scan.nii.gz", lambda: random_bytes(5 * MIB)), 413, ("too large", "4 mb"),
         cli_words=("more than the limit",)),
    Case("too_many_parts", "250 files in one request, limit 200",
         lambda: [(f"s{i}.png", b"x") for i in range(250)], 413, ("too large|form parts",),
         cli_words=("250 files", "limit")),
    # ---- file type ----
    Case("unknown_type", "a text file named notes.txt", one("notes.txt", lambda: b"hello\n" * 9),
         415, ("unknown file type",)),
    Case("gif_image", "a GIF image", one("scan.gif", lambda: b"GIF89a" + bytes(64)), 415,
         ("gif",)),
    Case("missing_extension", "a valid PNG named 'scan' (type sniffed: accepted)",
         one("scan", png), 200, ("no pixel spacing",)),
    Case("wrong_extension", "a valid PNG named scan.jpg (type sniffed: accepted)",
         one("scan.jpg", png), 200, ("no pixel spacing",)),
    Case("nifti_named_dcm", "a valid .nii.gz named scan.dcm (type sniffed: accepted)",
         one("scan.dcm", _NIIGZ), 200, (), report={"is_volume": True}),
    Case("text_named_nii", "a text file named scan.nii", one("scan.nii", lambda: b"hi\n" * 200),
         422, ("scan.nii", "not a nifti")),
    Case("filename_with_path", "a valid PNG uploaded as ../../etc/x.png (only the name is used)",
         one("../../etc/x.png", png), 200, ("no pixel spacing",), report={"name": "x"}),
    Case("very_long_filename", "a valid PNG whose name is 5000 characters",
         one("A" * 5000 + ".png", png), 200, (), cli_exit=None),
    Case("pdf_named_png", "a PDF named scan.png", one("scan.png", lambda: b"%PDF-1.4\n" * 20),
         422, ("scan.png", "png")),
    Case("mixed_types", "a PNG and a NIfTI together",
         lambda: [("a.png", png()), ("b.nii.gz", nii(gz=True))], 422, ("mixes file types",)),
    # ---- PNG / JPG ----
    Case("truncated_png", "PNG cut in half", one("scan.png", lambda: png()[: len(png()) // 2]),
         422, ("scan.png", "truncated|damaged")),
    Case("truncated_jpg", "JPG cut in half",
         one("scan.jpg", lambda: make_jpg(shape_yx=(64, 64))[:400]), 422,
         ("scan.jpg", "truncated|damaged")),
    Case("corrupt_png_idat", "PNG with flipped bytes in its pixel stream",
         one("scan.png", lambda: h.flip_bytes(png(), h.png_idat_offset(png()) + 10)), 422,
         ("scan.png", "truncated|damaged")),
    Case("image_1x1", "a 1x1 pixel PNG", one("dot.png", lambda: make_png(np.zeros((1, 1), np.uint8))),
         422, ("1x1",)),
    Case("image_20000x20000", "JPG header claiming 20000x20000 pixels",
         one("huge.jpg", lambda: h.jpg_claiming_size(20000, 20000)), 413, ("too large",)),
    Case("png_bomb", "decompression bomb: valid 20000x20000 PNG of zeros (390 KB)",
         one("bomb.png", lambda: h.png_of_zeros(20000, 20000)), 413, ("too large",)),
    Case("png_over_pixel_limit", "valid 9000x9000 PNG (81 Mpx > 67 Mpx limit)",
         one("big.png", lambda: h.png_of_zeros(9000, 9000)), 413, ("9000x9000", "limit")),
    Case("png_text_bomb", "PNG with a zTXt chunk expanding to 64 MiB",
         one("scan.png", h.png_with_chunk_bomb), 422, ("scan.png", "not a readable png")),
    Case("png_icc_bomb", "PNG with an iCCP profile expanding to 64 MiB",
         one("scan.png", lambda: h.png_with_chunk_bomb(b"iCCP")), 422, ("scan.png", "png")),
    Case("photo_not_ct", "a colour photo (accepted with a warning)",
         one("holiday.jpg", h.colour_photo), 200, ("colour", "ct")),
    Case("png_16bit", "16-bit grey PNG (accepted with a warning)", one("a.png", h.png_16bit),
         200, ("16-bit",)),
    Case("png_sizes_differ", "two PNG slices of different sizes",
         lambda: [("s1.png", png()), ("s2.png", make_png(shape_yx=(80, 64)))], 422,
         ("different sizes",)),
    # ---- NIfTI ----
    Case("truncated_nii", ".nii cut in half", one("scan.nii", lambda: nii()[: len(nii()) // 2]),
         422, ("scan.nii", "truncated")),
    Case("truncated_nii_gz", ".nii.gz cut in half",
         one("scan.nii.gz", lambda: _NIIGZ()[: len(_NIIGZ()) // 2]), 422,
         ("scan.nii.gz", "damaged|ends early")),
    Case("nifti_billions_of_voxels", "NIfTI header claiming 2048^3 voxels (no data)",
         one("big.nii", lambda: h.nifti_header((2048, 2048, 2048))), 413,
         ("voxels", "limit")),
    Case("nifti_2d", "2D NIfTI (one slice)", one("a.nii", lambda: make_nifti(np.zeros((48, 48), np.int16) - 500)),
         422, ("2d",)),
    Case("nifti_4d", "4D NIfTI holding 3 volumes",
         one("a.nii", lambda: make_nifti(np.zeros((16, 16, 4, 3), np.int16) - 500)), 422,
         ("4d", "3 volumes")),
    Case("nifti_nan", "NIfTI with NaN voxels", one("a.nii", lambda: nii(nan_volume(np.nan), dtype=np.float32)),
         422, ("nan",)),
    Case("nifti_inf", "NIfTI with +inf voxels", one("a.nii", lambda: nii(nan_volume(np.inf), dtype=np.float32)),
         422, ("infinite",)),
    Case("nifti_int8", "int8 NIfTI (accepted: values clipped to -128..127 by the file)",
         one("a.nii", lambda: nii(np.clip(ct_phantom((6, 48, 48)), -128, 127), dtype=np.int8)),
         200, ()),
    Case("nifti_float64", "float64 NIfTI (accepted)",
         one("a.nii", lambda: nii(dtype=np.float64)), 200, (), report={"is_volume": True}),
    Case("nifti_rgb", "RGB24 NIfTI", one("a.nii", rgb_nifti), 422, ("colour",)),
    Case("nifti_boolean_mask", "uint8 0/1 NIfTI (a mask, not a CT)",
         one("a.nii", lambda: nii(ct_phantom((6, 48, 48)) > 0, dtype=np.uint8)), 422, ("mask",)),
    Case("nifti_binary_datatype", "NIfTI of datatype 1 (1-bit)",
         one("a.nii", lambda: h.nifti_header((48, 48, 6), datatype=1, bitpix=1) + bytes(2000)),
         422, ("binary",)),
    Case("nifti_zero_spacing", "pixdim 0,0,0 (accepted, spacing unknown, volume null)",
         one("a.nii", lambda: nii(zooms=(0, 0, 0))), 200, ("voxel sizes", "invalid"),
         report={"volume_ml": None}),
    Case("nifti_negative_spacing", "pixdim -0.5,-0.5,-5 (accepted, volume null)",
         one("a.nii", negative_spacing_nifti), 200, ("voxel sizes", "invalid"),
         report={"volume_ml": None}),
    Case("nifti_negative_dim", "header with a negative dimension",
         one("a.nii", lambda: h.nifti_header((48, -48, 6)) + bytes(30000)), 422, ("negative",)),
    Case("nifti_hdr_img_pair", "Analyze-style .hdr header (magic ni1)",
         one("a.nii", lambda: h.nifti_header((48, 48, 6), magic=b"ni1") + bytes(30000)), 422,
         (".hdr",)),
    Case("nifti_huge_offset", "vox_offset of 1 GB", one("a.nii", lambda: h.nifti_header(
        (48, 48, 6), vox_offset=1e9) + bytes(30000)), 413, ("bytes", "limit")),
    Case("gzip_bomb_nifti", "gzip bomb: 256x256x60 float64 NIfTI of zeros (31 MB -> 30 KB)",
         one("bomb.nii.gz", h.nifti_gzip_bomb), 413, ("bytes", "limit")),
    Case("gzip_bomb_not_nifti", "gzip bomb: 2 GiB of zeros named .nii.gz (2 MB)",
         one("bomb.nii.gz", lambda: h.gzip_zeros(2048 * MIB)), 422, ("not a nifti",)),
    Case("two_niftis", "two NIfTI volumes at once",
         lambda: [("a.nii.gz", _NIIGZ()), ("b.nii.gz", _NIIGZ())], 422, ("one volume",)),
    # ---- zip ----
    Case("truncated_zip", "zip cut in half",
         one("scan.zip", lambda: make_zip(series())[: len(make_zip(series())) // 2]), 422,
         ("scan.zip", "not a valid zip|damaged")),
    Case("zip_bomb", "zip bomb: one member of 64 MiB zeros (65 KB)",
         one("bomb.zip", lambda: h.zip_of_zeros(64 * MIB)), 413, ("expands", "limit")),
    Case("zip_bomb_forged_size", "zip bomb declaring 100 bytes for 64 MiB of zeros",
         one("bomb.zip", lambda: h.forge_zip_sizes(h.zip_of_zeros(64 * MIB), 100)), 422,
         ("bomb.zip", "damaged|limit")),
    Case("zip_path_traversal", "zip member named ../../etc/cron.d/x.dcm",
         one("scan.zip", lambda: make_zip([("../../etc/cron.d/x.dcm", _DCM())])), 422,
         ("unsafe path",)),
    Case("zip_absolute_path", "zip member named /etc/passwd",
         one("scan.zip", lambda: make_zip([("/etc/passwd", b"root:x:0:0")])), 422,
         ("unsafe path",)),
    Case("zip_10000_files", "zip of 10,000 tiny files, limit 200",
         one("many.zip", lambda: h.zip_with_many_files(10000)), 413, ("10000 files", "limit")),
    Case("zip_nested", "zip inside a zip",
         one("outer.zip", lambda: make_zip([("inner.zip", make_zip(series()))])), 422,
         ("nested",)),
    Case("zip_encrypted", "zip whose members are marked encrypted",
         one("secret.zip", lambda: h.set_zip_encrypted(make_zip(series()))), 422,
         ("encrypted",)),
    Case("zip_no_scans", "zip holding only a README.txt",
         one("docs.zip", lambda: make_zip([("README.txt", b"hello")])), 415, ("no supported",)),
    Case("zip_empty", "zip with no entries", one("empty.zip", h.empty_zip), 422, ("no files",)),
    # ---- DICOM ----
    Case("truncated_dicom", "DICOM cut in half", one("IM1.dcm", lambda: _DCM()[: len(_DCM()) // 2]),
         422, ("im1.dcm", "truncated|damaged")),
    Case("dicom_random_bytes", "random bytes named .dcm", one("IM1.dcm", lambda: random_bytes(4000)),
         422, ("im1.dcm", "not a dicom")),
    Case("dicom_no_pixel_data", "DICOM without Pixel Data", one("IM1.dcm", h.dicom_without_pixels),
         422, ("no pixel data",)),
    Case("dicom_compressed_undecodable", "JPEG 2000 transfer syntax, garbage fragments",
         one("IM1.dcm", h.dicom_compressed_garbage), 415, ("jpeg 2000|cannot be decoded",)),
    Case("dicom_mixed_series", "two DICOM series in one upload",
         lambda: series(3) + [(f"B{i}.dcm", d) for i, (_, d) in enumerate(
             series(3, uid="1.2.826.0.1.3680043.8.498.2", number=4))], 422, ("2 dicom series",)),
    Case("dicom_colour", "RGB DICOM (SamplesPerPixel 3)",
         one("IM1.dcm", lambda: h.dicom_edit(SamplesPerPixel=3)), 422, ("colour",)),
    Case("dicom_huge_dimensions", "DICOM claiming 60000x60000 pixels",
         one("IM1.dcm", lambda: h.dicom_edit(Rows=60000, Columns=60000)), 413, ("pixels", "limit")),
    Case("dicom_many_frames", "DICOM claiming 100000 frames of 40x40",
         one("IM1.dcm", lambda: h.dicom_edit(NumberOfFrames=100000)), 413, ("voxels", "limit")),
    Case("dicom_deep_nesting", "DICOM with 5000 nested sequences",
         one("IM1.dcm", h.dicom_deeply_nested), 422, ("im1.dcm",)),
    Case("dicom_sizes_differ", "DICOM series with slices of different sizes",
         lambda: series(2) + make_dicom_series(1, (32, 32), names="X{:04d}.dcm",
                                               origin=(-12.0, -12.0, 50.0)), 422, ("differ in size",)),
    Case("dicomdir_only", "a DICOMDIR index without images", one("DICOMDIR", h.dicomdir_only),
         422, ("dicomdir|no pixel data",)),
]

NAMES = [case.name for case in CASES]
assert len(set(NAMES)) == len(NAMES), "case names must be unique"
