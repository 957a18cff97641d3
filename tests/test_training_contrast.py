"""Lesion contrast (how much brighter a bleed is than the tissue around it) and its CV breakdown."""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import write_fold
from training.metrics import dice_by_contrast, lesion_contrast_hu
from training.cv_tables import contrast_sentence
from training.report import _cycles


def _volume():
    """(3, 20, 20) display volume: tissue 128, air 0, bone 255; a lesion at 179 on slice 1 only."""
    display = np.full((3, 20, 20), 128.0)
    display[:, :, :3] = 0                # air, as on an export: clipped to 0
    display[:, :, -3:] = 255             # bone, clipped to 255
    display[0], display[2] = 60.0, 60.0  # lesion-free slices: other tissue, must be ignored
    display[0, :, :3] = display[2, :, :3] = 0
    truth = np.zeros(display.shape, bool)
    truth[1, 8:12, 8:12] = True
    display[truth] = 179.0
    return display, truth


def test_contrast_is_lesion_minus_unclipped_tissue_on_the_lesion_slices_in_hu():
    display, truth = _volume()
    # 51 grey levels in a 120 HU window = 24 HU; air, bone and the other slices do not count
    assert lesion_contrast_hu(display, truth, 40.0, 120.0) == pytest.approx(51 * 120 / 255)
    assert lesion_contrast_hu(display, truth, 40.0, 255.0) == pytest.approx(51.0)
    assert lesion_contrast_hu(display, np.zeros_like(truth), 40.0, 120.0) is None


def test_an_isodense_lesion_has_no_contrast():
    display, truth = _volume()
    display[truth] = 128.0
    assert lesion_contrast_hu(display, truth, 40.0, 120.0) == pytest.approx(0.0)


def test_dice_by_contrast_bins_patients_and_counts_the_missed():
    patients = [{"dice": 0.0, "lesion_contrast_hu": -3.0}, {"dice": 0.0, "lesion_contrast_hu": 9.9},
                {"dice": 0.4, "lesion_contrast_hu": 10.0}, {"dice": 0.8, "lesion_contrast_hu": 35.0},
                {"dice": 0.6, "lesion_contrast_hu": 20.0}, {"dice": 0.5, "lesion_contrast_hu": None}]
    bins = dice_by_contrast(patients)
    assert [b["range_hu"] for b in bins] == [[None, 10.0], [10.0, 20.0], [20.0, None]]
    assert [b["n"] for b in bins] == [2, 1, 2]                 # the one without a contrast is left out
    assert [b["missed"] for b in bins] == [2, 0, 0]
    assert bins[2]["mean_dice"] == pytest.approx(0.7)
    sentence = contrast_sentence({"dice_by_lesion_contrast": bins})
    assert "< 10 HU mean Dice 0.000 (2 patients, 2 missed)" in sentence
    assert ">= 20 HU mean Dice 0.700 (2 patients, 0 missed)" in sentence
    assert contrast_sentence({}) == ""                          # reports written before the breakdown


def test_model_card_names_cycles_of_different_lengths():
    base = {"learning_rate": 0.002, "lr_cycle_decay": 0.25}
    assert "2 cycles of 2000, 1000 steps" in _cycles({**base, "steps": 3000, "lr_cycle_steps": 2000,
                                                      "lr_cycle_mul": 0.5})
    assert "3 cycles of 1000 steps" in _cycles({**base, "steps": 3000, "lr_cycle_steps": 1000})


def test_cv_evaluation_reports_each_bleeds_contrast_and_the_breakdown(tmp_path, tiny_training, tiny_png_dataset):
    from training.evaluate import evaluate_folds, summarize_cv

    write_fold(tmp_path / "runs", 0, tiny_training.model_config("unet"))

    result = evaluate_folds("unet", tiny_png_dataset, [["001", "002"]], tmp_path / "runs")
    bleed, clean = result["per_patient"]["001"], result["per_patient"]["002"]
    # grey 220 on uniform noise of 40-100 (median ~70): ~150 grey levels of a 120 HU window
    assert bleed["lesion_contrast_hu"] == pytest.approx((220 - 70) * 120 / 255, abs=2.0)
    assert clean["lesion_contrast_hu"] is None
    bins = summarize_cv(result["per_patient"])["dice_by_lesion_contrast"]
    assert [b["n"] for b in bins] == [0, 0, 1]
    assert bins[2]["mean_dice"] == pytest.approx(bleed["dice"])


def test_cv_evaluation_in_the_radiological_view_scores_masks_on_the_pngs_grid(tmp_path, tiny_png_dataset, monkeypatch):
    """The test stacks are shown turned (anterior up) and the masks turned back before scoring."""
    import model.pipeline
    from tests.conftest import CentreChannelPredictor
    from training.evaluate import evaluate_folds

    fake = CentreChannelPredictor(size=32)
    write_fold(tmp_path, 0, {**fake.config, "training": {"steps": 1}})
    real = model.pipeline.Segmenter
    monkeypatch.setattr(model.pipeline, "Segmenter",
                        lambda weights_dir: real(predictors={"unet": fake}))
    for view in ("exported", "radiological"):
        bleed = evaluate_folds("unet", tiny_png_dataset, [["001", "002"]], tmp_path, view)["per_patient"]["001"]
        assert bleed["dice"] == 1.0 and bleed["slice_area"] == [0, 64, 64, 0], view
