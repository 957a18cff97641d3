"""Model loading: ONNX preferred and checked against Keras, stale exports ignored, no random weights."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from model.config import load_config
from model.errors import ModelUnavailableError, PipelineError
from model.runtime import load_predictor, num_threads
from tests.conftest import REPO, write_tiny_model


def random_input(n=2, size=32, seed=1):
    return np.random.default_rng(seed).random((n, size, size, 3), dtype=np.float32)


def test_export_records_agreement_with_keras(tiny_onnx_dir):
    record = json.loads((tiny_onnx_dir / "unet.json").read_text())["onnx"]
    assert record["opset"] == 17
    assert 0 <= record["max_abs_diff"] <= 1e-4
    assert len(record["weights_sha256"]) == 64
    import onnx

    graph = onnx.load(str(tiny_onnx_dir / "unet.onnx")).graph
    assert graph.input[0].name == "image"
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_onnx_and_keras_predictors_agree(tiny_onnx_dir, tiny_weights_dir):
    onnx_model = load_predictor(tiny_onnx_dir, "unet")
    keras_model = load_predictor(tiny_weights_dir, "unet")
    assert (onnx_model.runtime, keras_model.runtime) == ("onnx", "keras")
    x = random_input(3)
    got, expected = onnx_model.predict(x), keras_model.predict(x)
    assert got.shape == (3, 32, 32) and got.dtype == np.float32
    assert np.abs(got - expected).max() <= 1e-4
    assert ((got >= 0) & (got <= 1)).all()


def test_alias_and_describe(tiny_weights_dir):
    predictor = load_predictor(tiny_weights_dir, "two-branch")
    assert predictor.name == "two_branch" and predictor.runtime == "keras"
    assert predictor.predict(random_input(1)).shape == (1, 32, 32)
    assert predictor.describe()["architecture"] == "two_branch"


def test_missing_weights_never_fall_back_to_random(tmp_path):
    with pytest.raises(ModelUnavailableError, match="no trained weights for model 'unet'") as info:
        load_predictor(tmp_path, "unet")
    assert "python -m training.train" in info.value.message and info.value.status == 503
    (tmp_path / "unet.json").write_text(json.dumps({"architecture": "unet", "input_size": [32, 32]}))
    with pytest.raises(ModelUnavailableError, match="no trained weights"):
        load_predictor(tmp_path, "unet")


def test_stale_onnx_is_ignored_when_weights_hash_differs(weights_copy):
    write_tiny_model(weights_copy, "unet", seed=7)  # new weights; JSON rewritten without "onnx"
    config = json.loads((weights_copy / "unet.json").read_text())
    config["onnx"] = {"opset": 17, "max_abs_diff": 0.0, "weights_sha256": "0" * 64}
    (weights_copy / "unet.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="sha256 mismatch"):
        assert load_predictor(weights_copy, "unet").runtime == "keras"


def test_onnx_older_than_weights_is_ignored_without_hash(weights_copy):
    config = json.loads((weights_copy / "unet.json").read_text())
    del config["onnx"]
    (weights_copy / "unet.json").write_text(json.dumps(config))
    # relative to the .h5, not the clock: the session fixture may be minutes old by now
    old = (weights_copy / "unet.weights.h5").stat().st_mtime - 100
    os.utime(weights_copy / "unet.onnx", (old, old))
    with pytest.warns(UserWarning, match="older than"):
        assert load_predictor(weights_copy, "unet").runtime == "keras"


def test_wrong_input_shape_names_the_stage(tiny_onnx_dir):
    predictor = load_predictor(tiny_onnx_dir, "unet")
    with pytest.raises(PipelineError, match="expects input") as info:
        predictor.predict(np.zeros((1, 16, 16, 3), np.float32))
    assert info.value.stage == "predict"


def test_invalid_config_is_reported(tmp_path):
    (tmp_path / "unet.json").write_text('{"architecture": "unet", "input_size": [32]}')
    with pytest.raises(PipelineError, match="input_size"):
        load_config(tmp_path, "unet")
    (tmp_path / "unet.json").write_text("{not json")
    with pytest.raises(PipelineError, match="cannot read model config"):
        load_config(tmp_path, "unet")


@pytest.mark.parametrize("post, message", [
    ({"core_threshold": 0.9}, "needs min_core_pixels"),
    ({"core_threshold": 0.4, "min_core_pixels": 10, "min_core_mm3": 10.0}, r"\[threshold, 1\)"),
    ({"core_threshold": 0.9, "min_core_pixels": 1.5, "min_core_mm3": 10.0}, "needs min_core_pixels"),
])
def test_an_incomplete_core_rule_is_an_invalid_config(tmp_path, post, message):
    config = {"architecture": "unet", "input_size": [32, 32], "threshold": 0.5, "postprocess": post}
    (tmp_path / "unet.json").write_text(json.dumps(config))
    with pytest.raises(PipelineError, match=message):
        load_config(tmp_path, "unet")
    post.update(core_threshold=0.95, min_core_pixels=10, min_core_mm3=10.0)
    (tmp_path / "unet.json").write_text(json.dumps(config))
    assert load_config(tmp_path, "unet")["postprocess"]["core_threshold"] == 0.95


def test_thread_count_from_env(monkeypatch):
    monkeypatch.setenv("ICH_THREADS", "3")
    assert num_threads() == 3
    monkeypatch.delenv("ICH_THREADS")
    assert num_threads() == 2


def test_serving_from_onnx_does_not_import_tensorflow(tiny_onnx_dir):
    code = ("import sys, numpy as np\n"
            "from model.pipeline import Segmenter\n"
            f"seg = Segmenter({str(tiny_onnx_dir)!r})\n"
            "assert seg.models()[0]['runtime'] == 'onnx'\n"
            "seg.predictor('unet').predict(np.zeros((1, 32, 32, 3), np.float32))\n"
            "bad = [m for m in ('tensorflow', 'keras', 'tf2onnx') if m in sys.modules]\n"
            "print('imported:', bad)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "imported: []" in run.stdout
