"""Out-of-fold postprocessing analysis: the core rule and cross-fitted choices (synthetic arrays)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from tests.conftest import TINY_ARCH, write_fold
from training.oof import analyse, component_mask, cross_fitted, frontier
from training.oof_probs import flip_averaged


def test_core_rule_keeps_a_component_only_with_enough_confident_voxels():
    prob = np.zeros((1, 8, 8), np.float32)
    prob[0, 0:2, 0:5] = 0.6          # a 10-voxel component ...
    prob[0, 0, 0:2] = 0.99           # ... with 2 confident voxels
    prob[0, 6:8, 3:8] = 0.6          # a 10-voxel component with none
    assert component_mask(prob, 0.5, 0, None, 1.0).sum() == 20
    assert component_mask(prob, 0.5, 2, 0.95, 1.0).sum() == 10      # whole component kept, not its core
    assert not component_mask(prob, 0.5, 3, 0.95, 1.0).any()
    assert component_mask(prob, 0.5, 0, 0.95, 1.0).sum() == 10      # min 0: any confident voxel
    assert not component_mask(prob, 0.5, 11, None, 1.0).any()       # size rule: 10 < 11
    assert component_mask(prob, 0.5, 20, None, 2.0).sum() == 20     # sizes counted on the original grid


def test_cross_fitting_scores_each_fold_with_the_choice_made_on_the_others():
    truth = np.ones((1, 2, 2), bool)
    patients = {"a": (0, None, truth), "b": (1, None, truth)}
    p1, p2 = (0.5, 0, None), (0.9, 0, None)
    # each patient is segmented well only at "its" point: choosing on itself would give Dice 1
    table = {("a", p1): 1.0, ("a", p2): 0.2, ("b", p1): 0.2, ("b", p2): 1.0}
    result = cross_fitted(table, patients, [p1, p2])
    assert result["chosen_per_fold"] == [list(p2), list(p1)]
    assert result["mean_dice"] == pytest.approx(0.2)


def test_cross_fitting_under_a_false_positive_share_takes_the_best_dice_within_it():
    truth, clean = np.ones((1, 2, 2), bool), np.zeros((1, 2, 2), bool)
    patients = {"a": (0, None, truth), "n0": (0, None, clean), "b": (1, None, truth), "n1": (1, None, clean),
                "c": (2, None, truth), "n2": (2, None, clean)}
    loose, strict = (0.3, 0, None), (0.9, 0, None)
    # loose: Dice 0.9 but every lesion-free patient flagged; strict: Dice 0.5, none flagged
    table = {(p, loose): (0.9 if patients[p][2].any() else 1.0) for p in patients}
    table.update({(p, strict): (0.5 if patients[p][2].any() else 0.0) for p in patients})
    # the selection score (0.9 - 0.25 x 1 > 0.5) takes the loose point ...
    free = cross_fitted(table, patients, [loose, strict])
    assert free["chosen_per_fold"] == [list(loose)] * 3 and free["false_positive_patients"] == 3
    # ... held to at most half the other folds' lesion-free patients, the strict one
    held = cross_fitted(table, patients, [loose, strict], max_fp_share=0.5)
    assert held["chosen_per_fold"] == [list(strict)] * 3
    assert held["mean_dice"] == pytest.approx(0.5) and held["false_positive_patients"] == 0


def test_the_frontier_gives_the_best_dice_within_each_false_positive_cap():
    truth, clean = np.ones((1, 2, 2), bool), np.zeros((1, 2, 2), bool)
    patients = {"bleed": (0, None, truth), "clean1": (0, None, clean), "clean2": (1, None, clean)}
    loose, mid, strict = (0.3, 0, None), (0.5, 0, None), (0.9, 0, None)
    # Dice on the bleed; for the lesion-free patients 1 = a false-positive patient
    table = {("bleed", loose): 0.9, ("clean1", loose): 1, ("clean2", loose): 1,
             ("bleed", mid): 0.6, ("clean1", mid): 1, ("clean2", mid): 0,
             ("bleed", strict): 0.1, ("clean1", strict): 0, ("clean2", strict): 0}
    result = frontier(table, patients, [loose, mid, strict], caps=(0, 1, 2))
    assert result["fp_at_most_0"] == {"mean_dice": 0.1, "false_positive_patients": 0, "point": list(strict)}
    assert result["fp_at_most_1"]["mean_dice"] == 0.6 and result["fp_at_most_1"]["point"] == list(mid)
    assert result["fp_at_most_2"]["mean_dice"] == 0.9


def test_analyse_reports_the_ceiling_and_counts_false_positive_patients():
    lesion = np.zeros((2, 8, 8), bool)
    lesion[:, 2:5, 2:5] = True
    blob = np.zeros((2, 8, 8), np.float32)
    blob[0, 6, 6] = 0.7                                   # one stray voxel on a lesion-free patient
    patients = {"p": (0, lesion.astype(np.float32) * 0.99, lesion), "n": (0, blob, np.zeros_like(lesion)),
                "q": (1, lesion.astype(np.float32) * 0.99, lesion), "m": (1, blob, np.zeros_like(lesion))}
    out = analyse(patients, 1.0)
    assert out["no_postprocessing"]["threshold 0.5"] == {"mean_dice": 1.0, "false_positive_patients": 2}
    assert out["no_postprocessing"]["threshold 0.9"]["false_positive_patients"] == 0
    for rule in ("size_rule_cross_fitted", "core_rule_cross_fitted"):
        assert out[rule]["mean_dice"] == 1.0 and out[rule]["false_positive_patients"] == 0


def test_flip_averaging_undoes_each_flip():
    x = np.random.default_rng(0).random((2, 6, 6, 3)).astype(np.float32)
    identity = lambda batch: batch[..., :1]          # noqa: E731 - a "model" that returns channel 0
    np.testing.assert_allclose(flip_averaged(identity)(x), x[..., :1], rtol=1e-6)


def test_outcome_table_matches_the_masks_of_every_rule():
    """The table selects components instead of building masks: it must equal scoring each
    rule's mask (component_mask) directly, for size, core and area points."""
    from training.metrics import dice
    from training.oof import RULES, component_mask, outcome_table

    rng = np.random.default_rng(3)
    prob = ndimage.uniform_filter(rng.random((6, 24, 24)).astype(np.float32), 3)
    prob = (prob - prob.min()) / (prob.max() - prob.min())
    truth = prob > 0.7
    patients = {"a": (0, prob, truth), "b": (0, prob, np.zeros_like(truth))}
    points = [p for rule in RULES.values() for p in rule]
    table = outcome_table(patients, points, 2.0)
    for (pid, point), value in table.items():
        mask = component_mask(patients[pid][1], *point[:3], 2.0, point[3])
        expected = dice(mask, patients[pid][2]) if patients[pid][2].any() else float(mask.any())
        assert value == pytest.approx(expected), (pid, point)


