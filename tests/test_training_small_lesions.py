"""Small-lesion emphasis in training: per-image Dice and patient-weighted lesion sampling."""
from __future__ import annotations

import numpy as np
import pytest

from training.sampler import BalancedSampler, lesion_slice_weights


def _batch_with_big_and_small_lesion():
    """Two 32x32 images: a 400-pixel lesion and a 4-pixel lesion."""
    truth = np.zeros((2, 32, 32, 1), np.float32)
    truth[0, 4:24, 4:24] = 1
    truth[1, 10:12, 10:12] = 1
    return truth


def _loss(truth, pred, dice):
    from training.losses import bce_dice_loss

    return float(bce_dice_loss(truth, pred, dice=dice))


def test_per_image_dice_makes_a_missed_small_lesion_cost_as_much_as_a_missed_big_one():
    pytest.importorskip("keras")
    truth = _batch_with_big_and_small_lesion()
    found_all = np.where(truth > 0, 0.999, 0.001).astype(np.float32)
    missed_small = found_all.copy()
    missed_small[1] = 0.001
    missed_big = found_all.copy()
    missed_big[0] = 0.001
    # batch Dice: the 4-pixel lesion is 1% of the batch's lesion pixels, so missing it barely counts
    assert _loss(truth, missed_small, "batch") - _loss(truth, found_all, "batch") < 0.03
    # per image: missing either lesion costs a large part of the Dice term (half of its image's)
    small = _loss(truth, missed_small, "per_image") - _loss(truth, found_all, "per_image")
    big = _loss(truth, missed_big, "per_image") - _loss(truth, found_all, "per_image")
    assert small > 0.3 and big > 0.3


def test_per_image_dice_ignores_lesion_free_images_and_lesion_free_batches():
    pytest.importorskip("keras")
    truth = _batch_with_big_and_small_lesion()
    truth[1] = 0                                                     # second image lesion-free
    perfect = np.where(truth > 0, 0.99, 0.01).astype(np.float32)
    stray = perfect.copy()
    stray[1, 0, 0] = 0.99                                            # one stray pixel there
    # the stray pixel costs only its BCE (~4.6 / 2048), not a Dice collapse of image 2
    assert _loss(truth, stray, "per_image") - _loss(truth, perfect, "per_image") < 0.01
    empty = np.zeros_like(truth)
    assert _loss(empty, np.full_like(empty, 0.01), "per_image") == pytest.approx(0.01005, abs=1e-4)  # BCE only


def test_unknown_dice_mode_is_refused():
    pytest.importorskip("keras")
    truth = _batch_with_big_and_small_lesion()
    with pytest.raises(ValueError, match="dice must be one of"):
        _loss(truth, truth, "per_patient")


def test_lesion_slice_weights_balance_patients_by_power():
    # patient 0 has 9 lesion slices, patient 1 has 1
    pos = np.array([(0, z) for z in range(9)] + [(1, 4)])
    assert lesion_slice_weights(pos, 0.0) is None                     # uniform over slices
    share = lambda w: (w[:9].sum(), w[9])                            # noqa: E731
    assert share(lesion_slice_weights(pos, 1.0)) == pytest.approx((0.5, 0.5))
    assert share(lesion_slice_weights(pos, 0.5)) == pytest.approx((0.75, 0.25))  # sqrt(9) : sqrt(1)


def test_sampler_draws_lesion_patients_by_the_configured_power():
    from training.data import Patient

    rng = np.random.default_rng(0)
    big = np.zeros((10, 16, 16), np.float16)
    big[:9, 4:8, 4:8] = 1                                           # 9 lesion slices
    small = np.zeros((10, 16, 16), np.float16)
    small[4, 4:8, 4:8] = 1                                          # 1 lesion slice
    patients = [Patient("big", rng.random((10, 16, 16)).astype(np.float16), big),
                Patient("small", rng.random((10, 16, 16)).astype(np.float16), small)]
    for power, expected in ((0.0, 0.1), (1.0, 0.5)):
        sampler = BalancedSampler(patients, 10, context=1, seed=1, positive_fraction=1.0,
                                  augment_data=False, lesion_patient_power=power)
        draws = [int(sampler.pos[sampler.draw_lesion_slice()][0]) for _ in range(4000)]
        assert np.mean(draws) == pytest.approx(expected, abs=0.03)
