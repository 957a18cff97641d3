"""Bleed transplant and dimming (training.paste) and the sampler's paste_fraction and dim_fraction."""
from __future__ import annotations

import numpy as np
import pytest

from training.data import Patient
from training.paste import dim, excess, transplant
from training.sampler import BalancedSampler


def bleed(value=0.75, background=0.5, size=32, box=(slice(10, 16), slice(12, 20))):
    image = np.full((size, size), background, np.float32)
    mask = np.zeros((size, size), np.float32)
    image[box], mask[box] = value, 1.0
    return image, mask


def test_excess_is_the_bleed_above_its_surroundings_and_nothing_else():
    image, mask = bleed()
    out = excess(image, mask)
    assert out[mask > 0] == pytest.approx(0.25) and not out[mask == 0].any()
    assert not excess(*bleed(value=0.3)).any()                  # darker than around: nothing added
    assert not excess(image, np.zeros_like(mask)).any()


def test_transplant_adds_the_bleed_in_every_channel_and_takes_its_mask():
    src, msk = bleed()
    source, masks = np.stack([src, src, np.full_like(src, 0.5)]), np.stack([msk, msk, np.zeros_like(msk)])
    target = np.full((3, 32, 32), 0.55, np.float32)
    image, mask = transplant(target, source, masks)
    assert np.array_equal(mask, msk)
    assert image[0][msk > 0] == pytest.approx(0.80) and image[1][msk > 0] == pytest.approx(0.80)
    assert np.array_equal(image[2], target[2])                 # no bleed on that neighbour
    assert np.array_equal(image[:, msk == 0], target[:, msk == 0])


def test_transplant_refuses_to_land_on_air_or_bone():
    src, msk = bleed()
    source, masks = np.stack([src] * 3), np.stack([msk] * 3)
    assert transplant(np.zeros((3, 32, 32), np.float32), source, masks) is None
    assert transplant(np.ones((3, 32, 32), np.float32), source, masks) is None


def _patients():
    img, msk = bleed()
    lesion = Patient("b", np.stack([img] * 3), np.stack([msk] * 3))
    free = Patient("n", np.full((3, 32, 32), 0.5, np.float32), np.zeros((3, 32, 32), np.float32))
    return [lesion, free]


def test_sampler_transplants_that_share_of_lesion_samples_into_lesion_free_slices():
    patients = _patients()
    patients[1].images[:, :, 20:] = 0.52                       # marks the lesion-free head
    counts = {}
    for fraction in (0.0, 1.0):
        sampler = BalancedSampler(patients, 8, context=1, seed=0, positive_fraction=0.5, augment_data=False,
                                  paste_fraction=fraction)
        x, y = sampler.batch()
        lesion = y.reshape(8, -1).max(axis=1) > 0
        assert int(lesion.sum()) == 4                          # the lesion share is unchanged
        assert np.all(x[lesion][y[lesion][..., 0] > 0.5, 1] > 0.7)   # the bleed is in the image
        counts[fraction] = int(np.isclose(x[lesion][:, :, 25, 1], 0.52).all(axis=1).sum())
    assert counts == {0.0: 0, 1.0: 4}                          # all four shown in the other head


def test_dimming_scales_the_bleed_above_its_surroundings_and_nothing_else():
    src, msk = bleed()                                          # 0.25 above a 0.5 background
    stack, masks = np.stack([src, src, src]), np.stack([msk, msk, np.zeros_like(msk)])
    out = dim(stack, masks, 0.4)
    assert out[0][msk > 0] == pytest.approx(0.6) and out[1][msk > 0] == pytest.approx(0.6)   # 0.5 + 0.4 x 0.25
    assert np.array_equal(out[2], stack[2])                    # no mask on that channel: untouched
    assert np.array_equal(out[:, msk == 0], stack[:, msk == 0])
    np.testing.assert_array_equal(dim(stack, masks, 1.0), stack)


def test_sampler_dims_that_share_of_lesion_samples_and_keeps_their_labels():
    contrasts = {}
    for fraction in (0.0, 1.0):
        sampler = BalancedSampler(_patients(), 8, context=1, seed=0, positive_fraction=0.5, augment_data=False,
                                  dim_fraction=fraction, dim_factor=(0.2, 0.6))
        x, y = sampler.batch()
        lesion = y.reshape(8, -1).max(axis=1) > 0
        assert int(lesion.sum()) == 4 and np.array_equal(y[lesion][0, ..., 0], bleed()[1])   # labels as drawn
        contrasts[fraction] = x[lesion][..., 1][:, 10:16, 12:20].mean(axis=(1, 2)) - 0.5
        assert np.all(x[~lesion] == 0.5)                        # lesion-free samples untouched
    assert contrasts[0.0] == pytest.approx(0.25)
    assert np.all((contrasts[1.0] >= 0.2 * 0.25 - 1e-6) & (contrasts[1.0] <= 0.6 * 0.25 + 1e-6))


def test_the_training_config_turns_dimming_on_and_the_recipe_says_so():
    from training.recipe import describe_sampling, recipe_sampler

    tcfg = {"batch_size": 8, "dim_fraction": 0.5, "dim_factor": [0.3, 0.9]}
    sampler = recipe_sampler(_patients(), {"context_slices": 1}, tcfg, seed=0)
    assert sampler.dim_fraction == 0.5 and sampler.dim_factor == (0.3, 0.9)
    assert "50% of the lesion samples with the bleed's contrast scaled by 0.3-0.9" in describe_sampling(tcfg)
    assert recipe_sampler(_patients(), {"context_slices": 1}, {"batch_size": 8}, seed=0).dim_fraction == 0.0
    assert "contrast" not in describe_sampling({"batch_size": 8})
