"""Segmenter end to end on arrays: geometry back on the input grid, spacing, errors, outputs.

Geometry uses the fake centre-channel model (the mask is the bright blob), so the expected
mask is known exactly; the tiny random Keras/ONNX models check the real plumbing.
"""
import gzip
import io
import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from model.errors import InputError, ModelUnavailableError, PipelineError
from model.pipeline import CHUNK_SLICES, Segmenter
from model.types import CTImage, Limits
from tests.conftest import CentreChannelPredictor, blob_volume


def iou(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return (a & b).sum() / max((a | b).sum(), 1)


def display_image(shape=(150, 200), centre=(50, 140), radii=(20, 30)) -> tuple[CTImage, np.ndarray]:
    """2D PNG-like image (1, Y, X): bright ellipse (230) on dark (20), no spacing."""
    hu, inside = blob_volume((1, *shape), (0, *centre), (0.5, *radii))
    array = np.where(inside, 230.0, 20.0).astype(np.float32)
    return CTImage(array=array, intensity="display", kind="png", is_volume=False), inside


def hu_volume(shape=(6, 96, 80), spacing=((0.5, 0.6), 2.0), affine=None, **blob) -> tuple[CTImage, np.ndarray]:
    hu, inside = blob_volume(shape, **blob)
    image = CTImage(array=hu, intensity="hu", kind="nifti", is_volume=True,
                    pixel_spacing_mm=spacing[0], slice_thickness_mm=spacing[1],
                    spacing_source="nifti header", affine=affine,
                    to_file_layout=lambda a: np.transpose(a, (2, 1, 0)))
    return image, inside


def test_2d_mask_lands_on_the_blob_in_the_input_grid(fake_segmenter):
    image, inside = display_image()
    result = fake_segmenter.segment_image(image, name="slice")
    assert result.mask.shape == (1, 150, 200) and result.mask.dtype == np.uint8
    assert iou(result.mask, inside) > 0.9
    ys, xs = np.nonzero(result.mask[0])
    assert abs(ys.mean() - 50) < 1 and abs(xs.mean() - 140) < 1
    suffix, data = result.mask_file()
    png = Image.open(io.BytesIO(data))
    assert suffix == ".mask.png" and png.size == (200, 150) and png.mode == "L"
    assert set(np.unique(np.asarray(png))) == {0, 255}
    assert np.array_equal(np.asarray(png) == 255, result.mask[0] == 1)


def test_2d_without_spacing_reports_pixels_and_warns(fake_segmenter):
    report = fake_segmenter.segment_image(display_image()[0]).report()
    assert report["volume_ml"] is None and report["abc2_ml"] is None
    assert report["spacing_mm"] is None and report["lesion_count"] == 1
    assert report["lesion_voxels"] == sum(report["slice_areas_pixels"]) > 1500
    assert any("--spacing" in w for w in report["warnings"])
    assert report["is_volume"] is False and report["shape"] == [1, 150, 200]
    json.dumps(report, allow_nan=False)


def test_user_spacing_supplies_volume_for_2d(fake_segmenter):
    result = fake_segmenter.segment_image(display_image()[0], spacing_mm=(0.5, 0.5, 5.0))
    report = result.report()
    assert report["spacing_mm"] == [5.0, 0.5, 0.5] and report["spacing_source"] == "user"
    assert report["volume_ml"] == pytest.approx(report["lesion_voxels"] * 1.25 / 1000, rel=1e-3)
    assert report["slice_areas_mm2"][0] == pytest.approx(report["lesion_voxels"] * 0.25)


def test_volume_mask_nifti_keeps_shape_and_affine_and_volume_matches_blob(fake_segmenter):
    affine = np.array([[-0.6, 0, 0, 90], [0, -0.5, 0, 100], [0, 0, 2.0, -40], [0, 0, 0, 1]])
    image, inside = hu_volume(affine=affine, centre=(2, 40, 50), radii=(1.5, 20, 15))
    result = fake_segmenter.segment_image(image, name="vol")
    assert iou(result.mask, inside) > 0.9
    report = result.report()
    voxel_ml = 0.5 * 0.6 * 2.0 / 1000
    assert report["volume_ml"] == pytest.approx(inside.sum() * voxel_ml, rel=0.05)
    assert report["spacing_mm"] == [2.0, 0.5, 0.6] and report["is_volume"] is True
    suffix, data = result.mask_file()
    assert suffix == ".mask.nii.gz"
    nifti = nib.Nifti1Image.from_bytes(gzip.decompress(data))
    assert nifti.shape == (80, 96, 6) and nifti.get_data_dtype() == np.uint8
    assert np.allclose(nifti.affine, affine)
    assert np.array_equal(np.asarray(nifti.dataobj), result.mask.transpose(2, 1, 0))


def test_user_spacing_overriding_the_file_warns(fake_segmenter):
    image, _ = hu_volume(centre=(2, 40, 50), radii=(1.5, 20, 15))
    report = fake_segmenter.segment_image(image, spacing_mm=[1.0, 1.0]).report()
    assert report["spacing_mm"] == [2.0, 1.0, 1.0]
    assert any("overrides" in w and "nifti header" in w for w in report["warnings"])
    assert "user" in report["spacing_source"]


@pytest.mark.parametrize("bad", [(1.0,), (0.5, -1.0), (1, 2, 3, 4), ("a", "b"), (0.5, float("nan"))])
def test_invalid_spacing_is_a_400(fake_segmenter, bad):
    with pytest.raises(InputError, match="spacing") as info:
        fake_segmenter.segment_image(display_image()[0], spacing_mm=bad)
    assert info.value.status == 400


class PreviousSlicePredictor(CentreChannelPredictor):
    """Predicts each slice from its lower neighbour (channel 0): the mask moves up one slice."""

    def predict(self, x):
        self.calls += 1
        return np.asarray(x[..., 0], np.float32)


def test_context_slices_are_right_across_chunks():
    depth = CHUNK_SLICES + 8
    hu = np.zeros((depth, 40, 40), np.float32)
    hu[CHUNK_SLICES - 1:CHUNK_SLICES + 2, 10:30, 10:30] = 100.0   # straddles the chunk border
    hu[0, 5:15, 5:15] = 100.0                                       # first slice: clamped context
    image = CTImage(array=hu, intensity="hu", kind="nifti", is_volume=True)
    predictor = PreviousSlicePredictor(size=32)
    mask = Segmenter(predictors={"unet": predictor}).segment_image(image).mask
    slices = sorted(set(np.nonzero(mask)[0]))
    assert slices == [0, 1, CHUNK_SLICES, CHUNK_SLICES + 1, CHUNK_SLICES + 2]
    assert predictor.calls == -(-depth // CHUNK_SLICES)              # one call per chunk


def test_mask_nifti_is_nibabels_file_of_the_mask(fake_segmenter):
    """The streamed level-1 .nii.gz holds byte for byte the file nibabel writes for the mask."""
    from model.readers import read_sources

    display = blob_volume((5, 40, 36), (2, 20, 18), (1.5, 8, 6))[0]
    stored = np.ascontiguousarray(np.flip(display.transpose(1, 0, 2), axis=0))   # (Y, Z, X)
    affine = np.array([[0, 0, -0.5, 0], [-0.6, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 0, 1.0]])
    source = nib.Nifti1Image(stored.astype(np.int16), affine)
    image = read_sources([("odd.nii", source.to_bytes())])
    result = fake_segmenter.segment_image(image)
    assert result.mask.any()
    written = gzip.decompress(result.mask_file()[1])
    assert written == result._nifti().to_bytes()                 # what gzip.compress got before
    back = nib.Nifti1Image.from_bytes(written)
    assert back.shape == stored.shape and np.allclose(back.affine, affine)
    np.testing.assert_array_equal(np.asarray(back.dataobj), image.to_file_layout(result.mask))


def test_model_names_aliases_and_errors(tiny_weights_dir):
    seg = Segmenter(tiny_weights_dir)
    assert {m["name"] for m in seg.models()} == {"unet", "two_branch"}
    assert all(m["runtime"] == "keras" for m in seg.models())
    # the U-Net is preferred even though the fixture's two-branch has the higher CV mean Dice
    assert seg.default_model == "unet"
    assert seg.predictor("two-branch").name == "two_branch"
    with pytest.raises(InputError, match="available models: two_branch, unet") as info:
        seg.predictor("resnet")
    assert info.value.status == 400
    only_unet = Segmenter(predictors={"unet": CentreChannelPredictor()})
    with pytest.raises(ModelUnavailableError, match="no trained weights for model 'two_branch'"):
        only_unet.segment_image(display_image()[0], model="two-branch")


def test_default_model_prefers_the_unet_and_falls_back_to_what_is_loaded():
    both = {"unet": CentreChannelPredictor(), "two_branch": CentreChannelPredictor()}
    assert Segmenter(predictors=both).default_model == "unet"
    assert Segmenter(predictors={"two_branch": CentreChannelPredictor()}).default_model == "two_branch"
    assert Segmenter(predictors=both, default_model="two-branch").default_model == "two_branch"


def test_empty_weights_dir_gives_503_on_use(tmp_path):
    seg = Segmenter(tmp_path)
    assert seg.models() == [] and seg.default_model == "unet"
    with pytest.raises(ModelUnavailableError) as info:
        seg.segment_image(display_image()[0])
    assert info.value.status == 503


def test_tiny_onnx_model_end_to_end(tiny_onnx_dir):
    seg = Segmenter(tiny_onnx_dir)
    image, _ = hu_volume(shape=(3, 50, 70), centre=(1, 20, 30), radii=(1, 8, 8))
    result = seg.segment_image(image, model="unet")
    report = result.report()
    assert result.mask.shape == (3, 50, 70) and set(np.unique(result.mask)) <= {0, 1}
    assert report["model"] == {"name": "unet", "version": "0.0.1-test", "runtime": "onnx",
                               "threshold": 0.5}
    assert set(report["timings_ms"]) >= {"read", "preprocess", "predict", "postprocess",
                                         "measure", "total"}
    assert all(v >= 0 for v in report["timings_ms"].values())


def test_failures_name_their_stage():
    class Broken(CentreChannelPredictor):
        def predict(self, x):
            raise RuntimeError("boom")

    seg = Segmenter(predictors={"unet": Broken()})
    with pytest.raises(PipelineError, match="boom") as info:
        seg.segment_image(display_image()[0])
    assert info.value.stage == "predict" and str(info.value).startswith("predict:")
    bad = CTImage(array=np.zeros((4, 4), np.float32), intensity="hu", kind="nifti", is_volume=False)
    with pytest.raises(InputError, match="Z, Y, X") as info:
        seg.segment_image(bad)
    assert info.value.stage == "preprocess"


def test_rendered_outputs(fake_segmenter):
    image, _ = hu_volume(centre=(2, 40, 50), radii=(1.5, 20, 15))
    result = fake_segmenter.segment_image(image)
    overlays = result.slice_overlays_png(max_size=48)
    assert len(overlays) == 6
    assert max(Image.open(io.BytesIO(overlays[0])).size) == 48
    overlay = Image.open(io.BytesIO(result.overlay_png()))
    assert overlay.size == (80, 96)
    key = result.report()["key_slice"]
    assert np.asarray(overlay)[40, 50, 0] > np.asarray(overlay)[40, 50, 1]   # red on the lesion
    assert result.mask[key].sum() == max(result.mask[z].sum() for z in range(6))
    assert result.montage_png()[:4] == b"\x89PNG"
    assert fake_segmenter.segment_image(display_image()[0]).montage_png() is None



def test_report_lists_at_most_100_lesions_but_counts_all(fake_segmenter):
    array = np.full((1, 120, 120), 20.0, np.float32)
    array[0, 2::6, 2::6] = 230.0                      # 400 isolated bright pixels
    seg = Segmenter(predictors={"unet": CentreChannelPredictor(size=120)})
    image = CTImage(array=array, intensity="display", kind="png", is_volume=False)
    report = seg.segment_image(image).report()
    assert report["lesion_count"] == 400 and len(report["lesions"]) == 100
    assert any("100 largest of 400" in w for w in report["warnings"])


def png_bytes(array2d) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array2d, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_segment_sources_png_slices_stack_into_a_volume(fake_segmenter):
    _, inside = blob_volume((3, 64, 48), (1, 30, 20), (1.2, 12, 10))
    # uploaded out of order: stacked in natural file-name order s1, s2, s3
    sources = [(f"s{z + 1}.png", png_bytes(np.where(inside[z], 230, 20))) for z in (2, 0, 1)]
    result = fake_segmenter.segment_sources(sources, spacing_mm=(0.5, 0.5, 5.0))
    assert result.name == "s3"                                    # first uploaded file
    assert result.mask.shape == (3, 64, 48) and iou(result.mask, inside) > 0.9
    report = result.report()
    assert report["spacing_source"] == "user" and report["volume_ml"] > 0
    nifti = nib.Nifti1Image.from_bytes(gzip.decompress(result.mask_file()[1]))
    assert nifti.shape == (48, 64, 3)
    assert np.allclose(np.abs(np.diag(nifti.affine))[:3], [0.5, 0.5, 5.0])   # user voxel size


def test_segment_sources_bad_upload_is_a_read_error(fake_segmenter):
    with pytest.raises(InputError) as info:
        fake_segmenter.segment_sources([("x.png", b"not an image")])
    assert info.value.stage == "read" and 400 <= info.value.status < 500


# ---- real data + shipped weights (skipped until both exist) --------------------------------

def dice(pred, truth):
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    return 2 * (pred & truth).sum() / max(pred.sum() + truth.sum(), 1)


@pytest.fixture(scope="module")
def shipped_segmenter():
    from model.config import DEFAULT_WEIGHTS_DIR

    if not list(DEFAULT_WEIGHTS_DIR.glob("*.weights.h5")):
        pytest.skip(f"no trained weights (*.weights.h5) in {DEFAULT_WEIGHTS_DIR} yet; "
                    "train them with python -m training.train")
    return Segmenter(DEFAULT_WEIGHTS_DIR)


def real_slices(patient: str, numbers) -> tuple[list, np.ndarray]:
    from tests.conftest import real_data_dir

    root = real_data_dir() / "ct-ich"
    sources = [(f"{patient}_{n:02d}.png", (root / "images" / patient / f"{n:02d}.png").read_bytes())
               for n in numbers]
    truth = np.stack([np.asarray(Image.open(root / "masks" / patient / f"{n:02d}.png")) > 127
                      for n in numbers])
    return sources, truth


def test_real_png_slice_with_shipped_models(shipped_segmenter):
    sources, _ = real_slices("094", [24])
    for info in shipped_segmenter.models():
        result = shipped_segmenter.segment_sources(sources, model=info["name"])
        report = result.report()
        assert result.mask.shape == (1, 512, 512) and not result.is_volume
        assert report["model"]["name"] == info["name"] and report["volume_ml"] is None
        assert Image.open(io.BytesIO(result.mask_file()[1])).size == (512, 512)


def test_real_stacked_volume_with_shipped_models(shipped_segmenter):
    sources, _ = real_slices("071", range(18, 23))
    result = shipped_segmenter.segment_sources(sources, spacing_mm=(0.45, 0.45, 5.0))
    report = result.report()
    assert result.mask.shape == (5, 512, 512) and result.is_volume
    assert report["spacing_mm"] == [5.0, 0.45, 0.45]
    assert report["volume_ml"] == pytest.approx(report["lesion_voxels"] * 0.45 * 0.45 * 5 / 1000, rel=1e-3)
    assert len(result.slice_overlays_png()) == 5
    assert nib.Nifti1Image.from_bytes(gzip.decompress(result.mask_file()[1])).shape == (512, 512, 5)


@pytest.mark.parametrize("patient, numbers", [("094", [24]), ("071", range(18, 23))])
def test_shipped_models_find_the_largest_hemorrhages(shipped_segmenter, patient, numbers):
    """Quality floor: every shipped model must find the biggest bleeds of the data set (they
    are in its training set); Dice ~0 means a broken model or a preprocessing mismatch."""
    sources, truth = real_slices(patient, numbers)
    for info in shipped_segmenter.models():
        result = shipped_segmenter.segment_sources(sources, model=info["name"])
        score = dice(result.mask, truth)
        assert score > 0.3, (f"{info['name']}: Dice {score:.2f} vs the radiologists' mask on "
                             f"patient {patient} slices {list(numbers)} ({truth.sum()} lesion pixels, "
                             f"{result.mask.sum()} predicted)")


def test_8bit_nifti_export_segments_like_the_same_png_slices(fake_segmenter):
    from model.readers import read_sources
    from synthetic import make_nifti

    _, inside = blob_volume((3, 64, 48), (1, 30, 20), (1.2, 12, 10))
    # background grey 60 is 0.24 as a display value but 0.67 (over the threshold) if taken as 60 HU
    grey = np.where(inside, 230, 60).astype(np.uint8)
    from_png = fake_segmenter.segment_sources([(f"s{z}.png", png_bytes(grey[z])) for z in range(3)],
                                              spacing_mm=(0.5, 0.5, 5.0))
    nifti = read_sources([("export.nii", make_nifti(grey.transpose(2, 1, 0), dtype=np.uint8))], Limits())
    from_nifti = fake_segmenter.segment_image(nifti)
    assert from_nifti.mask.sum() == from_png.mask.sum() == inside.sum()
    assert from_nifti.report()["volume_ml"] == pytest.approx(from_png.report()["volume_ml"])
    assert any("8-bit values without a rescale" in w for w in from_nifti.report()["warnings"])


def test_core_rule_drops_a_faint_lesion_and_keeps_a_confident_one():
    hu = np.full((3, 64, 64), -20.0, np.float32)        # unit 0 in the 40/120 window
    hu[:, 8:24, 8:24] = 100.0                            # unit 1.0: confident
    hu[:, 40:56, 40:56] = 60.0                           # unit 0.67: above 0.5, below the core's 0.9
    image = CTImage(array=hu, intensity="hu", kind="nifti", is_volume=True,
                    pixel_spacing_mm=(1.0, 1.0), slice_thickness_mm=2.0, spacing_source="nifti header")
    size_rule = {"min_lesion_mm3": 0.0, "min_lesion_pixels": 0, "fill_holes": True}
    core_rule = {**size_rule, "core_threshold": 0.9, "min_core_pixels": 100, "min_core_mm3": 200.0}
    masks = {}
    for name, post in (("size", size_rule), ("core", core_rule)):
        predictor = CentreChannelPredictor(size=64, postprocess=post)
        masks[name] = Segmenter(predictors={"unet": predictor}).segment_image(image).mask
    assert masks["size"][:, 40:56, 40:56].all() and masks["size"][:, 8:24, 8:24].all()
    assert masks["core"][:, 8:24, 8:24].all() and not masks["core"][:, 32:, 32:].any()
    result = Segmenter(predictors={"unet": CentreChannelPredictor(size=64, postprocess=core_rule)}).segment_image(image)
    assert result.measurements.volume_ml == pytest.approx(3 * 16 * 16 * 2.0 / 1000)
