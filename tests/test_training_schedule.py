"""Learning-rate cycles and continuing a run from its checkpoint (tiny synthetic data)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import write_fold


def test_warm_restart_schedule_starts_as_one_cosine_cycle_then_restarts_lower():
    pytest.importorskip("keras")
    from training.train import lr_schedule

    cycled = lr_schedule({"learning_rate": 2e-3, "lr_cycle_steps": 100, "lr_cycle_decay": 0.5}, 200)
    single = lr_schedule({"learning_rate": 2e-3}, 100)
    for step in (0, 1, 50, 99):                      # first cycle == a plain 100-step cosine
        assert float(cycled(step)) == pytest.approx(float(single(step)), rel=1e-6)
    assert float(cycled(99)) < 1e-4                  # decayed to the 2% floor ...
    assert float(cycled(100)) == pytest.approx(1e-3, rel=0.05)   # ... restarts at half the peak
    assert float(cycled(150)) < float(cycled(100))
    shorter = lr_schedule({"learning_rate": 2e-3, "lr_cycle_steps": 100, "lr_cycle_decay": 0.25,
                           "lr_cycle_mul": 0.5}, 150)       # a 100-step cycle, then a 50-step one
    assert float(shorter(99)) == pytest.approx(float(single(99)), rel=1e-6)
    assert float(shorter(100)) == pytest.approx(2e-3 * (0.25 * 0.98 + 0.02), rel=1e-3)  # floor: 2% of 2e-3
    assert float(shorter(149)) < 5e-5 < float(shorter(125))     # the second cycle anneals by step 150
    no_cycle = lr_schedule({"learning_rate": 2e-3, "lr_cycle_steps": 500}, 200)  # cycle >= steps
    assert float(no_cycle(199)) < 1e-4


def test_a_run_trained_for_fewer_steps_continues_from_its_checkpoint(tmp_path, monkeypatch, recwarn,
                                                                      tiny_training, synthetic_patients):
    from training.evaluate import trained_steps
    from training.train import train_model

    tcfg = {"steps": 2, "batch_size": 4, "learning_rate": 1e-3, "val_every": 2,
            "lr_cycle_steps": 2, "lr_cycle_decay": 0.5}
    monkeypatch.setitem(tiny_training.TRAINING, "unet", tcfg)
    patients, out, runs = synthetic_patients, tmp_path / "fold0", tmp_path / "runs"
    assert trained_steps(out / "unet.json") == 0
    train_model("unet", patients[:2], patients[2:], out, runs)
    assert trained_steps(out / "unet.json") == 2

    monkeypatch.setitem(tiny_training.TRAINING, "unet", {**tcfg, "steps": 4})
    logs: list[str] = []
    config = train_model("unet", patients[:2], patients[2:], out, runs, log=logs.append)
    assert "resumed unet from step 2" in logs
    skipped = [w for w in recwarn if "Skipping variable loading for optimizer" in str(w.message)]
    assert not skipped, "Adam's moments were not restored from the checkpoint"
    assert not any("step 1/4" in line or "step 2/4" in line for line in logs)   # steps 1-2 not redone
    assert trained_steps(out / "unet.json") == 4 == config["training"]["steps"]
    assert config["training"]["lr_cycle_steps"] == 2
    assert [h["step"] for h in config["metrics"]["history"]] == [2, 4]
    state = json.loads((runs / "unet_fold0_s0" / "state.json").read_text())
    assert state["step"] == 4


def _lesion_with_rim(rim_voxels: int):
    """A 72-voxel lesion at probability 0.99 plus ``rim_voxels`` false voxels at 0.55 around it."""
    from scipy import ndimage

    truth = np.zeros((4, 16, 16), bool)
    truth[1:3, 4:10, 4:10] = True
    prob = np.where(truth, 0.99, 0.0).astype(np.float32)
    ring = ndimage.binary_dilation(truth, np.ones((1, 3, 3), bool)) & ~truth   # in-plane ring
    for v in np.argwhere(ring)[:rim_voxels]:
        prob[tuple(v)] = 0.55
    return prob, truth


def test_postprocessing_choice_takes_the_cut_nearest_one_half_on_a_flat_score_surface():
    from training.validate import TOLERANCE, choose_postprocessing

    prob, truth = _lesion_with_rim(1)             # Dice 0.993 at thresholds <= 0.5, 1.0 above
    chosen = choose_postprocessing([prob], [truth], 1.0)
    assert chosen["score"] == 1.0                 # checkpoints are still ranked by the best point
    assert chosen["threshold"] == 0.5 and chosen["point_score"] == pytest.approx(144 / 145)
    assert chosen["point_score"] >= chosen["score"] - TOLERANCE

    prob, truth = _lesion_with_rim(20)            # Dice 0.88 at 0.5: outside the tolerance
    chosen = choose_postprocessing([prob], [truth], 1.0)
    assert chosen["threshold"] == 0.6 and chosen["point_score"] == 1.0


def test_rechoosing_postprocessing_keeps_the_checkpoint_and_records_the_old_choice(tmp_path, tiny_training,
                                                                                   tiny_png_dataset):
    from model.config import file_sha256
    from training.evaluate import rechoose_postprocessing
    from training.validate import THRESHOLDS, TOLERANCE

    data, runs = tiny_png_dataset, tmp_path / "runs"
    cfg = tiny_training.model_config("unet")
    cfg.update(threshold=0.97, training={"val_patients": ["001", "002"]}, metrics={"validation": {"step": 7}})
    cfg["postprocess"]["min_lesion_pixels"] = 3200
    fold = write_fold(runs, 0, cfg).parent
    sha = file_sha256(fold / "unet.weights.h5")

    rechoose_postprocessing("unet", data, runs, n_folds=1)
    new = json.loads((fold / "unet.json").read_text())
    val = new["metrics"]["validation"]
    assert val["step"] == 7 and val["rechosen_from"] == [0.97, 3200]
    assert new["threshold"] == val["threshold"] in THRESHOLDS
    assert new["postprocess"]["min_lesion_pixels"] == val["min_lesion_pixels"]
    assert val["point_score"] >= val["score"] - TOLERANCE
    assert file_sha256(fold / "unet.weights.h5") == sha           # the checkpoint is untouched


def _weights(path) -> list:
    import h5py

    arrays: list = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.append((name, obj[()])) if isinstance(obj, h5py.Dataset) else None)
    return arrays


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, monkeypatch, tiny_training,
                                                                    synthetic_patients, dropout):
    """Seeded and resumable means resuming changes nothing: the batches, their augmentation and the
    dropout masks after the checkpoint are those the uninterrupted run drew (they were reseeded at
    the resumed step, so a continued run was a different run)."""
    from training.train import train_model

    monkeypatch.setitem(tiny_training.MODELS["unet"]["arch_params"], "dropout", dropout)
    tcfg = {"steps": 6, "batch_size": 4, "learning_rate": 1e-3, "val_every": 3, "lr_cycle_steps": 3,
            "lr_cycle_decay": 0.5}
    monkeypatch.setitem(tiny_training.TRAINING, "unet", tcfg)
    train_model("unet", synthetic_patients, [], tmp_path / "straight", tmp_path / "runs_a")

    monkeypatch.setitem(tiny_training.TRAINING, "unet", {**tcfg, "steps": 3})   # stops at the checkpoint
    train_model("unet", synthetic_patients, [], tmp_path / "resumed", tmp_path / "runs_b")
    monkeypatch.setitem(tiny_training.TRAINING, "unet", tcfg)
    logs: list[str] = []
    train_model("unet", synthetic_patients, [], tmp_path / "resumed", tmp_path / "runs_b", log=logs.append)
    assert "resumed unet from step 3" in logs

    straight = _weights(tmp_path / "straight" / "unet.weights.h5")
    resumed = _weights(tmp_path / "resumed" / "unet.weights.h5")
    assert [n for n, _ in straight] == [n for n, _ in resumed]
    differing = [n for (n, a), (_, b) in zip(straight, resumed) if not np.array_equal(a, b)]
    assert not differing, f"{len(differing)} of {len(straight)} weight arrays differ, e.g. {differing[:3]}"
    fresh = tmp_path / "other_seed"
    train_model("unet", synthetic_patients, [], fresh, tmp_path / "runs_c", seed=1)
    assert any(not np.array_equal(a, b) for (_, a), (_, b) in zip(straight, _weights(fresh / "unet.weights.h5")))
