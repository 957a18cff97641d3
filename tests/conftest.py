"""Shared fixtures: tiny randomly initialised models (test-only) and a deterministic fake model.

Random weights are allowed here only to exercise loading/export/plumbing; geometry and
measurement checks use :class:`CentreChannelPredictor`, whose output is known exactly.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / ".." / "shared" / "data"

TINY_ARCH = {"unet": {"depth": 2, "base_filters": 4, "dropout": 0.0, "batch_norm": True},
             "two_branch": {"filters": 4, "dropout": 0.0, "batch_norm": True}}


def tiny_config(name: str, size: int = 32, **overrides) -> dict:
    """Weights JSON of a tiny model (input size x size, 3 channels = 1 slice of context)."""
    config = {"name": name, "architecture": name, "arch_params": dict(TINY_ARCH[name]),
              "version": "0.0.1-test", "input_size": [size, size], "in_channels": 3,
              "context_slices": 1, "window": {"level": 40.0, "width": 120.0}, "threshold": 0.5,
              "postprocess": {"min_lesion_mm3": 0.0, "min_lesion_pixels": 0, "fill_holes": True},
              "metrics": {"cv": {"mean_dice": 0.1 if name == "unet" else 0.2}}}
    config.update(overrides)
    return config


def assert_exports_and_serves_like_keras(weights_dir: Path, name: str, size: int = 32) -> None:
    """Export weights_dir/NAME to ONNX and check both runtimes give the same probabilities."""
    from model.export import export_model
    from model.runtime import load_predictor

    assert export_model(weights_dir, name)["max_abs_diff"] <= 1e-4
    x = np.random.default_rng(1).random((2, size, size, 3), dtype=np.float32)
    onnx_pred = load_predictor(weights_dir, name)
    assert onnx_pred.runtime == "onnx"
    (weights_dir / f"{name}.onnx").unlink()
    keras_pred = load_predictor(weights_dir, name)
    assert keras_pred.runtime == "keras"
    assert onnx_pred.predict(x) == pytest.approx(keras_pred.predict(x), abs=1e-4)


def write_tiny_model(weights_dir: Path, name: str, seed: int = 0) -> dict:
    """Build a tiny model with random init and save NAME.weights.h5 + NAME.json (tests only)."""
    import keras

    from model.networks import build_model

    config = tiny_config(name)
    keras.utils.set_random_seed(seed)
    build_model(config).save_weights(str(weights_dir / f"{name}.weights.h5"))
    (weights_dir / f"{name}.json").write_text(json.dumps(config))
    return config


def write_fold(runs: Path, fold: int, config: dict) -> Path:
    """A trained CV fold as ``training.evaluate`` leaves it: runs/cv/NAME/foldK/NAME.weights.h5
    (built from ``config``, random init) and NAME.json (``config`` as given). Returns the JSON path."""
    from model.networks import build_model

    path = Path(runs) / "cv" / config["name"] / f"fold{fold}"
    path.mkdir(parents=True)
    build_model(config).save_weights(path / f"{config['name']}.weights.h5")
    (path / f"{config['name']}.json").write_text(json.dumps(config))
    return path / f"{config['name']}.json"


@pytest.fixture
def tiny_training(monkeypatch):
    """``training.configs`` patched to 32x32 inputs and the tiny U-Net (tests set TRAINING)."""
    pytest.importorskip("keras")
    import training.configs as configs

    monkeypatch.setitem(configs.BASE, "input_size", [32, 32])
    monkeypatch.setitem(configs.MODELS["unet"], "arch_params", dict(TINY_ARCH["unet"]))
    return configs


@pytest.fixture
def synthetic_patients():
    """Three random 5x32x32 training patients; the first two have an 8x8 lesion on slices 1-2."""
    from training.data import Patient

    rng = np.random.default_rng(0)
    patients = []
    for i in range(3):
        images = rng.random((5, 32, 32)).astype(np.float16)
        masks = np.zeros((5, 32, 32), np.float16)
        masks[1:3, 8:16, 8:16] = i < 2
        patients.append(Patient(f"p{i}", images, masks))
    return patients


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory) -> Path:
    """Read-only dir with tiny unet and two_branch Keras weights (no ONNX)."""
    weights_dir = tmp_path_factory.mktemp("tiny_weights")
    for name in ("unet", "two_branch"):
        write_tiny_model(weights_dir, name)
    return weights_dir


@pytest.fixture(scope="session")
def tiny_onnx_dir(tiny_weights_dir, tmp_path_factory) -> Path:
    """Read-only copy of the tiny unet with an ONNX export (exported once per session)."""
    from model.export import export_model

    weights_dir = tmp_path_factory.mktemp("tiny_onnx")
    for suffix in (".weights.h5", ".json"):
        shutil.copy(tiny_weights_dir / f"unet{suffix}", weights_dir / f"unet{suffix}")
    export_model(weights_dir, "unet")
    return weights_dir


@pytest.fixture
def weights_copy(tiny_onnx_dir, tmp_path) -> Path:
    """A writable copy of the tiny unet dir (h5 + json + onnx) for tests that modify files."""
    target = tmp_path / "weights"
    shutil.copytree(tiny_onnx_dir, target)
    return target


class CentreChannelPredictor:
    """Fake model: the probability is the centre input channel (the slice itself, in [0, 1]).

    With a dark background and a bright blob the mask is the blob, so geometry (resizing to
    the model grid and back) can be checked exactly.
    """

    runtime = "fake"

    def __init__(self, name: str = "unet", size: int = 64, context: int = 1, **overrides):
        self.name = name
        self.config = {"name": name, "architecture": "unet", "version": "fake", "input_size": [size, size],
                       "in_channels": 2 * context + 1, "context_slices": context,
                       "window": {"level": 40.0, "width": 120.0}, "threshold": 0.5,
                       "postprocess": {"min_lesion_mm3": 0.0, "min_lesion_pixels": 0, "fill_holes": True},
                       "metrics": {}}
        self.config.update(overrides)
        self.calls = 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        centre = self.config["context_slices"]
        return np.asarray(x[..., centre], dtype=np.float32)

    def describe(self) -> dict:
        return {**{k: self.config[k] for k in ("name", "architecture", "input_size", "threshold",
                                                "version", "metrics")}, "runtime": self.runtime}


@pytest.fixture
def fake_segmenter():
    """Segmenter whose 'unet' is the centre-channel fake model (64x64 grid)."""
    from model.pipeline import Segmenter

    return Segmenter(predictors={"unet": CentreChannelPredictor()})


def blob_volume(shape=(5, 96, 80), centre=(2, 40, 50), radii=(1, 12, 9), value_hu=80.0,
                background_hu=0.0) -> tuple[np.ndarray, np.ndarray]:
    """(Z, Y, X) HU volume with one bright ellipsoid, and its bool mask."""
    zz, yy, xx = np.indices(shape)
    inside = (((zz - centre[0]) / max(radii[0], 1e-9)) ** 2 + ((yy - centre[1]) / radii[1]) ** 2
              + ((xx - centre[2]) / radii[2]) ** 2) <= 1.0
    return np.where(inside, value_hu, background_hu).astype(np.float32), inside


def real_data_dir() -> Path:
    if not (DATA_DIR / "ct-ich" / "slices.csv").is_file():
        pytest.skip(f"real data not found at {DATA_DIR.resolve()} (../shared/data next to the repo)")
    return DATA_DIR


@pytest.fixture
def tiny_png_dataset(tmp_path):
    """A ct-ich-like folder (slices.csv + images/masks PNGs, 32x32) of two synthetic patients:
    001 with a bright 'bleed' (grey 220 on noise of 40-100) on slices 1-2, 002 without."""
    size, root = 32, tmp_path / "data"
    from PIL import Image

    rows, rng = [], np.random.default_rng(0)
    for pid, lesion in (("001", True), ("002", False)):
        for z in range(4):
            img = (rng.random((size, size)) * 60 + 40).astype(np.uint8)
            msk = np.zeros((size, size), np.uint8)
            if lesion and z in (1, 2):
                msk[10:18, 10:18] = 255
                img[msk > 0] = 220
            for kind, arr in (("images", img), ("masks", msk)):
                (root / kind / pid).mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(root / kind / pid / f"{z}.png")
            rows.append(f"{pid},{z},images/{pid}/{z}.png,masks/{pid}/{z}.png,{int((msk > 0).sum())},{int(msk.any())}")
    (root / "slices.csv").write_text("patient,slice,image,mask,mask_pixels,hemorrhage\n" + "\n".join(rows) + "\n")
    return root