def _two_fold_run(runs, cfg: dict, seed: int, train_on_test: bool = False):
    import keras

    keras.utils.set_random_seed(seed)                      # members differ, as trained nets do
    for k, (test, train) in enumerate([("001", "002"), ("002", "001")]):
        patients = [train, test] if train_on_test else [train]
        write_fold(runs, k, {**cfg, "training": {"steps": 1, "train_patients": patients}})


def test_an_ensemble_is_the_voxel_mean_of_its_members_out_of_fold(tmp_path, tiny_training, tiny_png_dataset):
    from training.oof_probs import ensemble_oof_probabilities, oof_probabilities

    cfg, folds = tiny_training.model_config("unet"), [["001"], ["002"]]
    runs = [tmp_path / "a", tmp_path / "b"]
    for seed, r in enumerate(runs):
        _two_fold_run(r, cfg, seed)
    members = [oof_probabilities("unet", tiny_png_dataset, r, folds, tta=False) for r in runs]
    returned: list = []
    mean = ensemble_oof_probabilities("unet", tiny_png_dataset, runs, folds, tta=False, members=returned)
    assert sorted(mean) == ["001", "002"]
    assert len(returned) == 2                     # each member's own probabilities, in runs order
    for own, expected in zip(returned, members):
        for pid in expected:
            np.testing.assert_array_equal(own[pid][1], expected[pid][1])
    for pid, (fold, prob, truth) in mean.items():
        assert fold == folds.index([pid])
        assert not np.allclose(members[0][pid][1], members[1][pid][1])      # really two members
        np.testing.assert_allclose(prob, (members[0][pid][1] + members[1][pid][1]) / 2, rtol=1e-5)
        assert np.array_equal(truth, members[0][pid][2])


