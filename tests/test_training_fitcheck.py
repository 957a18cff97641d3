"""Fit check: training vs test patients of a fold, raw and with the size rule (synthetic arrays)."""
from __future__ import annotations

import numpy as np
import pytest

from training.data import Patient
from training.fitcheck import patient_outcome, score_fold, summarise


def _patient(pid: str, lesion: bool, stray: bool = False) -> Patient:
    images = np.zeros((3, 16, 16), np.float32)
    masks = np.zeros_like(images)
    if lesion:
        images[:, 4:10, 4:10] = 1.0
        masks[:, 4:10, 4:10] = 1.0
    if stray:
        images[1, 14, 14] = 1.0        # one bright voxel the "model" will call a lesion
    return Patient(pid=pid, images=images, masks=masks)


def _centre_channel(x):
    """A "model" that outputs the centre slice as the probability: (N, H, W, C) -> (N, H, W, 1)."""
    return x[..., x.shape[-1] // 2:x.shape[-1] // 2 + 1]


def test_outcome_is_dice_on_a_lesion_and_a_flag_on_a_lesion_free_patient():
    truth = np.zeros((1, 8, 8), bool)
    truth[0, 2:4, 2:4] = True
    assert patient_outcome(truth.astype(np.float32), truth, 0.5, 0, 1.0) == {"raw": 1.0, "size_rule": 1.0}
    assert patient_outcome(np.zeros((1, 8, 8), np.float32), truth, 0.5, 0, 1.0)["raw"] == 0.0
    stray = np.zeros((1, 8, 8), np.float32)
    stray[0, 7, 7] = 0.9
    # lesion-free: the stray voxel is a false positive raw, removed by a 2-voxel minimum
    assert patient_outcome(stray, np.zeros_like(truth), 0.5, 2, 1.0) == {"raw": 1.0, "size_rule": 0.0}


def test_score_fold_splits_training_and_test_patients():
    patients = [_patient("a", True), _patient("b", False, stray=True), _patient("c", True), _patient("d", False)]
    config = {"threshold": 0.5, "context_slices": 1, "postprocess": {"min_lesion_pixels": 2}}
    rows = score_fold(_centre_channel, patients, {"a", "b"}, config, 1.0)
    assert [(r["pid"], r["group"]) for r in rows] == [("a", "train"), ("b", "train"), ("c", "test"), ("d", "test")]
    summary = summarise(rows)
    assert summary["train"]["hemorrhage_patients"] == 1 and summary["train"]["lesion_free_patients"] == 1
    assert summary["train"]["raw"] == {"mean_dice": 1.0, "median_dice": 1.0, "false_positive_patients": 1}
    assert summary["train"]["size_rule"]["false_positive_patients"] == 0
    assert summary["test"]["raw"]["false_positive_patients"] == 0


def test_summary_of_a_group_without_hemorrhage_patients_has_no_dice():
    rows = [{"group": "test", "has_lesion": False, "raw": 1.0, "size_rule": 0.0},
            {"group": "test", "has_lesion": True, "raw": 0.2, "size_rule": 0.0},
            {"group": "test", "has_lesion": True, "raw": 0.6, "size_rule": 0.4}]
    out = summarise(rows)["test"]
    assert out["raw"]["mean_dice"] == pytest.approx(0.4) and out["size_rule"]["median_dice"] == pytest.approx(0.2)
    assert summarise(rows[:1])["test"]["raw"]["mean_dice"] is None


def test_the_command_scores_folds_with_the_mirror_channel(tmp_path, tiny_training, tiny_png_dataset):
    """``python -m training.fitcheck`` end to end on folds whose NAME.json asks for the mirror channel
    while the shipped config does not: each fold is fed the inputs it was trained on."""
    import json

    from tests.conftest import write_fold
    from training.data import dataset_folds
    from training.fitcheck import main

    cfg = {**tiny_training.model_config("unet"), "mirror_channel": True, "in_channels": 4}
    folds = dataset_folds(tiny_png_dataset, 2, 0)
    runs = tmp_path / "runs"
    for k, test in enumerate(folds):
        train = [p for f in folds if f is not test for p in f]
        write_fold(runs, k, {**cfg, "training": {"steps": 1, "train_patients": train}})
    main(["--model", "unet", "--data", str(tiny_png_dataset), "--runs", str(runs), "--folds", "2",
          "--out", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "unet_fitcheck.json").read_text())
    assert sorted(report["folds"]) == ["0", "1"]
    rows = [r for f in report["folds"].values() for r in f["patients"]]
    assert sorted(r["pid"] for r in rows if r["group"] == "test") == ["001", "002"]
