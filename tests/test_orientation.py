"""Orientation stage: uploads are turned into a model's training frame and the mask is turned back.

A model trained in the ct-ich export frame (``"orientation": "anterior_right"``: the face toward
increasing column index) must see every upload that way; the radiological view (anterior up) is one
clockwise quarter turn from it. Files that state their geometry are turned deterministically, the rest
by the pixel-based estimator, which is fitted and checked here on synthetic heads.
"""
import io
import json

import nibabel as nib
import numpy as np
import pytest

from model.errors import PipelineError
from model.orientation import (RADIOLOGICAL_TO_ANTERIOR_RIGHT, Estimate, OrientationEstimator, head_thumbnail,
                               load_estimator, quarter_turns)
from model.pipeline import ANTERIOR_SIDE, Segmenter, orientation_turns
from model.preprocess import Window
from model.readers import read_sources
from model.types import CTImage, Limits
from tests.conftest import CentreChannelPredictor, real_data_dir
from tests.synthetic import make_dicom, make_dicom_series, make_nifti
from training.orientation import fit, score_patient


class RightHalfPredictor(CentreChannelPredictor):
    """Fake model that only 'sees' bleeds in the right half of its input, like a net that has only
    ever seen heads in one frame: the probability is the slice itself there and 0 on the left."""

    def predict(self, x):
        prob = super().predict(x).copy()
        prob[:, :, : prob.shape[2] // 2] = 0.0
        return prob


class FixedEstimator:
    """Stub estimator that always answers ``turns``."""

    def __init__(self, turns):
        self.turns = turns

    def estimate(self, planes):
        return Estimate(turns=self.turns, confidence=0.97, slices=3)


def blob_at(row, col, shape=(3, 96, 96), intensity="hu", radiological=False):
    """(Z, Y, X) image with one bright square centred at (row, col), and its mask."""
    array = np.zeros(shape, np.float32)
    mask = np.zeros(shape, bool)
    mask[:, row - 8:row + 8, col - 8:col + 8] = True
    array[mask] = 100.0 if intensity == "hu" else 255.0
    return CTImage(array=array, intensity=intensity, kind="nifti" if intensity == "hu" else "png",
                   is_volume=True, radiological_view=radiological), mask


def segmenter(frame="anterior_right", estimator=None, tmp_path=None):
    predictor = RightHalfPredictor(size=64, orientation=frame)
    return Segmenter(predictors={"unet": predictor}, estimator=estimator,
                     weights_dir=tmp_path if tmp_path is not None else "/nonexistent")


def test_quarter_turn_directions():
    marker = np.zeros((1, 3, 3))
    marker[0, 0, 1] = 1  # top middle: the front of the head in the radiological view
    turned = quarter_turns(marker, RADIOLOGICAL_TO_ANTERIOR_RIGHT)
    assert turned[0, 1, 2] == 1  # right middle: the front in the model frame
    for turns, side in ANTERIOR_SIDE.items():
        position = {"right": (1, 2), "bottom": (2, 1), "left": (1, 0), "top": (0, 1)}[side]
        upload = np.zeros((1, 3, 3))
        upload[(0, *position)] = 1
        assert quarter_turns(upload, turns)[0, 1, 2] == 1, side
    assert np.array_equal(quarter_turns(quarter_turns(marker, 1), -1), marker)


def test_radiological_upload_is_turned_and_the_mask_comes_back_on_its_grid():
    image, mask = blob_at(20, 24, radiological=True)  # top left: turned clockwise it is top right
    result = segmenter().segment_image(image)
    assert result.mask.shape == image.array.shape
    assert (result.mask.astype(bool) & mask).sum() / (result.mask.astype(bool) | mask).sum() > 0.8
    assert not any("orientation" in w for w in result.warnings)
    assert result.report()["orientation"] == {"model_frame": "anterior_right", "quarter_turns": 3,
                                              "source": "file geometry", "confidence": None}

    image, _ = blob_at(76, 24, radiological=True)      # bottom left -> top left in the model frame: unseen
    assert segmenter().segment_image(image).mask.sum() == 0


def test_a_model_trained_on_all_orientations_gets_the_upload_as_it_is():
    image, _ = blob_at(20, 24, radiological=True)
    result = segmenter(frame="any").segment_image(image)
    assert result.mask.sum() == 0                                          # left half stays left
    assert result.report()["orientation"] == {"model_frame": "any", "quarter_turns": 0, "source": "not needed",
                                              "confidence": None}
    image, mask = blob_at(20, 72, radiological=True)
    assert np.array_equal(segmenter(frame="any").segment_image(image).mask.astype(bool), mask)


def test_estimated_turn_is_applied_undone_and_reported():
    image, mask = blob_at(76, 40, intensity="display")     # bottom: one counter-clockwise turn -> right
    result = segmenter(estimator=FixedEstimator(1)).segment_image(image)
    assert (result.mask.astype(bool) & mask).sum() / mask.sum() > 0.8
    assert any("front of the head at the bottom" in w and "0.97" in w for w in result.warnings)
    assert result.report()["orientation"] == {"model_frame": "anterior_right", "quarter_turns": 1,
                                              "source": "estimated", "confidence": 0.97}


def test_model_needing_an_estimator_without_one_fails_clearly(tmp_path):
    image, _ = blob_at(20, 24, intensity="display")
    with pytest.raises(PipelineError) as err:
        segmenter(tmp_path=tmp_path).segment_image(image)
    assert err.value.stage == "orient" and err.value.status == 503
    assert "training.orientation" in err.value.message


def synthetic_head(rng, size=160):
    """(Y, X) slice in [0, 1] in the model frame: an oval head (long axis along the columns), a skull
    ring, and facial bones on the right (anterior) side, with random size, position and noise."""
    yy, xx = np.indices((size, size))
    cy, cx = size / 2 + rng.uniform(-8, 8), size / 2 + rng.uniform(-8, 8)
    ry, rx = rng.uniform(38, 46), rng.uniform(55, 64)
    r = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    img = np.where(r <= 1, 0.5, 0.0) + np.where((r > 0.8) & (r <= 1), 0.5, 0.0)
    face = (((yy - cy) / (ry * 0.5)) ** 2 + ((xx - cx - rx * 0.8) / (rx * 0.2)) ** 2) <= 1
    img = np.where(face & (rng.random((size, size)) < 0.5), 1.0, img)
    return np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1).astype(np.float32)