def test_an_ensemble_averages_the_unet_and_the_two_branch_cnn_given_as_model_equals_path(
        tmp_path, monkeypatch, tiny_training, tiny_png_dataset):
    from training.oof_probs import ensemble_oof_probabilities, oof_probabilities, run_member

    monkeypatch.setitem(tiny_training.MODELS["two_branch"], "arch_params", dict(TINY_ARCH["two_branch"]))
    folds, unet_runs, tb_runs = [["001"], ["002"]], tmp_path / "u", tmp_path / "t"
    _two_fold_run(unet_runs, tiny_training.model_config("unet"), 0)
    _two_fold_run(tb_runs, tiny_training.model_config("two_branch"), 1)
    unet = oof_probabilities("unet", tiny_png_dataset, unet_runs, folds, tta=False)
    tb = oof_probabilities("two_branch", tiny_png_dataset, tb_runs, folds, tta=False)
    mean = ensemble_oof_probabilities("unet", tiny_png_dataset, [str(unet_runs), f"two-branch={tb_runs}"],
                                      folds, tta=False)
    for pid, (_, prob, _) in mean.items():
        assert not np.allclose(unet[pid][1], tb[pid][1])
        np.testing.assert_allclose(prob, (unet[pid][1] + tb[pid][1]) / 2, rtol=1e-5)
    assert run_member(f"two_branch={tb_runs}", "unet") == ("two_branch", tb_runs)
    assert run_member("runs=old", "unet") == ("unet", Path("runs=old"))   # '=' in a plain path names no model
    monkeypatch.setitem(tiny_training.MODELS["two_branch"], "input_size", [64, 64])
    with pytest.raises(ValueError, match="model grid differs"):
        run_member(f"two_branch={tb_runs}", "unet")


def test_a_fold_trained_on_its_test_patient_is_refused(tmp_path, tiny_training, tiny_png_dataset):
    from training.oof_probs import oof_probabilities

    _two_fold_run(tmp_path / "leaky", tiny_training.model_config("unet"), 0, train_on_test=True)
    with pytest.raises(ValueError, match="trained on its test patients"):
        oof_probabilities("unet", tiny_png_dataset, tmp_path / "leaky", [["001"], ["002"]], tta=False)


def test_the_command_reports_an_ensemble_and_each_member_under_the_false_positive_share(tmp_path, monkeypatch):
    import training.oof as oof
    import training.oof_probs as oof_probs

    lesion = np.zeros((1, 8, 8), bool)
    lesion[0, 2:6, 2:6] = True
    faint = lesion.astype(np.float32) * 0.6                  # member A: the bleed at 0.6
    stray = np.zeros((1, 8, 8), np.float32)
    stray[0, 0:5, 0:5] = 0.95        # member B: a false lesion, larger and surer than its bleed, on the lesion-free
    clean, none = np.zeros_like(faint), np.zeros_like(lesion)
    by_run = {"A": {"p0": (0, faint, lesion), "n0": (0, clean, none), "p1": (1, faint, lesion), "n1": (1, clean, none)},
              "B": {"p0": (0, lesion * np.float32(0.9), lesion), "n0": (0, stray, none),
                    "p1": (1, lesion * np.float32(0.9), lesion), "n1": (1, stray, none)}}
    monkeypatch.setattr(oof_probs, "oof_probabilities", lambda name, data, runs, folds, tta: by_run[Path(runs).name])
    monkeypatch.setattr(oof, "dataset_folds", lambda *a: [["p0", "n0"], ["p1", "n1"]])
    out = tmp_path / "out"
    oof.main(["--model", "unet", "--runs", str(tmp_path / "A"), str(tmp_path / "B"), "--max-fp-share", "0",
              "--out", str(out)])
    report = json.loads((out / "unet_oof_postprocessing.json").read_text())
    assert report["max_fp_share"] == 0.0
    members = report["plain"]["members"]
    assert list(members) == [str(tmp_path / "A"), str(tmp_path / "B")]
    assert members[str(tmp_path / "A")]["size_rule_cross_fitted"]["mean_dice"] == pytest.approx(1.0)
    # B alone flags its lesion-free patients at any threshold that keeps its bleed ...
    assert members[str(tmp_path / "B")]["no_postprocessing"]["threshold 0.5"]["false_positive_patients"] == 2
    # ... while the mean of the two (bleed 0.75, stray 0.475) keeps the bleed above 0.5 and nothing else
    ens = report["plain"]["size_rule_cross_fitted"]
    assert ens["false_positive_patients"] == 0 and ens["mean_dice"] == pytest.approx(1.0)


