"""Intensity-robustness conditions (other windows, JPEG, gamma) and their scoring through the pipeline."""
from __future__ import annotations

import json

import numpy as np
import pytest

from model.preprocess import Window
from tests.conftest import write_fold
from training.robustness import CONDITIONS, Gamma, Jpeg, Reexport, Unchanged, Viewed, main

PNG = Window(40.0, 120.0)   # how the ct-ich PNGs were exported


def _png_of(hu: np.ndarray) -> np.ndarray:
    return np.round(PNG(hu) * 255.0).astype(np.float32)


def test_reexport_gives_what_exporting_the_hu_with_that_window_gives():
    hu = np.linspace(-60, 140, 2001, dtype=np.float32).reshape(1, 1, -1)
    for level, width in ((40, 80), (50, 100), (40, 40)):
        direct = np.round(Window(level, width)(hu) * 255.0)
        simulated = Reexport(level, width)(_png_of(hu))
        # one PNG grey level is 120/255 HU: up to width 120/W grey levels of quantisation, plus rounding
        assert np.abs(simulated - direct).max() <= np.ceil(120.0 / width) + 1
    assert Reexport(40, 120)(_png_of(hu)).tolist() == _png_of(hu).tolist()   # the PNGs' own window


def test_a_narrower_window_raises_the_contrast_of_blood_over_brain():
    brain, blood = _png_of(np.array([30.0], np.float32)), _png_of(np.array([65.0], np.float32))
    w80 = Reexport(40, 80)
    assert (w80(blood) - w80(brain))[0] > 1.4 * (blood - brain)[0]


def test_windows_outside_the_pngs_range_are_refused():
    with pytest.raises(ValueError, match="only windows inside"):
        Reexport(40, 160)                        # needs HU below -20 and above 100, clipped in the PNGs
    with pytest.raises(ValueError):
        Reexport(75, 215)                        # subdural window


def test_jpeg_and_gamma_change_the_grey_values_but_not_the_shape():
    rng = np.random.default_rng(0)
    grey = np.round(rng.random((2, 32, 32)) * 255).astype(np.float32)
    grey[:, 8:20, 8:20] = 200.0
    grey[:, 0, 0], grey[:, 0, 1] = 0.0, 255.0
    jpeg = Jpeg(40)(grey)
    assert jpeg.shape == grey.shape and not np.array_equal(jpeg, grey)
    assert abs(float(jpeg[:, 10:18, 10:18].mean()) - 200.0) < 8.0          # flat areas survive
    gamma = Gamma(0.8)(grey)
    assert gamma[grey == 0].max() == 0 and gamma[grey == 255].min() == 255
    assert float(gamma[:, 8:20, 8:20].mean()) > 200.0                      # mid-greys brighten
    assert np.array_equal(Unchanged()(grey), grey)


def test_views_turn_the_face_up_and_undo_maps_masks_back():
    grey = np.zeros((2, 6, 8), np.float32)
    grey[:, 3, 7] = 255.0                       # the face: right edge of a ct-ich PNG
    shown = Viewed()(grey)
    assert shown.shape == (2, 8, 6) and shown[0, 0, 3] == 255.0   # top in the radiological view
    assert Viewed(mirror=True)(grey)[0, 0, 2] == 255.0            # same row, left and right swapped
    for view in (Viewed(), Viewed(mirror=True)):
        assert np.array_equal(view.undo(view(grey)), grey)


def test_every_condition_is_named_once():
    names = [c.name for c in CONDITIONS]
    assert len(set(names)) == len(names) and names[0] == Unchanged().name


def test_robustness_scores_held_out_patients_of_trained_folds(tmp_path, tiny_training, tiny_png_dataset, monkeypatch):
    """End to end on a tiny fold: every condition scores the fold's held-out patients."""
    import training.robustness as robustness

    cfg = tiny_training.model_config("unet")
    write_fold(tmp_path / "runs", 1, {**cfg, "training": {"steps": 1, "val_patients": []}})
    monkeypatch.setattr(robustness, "dataset_folds", lambda data, k, seed: [["002"], ["001"]])
    shipped = tmp_path / "shipped.json"
    shipped.write_text(json.dumps({**cfg, "threshold": 0.99,
                                   "postprocess": {**cfg["postprocess"], "min_lesion_pixels": 7}}))
    main(["--model", "unet", "--data", str(tiny_png_dataset), "--runs", str(tmp_path / "runs"), "--folds", "2",
          "--only-folds", "1", "--postprocessing-from", str(shipped), "--out", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "unet_robustness.json").read_text())
    assert report["patients"] == ["001"] and report["postprocessing"]["threshold"] == 0.99
    assert set(report["summary"]) == {c.name for c in CONDITIONS}
    for summary in report["summary"].values():
        assert summary["hemorrhage_patients"] == 1 and 0.0 <= summary["mean_dice"] <= 1.0


def test_a_crossfit_screen_chooses_each_folds_postprocessing_on_the_other_before_scoring(
        tmp_path, tiny_training, tiny_png_dataset, monkeypatch):
    import training.robustness as robustness

    cfg = tiny_training.model_config("unet")
    paths = [write_fold(tmp_path / "runs", k, {**cfg, "training": {"steps": 1, "val_patients": []}}) for k in (0, 1)]
    monkeypatch.setattr(robustness, "dataset_folds", lambda data, k, seed: [["002"], ["001"]])
    args = ["--model", "unet", "--data", str(tiny_png_dataset), "--runs", str(tmp_path / "runs"), "--folds", "2",
            "--only-folds", "0,1", "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit, match="exclude each other"):
        main(args + ["--crossfit", "size", "--postprocessing-from", str(tmp_path / "x.json")])
    main(args + ["--crossfit", "size", "--conditions", "exported"])
    report = json.loads((tmp_path / "out" / "unet_robustness.json").read_text())
    assert report["postprocessing"].startswith("cross-fitted on the other scored folds")
    assert list(report["summary"]) == [Unchanged().name] and report["patients"] == ["002", "001"]
    for path in paths:
        assert json.loads(path.read_text())["metrics"]["cross_fitted"]["patients"] == 1   # the other fold's patient


def test_model_card_shows_the_measured_robustness_table(tmp_path):
    from training.report import robustness_lines

    assert robustness_lines(tmp_path) == ""                          # not measured: nothing claimed
    summary = {"as exported (L40/W120 PNG)": {"mean_dice": 0.25, "found": 4, "hemorrhage_patients": 12,
                                              "false_positive_patients": 0, "lesion_free_patients": 12},
               "window L40/W80": {"mean_dice": 0.125, "found": 2, "hemorrhage_patients": 12,
                                  "false_positive_patients": 3, "lesion_free_patients": 12}}
    (tmp_path / "unet_robustness.json").write_text(json.dumps(
        {"command": "python -m training.robustness --model unet", "folds_scored": [0, 3], "summary": summary}))
    text = robustness_lines(tmp_path)
    assert "| window L40/W80 | 0.125 | 2 of 12 | 3 of 12 |" in text
    assert "folds 0, 3 (12 bleeds, 12 lesion-free)" in text
    assert "measured for unet (`" in text                            # no recipe named: none claimed
    (tmp_path / "unet_robustness.json").write_text(json.dumps(
        {"command": "python -m training.robustness --model unet", "folds_scored": [0, 3], "summary": summary,
         "recipe": "the base-8 recipe"}))
    assert "measured for unet on the base-8 recipe (`" in robustness_lines(tmp_path)
