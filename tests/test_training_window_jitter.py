"""Window re-export augmentation: exact simulation of another export window, and its wiring."""
from __future__ import annotations

import numpy as np
import pytest

from training.augment import augment, reexport_window
from training.robustness import Reexport
from training.sampler import BalancedSampler
from training.recipe import describe_augmentation, window_jitter

SOURCE = (40.0, 120.0)   # the ct-ich PNGs' window, and the model's


def _fixed(level: float, width: float) -> dict:
    return {"level_hu": (level, level), "width_hu": (width, width)}


def test_reexport_window_matches_the_robustness_reexport_of_the_same_window():
    grey = np.arange(256, dtype=np.float32).reshape(1, 16, 16)
    for level, width in ((40, 80), (50, 100), (30, 70)):
        out = reexport_window(grey / 255.0, np.random.default_rng(0), SOURCE, **_fixed(level, width))
        # Reexport rounds to integer grey levels: half a grey level apart at most
        assert np.abs(out * 255.0 - Reexport(level, width)(grey)).max() <= 0.5 + 1e-3


def test_reexport_window_keeps_the_new_window_inside_the_source_window():
    image = np.linspace(0, 1, 121, dtype=np.float32)          # -20 .. 100 HU in 1 HU steps
    # L50/W120 would need 110 HU, which the source clipped: the level is moved to 40 (identity)
    out = reexport_window(image, np.random.default_rng(0), SOURCE, **_fixed(50, 120))
    assert out == pytest.approx(image, abs=1e-6)
    rng = np.random.default_rng(1)
    for _ in range(200):                                      # random draws never clip inside [-20, 100]
        out = reexport_window(image, rng, SOURCE)
        assert np.all(np.diff(out) >= -1e-7) and out.min() >= 0.0 and out.max() <= 1.0
        assert out[0] == 0.0 and out[-1] == 1.0               # -20 and 100 HU lie outside every drawn window


def test_narrower_window_raises_blood_over_brain_contrast():
    brain, blood = (np.array([30.0, 65.0], np.float32) + 20.0) / 120.0   # HU -> PNG value in [0, 1]
    out = reexport_window(np.array([brain, blood]), np.random.default_rng(0), SOURCE, **_fixed(40, 80))
    assert out[1] - out[0] == pytest.approx(1.5 * (blood - brain), rel=1e-5)


def test_augment_applies_the_jitter_to_the_image_only_and_by_its_probability():
    rng = np.random.default_rng(0)
    image = np.full((8, 8, 3), 0.5, np.float32)
    mask = np.zeros((8, 8), np.float32)
    jitter = {"p": 1.0, "source_hu": SOURCE, **_fixed(30, 80)}
    out, out_mask = augment(image, mask, rng, p_affine=0.0, p_intensity=0.0, window_jitter=jitter)
    # 0.5 is 40 HU; L30/W80 maps it to (40 - (-10)) / 80
    assert out == pytest.approx(np.full_like(image, 50.0 / 80.0), abs=1e-6)
    assert not out_mask.any()
    unchanged, _ = augment(image, mask, rng, p_affine=0.0, p_intensity=0.0, window_jitter={**jitter, "p": 0.0})
    assert unchanged == pytest.approx(image)


def test_training_config_jitter_reaches_the_sampler_with_the_models_window(synthetic_patients):
    tcfg = {"window_jitter": {"p": 1.0, "level_hu": [40, 40], "width_hu": [60, 60]}}
    config = {"window": {"level": 40.0, "width": 120.0}}
    jitter = window_jitter(tcfg, config)
    assert jitter["source_hu"] == SOURCE and window_jitter({}, config) is None
    assert "re-exported with a window of level 40-40 HU, width 60-60 HU" in describe_augmentation(jitter)
    assert "re-exported" not in describe_augmentation(None)
    # a config naming only the share gets the default ranges, in the sampler and in the description
    only_p = window_jitter({"window_jitter": {"p": 0.3}}, config)
    assert (only_p["level_hu"], only_p["width_hu"]) == ((30.0, 50.0), (70.0, 120.0))
    assert "30% of the samples re-exported with a window of level 30-50 HU, width 70-120 HU" in \
        describe_augmentation(only_p)
    plain = BalancedSampler(synthetic_patients, 16, context=1, seed=3)
    jittered = BalancedSampler(synthetic_patients, 16, context=1, seed=3, window_jitter=jitter)
    x0, x1 = (s.batch()[0][:, 8:24, 8:24] for s in (plain, jittered))   # centres: no affine padding
    # W60 doubles the contrast of these uniform random slices: half their values saturate, less
    # where the other intensity changes (half of the samples) pull them back
    saturated = lambda x: np.mean((x == 0) | (x == 1))                    # noqa: E731
    assert saturated(x1) > 0.15 > saturated(x0)


def test_training_with_only_the_share_given_records_the_default_ranges(tmp_path, monkeypatch, tiny_training,
                                                                       synthetic_patients):
    from training.train import train_model

    monkeypatch.setitem(tiny_training.TRAINING, "unet", {"steps": 2, "batch_size": 4, "learning_rate": 1e-3,
                                                         "val_every": 2, "window_jitter": {"p": 0.5}})
    config = train_model("unet", synthetic_patients[:2], synthetic_patients[2:], tmp_path / "w",
                         tmp_path / "runs", steps=2)
    assert "50% of the samples re-exported with a window of level 30-50 HU, width 70-120 HU" in \
        config["training"]["augmentation"]

