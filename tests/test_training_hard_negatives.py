"""Hard-negative mining: lesion-free slices drawn where the net marks false lesions."""
from __future__ import annotations

import numpy as np

from training.sampler import BalancedSampler, mine_hard_negatives


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


def test_a_training_config_with_hard_negatives_mines_during_training(tmp_path, monkeypatch, tiny_training,
                                                                     synthetic_patients):
    import training.train as train

    calls = []
    real = train.mine_hard_negatives
    monkeypatch.setattr(train, "mine_hard_negatives",
                        lambda sampler, predict, fraction: calls.append(fraction) or real(sampler, predict, fraction))
    monkeypatch.setitem(tiny_training.TRAINING, "unet", {
        "steps": 4, "batch_size": 4, "learning_rate": 1e-3, "val_every": 4,
        "hard_negatives": {"fraction": 0.5, "every": 1, "start": 2}})
    config = train.train_model("unet", synthetic_patients, [], tmp_path / "w", tmp_path / "runs", steps=4)
    assert calls == [0.5, 0.5]                                 # steps 2 and 3 (not after the last step)
    assert "hard negatives" in config["training"]["sampling"]
