"""training.budget_cv: the budgeted parallel fold training used for the GPU scaling diagnostic."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training.budget_cv import cosine_lr, planned_steps

ROOT = Path(__file__).resolve().parents[1]


def test_the_cosine_runs_from_the_peak_to_two_percent_of_it():
    assert cosine_lr(0, 100, 2e-3) == pytest.approx(2e-3)
    assert cosine_lr(100, 100, 2e-3) == pytest.approx(4e-5)
    assert cosine_lr(50, 100, 2e-3) == pytest.approx(2e-3 * (0.02 + 0.98 * 0.5))
    lrs = [cosine_lr(s, 100, 1.0) for s in range(0, 101, 10)]
    assert lrs == sorted(lrs, reverse=True)


def test_the_step_count_fits_the_time_left_and_the_cap():
    assert planned_steps(100, 0.05, 60.0, 8000) == 100 + 1200
    assert planned_steps(100, 0.001, 600.0, 8000) == 8000
    assert planned_steps(100, 0.05, -5.0, 8000) == 100     # past the deadline: stop now


def _packed(tmp_path: Path) -> Path:
    """Four synthetic patients (two with a bright square 'bleed') on the 224 grid, two folds."""
    rng = np.random.default_rng(0)
    arrays = {}
    for i, pid in enumerate(["001", "002", "003", "004"]):
        img = (rng.random((3, 224, 224)) * 60 + 60).astype(np.uint8)
        msk = np.zeros((3, 224, 224), np.uint8)
        if i % 2 == 0:
            msk[1, 90:120, 90:120] = 255
            img[1][msk[1] > 0] = 220
        arrays[f"{pid}_img"], arrays[f"{pid}_msk"] = img, msk
    packed = tmp_path / "packed"
    packed.mkdir()
    np.savez_compressed(packed / "slices.npz", **arrays)
    (packed / "folds.json").write_text(json.dumps({"folds": [["001", "002"], ["003", "004"]]}))
    return packed


def test_a_fold_trains_in_parallel_processes_and_unpacks_into_loadable_weights(tmp_path):
    pytest.importorskip("keras")
    packed, out, runs = _packed(tmp_path), tmp_path / "out", tmp_path / "runs"
    cmd = [sys.executable, "-m", "training.budget_cv", "train", "--packed", str(packed), "--out", str(out),
           "--base-filters", "4", "--batch-size", "2", "--max-steps", "2", "--budget-s", "300", "--workers", "1",
           "--folds", "1"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["fold1.npz"]
    run = subprocess.run([sys.executable, "-m", "training.budget_cv", "unpack", "--trained", str(out), "--runs",
                          str(runs)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    fold_dir = runs / "cv" / "unet" / "fold1"
    config = json.loads((fold_dir / "unet.json").read_text())
    assert config["training"]["steps"] == 2 and config["training"]["train_patients"] == ["001", "002"]
    assert config["arch_params"]["base_filters"] == 4 and config["training"]["val_patients"] == []

    from model.networks import build_model
    blob = np.load(out / "fold1.npz")
    model = build_model(config)
    model.load_weights(fold_dir / "unet.weights.h5")
    returned = [blob[k] for k in sorted(blob.files) if k != "meta"]
    assert len(returned) == len(model.get_weights())
    for w, r in zip(model.get_weights(), returned):     # float32 again, equal to the float16 that travelled
        assert w.dtype == np.float32 and np.array_equal(w, r.astype(np.float32))


def test_the_packed_sampler_serves_whole_slices_even_for_a_cropping_recipe(tmp_path, monkeypatch):
    """budget_cv builds and unpacks the net at the full 224x224 input: crops would not fit it."""
    import training.configs
    from training.budget_cv import packed_sampler

    cropping = {**training.configs.training_config("unet"), "crop_size": 64}
    monkeypatch.setattr(training.configs, "training_config", lambda name: cropping)
    x, y = packed_sampler(_packed(tmp_path), ["001", "002"], 3, seed=0).batch()
    assert x.shape[:3] == (3, 224, 224) and y.shape == (3, 224, 224, 1)


def test_a_weight_beyond_float16s_range_travels_as_float32(tmp_path):
    from training.budget_cv import save_fold

    kernel, variance = np.full((3, 3), 0.1, np.float32), np.array([2.0, 1e5], np.float32)
    save_fold(tmp_path / "f.npz", {"name": "unet"}, [kernel, variance])
    blob = np.load(tmp_path / "f.npz")
    assert blob["w000"].dtype == np.float16                  # halved where it stays finite
    assert blob["w001"].dtype == np.float32 and blob["w001"][1] == 1e5
    assert json.loads(bytes(blob["meta"]).decode()) == {"name": "unet"}


def test_an_overflowed_batch_norm_gets_the_statistics_of_its_input_back():
    keras = pytest.importorskip("keras")
    from training.budget_cv import restore_batch_norm

    inp = keras.Input((8, 8, 2))
    out = keras.layers.BatchNormalization(momentum=0.0, name="bn")(keras.layers.Conv2D(3, 3, padding="same")(inp))
    out = keras.layers.BatchNormalization(momentum=0.0, name="bn2")(keras.layers.Conv2D(2, 3, padding="same")(out))
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).normal(3.0, 40.0, (4, 8, 8, 2)).astype(np.float32)
    model(x, training=True)                     # momentum 0: the moving statistics are this batch's
    layers = [model.get_layer("bn"), model.get_layer("bn2")]
    truth = [(np.asarray(bn.moving_mean).copy(), np.asarray(bn.moving_variance).copy()) for bn in layers]
    for bn, (mean, var) in zip(layers, truth):
        bn.moving_mean.assign(mean + 1.0)
        bn.moving_variance.assign(np.full(var.shape, np.inf, np.float32))
    report = restore_batch_norm(model, ["bn", "bn2"], (b for b in [x]))   # a generator serves both layers
    for bn, (mean, var) in zip(layers, truth):
        assert np.allclose(np.asarray(bn.moving_variance), var, rtol=1e-4)
        assert np.allclose(np.asarray(bn.moving_mean), mean, rtol=1e-4, atol=1e-4)
    assert report["bn"]["mean_rel_diff_median"] > 0        # it reports how far the returned mean was
