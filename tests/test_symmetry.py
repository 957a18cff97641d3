"""The mirror channel: the head's midline and slices mirrored about it (model.symmetry), and the
channel's way through the pipeline, the config and the training sampler."""
import json

import numpy as np
import pytest

from model.config import validate_config
from model.preprocess import model_input
from model.symmetry import head_masks, midline, mirror_slices, mirrored_stack, stack_midline


def head(shape=(3, 96, 96), angle_deg=0.0, spot=(40, 30)):
    """(Z, Y, X) unit-range slices of an elliptical head (long axis turned by angle_deg from the
    rows) with a bright 5x5 spot at ``spot`` (row, col) on slice 1."""
    z, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] - np.array([h / 2, w / 2])[:, None, None]
    a = np.deg2rad(angle_deg)
    along, across = yy * np.cos(a) + xx * np.sin(a), -yy * np.sin(a) + xx * np.cos(a)
    inside = (along / 40) ** 2 + (across / 28) ** 2 <= 1
    image = np.where(inside, 0.45, 0.0).astype(np.float32)[None].repeat(z, 0)
    image[1, spot[0] - 2:spot[0] + 3, spot[1] - 2:spot[1] + 3] = 0.9
    return image


def test_a_spot_on_one_side_appears_at_the_same_place_on_the_other_side_in_the_mirror():
    image = head(spot=(40, 30))                   # midline is the column through the centre, x = 48
    mirrored = mirrored_stack(image)
    assert mirrored[1, 40, 66] == pytest.approx(0.9, abs=0.05)   # 48 + (48 - 30)
    assert mirrored[1, 40, 30] == pytest.approx(0.45, abs=0.05)
    assert np.abs(mirrored[0] - image[0]).max() < 0.05           # a symmetric slice mirrors onto itself


def test_the_midline_follows_a_tilted_head_and_mirroring_twice_gives_the_slice_back():
    line = stack_midline(head(angle_deg=30.0))
    along = np.array([line.across[1], -line.across[0]])          # perpendicular to "across"
    assert abs(abs(along @ [np.cos(np.deg2rad(30)), np.sin(np.deg2rad(30))]) - 1) < 0.01
    image = head(angle_deg=30.0)
    twice = mirror_slices(mirror_slices(image, line), line)
    inner = head_masks(image)[1] & (np.abs(np.mgrid[0:96, 0:96] - 48).max(0) < 30)
    assert np.abs(twice[1] - image[1])[inner].mean() < 0.02


@pytest.mark.parametrize("k,flip", [(1, False), (2, True), (3, False)])
def test_mirroring_needs_no_orientation_it_turns_with_the_slices(k, flip):
    image = head(angle_deg=20.0)

    def turn(a):
        a = np.rot90(a, k, axes=(1, 2))
        return np.ascontiguousarray(a[:, :, ::-1] if flip else a)

    assert np.abs(mirrored_stack(turn(image)) - turn(mirrored_stack(image))).max() < 0.06


def test_no_head_means_no_midline_and_the_mirror_is_the_slice_itself():
    empty = np.zeros((2, 32, 32), np.float32)
    assert midline(head_masks(empty)) is None
    np.testing.assert_array_equal(mirrored_stack(empty), empty)


def test_model_input_adds_the_mirror_as_the_last_channel_and_uses_the_line_it_is_given():
    image = head()
    plain = model_input(image, (48, 48), context=1)
    with_mirror = model_input(image, (48, 48), context=1, mirror=True)
    assert plain.shape == (3, 48, 48, 3) and with_mirror.shape == (3, 48, 48, 4)
    np.testing.assert_array_equal(with_mirror[..., :3], plain)
    np.testing.assert_allclose(with_mirror[..., 3], mirrored_stack(with_mirror[..., 1]), atol=1e-6)
    # a chunk of a stack uses the stack's line, not its own
    line = stack_midline(model_input(image, (48, 48), 1)[..., 1])
    chunk = model_input(image[1:2], (48, 48), context=1, mirror=True, line=line)
    np.testing.assert_allclose(chunk[0, ..., 3], with_mirror[1, ..., 3], atol=1e-6)


def test_the_config_counts_the_mirror_channel():
    base = {"architecture": "unet", "input_size": [32, 32], "context_slices": 1}
    assert validate_config(dict(base))["in_channels"] == 3
    assert validate_config({**base, "mirror_channel": True})["in_channels"] == 4
    with pytest.raises(Exception, match="mirror_channel"):
        validate_config({**base, "mirror_channel": True, "in_channels": 3})


