"""Bleed transplant (training.paste) and the sampler's paste_fraction."""
from __future__ import annotations

import numpy as np
import pytest

from training.data import Patient
from training.paste import excess, transplant
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