def test_a_fold_with_the_mirror_channel_is_fed_its_mirror_even_when_the_shipped_config_has_none(
        tmp_path, tiny_training, tiny_png_dataset):
    """Out-of-fold inputs follow each fold's own NAME.json, not the shipped config (stop 45: the
    mirror candidate's folds were given three channels and refused)."""
    from training.data import load_dataset, with_mirrors
    from training.oof_probs import oof_probabilities
    from training.train import compiled_predict, load_trained
    from training.validate import predict_patient

    cfg = {**tiny_training.model_config("unet"), "mirror_channel": True, "in_channels": 4}
    assert not tiny_training.model_config("unet").get("mirror_channel")
    runs, folds = tmp_path / "mirror", [["001"], ["002"]]
    _two_fold_run(runs, cfg, 0)
    out = oof_probabilities("unet", tiny_png_dataset, runs, folds, tta=False)
    patients = {p.pid: p for p in with_mirrors(load_dataset(tiny_png_dataset, (32, 32)), cfg)}
    for k, (pid,) in enumerate(folds):
        fold_cfg, model = load_trained(runs / "cv" / "unet" / f"fold{k}" / "unet.json")
        expected = predict_patient(compiled_predict(model), patients[pid], fold_cfg)
        np.testing.assert_allclose(out[pid][1], expected, rtol=1e-5, atol=1e-6)


def test_z_smooth_option_reports_the_smoothed_analysis_beside_the_plain_one(tmp_path, monkeypatch):
    import training.oof as oof
    from training.oof_probs import smooth_across_slices
    truth = np.zeros((3, 8, 8), bool)
    truth[:, 2:6, 2:6] = True
    flicker = np.zeros((3, 8, 8), np.float32)
    flicker[1, 0:3, 0:3] = 0.9                     # a false lesion on one slice of a clean head
    probs = {f"{k}{c}": (k, p, t) for k in range(2)
             for c, p, t in (("a", truth * np.float32(0.9), truth), ("b", flicker, np.zeros_like(truth)))}
    monkeypatch.setattr(oof, "dataset_folds", lambda *a, **k: [["0a", "0b"], ["1a", "1b"]])
    monkeypatch.setattr(oof, "ensemble_oof_probabilities", lambda *a, **k: probs)
    oof.main(["--model", "unet", "--runs", "r", "--z-smooth", "0.25", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "unet_oof_postprocessing.json").read_text())
    smoothed = {p: (f, smooth_across_slices(x, 0.25), t) for p, (f, x, t) in probs.items()}
    scale = oof.grid_scale_for(oof.model_config("unet")["input_size"])
    assert report["plain"]["z_smooth_0.25"] == json.loads(json.dumps(oof.analyse(smoothed, scale)))
    # the one-slice flicker falls under threshold 0.5 once its neighbours dilute it (0.45), the bleed does not
    assert report["plain"]["no_postprocessing"]["threshold 0.5"]["false_positive_patients"] == 2
    assert report["plain"]["z_smooth_0.25"]["no_postprocessing"]["threshold 0.5"]["false_positive_patients"] == 0


def test_smoothing_across_slices_spreads_a_one_slice_blob_and_keeps_a_consistent_one():
    from training.oof_probs import smooth_across_slices

    lone = np.zeros((5, 4, 4), np.float32)
    lone[2] = 1.0                       # lights up one slice only
    out = smooth_across_slices(lone, 0.25)
    assert out.shape == lone.shape and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], [0, 0.25, 0.5, 0.25, 0])
    steady = np.full((5, 4, 4), 0.8, np.float32)   # the same on every slice, the ends included
    np.testing.assert_allclose(smooth_across_slices(steady, 0.25), steady, rtol=1e-6)
    np.testing.assert_array_equal(smooth_across_slices(lone, 0.0), lone)
    np.testing.assert_array_equal(smooth_across_slices(lone[:1], 0.25), lone[:1])   # one slice: unchanged
    for bad in (0.6, -0.1):
        with pytest.raises(ValueError, match=r"\[0, 0.5\]"):
            smooth_across_slices(lone, bad)
