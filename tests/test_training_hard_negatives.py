"""Hard-example mining: lesion-free slices drawn where the net marks false lesions, lesion slices where it misses the bleed."""
from __future__ import annotations

import numpy as np
import pytest

from training.mining import MINERS, mine_hard_negatives, mine_hard_positives
from training.sampler import BalancedSampler


def _fake_net(marked: set[float]):
    """A 'net' that marks 5 pixels on an input whose centre channel's first pixel is in ``marked``."""
    def predict(x):
        out = np.zeros((*x.shape[:3], 1), np.float32)
        for i, first in enumerate(x[:, 0, 0, x.shape[-1] // 2]):
            if float(first) in marked:
                out[i, :1, :5] = 0.9
        return out
    return predict


def test_mining_counts_false_positive_pixels_on_the_lesion_free_slices_as_seen_at_inference(synthetic_patients):
    sampler = BalancedSampler(synthetic_patients, 8, context=1, seed=0, augment_data=False)
    pi, z = sampler.neg[3]
    target = float(synthetic_patients[pi].images[z, 0, 0])
    counts = mine_hard_negatives(sampler, _fake_net({target}), fraction=1.0)
    assert counts.shape == (len(sampler.neg),) and counts[3] == 5 and counts.sum() == 5
    # with every lesion-free sample drawn as a hard one, only that slice is ever drawn
    for _ in range(5):
        masks = sampler.batch()[1]
        n_pos = int(masks.reshape(8, -1).max(axis=1).sum())
        assert n_pos == 3                                      # lesion share unchanged (40% of 8)
    drawn = {sampler.draw_negative_slice() for _ in range(50)}
    assert drawn == {3}


def test_half_of_the_lesion_free_draws_stay_uniform_and_no_false_lesion_means_uniform(synthetic_patients):
    sampler = BalancedSampler(synthetic_patients, 8, context=1, seed=0, augment_data=False)
    hardness = np.zeros(len(sampler.neg))
    hardness[0] = 1
    sampler.set_hard_negatives(hardness, 0.5)
    share = np.mean([sampler.draw_negative_slice() == 0 for _ in range(2000)])
    assert 0.45 < share < 0.6                                  # 0.5 hard + 0.5 / len(neg) uniform
    sampler.set_hard_negatives(np.zeros(len(sampler.neg)), 0.5)
    assert sampler.hard == (None, 0.0)


def test_without_mining_the_random_stream_of_earlier_runs_is_unchanged(synthetic_patients):
    a = BalancedSampler(synthetic_patients, 8, context=1, seed=4, augment_data=False)
    b = BalancedSampler(synthetic_patients, 8, context=1, seed=4, augment_data=False)
    draws = [a.draw_negative_slice() for _ in range(20)]
    assert draws == [int(b.rng.integers(len(b.neg))) for _ in range(20)]


@pytest.mark.parametrize("key, every, mined_at", [("hard_negatives", 1, [2, 3]), ("hard_positives", 2, [2])])
def test_a_training_config_with_mining_mines_during_training_and_says_so(key, every, mined_at, tmp_path, monkeypatch,
                                                                         tiny_training, synthetic_patients):
    import training.train as train

    calls = []
    real = MINERS[key].run
    monkeypatch.setitem(MINERS, key, MINERS[key]._replace(
        run=lambda sampler, predict, fraction: calls.append(fraction) or real(sampler, predict, fraction)))
    monkeypatch.setitem(tiny_training.TRAINING, "unet", {
        "steps": 4, "batch_size": 4, "learning_rate": 1e-3, "val_every": 4,
        key: {"fraction": 0.5, "every": every, "start": 2}})
    config = train.train_model("unet", synthetic_patients, [], tmp_path / "w", tmp_path / "runs", steps=4)
    assert calls == [0.5] * len(mined_at)                      # at these steps, never after the last one
    sampling = config["training"]["sampling"]
    assert key.replace("_", " ") in sampling
    other = {"hard_negatives": "hard positives", "hard_positives": "hard negatives"}[key]
    assert other not in sampling


def test_hard_positive_mining_weights_lesion_slices_by_the_share_of_their_bleed_missed(synthetic_patients):
    sampler = BalancedSampler(synthetic_patients, 8, context=1, seed=0, augment_data=False)
    found = {float(synthetic_patients[pi].images[z, 0, 0]) for pi, z in sampler.pos[1:]}

    def net(x):      # marks every pixel of the lesion slices in ``found``, nothing elsewhere
        keep = np.array([float(first) in found for first in x[:, 0, 0, x.shape[-1] // 2]])
        return np.broadcast_to(keep[:, None, None, None], (*x.shape[:3], 1)).astype(np.float32)

    missed = mine_hard_positives(sampler, net, fraction=1.0)
    assert missed.shape == (len(sampler.pos),) and missed[0] == 1.0 and not missed[1:].any()
    assert {sampler.draw_lesion_slice() for _ in range(50)} == {0}
    for _ in range(3):                                         # lesion share unchanged (40% of 8)
        assert int(sampler.batch()[1].reshape(8, -1).max(axis=1).sum()) == 3
    sampler.set_hard_positives(np.zeros(len(sampler.pos)), 0.5)
    assert sampler.hard_pos == (None, 0.0)
