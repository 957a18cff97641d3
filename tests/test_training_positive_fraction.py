"""Lesion share of each training batch (training config "positive_fraction")."""
from __future__ import annotations

from training.sampler import BalancedSampler


def test_positive_fraction_from_the_training_config_sets_the_lesion_share_of_each_batch(
        tmp_path, monkeypatch, tiny_training, synthetic_patients):
    from training.recipe import describe_sampling
    from training.train import train_model

    assert describe_sampling({}).startswith("40% lesion slices, 60% lesion-free")
    sampler = BalancedSampler(synthetic_patients, 10, context=1, seed=0, positive_fraction=0.6, augment_data=False)
    assert int(sampler.batch()[1].reshape(10, -1).max(axis=1).sum()) == 6
    monkeypatch.setitem(tiny_training.TRAINING, "unet", {"steps": 2, "batch_size": 4, "learning_rate": 1e-3,
                                                         "val_every": 2, "positive_fraction": 0.6})
    config = train_model("unet", synthetic_patients[:2], synthetic_patients[2:], tmp_path / "w",
                         tmp_path / "runs", steps=2)
    assert config["training"]["sampling"].startswith("60% lesion slices, 40% lesion-free")
