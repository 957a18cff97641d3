"""Export trained Keras weights to ONNX (``NAME.onnx``) so serving needs no TensorFlow.

The export is checked against Keras on random input; the maximum absolute difference of the
probabilities must be <= ``tolerance`` (1e-4) or the export fails and no file is kept. The
result is recorded in ``NAME.json["onnx"] = {"opset", "max_abs_diff", "weights_sha256"}``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from . import config as cfg
from .errors import PipelineError

OPSET = 17
TOLERANCE = 1e-4


def _import_tensorflow():
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def convert(model, input_shape: tuple[int, int, int], out_path: Path, opset: int = OPSET) -> None:
    """Write ``model`` as ONNX: input "image" (batch, H, W, C) float32 with a dynamic batch."""
    tf = _import_tensorflow()
    import tf2onnx

    spec = [tf.TensorSpec((None, *input_shape), tf.float32, name="image")]
    forward = tf.function(lambda image: model(image, training=False), input_signature=spec)
    proto, _ = tf2onnx.convert.from_function(forward, input_signature=spec, opset=opset)
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    out_path.write_bytes(proto.SerializeToString())


def max_abs_diff(model, onnx_file: Path, input_shape: tuple[int, int, int], batch: int = 2,
                 seed: int = 0) -> float:
    """Largest |Keras - ONNX Runtime| over the outputs for random inputs in [0, 1]."""
    import onnxruntime as ort

    x = np.random.default_rng(seed).random((batch, *input_shape), dtype=np.float32)
    expected = np.asarray(model(x, training=False))
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    if got.shape != expected.shape:
        raise PipelineError(f"ONNX output shape {got.shape} != Keras {expected.shape}", stage="predict")
    return float(np.max(np.abs(got - expected)))


def export_model(weights_dir: str | Path, name: str, *, opset: int = OPSET,
                 tolerance: float = TOLERANCE) -> dict:
    """Export ``weights_dir/NAME.weights.h5`` to ``NAME.onnx``; returns the recorded dict.

    Raises ModelUnavailableError without weights and PipelineError when the check fails.
    """
    from .runtime import load_keras_model

    name = cfg.canonical_name(name)
    weights_dir = Path(weights_dir)
    config = cfg.load_config(weights_dir, name)
    h5_file = cfg.weights_path(weights_dir, name)
    if not h5_file.is_file():
        raise cfg.unavailable(weights_dir, name)
    _import_tensorflow()
    model = load_keras_model(config, h5_file)
    input_shape = (*map(int, config["input_size"]), int(config["in_channels"]))
    out_path = cfg.onnx_path(weights_dir, name)
    tmp_path = out_path.with_name(out_path.name + ".tmp")
    try:
        convert(model, input_shape, tmp_path, opset)
        diff = max_abs_diff(model, tmp_path, input_shape)
        if not diff <= tolerance:
            raise PipelineError(f"ONNX export of '{name}' disagrees with Keras: max abs diff "
                                f"{diff:.3g} > {tolerance:g}", stage="predict")
        os.replace(tmp_path, out_path)
    finally:
        tmp_path.unlink(missing_ok=True)
    record = {"opset": opset, "max_abs_diff": diff, "weights_sha256": cfg.file_sha256(h5_file)}
    cfg.update_config(weights_dir, name, onnx=record)
    return record


def export_all(weights_dir: str | Path, names: list[str]) -> int:
    """Export each model in ``names``; one line each (errors on stderr). Returns 0, or 2 if any failed."""
    status = 0
    for name in names:
        try:
            record = export_model(weights_dir, name)
        except PipelineError as exc:
            print(f"error: {name}: {exc.message}", file=sys.stderr)
            status = 2 if status == 0 else status
            continue
        print(f"{name}: wrote {cfg.onnx_path(weights_dir, name)} (opset {record['opset']}, "
             f"max abs diff vs Keras {record['max_abs_diff']:.2e})")
    return status
