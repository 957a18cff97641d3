"""The service with the real model loading path: ONNX weights in a directory via ICH_MODEL_DIR.

The ONNX model is built here without TensorFlow: a graph that outputs the centre input channel
(the windowed slice itself), so HU above the window centre (40 HU) becomes lesion. It is a test
model only; it exercises loading, ONNX Runtime inference and the full response.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app import create_app
from conftest import real_data_dir
from test_web_api import block_nifti, block_png, post

SIZE = 32


def write_centre_channel_onnx(weights_dir: Path, name: str = "unet") -> Path:
    """Write NAME.onnx (image (N, 32, 32, 3) -> centre channel (N, 32, 32, 1)) + NAME.json."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    const = lambda label, values: helper.make_node(  # noqa: E731
        "Constant", [], [label], value=helper.make_tensor(label, TensorProto.INT64, [1], values))
    nodes = [const("starts", [1]), const("ends", [2]), const("axes", [3]),
             helper.make_node("Slice", ["image", "starts", "ends", "axes"], ["prob"])]
    graph = helper.make_graph(
        nodes, "centre_channel",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["batch", SIZE, SIZE, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    weights_dir.mkdir(parents=True, exist_ok=True)
    (weights_dir / f"{name}.onnx").write_bytes(model.SerializeToString())
    config = {"name": name, "architecture": "unet", "arch_params": {}, "version": "0.0.1-test",
              "input_size": [SIZE, SIZE], "in_channels": 3, "context_slices": 1,
              "window": {"level": 40, "width": 120}, "threshold": 0.5,
              "postprocess": {"min_lesion_mm3": 0.0, "min_lesion_pixels": 0, "fill_holes": True},
              "metrics": {"cv": {"mean_dice": 0.5}}}
    (weights_dir / f"{name}.json").write_text(json.dumps(config))
    return weights_dir


@pytest.fixture
def onnx_client(tmp_path, monkeypatch):
    monkeypatch.setenv("ICH_MODEL_DIR", str(write_centre_channel_onnx(tmp_path / "weights")))
    monkeypatch.setenv("ICH_THREADS", "1")
    return create_app({"TESTING": True}).test_client()


def test_models_load_once_from_the_model_dir(onnx_client):
    health = onnx_client.get("/health").get_json()
    assert health["models"] == ["unet"] and health["default_model"] == "unet"
    info = onnx_client.get("/models").get_json()["models"][0]
    assert info["runtime"] == "onnx" and info["metrics"]["cv"]["mean_dice"] == 0.5
    segmenter = onnx_client.application.config["SEGMENTER"]
    post(onnx_client, [("a.png", block_png())])
    assert onnx_client.application.config["SEGMENTER"] is segmenter


def test_onnx_segmentation_of_png_and_nifti(onnx_client):
    flat = post(onnx_client, [("a.png", block_png())], spacing="0.5,0.5,5")
    assert flat.status_code == 200
    body = flat.get_json()
    assert body["model"] == {"name": "unet", "version": "0.0.1-test", "runtime": "onnx",
                             "threshold": 0.5}
    # 20 x 30 px block through a 32 x 32 model grid: area within a few percent
    assert body["lesion_voxels"] == pytest.approx(600, rel=0.15)
    assert body["volume_ml"] == pytest.approx(body["lesion_voxels"] * 0.25 * 5 / 1000, rel=1e-3)
    volume = post(onnx_client, [("scan.nii.gz", block_nifti())])
    assert volume.status_code == 200
    assert volume.get_json()["slices_with_lesion"] == [2, 3]


def test_empty_model_dir_gives_503(tmp_path, monkeypatch):
    monkeypatch.setenv("ICH_MODEL_DIR", str(tmp_path))
    client = create_app({"TESTING": True}).test_client()
    assert client.get("/health").status_code == 503
    response = post(client, [("a.png", block_png())])
    assert response.status_code == 503 and "unet" in response.get_json()["error"]


def test_real_ct_slice_through_the_api(onnx_client):
    """One slice of the shared data set (read-only; nothing is written) gives a valid answer."""
    data = real_data_dir()
    image = sorted((data / "ct-ich" / "images").glob("*/*.png"))[0]
    response = post(onnx_client, [(image.name, image.read_bytes())], slice_overlays="0")
    assert response.status_code == 200
    body = response.get_json()
    assert body["shape"][1:] == [512, 512] and body["input_kind"] == "png"
    assert np.isfinite(body["lesion_voxels"])