def test_estimator_learns_quarter_turns_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    template = OrientationEstimator(weights=np.zeros(0))
    train = np.stack([head_thumbnail(synthetic_head(rng), template.size, template.head_level,
                                     template.bone_level) for _ in range(24)])
    estimator = fit(train, template)
    test_slices = np.stack([synthetic_head(rng) for _ in range(4)])
    for turns in range(4):
        for mirror in (False, True):
            shown = quarter_turns(test_slices[:, ::-1] if mirror else test_slices, -turns)
            found = estimator.estimate(shown)
            assert found.turns == turns and found.confidence > 0.9 and found.slices == 4
    assert score_patient(estimator, train[:3])["volumes_right"] == 8
    estimator.save(tmp_path)
    loaded = load_estimator(tmp_path)
    assert np.allclose(loaded.weights, estimator.weights, atol=1e-6)
    assert loaded.window == template.window == Window(40.0, 120.0)
    assert loaded.estimate(quarter_turns(test_slices, -3)).turns == 3
    assert estimator.estimate(np.zeros((2, 64, 64), np.float32)) is None   # no head: no estimate


def test_an_hu_upload_is_scored_in_the_estimators_own_window():
    seen = []

    class Spy:                                   # records what the pipeline hands the estimator
        window = Window(0.0, 200.0)              # maps -100..100 HU to 0..1

        def estimate(self, planes):
            seen.extend(planes)
            return None

    image = CTImage(array=np.full((2, 8, 8), 50.0, np.float32), intensity="hu", kind="nifti", is_volume=True)
    info, notes = orientation_turns({"name": "m", "orientation": "anterior_right"}, image, Spy())
    assert info["source"] == "no head found" and notes
    assert len(seen) == 2 and np.allclose(seen[0], 0.75)     # (50 + 100) / 200, not the model's window


def test_an_estimator_file_without_its_window_is_refused(tmp_path):
    OrientationEstimator(weights=np.zeros(2048)).save(tmp_path)
    data = json.loads((tmp_path / "orientation.json").read_text())
    assert data["window"] == {"level": 40.0, "width": 120.0}
    del data["window"]
    (tmp_path / "orientation.json").write_text(json.dumps(data))
    with pytest.raises(PipelineError, match="window"):
        load_estimator(tmp_path)


def test_broken_estimator_file_is_reported(tmp_path):
    (tmp_path / "orientation.json").write_text('{"thumbnail_size": 32, "weights": [1, 2]}')
    with pytest.raises(PipelineError, match="orientation estimator"):
        load_estimator(tmp_path)


def test_readers_say_when_the_geometry_gives_the_radiological_view():
    volume = np.full((16, 16, 4), 30, np.int16)
    assert read_sources([("a.nii", make_nifti(volume))], Limits()).radiological_view
    img = nib.Nifti1Image(volume, None)   # no affine: qform and sform codes 0
    assert int(img.header["sform_code"]) == int(img.header["qform_code"]) == 0
    assert not read_sources([("b.nii", img.to_bytes())], Limits()).radiological_view
    assert read_sources(make_dicom_series(n=3), Limits()).radiological_view
    slice_hu = np.full((32, 32), 1000, np.int16)
    assert read_sources([("a.dcm", make_dicom(slice_hu))], Limits()).radiological_view
    assert not read_sources([("b.dcm", make_dicom(slice_hu, iop=None))], Limits()).radiological_view
    assert not read_sources(make_dicom_series(n=3, iop=(0, 1, 0, 1, 0, 0)), Limits()).radiological_view


def test_shipped_estimator_on_real_slices_in_every_quarter_turn():
    from training.data import load_patient_png, read_index

    data = real_data_dir() / "ct-ich"
    estimator = load_estimator("model/weights")
    if estimator is None:
        pytest.skip("no model/weights/orientation.json (train it with python -m training.orientation)")
    index = read_index(data)
    for pid in ("049", "085"):
        images, _ = load_patient_png(data, index[pid])
        unit = images[::3].astype(np.float32) / 255.0
        for turns in range(4):
            assert estimator.estimate(quarter_turns(unit, -turns)).turns == turns, (pid, turns)


def test_model_card_states_the_frame_and_the_estimators_measured_accuracy(tmp_path):
    from training.report import estimator_lines, orientation_text

    assert "all 8 flips" in orientation_text({}) and "all 8 flips" in orientation_text({"orientation": "any"})
    assert "turns every upload" in orientation_text({"orientation": "anterior_right"})
    assert estimator_lines(tmp_path) == ""                                  # nothing shipped: nothing claimed
    OrientationEstimator(weights=np.zeros(2048)).save(tmp_path)
    assert estimator_lines(tmp_path) == ""                                  # not measured: nothing claimed
    cv = {"volumes_right": 479, "volumes": 480, "single_slice_accuracy": 0.8532}
    OrientationEstimator(weights=np.zeros(2048), metrics={"cross_validation": cv, "folds": 5}).save(tmp_path)
    assert "479 of 480 stacks" in estimator_lines(tmp_path) and "85.3%" in estimator_lines(tmp_path)
