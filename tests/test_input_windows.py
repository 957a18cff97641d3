"""Extra input windows (``arch_params.extra_windows``): exact re-windowing inside the network,
saved and served from the weights JSON alone, ONNX export included."""
from __future__ import annotations

import json

import numpy as np
import pytest

from model.config import validate_config
from model.errors import PipelineError
from model.networks import window_affine
from model.preprocess import Window

from tests.conftest import assert_exports_and_serves_like_keras, tiny_config

SOURCE = {"level": 40.0, "width": 120.0}
BLOOD = {"level": 55.0, "width": 50.0}


def test_window_affine_maps_a_source_window_value_to_the_target_window():
    scale, offset = window_affine(Window(**SOURCE), Window(**BLOOD))
    hu = np.array([-20.0, 20.0, 30.0, 40.0, 60.0, 80.0, 100.0], np.float32)
    unit = Window(**SOURCE)(hu)
    got = np.clip(unit * scale + offset, 0.0, 1.0)
    assert got == pytest.approx(Window(**BLOOD)(hu), abs=1e-6)
    assert got[4] == pytest.approx(0.6)            # 60 HU in 30..80 HU


def test_network_input_gets_the_rewindowed_channels_after_the_original_ones():
    keras = pytest.importorskip("keras")
    from model.networks import build_model

    config = tiny_config("unet", arch_params={"depth": 2, "base_filters": 4, "dropout": 0.0,
                                              "batch_norm": True, "extra_windows": [BLOOD]})
    model = build_model(config)
    layer = model.get_layer("input_windows")
    hu = np.random.default_rng(0).uniform(-40, 120, size=(2, 32, 32, 3)).astype(np.float32)
    x = Window(**SOURCE)(hu)
    out = np.asarray(keras.Model(model.input, layer.output)(x))
    assert out.shape == (2, 32, 32, 6)
    assert out[..., :3] == pytest.approx(x)
    assert out[..., 3:] == pytest.approx(Window(**BLOOD)(hu), abs=1e-5)
    # the layer adds no weights: only the first convolution grows (3 -> 6 input channels)
    plain = build_model(tiny_config("unet"))
    assert len(model.weights) == len(plain.weights)


def test_two_branch_accepts_extra_windows_too():
    pytest.importorskip("keras")
    from model.networks import build_model

    config = tiny_config("two_branch", arch_params={"filters": 4, "dropout": 0.0, "batch_norm": True,
                                                    "extra_windows": [BLOOD, {"level": 70, "width": 60}]})
    model = build_model(config)
    assert model.get_layer("input_windows").output.shape[-1] == 9
    assert model(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 32, 32, 1)


@pytest.mark.parametrize("bad", [[{"level": 55}], [{"level": 55, "width": 0}], {"level": 55, "width": 50},
                                 [{"level": "55", "width": 50}]])
def test_invalid_extra_windows_are_rejected_with_a_clear_message(bad):
    config = tiny_config("unet", arch_params={"depth": 2, "base_filters": 4, "extra_windows": bad})
    with pytest.raises(PipelineError, match="extra_windows"):
        validate_config(config)


def test_trained_model_with_extra_windows_exports_and_serves_from_its_json(tmp_path, monkeypatch, tiny_training,
                                                                         synthetic_patients):
    from training.train import train_model

    arch = {**tiny_training.MODELS["unet"]["arch_params"], "extra_windows": [BLOOD]}
    monkeypatch.setitem(tiny_training.MODELS["unet"], "arch_params", arch)
    monkeypatch.setitem(tiny_training.TRAINING, "unet", {"steps": 2, "batch_size": 4, "learning_rate": 1e-3,
                                                         "val_every": 2})
    out = tmp_path / "w"
    train_model("unet", synthetic_patients[:2], synthetic_patients[2:], out, tmp_path / "runs", steps=2)
    assert json.loads((out / "unet.json").read_text())["arch_params"]["extra_windows"] == [BLOOD]
    assert_exports_and_serves_like_keras(out, "unet")
