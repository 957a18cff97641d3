"""Training package: patient splits, augmentation alignment, one training step, metrics."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.augment import augment, dihedral
from training.data import load_dataset, stratified_folds, split_validation
from training.metrics import dice, iou, relative_volume_difference, slice_detection
from training.sampler import BalancedSampler

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "ct-ich"


def _ids(n_pos=29, n_neg=31):
    pids = [f"{i:03d}" for i in range(n_pos + n_neg)]
    return pids, set(pids[:n_pos])


def test_folds_partition_patients_without_overlap_and_stratified():
    pids, pos = _ids()
    folds = stratified_folds(pids, pos, 5, seed=3)
    flat = [p for f in folds for p in f]
    assert sorted(flat) == sorted(pids)            # every patient exactly once
    assert len(set(flat)) == len(flat)
    counts = [len(set(f) & pos) for f in folds]
    assert max(counts) - min(counts) <= 1          # hemorrhage patients spread evenly
    assert max(map(len, folds)) - min(map(len, folds)) <= 1


def test_validation_split_is_by_patient_and_has_positives():
    pids, pos = _ids()
    train, val = split_validation(pids, pos, 0.2, seed=0)
    assert not set(train) & set(val)
    assert set(train) | set(val) == set(pids)
    assert 0 < len(set(val) & pos) < len(val)


def _blob_image(size=32, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.float32)
    mask[5:12, 18:27] = 1.0                         # asymmetric so every symmetry is distinct
    image = np.repeat((0.2 + 0.6 * mask + 0.05 * rng.random((size, size)))[..., None], channels, -1)
    return image.astype(np.float32), mask


@pytest.mark.parametrize("k,flip", [(k, f) for k in range(4) for f in (False, True)])
def test_dihedral_keeps_image_and_mask_aligned(k, flip):
    image, mask = _blob_image()
    img2, msk2 = dihedral(image, mask, k, flip)
    assert np.array_equal(img2[..., 1] > 0.5, msk2 > 0.5)


def test_random_augmentation_keeps_mask_on_the_bright_blob():
    rng = np.random.default_rng(0)
    for seed in range(20):
        image, mask = _blob_image(64, seed=seed)
        img2, msk2 = augment(image, mask, rng, p_affine=1.0, p_intensity=0.0)
        inside = img2[..., 0][msk2 > 0.9]
        outside = img2[..., 0][msk2 < 0.1]
        assert inside.size and inside.mean() > outside.mean() + 0.4


def test_without_orientations_augmentation_keeps_the_exported_orientation_and_random_stream():
    image, mask = _blob_image(64, seed=3)
    asymmetric = mask.copy()
    asymmetric[:8, :8] = 1.0                          # a corner no flip or rotation keeps in place
    moved = 0
    for seed in range(8):
        img_all, msk_all = augment(image, asymmetric, np.random.default_rng(seed), p_affine=0.0, p_intensity=0.0)
        img_one, msk_one = augment(image, asymmetric, np.random.default_rng(seed), p_affine=0.0, p_intensity=0.0,
                                   all_orientations=False)
        assert np.array_equal(msk_one, asymmetric) and np.array_equal(img_one, image)
        moved += not np.array_equal(msk_all, asymmetric)
    assert moved >= 4                                 # with all 8 most draws move it
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    augment(image, mask, a)
    augment(image, mask, b, all_orientations=False)
    assert a.random() == b.random()                   # same draws consumed


def test_an_unknown_orientations_setting_is_refused():
    from training.recipe import all_orientations

    assert all_orientations({}) and not all_orientations({"orientations": "as_exported"})
    with pytest.raises(SystemExit, match="orientations"):
        all_orientations({"orientations": "none"})


def test_sampler_balances_lesion_slices_and_shapes(synthetic_patients):
    sampler = BalancedSampler(synthetic_patients, 8, context=1, seed=0, augment_data=False)
    x, y = sampler.batch()
    assert x.shape == (8, 32, 32, 3) and y.shape == (8, 32, 32, 1)
    assert int((y.reshape(8, -1).max(axis=1) > 0).sum()) == round(8 * sampler.positive_fraction)


def test_one_training_step_writes_weights_and_config(tmp_path, monkeypatch, tiny_training, synthetic_patients):
    from training.train import train_model

    monkeypatch.setitem(tiny_training.TRAINING, "unet", {"steps": 2, "batch_size": 4, "learning_rate": 1e-3, "val_every": 2})
    patients = synthetic_patients
    config = train_model("unet", patients[:2], patients[2:], tmp_path / "w", tmp_path / "runs", steps=2)
    assert (tmp_path / "w" / "unet.weights.h5").stat().st_size > 0
    written = json.loads((tmp_path / "w" / "unet.json").read_text())
    assert written["input_size"] == [32, 32] and written["training"]["steps"] == 2
    assert 0 < written["threshold"] < 1 and "validation" in written["metrics"]
    assert config["training"]["val_patients"] == ["p2"]
    assert written["orientation"] == "any"          # 8 orientations learned: uploads used as they are


def test_a_model_trained_in_the_exported_frame_says_so_for_the_pipeline(tmp_path, tiny_training, synthetic_patients,
                                                                        monkeypatch):
    from training.train import train_model

    monkeypatch.setitem(tiny_training.TRAINING, "unet", {"steps": 1, "batch_size": 2, "learning_rate": 1e-3,
                                                         "val_every": 1, "orientations": "as_exported"})
    train_model("unet", synthetic_patients[:2], [], tmp_path / "w", tmp_path / "runs", steps=1)
    written = json.loads((tmp_path / "w" / "unet.json").read_text())
    assert written["orientation"] == "anterior_right" and "exported orientation only" in written["training"]["augmentation"]


def test_dice_of_perfect_prediction_is_one_and_empty_on_lesion_is_zero():
    truth = np.zeros((4, 16, 16), bool)
    truth[1:3, 4:9, 4:9] = True
    assert dice(truth, truth) == 1.0
    assert dice(np.zeros_like(truth), truth) == 0.0
    assert iou(truth, truth) == 1.0
    half = truth.copy()
    half[2] = False
    assert dice(half, truth) == pytest.approx(2 * 25 / (25 + 50))
    assert relative_volume_difference(half, truth) == pytest.approx(0.5)
    assert relative_volume_difference(truth, np.zeros_like(truth)) is None
    assert slice_detection(half, truth) == {"tp": 1, "fp": 0, "fn": 1, "tn": 2}


@pytest.mark.skipif(not DATA.exists(), reason="real data ../shared/data/ct-ich not present")
def test_real_dataset_loads_60_patients_29_with_hemorrhage(tmp_path):
    patients = load_dataset(DATA, (64, 64), cache_dir=tmp_path)
    assert len(patients) == 60
    assert sum(p.has_lesion for p in patients) == 29
    assert all(p.images.shape == p.masks.shape and p.images.shape[1:] == (64, 64) for p in patients)
    assert 0.0 <= float(patients[0].images.min()) and float(patients[0].images.max()) <= 1.0


def test_selection_score_never_prefers_an_empty_prediction():
    """Early stopping and the threshold choice must not pick a net that finds nothing."""
    from training.validate import FP_PENALTY, choose_postprocessing, selection_score

    assert selection_score([0.0, 0.0], 0, 2) == 0.0                     # finds nothing
    assert selection_score([0.3, 0.1], 1, 2) == pytest.approx(0.2 - FP_PENALTY / 2)
    assert selection_score([0.3, 0.1], 1, 2) > selection_score([0.0, 0.0], 0, 2)
    truth = np.zeros((4, 16, 16), bool)
    truth[1:3, 4:10, 4:10] = True
    prob_pos = np.where(truth, 0.95, 0.05).astype(np.float32)          # a perfect net
    prob_neg = np.full((4, 16, 16), 0.05, np.float32)
    prob_neg[2, 1:3, 1:3] = 0.65                                         # one weak false blob
    best = choose_postprocessing([prob_pos, prob_neg], [truth, np.zeros_like(truth)], 1.0)
    assert best["dice_positive"] == 1.0 and best["fp_patients"] == 0 and best["threshold"] > 0.65
