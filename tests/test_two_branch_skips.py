"""The two-branch CNN's optional decoder skips (``arch_params.skips``): off by default so the shipped
weights still load by layer order; on, they train, save, export to ONNX and serve from the JSON alone."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import assert_exports_and_serves_like_keras, tiny_config

TINY = {"filters": 4, "dropout": 0.0, "batch_norm": True}


def _layer_names(model) -> list[str]:
    return [layer.name for layer in model.layers]


def test_skips_off_builds_the_same_layers_and_weights_as_before():
    pytest.importorskip("keras")
    from model.networks import build_model

    default = build_model(tiny_config("two_branch", arch_params=dict(TINY)))
    off = build_model(tiny_config("two_branch", arch_params={**TINY, "skips": False}))
    assert _layer_names(default) == _layer_names(off)
    assert [w.shape for w in default.weights] == [w.shape for w in off.weights]
    assert not any(name.startswith(("skip", "fuse")) for name in _layer_names(default))


def test_skips_feed_both_branches_full_resolution_features_to_the_output():
    pytest.importorskip("keras")
    from model.networks import build_model

    model = build_model(tiny_config("two_branch", arch_params={**TINY, "skips": True}))
    # level 0: the deconvolution's 4 channels + branch A's and branch B's 4 channels at 32x32
    assert tuple(model.get_layer("skip0").output.shape) == (None, 32, 32, 12)
    assert tuple(model.get_layer("skip2").output.shape) == (None, 8, 8, 48)
    assert tuple(model.get_layer("fuse0").output.shape) == (None, 32, 32, 4)
    assert model(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 32, 32, 1)


def test_two_branch_with_skips_trains_exports_and_serves(tmp_path, monkeypatch, tiny_training,
                                                         synthetic_patients):
    from training.train import train_model

    monkeypatch.setitem(tiny_training.MODELS["two_branch"], "arch_params", {**TINY, "skips": True})
    monkeypatch.setitem(tiny_training.TRAINING, "two_branch", {"steps": 2, "batch_size": 4, "learning_rate": 1e-3,
                                                               "val_every": 2})
    out = tmp_path / "w"
    train_model("two_branch", synthetic_patients[:2], synthetic_patients[2:], out, tmp_path / "runs", steps=2)
    assert json.loads((out / "two_branch.json").read_text())["arch_params"]["skips"] is True
    assert_exports_and_serves_like_keras(out, "two_branch")