def test_the_pipeline_feeds_the_mirror_channel_of_the_whole_stack():
    """A fake model that answers with the last channel: with ``mirror_channel`` the mask is the
    spot's mirror image across the head's midline, found for the whole stack."""
    from conftest import CentreChannelPredictor
    from model.pipeline import Segmenter
    from model.types import CTImage

    class MirrorChannelPredictor(CentreChannelPredictor):
        def predict(self, x):
            assert x.shape[-1] == 4
            return np.asarray(x[..., -1] > 0.7, dtype=np.float32)

    predictor = MirrorChannelPredictor(size=96, mirror_channel=True, in_channels=4)
    grey = head() * 255.0                               # display values of the training window
    result = Segmenter(predictors={"unet": predictor}).segment_image(
        CTImage(array=grey, intensity="display", kind="png", is_volume=True))
    rows, cols = np.nonzero(result.mask[1])
    assert result.mask[[0, 2]].sum() == 0 and len(rows) > 0
    assert abs(rows.mean() - 40) <= 1 and abs(cols.mean() - 66) <= 1


def test_the_sampler_adds_each_slice_mirror_and_refuses_what_it_cannot_mirror(synthetic_patients):
    from training.data import with_mirrors
    from training.sampler import BalancedSampler

    patients = with_mirrors(synthetic_patients, {"mirror_channel": True})
    x, _ = BalancedSampler(patients, 8, context=1, seed=0, augment_data=False).batch()
    assert x.shape == (8, 32, 32, 4)
    mirrors = np.concatenate([p.mirrored for p in patients]).astype(np.float32)
    assert all(np.abs(mirrors - sample[..., 3]).reshape(len(mirrors), -1).max(1).min() == 0 for sample in x)
    with pytest.raises(ValueError, match="mirror channel"):
        BalancedSampler(patients, 4, context=1, seed=0, dim_fraction=1.0).batch()


def test_predict_patient_follows_the_config_not_what_the_patient_was_given_before(synthetic_patients):
    """Evaluation reuses cached patients across folds: a fold trained without the mirror channel must
    get 3 channels even after another fold gave the patient mirrored slices, and one trained with it
    gets them computed on the spot."""
    from model.preprocess import stack_input
    from training.validate import predict_patient

    seen = []

    def predict(x):
        seen.append(x.copy())
        return x[..., :1]

    patient = synthetic_patients[0]
    assert patient.mirrored is None
    predict_patient(predict, patient, {"context_slices": 1, "mirror_channel": True})
    with_mirror = np.concatenate(seen)
    assert with_mirror.shape[-1] == 4 and patient.mirrored is not None
    np.testing.assert_array_equal(with_mirror[..., 3], patient.mirrored.astype(np.float32))
    seen.clear()
    predict_patient(predict, patient, {"context_slices": 1})
    np.testing.assert_array_equal(np.concatenate(seen), stack_input(patient.images.astype(np.float32), 1))


def test_one_training_step_with_the_mirror_channel_gives_weights_the_pipeline_runs(
        tmp_path, monkeypatch, tiny_training, synthetic_patients):
    from model.pipeline import Segmenter
    from model.types import CTImage
    from training.report import model_section
    from training.train import train_model

    monkeypatch.setitem(tiny_training.MODELS["unet"], "mirror_channel", True)
    monkeypatch.setitem(tiny_training.TRAINING, "unet", {"steps": 1, "batch_size": 2, "learning_rate": 1e-3,
                                                         "val_every": 1})
    train_model("unet", synthetic_patients[:2], synthetic_patients[2:], tmp_path / "w", tmp_path / "runs", steps=1)
    written = json.loads((tmp_path / "w" / "unet.json").read_text())
    assert written["mirror_channel"] is True and written["in_channels"] == 4
    assert "mirrored about the head midline" in model_section(tmp_path / "w", "unet")
    result = Segmenter(tmp_path / "w").segment_image(CTImage(array=head() * 255.0, intensity="display", kind="png",
                                                             is_volume=True))
    assert result.mask.shape == (3, 96, 96)


def test_the_pipeline_finds_one_midline_for_the_whole_upload_across_its_chunks():
    from model.pipeline import CHUNK_SLICES, upload_midline
    from model.preprocess import Window, resize_slices, to_unit_range
    from model.types import CTImage

    grey = np.concatenate([head(angle_deg=a)[:1] for a in (0, 5, 10, 15, 20, 25, 30, 35, 40)]) * 255.0
    assert len(grey) > 2 * CHUNK_SLICES
    image = CTImage(array=grey, intensity="display", kind="png", is_volume=True)
    found = upload_midline(image, Window(40.0, 120.0), (48, 48))
    whole = stack_midline(resize_slices(to_unit_range(grey, "display", Window(40.0, 120.0)), (48, 48)))
    np.testing.assert_allclose(found.centre, whole.centre)
    np.testing.assert_allclose(np.abs(found.across), np.abs(whole.across))
