"""Archiving trained CV folds in the repository and restoring them into a scratch --runs (tiny data)."""
from __future__ import annotations

import json

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")


def _train_fold(tiny_training, monkeypatch, patients, runs, fold=0, steps=2):
    from training.train import train_model

    monkeypatch.setitem(tiny_training.TRAINING, "unet", {"steps": steps, "batch_size": 4, "learning_rate": 1e-3,
                                                         "val_every": steps})
    train_model("unet", patients, [], runs / "cv" / "unet" / f"fold{fold}", runs, seed=fold)


def test_an_archived_fold_keeps_the_weights_without_the_optimizer_and_restores_for_evaluation(
        tmp_path, monkeypatch, tiny_training, synthetic_patients):
    from training.evaluate import trained_steps
    from training.fold_archive import listing, restore, save_fold
    from training.train import load_trained

    runs, archive, scratch = tmp_path / "runs", tmp_path / "archive", tmp_path / "scratch"
    _train_fold(tiny_training, monkeypatch, synthetic_patients, runs, fold=1)
    trained = runs / "cv" / "unet" / "fold1"
    path = save_fold(runs, "unet", 1, archive, required_steps=2, note="trained in a test")
    for weights in (trained / "unet.weights.h5", path.with_name("unet.weights.h5")):
        with h5py.File(weights) as f:
            assert "optimizer" not in f and "layers" in f

    assert restore(archive, scratch, "unet") == [1]
    restored = scratch / "cv" / "unet" / "fold1" / "unet.json"
    assert trained_steps(restored) == 2               # counts as trained: evaluate will not retrain it
    (_, original), (cfg, copy) = load_trained(trained / "unet.json"), load_trained(restored)
    for a, b in zip(original.get_weights(), copy.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert cfg["archived"]["from"] == str(trained) and cfg["archived"]["archived_utc"]
    assert listing(archive) == [{"model": "unet", "fold": 1, "steps": 2, "minutes": pytest.approx(
        cfg["training"]["duration_s"] / 60, abs=0.06), "seed": 1, "cpu": cfg["archived"]["cpu"],
        "archived_at_commit": cfg["archived"]["archived_at_commit"], "note": "trained in a test"}]


def test_archiving_refuses_a_short_or_missing_fold_and_never_overwrites(tmp_path, monkeypatch, tiny_training,
                                                                          synthetic_patients):
    from training.fold_archive import restore, save_fold

    runs, archive = tmp_path / "runs", tmp_path / "archive"
    with pytest.raises(SystemExit, match="no trained fold"):
        save_fold(runs, "unet", 0, archive)
    _train_fold(tiny_training, monkeypatch, synthetic_patients, runs, fold=0)
    with pytest.raises(SystemExit, match="trained 2 of 5 steps"):
        save_fold(runs, "unet", 0, archive, required_steps=5)
    save_fold(runs, "unet", 0, archive)
    with pytest.raises(SystemExit, match="already archived"):
        save_fold(runs, "unet", 0, archive)

    scratch = tmp_path / "scratch"
    mine = scratch / "cv" / "unet" / "fold0" / "unet.json"
    mine.parent.mkdir(parents=True)
    mine.write_text(json.dumps({"name": "unet", "mine": True}))
    assert restore(archive, scratch, "unet") == []    # a fold already in the scratch dir is left alone
    assert json.loads(mine.read_text()) == {"name": "unet", "mine": True}


def test_training_writes_the_network_weights_without_adams_state(tmp_path, tiny_training):
    import keras

    from model.networks import build_model
    from training.train import save_network

    config = tiny_training.model_config("unet")
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    model.optimizer.build(model.trainable_variables)
    model.save_weights(tmp_path / "keras.weights.h5")            # what Keras writes for a compiled model
    save_network(model, config, tmp_path / "net.weights.h5")
    with h5py.File(tmp_path / "keras.weights.h5") as with_adam, h5py.File(tmp_path / "net.weights.h5") as net:
        assert "optimizer" in with_adam and "optimizer" not in net
    copy = build_model(config)
    copy.load_weights(tmp_path / "net.weights.h5")
    for a, b in zip(model.get_weights(), copy.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
