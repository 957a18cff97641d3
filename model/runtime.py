"""Load a trained model for inference: ONNX Runtime when an up-to-date export exists, else Keras.

``NAME.onnx`` is preferred (no TensorFlow import, smaller memory). It is ignored, with a
warning, when it no longer matches ``NAME.weights.h5``: its recorded sha256 of the weights
(``NAME.json["onnx"]["weights_sha256"]``) differs, or, when no hash is recorded, the .onnx is
older than the .h5. Without weights a ModelUnavailableError is raised: never random weights.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from . import config as cfg
from .errors import PipelineError

log = logging.getLogger(__name__)


class Predictor:
    """A loaded model. ``predict`` maps (N, H, W, C) float32 in [0, 1] to (N, H, W) probabilities."""

    runtime = "none"
    batch = 1  # slices per _predict_batch call; subclasses set their own

    def __init__(self, config: dict):
        self.config = config
        self.name = config["name"]
        rows, cols = config["input_size"]
        self.input_shape = (int(rows), int(cols), int(config["in_channels"]))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, H, W, C) float32 -> (N, H, W) float32 sigmoid probabilities, ``batch`` slices per call."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != self.input_shape:
            raise PipelineError(f"model '{self.name}' expects input (N, {', '.join(map(str, self.input_shape))})"
                                f", got {x.shape}", stage="predict")
        out = np.empty(x.shape[:3], dtype=np.float32)
        for i in range(0, x.shape[0], self.batch):
            out[i:i + self.batch] = self._predict_batch(np.ascontiguousarray(x[i:i + self.batch]))[..., 0]
        return out

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:  # (n, H, W, C) -> (n, H, W, 1)
        raise NotImplementedError

    def describe(self) -> dict:
        """Summary for listings: name, architecture, input_size, threshold, version, metrics, runtime."""
        keys = ("name", "architecture", "input_size", "threshold", "version", "metrics")
        return {**{k: self.config.get(k) for k in keys}, "runtime": self.runtime}


def num_threads() -> int:
    """Intra-op threads from env ICH_THREADS (default 2)."""
    try:
        return max(1, int(os.environ.get("ICH_THREADS", "2")))
    except ValueError:
        return 2


class OnnxPredictor(Predictor):
    runtime = "onnx"
    # ONNX Runtime's arena grows with the slices per call. Measured on the shipped base-16 U-Net (2 threads,
    # 35 slices of 224x224x3, `python -m bench.profile --ort`, stop 32): batch 1 16.1 ms/slice +77 MB RSS,
    # 2 15.2 ms +124 MB, 4 15.3 ms +235 MB, 8 15.7 ms +381 MB. Batch 2 (chosen for the base-8 net, +5 MB there)
    # put a worker's peak at 404-433 MB with base 16, over the 400 MB target, for ~6% speed.
    batch = 1

    def __init__(self, config: dict, path: Path):
        super().__init__(config)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), sess_options=options,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


class KerasPredictor(Predictor):
    runtime = "keras"
    batch = 2  # evaluation and training: memory matters less there than per-call overhead

    def __init__(self, config: dict, weights_file: Path):
        super().__init__(config)
        self.model = load_keras_model(config, weights_file)
        self._fn = compiled_forward(self.model, self.input_shape)

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._fn(x))


def load_keras_model(config: dict, weights_file: Path):
    """Build the network from ``config`` and load trained weights (imports Keras)."""
    from .networks import build_model

    model = build_model(config)
    model.load_weights(str(weights_file))
    return model


def compiled_forward(model, input_shape: tuple[int, int, int]):
    """Inference function x (N, H, W, C) -> (N, H, W, 1); a tf.function on the TF backend."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return lambda x: keras.ops.convert_to_numpy(model(x, training=False))
    import tensorflow as tf

    try:  # only possible before TensorFlow has started its thread pools
        tf.config.threading.set_intra_op_parallelism_threads(num_threads())
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    spec = tf.TensorSpec((None, *input_shape), tf.float32)
    forward = tf.function(lambda x: model(x, training=False), input_signature=[spec],
                          reduce_retracing=True)
    return lambda x: forward(x).numpy()


def onnx_is_current(weights_dir: str | Path, name: str, config: dict) -> tuple[bool, str]:
    """Whether ``NAME.onnx`` may be used, and why not when it may not."""
    onnx_file = cfg.onnx_path(weights_dir, name)
    h5_file = cfg.weights_path(weights_dir, name)
    if not onnx_file.is_file():
        return False, f"{onnx_file.name} not found"
    if not h5_file.is_file():
        return True, ""
    recorded = (config.get("onnx") or {}).get("weights_sha256")
    if recorded:
        if recorded != cfg.file_sha256(h5_file):
            return False, (f"{onnx_file.name} was exported from different weights than "
                           f"{h5_file.name} (sha256 mismatch); re-run `python -m model export-onnx`")
        return True, ""
    if onnx_file.stat().st_mtime < h5_file.stat().st_mtime:
        return False, (f"{onnx_file.name} is older than {h5_file.name}; "
                       "re-run `python -m model export-onnx`")
    return True, ""


def choose_runtime(weights_dir: str | Path, name: str, config: dict) -> str:
    """"onnx" or "keras" (what :func:`load_predictor` would use), without loading anything."""
    ok, reason = onnx_is_current(weights_dir, name, config)
    if ok:
        return "onnx"
    if cfg.onnx_path(weights_dir, name).is_file():
        message = f"ignoring {reason}"
        warnings.warn(message, stacklevel=2)
        log.warning(message)
    if not cfg.weights_path(weights_dir, name).is_file():
        raise cfg.unavailable(weights_dir, name)
    return "keras"


def load_predictor(weights_dir: str | Path, name: str) -> Predictor:
    """Load model ``name`` (alias 'two-branch' accepted) from ``weights_dir``.

    Raises ModelUnavailableError when there is no NAME.json or no trained weights.
    """
    name = cfg.canonical_name(name)
    config = cfg.load_config(weights_dir, name)
    config["name"] = name
    if choose_runtime(weights_dir, name, config) == "onnx":
        return OnnxPredictor(config, cfg.onnx_path(weights_dir, name))
    return KerasPredictor(config, cfg.weights_path(weights_dir, name))
