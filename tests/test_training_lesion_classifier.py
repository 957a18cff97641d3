"""The learned component rule (training.lesion_classifier): features, fit, double cross-fitting."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import training.lesion_classifier as lc
from training.validate import selection_key


def test_component_features_of_a_block_are_its_size_shape_confidence_and_intensity():
    prob = np.zeros((3, 8, 8), np.float32)
    prob[0:2, 1:4, 1:5] = 0.95                 # 2 slices x 3 x 4 = 24 voxels
    prob[0, 1, 1] = 0.8                        # one voxel below 0.9
    image = np.full(prob.shape, 0.7, np.float32)
    labels, count = ndimage.label(prob >= 0.5)
    f = dict(zip(lc.FEATURES, lc.component_features(labels, count, prob, image, scale=4.0)[0]))
    assert f["log10_voxels"] == pytest.approx(np.log10(24 * 4))
    assert f["log10_largest_cross_section_pixels"] == pytest.approx(np.log10(12 * 4))
    assert f["slices"] == 2 and f["compactness"] == pytest.approx(1.0)
    assert f["max_probability"] == pytest.approx(0.95)
    assert f["fraction_above_0.9"] == pytest.approx(23 / 24)
    assert f["mean_intensity"] == pytest.approx(0.7)


def test_candidates_drop_components_under_the_minimum_and_count_their_overlap():
    prob = np.zeros((1, 16, 16), np.float32)
    prob[0, 0:5, 0:5] = 0.9                    # 25 grid voxels = 100 original at scale 4: kept
    prob[0, 10, 10:14] = 0.9                   # 4 grid voxels = 16 original: below 100, dropped
    truth = np.zeros(prob.shape, bool)
    truth[0, 0:2, 0:5] = True
    c = lc.candidates(prob, prob, truth, 0.5, scale=4.0)
    assert c["voxels"].tolist() == [25] and c["overlap"].tolist() == [10]


def test_logistic_fit_separates_separable_classes():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (40, 2)), rng.normal(4, 1, (10, 2))])
    y = np.r_[np.zeros(40), np.ones(10)]
    s = lc.predict_logistic(lc.fit_logistic(x, y), x)
    assert (s[y == 1] > 0.5).mean() >= 0.9 and (s[y == 0] < 0.5).mean() >= 0.9


def synthetic_patients(n_per_fold=4, folds=3, seed=0):
    """Bleeds: bright compact blobs at probability 0.8; false lesions: dim thin streaks at 0.8
    (so no threshold separates them, their intensity and shape do)."""
    rng = np.random.default_rng(seed)
    probs, images = {}, {}
    for f in range(folds):
        for i in range(n_per_fold):
            pid = f"{f}{i}"
            prob = np.zeros((4, 32, 32), np.float32)
            image = np.full(prob.shape, 0.5, np.float32)
            truth = np.zeros(prob.shape, bool)
            y, x = rng.integers(2, 10, 2)
            prob[1:3, 20:30, y:y + 2] = 0.8            # a streak on everyone: a false lesion
            image[1:3, 20:30, y:y + 2] = 0.55
            if i % 2 == 0:                              # half the patients bleed
                truth[1:4, y:y + 6, 14 + x // 2:20 + x // 2] = True
                prob[truth] = 0.8
                image[truth] = 0.8
            probs[pid] = (f, prob, truth)
            images[pid] = image
    return probs, images


def test_double_cross_fitting_keeps_the_bleeds_and_drops_the_false_lesions():
    probs, images = synthetic_patients()
    table, fold_of, truth_voxels = lc.candidate_table(probs, images, scale=4.0)
    result = lc.evaluate(table, fold_of, truth_voxels)
    assert result["mean_dice"] == pytest.approx(1.0)
    assert result["false_positive_patients"] == 0 and result["lesion_free_patients"] == 6


def test_a_test_fold_never_enters_the_classifiers_that_score_it(monkeypatch):
    probs, images = synthetic_patients()
    table, fold_of, truth_voxels = lc.candidate_table(probs, images, scale=4.0)
    fitted = []
    real_fit, real_scored = lc.fit_on, lc.scored

    def spy_scored(table, fold_of, test_folds, exclude, threshold):
        fitted.append(test_folds | exclude)
        return real_scored(table, fold_of, test_folds, exclude, threshold)

    def spy_fit(table, pids, threshold):
        held_out = fitted[-1]
        assert not any(fold_of[p] in held_out for p in pids)
        return real_fit(table, pids, threshold)

    monkeypatch.setattr(lc, "scored", spy_scored)
    monkeypatch.setattr(lc, "fit_on", spy_fit)
    lc.evaluate(table, fold_of, truth_voxels)
    assert len(fitted) == 3 * (len(lc.THRESHOLDS) * 2 + 1)       # inner fits per outer fold + the final one


def test_the_constrained_choice_takes_the_best_dice_within_the_false_positive_share():
    many_fp = selection_key([0.9], fp_patients=3, negatives=25, max_fp_share=2 / 31)
    few_fp = selection_key([0.5], fp_patients=1, negatives=25, max_fp_share=2 / 31)
    none_fp = selection_key([0.4], fp_patients=0, negatives=25, max_fp_share=2 / 31)
    assert few_fp > none_fp > many_fp
    # no point within the share: the fewest false positives
    assert selection_key([0.1], 3, 25, 0.0) > selection_key([0.9], 4, 25, 0.0)
    # unconstrained: the selection score, which prefers 0.9 with 3 false positives here
    assert selection_key([0.9], 3, 25, None) > selection_key([0.5], 1, 25, None)
