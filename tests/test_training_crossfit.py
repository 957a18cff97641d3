"""CV folds trained without a validation split: the training set-up and the cross-fitted choice."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import write_fold


def _write_fold(runs, fold: int, cfg: dict, val_patients: list[str]):
    return write_fold(runs, fold, {**cfg, "training": {"steps": 1, "val_patients": val_patients}})


def test_folds_train_on_all_their_patients_when_the_validation_fraction_is_zero(tmp_path, monkeypatch,
                                                                                tiny_training, tiny_png_dataset):
    import training.train
    from training.evaluate import train_folds

    calls = []
    monkeypatch.setattr(training.train, "train_model",
                        lambda name, train, val, out, runs, **kw: calls.append(([p.pid for p in train],
                                                                                [p.pid for p in val])))
    folds = [["001"], ["002"]]
    monkeypatch.setitem(tiny_training.TRAINING, "unet", {"steps": 1, "fold_validation_fraction": 0.0})
    train_folds("unet", tiny_png_dataset, folds, tmp_path / "runs", seed=0)
    assert calls == [(["002"], []), (["001"], [])]             # the test patient is never trained on

    calls.clear()
    monkeypatch.setitem(tiny_training.TRAINING, "unet", {"steps": 1, "fold_validation_fraction": 0.5})
    train_folds("unet", tiny_png_dataset, [["001"], []], tmp_path / "runs2", seed=0)
    train, val = calls[1]
    assert sorted(train + val) == ["001", "002"] and len(val) == 1


def test_each_fold_is_given_the_choice_made_on_the_other_folds(tmp_path, monkeypatch, tiny_training):
    import training.crossfit as crossfit
    from model.postprocess import TYPICAL_VOXEL_MM3

    lesion = np.zeros((2, 8, 8), bool)
    lesion[:, 2:6, 2:6] = True
    clean, stray = lesion * np.float32(0.95), lesion * np.float32(0.95)
    stray[0, 7, 7] = 0.85                                 # a 1-voxel false positive at p 0.85
    empty_noisy = np.zeros((2, 8, 8), np.float32)
    empty_noisy[1, 0, 0] = 0.85
    no = np.zeros_like(lesion)
    # fold 0: clean patients only; folds 1 and 2 each hold a lesion-free patient with a stray voxel,
    # which only a threshold above 0.85 (or a minimum size above 1 voxel) removes
    oof = {"a": (0, clean, lesion), "b": (0, np.zeros_like(clean), no),
           "c": (1, stray, lesion), "d": (1, empty_noisy, no),
           "e": (2, clean, lesion), "f": (2, empty_noisy, no)}
    monkeypatch.setattr(crossfit, "oof_probabilities", lambda *a, **k: oof)
    monkeypatch.setattr(crossfit, "grid_scale_for", lambda size: 1.0)
    cfg = tiny_training.model_config("unet")
    runs = tmp_path / "runs"
    paths = [_write_fold(runs, k, cfg, []) for k in range(3)]
    assert crossfit.folds_without_validation("unet", runs, 3)

    out = crossfit.choose_cross_fitted("unet", tmp_path, runs, [["a", "b"], ["c", "d"], ["e", "f"]])
    for k, path in enumerate(paths):
        written, choice = json.loads(path.read_text()), out["fold_choices"][k]
        assert written["threshold"] == choice["threshold"]
        assert written["postprocess"]["min_lesion_pixels"] == choice["min_lesion_pixels"]
        assert written["postprocess"]["min_lesion_mm3"] == pytest.approx(choice["min_lesion_pixels"] * TYPICAL_VOXEL_MM3,
                                                                          abs=0.05)
        assert written["metrics"]["cross_fitted"]["patients"] == 4     # the other two folds' patients
    # every choice is made where the other folds' false positives are removed; all are ...
    for choice in out["fold_choices"] + [out["pooled"]]:
        assert choice["false_positive_patients"] == 0 and choice["mean_dice"] == 1.0
        assert choice["threshold"] > 0.85 or choice["min_lesion_pixels"] > 1
    assert out["pooled"]["patients"] == 6


def test_a_screen_of_some_folds_chooses_each_on_the_other_screened_folds(tmp_path, monkeypatch, tiny_training):
    import training.crossfit as crossfit

    lesion = np.zeros((2, 8, 8), bool)
    lesion[:, 2:6, 2:6] = True
    no = np.zeros_like(lesion)
    noisy = np.zeros((2, 8, 8), np.float32)
    noisy[1, 0, 0] = 0.85                                   # a stray voxel only fold 2's patient has
    oof = {"a": (0, lesion * np.float32(0.95), lesion), "b": (0, np.zeros_like(noisy), no),
           "e": (2, lesion * np.float32(0.95), lesion), "f": (2, noisy, no)}
    asked = {}
    monkeypatch.setattr(crossfit, "oof_probabilities", lambda *a, **k: asked.update(k) or oof)
    monkeypatch.setattr(crossfit, "grid_scale_for", lambda size: 1.0)
    cfg = tiny_training.model_config("unet")
    runs = tmp_path / "runs"
    paths = [_write_fold(runs, k, cfg, []) for k in (0, 2)]
    folds = [["a", "b"], ["c", "d"], ["e", "f"]]             # fold 1 is not trained

    out = crossfit.choose_cross_fitted("unet", tmp_path, runs, folds, only={0, 2})
    assert asked["only"] == {0, 2} and len(out["fold_choices"]) == 2
    chosen_for_0 = json.loads(paths[0].read_text())
    assert chosen_for_0["metrics"]["cross_fitted"]["patients"] == 2           # fold 2's patients only
    # fold 0 is chosen on fold 2, whose lesion-free patient has the stray voxel; fold 2 on fold 0, which has none
    assert chosen_for_0["threshold"] > 0.85 or chosen_for_0["postprocess"]["min_lesion_pixels"] > 1
    assert out["fold_choices"][0]["false_positive_patients"] == 0
    with pytest.raises(SystemExit, match="two trained folds"):
        crossfit.choose_cross_fitted("unet", tmp_path, runs, folds, only={0})


def test_cross_fitting_needs_every_fold_trained_without_validation(tmp_path, tiny_training):
    from training.crossfit import folds_without_validation

    runs, cfg = tmp_path / "runs", tiny_training.model_config("unet")
    _write_fold(runs, 0, cfg, [])
    assert not folds_without_validation("unet", runs, 2)              # fold 1 missing
    _write_fold(runs, 1, cfg, ["002"])
    assert not folds_without_validation("unet", runs, 2)              # fold 1 has a validation split


def test_evaluate_chooses_cross_fitted_for_folds_without_validation(tmp_path, tiny_training, tiny_png_dataset):
    from training.evaluate import main

    runs, out, weights = tmp_path / "runs", tmp_path / "reports", tmp_path / "weights"
    cfg = tiny_training.model_config("unet")
    for k in range(2):
        _write_fold(runs, k, cfg, [])
    weights.mkdir()
    (weights / "unet.json").write_text(json.dumps(cfg))
    main(["--model", "unet", "--data", str(tiny_png_dataset), "--folds", "2", "--runs", str(runs),
          "--out", str(out), "--weights", str(weights), "--evaluate-only"])
    report = json.loads((out / "unet_cv.json").read_text())
    assert "out-of-fold" in report["chosen"]["chosen_on"]
    assert len(report["per_patient"]) == 2
    for k in range(2):
        fold_cfg = json.loads((runs / "cv" / "unet" / f"fold{k}" / "unet.json").read_text())
        assert report["fold_choices"][k]["threshold"] == fold_cfg["threshold"]
        assert fold_cfg["metrics"]["cross_fitted"]["patients"] == 1
    shipped = json.loads((weights / "unet.json").read_text())
    assert shipped["threshold"] == report["chosen"]["threshold"]
    assert shipped["postprocess"]["min_lesion_pixels"] == report["chosen"]["min_lesion_pixels"]


def test_model_card_states_each_models_cv_protocol(tmp_path):
    from training.report import protocol_lines, shipped_choice

    chosen = {"unet": "all patients' out-of-fold predictions (training.crossfit)",
              "two_branch": "median of the folds' choices on their validation patients"}
    for name, how in chosen.items():
        (tmp_path / f"{name}_cv.json").write_text(json.dumps({"chosen": {"chosen_on": how}}))
    lines = protocol_lines(tmp_path).splitlines()
    assert lines[0].startswith("- unet: each fold trains on all of its 48 patients") and "cross-fitted" in lines[0]
    assert lines[1].startswith("- two_branch: each fold holds out 20%")
    assert shipped_choice(tmp_path) == ("unet, the best on all 60 patients' out-of-fold predictions; "
                                        "two_branch, the median of the five folds' validation choices")
    (tmp_path / "two_branch_cv.json").write_text(json.dumps({"chosen": {"chosen_on": chosen["unet"]}}))
    assert protocol_lines(tmp_path).startswith("- unet and two_branch: each fold trains on all of its 48 patients")
    assert shipped_choice(tmp_path) == "unet and two_branch, the best on all 60 patients' out-of-fold predictions"


def test_model_card_states_a_false_positive_limit_on_the_choice(tmp_path):
    from training.report import protocol_lines, shipped_choice

    pooled = "all patients' out-of-fold predictions (training.crossfit)"
    (tmp_path / "unet_cv.json").write_text(json.dumps({"chosen": {"chosen_on": pooled, "max_fp_share": 0.0645}}))
    (tmp_path / "two_branch_cv.json").write_text(json.dumps({"chosen": {"chosen_on": pooled}}))
    unet, two_branch = protocol_lines(tmp_path).splitlines()
    assert unet.startswith("- unet: each fold trains on all of its 48 patients")
    assert "highest mean Dice among those flagging at most 6.5% of the lesion-free patients" in unet
    assert two_branch.startswith("- two_branch:") and "best-scoring point" in two_branch and "6.5%" not in two_branch
    assert shipped_choice(tmp_path) == ("unet, the best on all 60 patients' out-of-fold predictions flagging at most "
                                        "6.5% of the lesion-free patients; two_branch, the best on all 60 patients' "
                                        "out-of-fold predictions")
    # a limit of 0 (no lesion-free patient flagged) is a limit too, not the selection score
    (tmp_path / "unet_cv.json").write_text(json.dumps({"chosen": {"chosen_on": pooled, "max_fp_share": 0.0}}))
    assert "flagging at most 0.0% of the lesion-free patients" in protocol_lines(tmp_path).splitlines()[0]


def _two_folds_predicting(oof: dict, tmp_path, monkeypatch, tiny_training):
    """Two trained folds (patients 0a, 0b | 1a, 1b) whose out-of-fold probabilities are ``oof``."""
    import training.crossfit as crossfit

    monkeypatch.setattr(crossfit, "oof_probabilities", lambda *a, **k: oof)
    monkeypatch.setattr(crossfit, "grid_scale_for", lambda size: 1.0)
    runs, cfg = tmp_path / "runs", tiny_training.model_config("unet")
    return runs, [_write_fold(runs, k, cfg, []) for k in range(2)], [["0a", "0b"], ["1a", "1b"]]


def test_the_core_rule_is_chosen_only_when_asked_for_and_better(tmp_path, monkeypatch, tiny_training):
    import training.crossfit as crossfit

    lesion = np.zeros((2, 8, 8), bool)
    lesion[:, 1:7, 1:7] = True
    prob = lesion * np.float32(0.6)
    prob[:, 3:5, 3:5] = 0.995                     # the bleed: faint with a confident core
    fp = np.zeros((2, 8, 8), np.float32)
    fp[:, 1:7, 1:7] = 0.96                        # a lesion-free head: confident, but not >= 0.98
    no = np.zeros_like(lesion)
    oof = {f"{k}{c}": (k, p, t) for k in range(2) for c, p, t in (("a", prob, lesion), ("b", fp, no))}
    runs, paths, folds = _two_folds_predicting(oof, tmp_path, monkeypatch, tiny_training)

    size_only = crossfit.choose_cross_fitted("unet", tmp_path, runs, folds)["pooled"]
    assert "core_threshold" not in size_only and size_only["false_positive_patients"] == 2
    both = crossfit.choose_cross_fitted("unet", tmp_path, runs, folds, ("size", "core"))["pooled"]
    assert both["core_threshold"] >= 0.98 and both["mean_dice"] == 1.0 and both["false_positive_patients"] == 0
    post = json.loads(paths[0].read_text())["postprocess"]
    assert post["core_threshold"] >= 0.98 and post["min_lesion_pixels"] == 0 and post["min_core_pixels"] >= 0
    with pytest.raises(SystemExit, match="unknown postprocessing rules"):
        crossfit.choose_cross_fitted("unet", tmp_path, runs, folds, ("sizes",))


def test_a_false_positive_share_limit_overrides_the_selection_score(tmp_path, monkeypatch, tiny_training):
    import training.crossfit as crossfit

    lesion = np.zeros((2, 8, 8), bool)
    lesion[:, 2:6, 2:6] = True
    faint = lesion * np.float32(0.6)              # a bleed and a false lesion alike: no rule parts them
    no = np.zeros_like(lesion)
    oof = {f"{k}{c}": (k, faint, t) for k in range(2) for c, t in (("a", lesion), ("b", no))}
    runs, paths, folds = _two_folds_predicting(oof, tmp_path, monkeypatch, tiny_training)

    scored = crossfit.choose_cross_fitted("unet", tmp_path, runs, folds)["pooled"]
    # the selection score (Dice - 0.25 x FP share) keeps the bleed and its false twin ...
    assert scored["mean_dice"] == 1.0 and scored["false_positive_patients"] == 2 and scored["threshold"] < 0.6
    limited = crossfit.choose_cross_fitted("unet", tmp_path, runs, folds, max_fp_share=2 / 31)
    # ... under the target's 2 of 31 both go, in every fold
    for choice in limited["fold_choices"] + [limited["pooled"]]:
        assert choice["false_positive_patients"] == 0 and choice["mean_dice"] == 0.0
        assert choice["threshold"] > 0.6 or choice["min_lesion_pixels"] > 32       # 32 voxels each
        assert choice["max_fp_share"] == pytest.approx(2 / 31)
    written = json.loads(paths[1].read_text())
    assert written["threshold"] > 0.6 or written["postprocess"]["min_lesion_pixels"] > 32
    # a limit the false lesions fit under leaves the better-Dice point
    loose = crossfit.choose_cross_fitted("unet", tmp_path, runs, folds, max_fp_share=1.0)["pooled"]
    assert loose["mean_dice"] == 1.0 and loose["false_positive_patients"] == 2


def test_set_postprocessing_switches_between_the_rules():
    from training.train import set_postprocessing

    config = {"threshold": 0.5, "postprocess": {"min_lesion_pixels": 50, "min_lesion_mm3": 50.0, "fill_holes": True}}
    set_postprocessing(config, 0.5, 1600, 0.98)
    assert config["postprocess"] == {"min_lesion_pixels": 0, "min_lesion_mm3": 0.0, "fill_holes": True,
                                     "core_threshold": 0.98, "min_core_pixels": 1600, "min_core_mm3": 1620.0}
    set_postprocessing(config, 0.6, 3200)
    assert config["threshold"] == 0.6
    assert config["postprocess"] == {"min_lesion_pixels": 3200, "min_lesion_mm3": 3240.0, "fill_holes": True}


def test_set_postprocessing_adds_and_clears_the_area_rule():
    from training.train import set_postprocessing

    config = {"threshold": 0.5, "postprocess": {"min_lesion_pixels": 50, "min_lesion_mm3": 50.0, "fill_holes": True}}
    set_postprocessing(config, 0.4, 800, None, 400)
    assert config["postprocess"] == {"min_lesion_pixels": 800, "min_lesion_mm3": 810.0, "fill_holes": True,
                                     "min_lesion_area_pixels": 400, "min_lesion_area_mm2": 81.0}
    set_postprocessing(config, 0.6, 3200)
    assert config["postprocess"] == {"min_lesion_pixels": 3200, "min_lesion_mm3": 3240.0, "fill_holes": True}


def test_the_area_rule_is_chosen_when_it_clears_a_thin_false_lesion(tmp_path, monkeypatch, tiny_training):
    import training.crossfit as crossfit
    from training.oof import component_mask
    from model.postprocess import clean_mask

    lesion = np.zeros((12, 20, 20), bool)
    lesion[5:7, 7:19, 7:19] = True                # a compact bleed: 288 voxels, 144-pixel cross-section
    rod = np.zeros_like(lesion)
    rod[:, 1:6, 1:6] = True                       # a lesion-free head's thin false lesion: 300 voxels
    oof = {f"{k}{c}": (k, m.astype(np.float32), t) for k in range(2)
           for c, m, t in (("a", lesion, lesion), ("b", rod, np.zeros_like(lesion)))}
    runs, paths, folds = _two_folds_predicting(oof, tmp_path, monkeypatch, tiny_training)
    both = crossfit.choose_cross_fitted("unet", tmp_path, runs, folds, ("size", "area"))["pooled"]
    assert 25 < both["min_lesion_area_pixels"] <= 144          # no size limit separates 288 from 300
    assert both["mean_dice"] == 1.0 and both["false_positive_patients"] == 0
    post = json.loads(paths[0].read_text())["postprocess"]
    # the model-grid rule of the analysis and the pipeline's postprocessing agree
    pipeline = clean_mask(rod | lesion, {**post, "fill_holes": False}, None)
    grid = component_mask((rod | lesion).astype(np.float32), 0.5, post["min_lesion_pixels"], None, 1.0,
                          post.get("min_lesion_area_pixels", 0))
    assert np.array_equal(pipeline.astype(bool), grid)
    assert crossfit.describe((0.4, 0, None, 144)) == ("size + area rule: threshold 0.4, min 0 voxels, "
                                                      "largest cross-section >= 144 pixels")


def test_model_card_describes_the_core_rule_when_a_model_uses_it():
    from training.report import postprocessing_text

    config = {"threshold": 0.5, "postprocess": {"min_lesion_pixels": 3200, "min_lesion_mm3": 3240.0}}
    assert postprocessing_text(config) == ("threshold 0.5, lesions smaller than 3200 voxels (spacing unknown) "
                                           "or 3240.0 mm³ (spacing known) removed, holes filled.")
    config["postprocess"].update(core_threshold=0.98, min_core_pixels=1600, min_core_mm3=1620.0)
    assert "fewer than 1600 voxels / 1620.0 mm³ of probability >= 0.98" in postprocessing_text(config)
    config["postprocess"].update(min_lesion_area_pixels=400, min_lesion_area_mm2=81.0)
    assert "cross-section is under 400 pixels / 81.0 mm²" in postprocessing_text(config)


def test_a_train_fraction_trains_each_fold_on_a_stratified_share_of_its_patients(tmp_path, monkeypatch, tiny_training):
    import training.evaluate as evaluate
    import training.train
    from training.data import Patient

    ids = [f"{i:03d}" for i in range(20)]                  # 000-009 with a bleed, 010-019 without
    patients = []
    for i, pid in enumerate(ids):
        masks = np.zeros((2, 4, 4), np.float16)
        masks[0, 1, 1] = i < 10
        patients.append(Patient(pid, np.zeros((2, 4, 4), np.float16), masks))
    monkeypatch.setattr(evaluate, "load_dataset", lambda *a, **k: patients)
    calls = []
    monkeypatch.setattr(training.train, "train_model",
                        lambda name, train, val, out, runs, **kw: calls.append([p.pid for p in train]))
    monkeypatch.setitem(tiny_training.TRAINING, "unet", {"steps": 1, "fold_validation_fraction": 0.0})
    folds = [ids[0:2] + ids[10:12], ids[2:4] + ids[12:14]]
    evaluate.train_folds("unet", tmp_path, folds, tmp_path / "runs", seed=0, train_fraction=0.5)
    for fold, train in zip(folds, calls):
        assert not set(train) & set(fold)                   # never a test patient
        assert sum(pid < "010" for pid in train) == 4 and len(train) == 8   # half of 8 + 8, stratified
    assert calls[0] != calls[1]
    first = list(calls)
    calls.clear()
    evaluate.train_folds("unet", tmp_path, folds, tmp_path / "runs2", seed=0, train_fraction=0.5)
    assert calls == first                                   # seeded: the same subsets again
    evaluate.train_folds("unet", tmp_path, folds, tmp_path / "runs3", seed=0)
    assert len(calls[-1]) == 16                             # default: every patient outside the test fold


def test_a_train_seed_offset_reseeds_training_but_keeps_the_folds(tmp_path, monkeypatch, tiny_training):
    import training.evaluate as evaluate
    import training.train
    from training.data import Patient

    ids = [f"{i:03d}" for i in range(8)]
    patients = [Patient(pid, np.zeros((2, 4, 4), np.float16), np.zeros((2, 4, 4), np.float16)) for pid in ids]
    monkeypatch.setattr(evaluate, "load_dataset", lambda *a, **k: patients)
    calls = []
    monkeypatch.setattr(training.train, "train_model",
                        lambda name, train, val, out, runs, seed, **kw: calls.append((seed, [p.pid for p in train])))
    monkeypatch.setitem(tiny_training.TRAINING, "unet", {"steps": 1, "fold_validation_fraction": 0.0})
    folds = [ids[0:4], ids[4:8]]
    evaluate.train_folds("unet", tmp_path, folds, tmp_path / "runs", seed=0)
    evaluate.train_folds("unet", tmp_path, folds, tmp_path / "runs2", seed=0, seed_offset=100)
    assert [c[0] for c in calls] == [0, 1, 100, 101]
    assert calls[0][1] == calls[2][1] == ids[4:8] and calls[1][1] == calls[3][1] == ids[0:4]


def test_the_false_positive_limit_comes_from_the_model_config_unless_asked(monkeypatch):
    import training.configs as configs
    from training.crossfit import fp_share_arg, resolve_max_fp_share

    monkeypatch.setitem(configs.TRAINING, "unet", {**configs.TRAINING["unet"], "crossfit_max_fp_share": 0.0645})
    monkeypatch.setitem(configs.TRAINING, "two_branch",
                        {k: v for k, v in configs.TRAINING["two_branch"].items() if k != "crossfit_max_fp_share"})
    assert resolve_max_fp_share("unet", None) == 0.0645
    assert resolve_max_fp_share("two_branch", None) is None             # the selection score
    assert resolve_max_fp_share("unet", fp_share_arg("off")) is None
    assert resolve_max_fp_share("unet", fp_share_arg("0.1")) == 0.1
    with pytest.raises(ValueError, match="between 0 and 1"):
        fp_share_arg("2")
