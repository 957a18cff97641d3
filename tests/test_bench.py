"""Fast checks of the benchmark's helpers (no timing assertions, no servers started)."""
from __future__ import annotations

import gzip
import io
import json
import socket

import numpy as np
import pytest

from bench import flops, phantom, report, stats
from bench.client import multipart
from bench.server import free_port


# --- statistics ------------------------------------------------------------------------------

@pytest.mark.parametrize("q", [0, 10, 50, 90, 99, 100])
@pytest.mark.parametrize("values", [[5.0], [3.0, 1.0], [1, 2, 3, 4, 10], list(np.linspace(-3, 7, 13))])
def test_percentile_matches_numpy_linear(values, q):
    assert stats.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_rejects_empty_and_bad_q():
    with pytest.raises(ValueError, match="empty"):
        stats.percentile([], 50)
    with pytest.raises(ValueError, match="q must be"):
        stats.percentile([1.0], 101)


def test_summarize_converts_seconds_to_ms():
    summary = stats.summarize_s([0.1, 0.2, 0.3, 0.4, 1.0])
    assert summary == {"n": 5, "median_ms": 300.0, "p90_ms": 760.0, "min_ms": 100.0, "max_ms": 1000.0}
    assert stats.summarize_s([])["n"] == 0 and stats.summarize_s([])["median_ms"] is None


def test_ratio_none_when_unknown_or_zero():
    assert stats.ratio(300, 100) == 3.0
    assert stats.ratio(None, 100) is None and stats.ratio(1, 0) is None and stats.ratio(1, None) is None


# --- FLOPs and floors ------------------------------------------------------------------------

def test_node_flops_conv_and_transpose():
    # 3x3 conv, 3 -> 8 channels, 16x16 output: 2 * 3*3*3 * 8 * 256
    assert flops.node_flops("Conv", [(1, 3, 16, 16), (8, 3, 3, 3)], (1, 8, 16, 16)) == 2 * 27 * 8 * 256
    # 2x2 stride-2 transposed conv, 8 -> 4 channels on an 8x8 input (Keras counts input pixels)
    assert flops.node_flops("ConvTranspose", [(1, 8, 8, 8), (8, 4, 2, 2)], (1, 4, 16, 16)) == 2 * 8 * 4 * 4 * 64
    assert flops.node_flops("MatMul", [(1, 10), (10, 5)], (1, 5)) == 100
    assert flops.node_flops("Relu", [(1, 8, 4, 4)], (1, 8, 4, 4)) == 0


def _tiny_onnx(path):
    """NCHW graph with a dynamic batch: Conv 3->8 (3x3, pad 1) -> ConvTranspose 8->4 (2x2, s2)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w1 = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "w1")
    w2 = numpy_helper.from_array(np.zeros((8, 4, 2, 2), np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["h"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
         helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("ConvTranspose", ["r", "w2"], ["y"], strides=[2, 2], kernel_shape=[2, 2])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 32, 32])], [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def test_onnx_flops_counts_one_slice_of_a_dynamic_batch(tmp_path):
    _tiny_onnx(tmp_path / "tiny.onnx")
    expected = 2 * 27 * 8 * 16 * 16 + 2 * 8 * 4 * 4 * 16 * 16
    assert flops.onnx_flops(tmp_path / "tiny.onnx") == expected


def test_onnx_flops_equal_keras_count_flops(tiny_onnx_dir):
    """The ONNX export of the (tiny) U-Net has exactly the FLOPs Keras' layers imply."""
    config = json.loads((tiny_onnx_dir / "unet.json").read_text())
    assert flops.onnx_flops(tiny_onnx_dir / "unet.onnx") == flops.keras_flops(config) > 0


def test_floors_from_flops_and_rate():
    floor = flops.floors(4_000_000_000, 200.0, slices=35)
    assert floor["slice_floor_ms"] == pytest.approx(20.0)
    assert floor["volume_floor_ms"] == pytest.approx(700.0)


# --- synthetic inputs ------------------------------------------------------------------------

def test_phantom_is_head_like_hu():
    volume = phantom.head_phantom((5, 64, 64))
    assert volume.shape == (5, 64, 64) and volume.dtype == np.float32
    assert volume[:, 0, 0].max() < -900                     # air in the corner
    assert volume.max() > 900                               # skull
    centre = volume[2, 24:40, 24:40]
    assert 0 < np.median(centre) < 80                       # soft tissue inside


def test_phantom_files_decode_to_the_volume():
    import nibabel as nib
    from PIL import Image

    volume = phantom.head_phantom((4, 32, 48))
    image = nib.Nifti1Image.from_bytes(gzip.decompress(phantom.nifti_bytes(volume)))
    assert image.shape == (48, 32, 4)                       # stored (X, Y, Z)
    np.testing.assert_allclose(np.asarray(image.dataobj).transpose(2, 1, 0), np.round(volume))
    assert tuple(float(v) for v in image.header.get_zooms()) == pytest.approx((0.45, 0.45, 5.0))
    png = Image.open(io.BytesIO(phantom.png_slice_bytes(volume)))
    assert png.mode == "L" and png.size == (48, 32)


# --- HTTP helpers ----------------------------------------------------------------------------

def test_multipart_body_is_parsed_by_werkzeug():
    from werkzeug.formparser import parse_form_data
    from werkzeug.test import EnvironBuilder

    content_type, body = multipart([("a.png", b"\x89PNG..."), ("b.nii.gz", b"\x1f\x8b\x00")],
                                   {"model": "unet"})
    environ = EnvironBuilder(method="POST", data=body, headers={"Content-Type": content_type}).get_environ()
    _, form, files = parse_form_data(environ)
    assert form["model"] == "unet"
    assert [(f.filename, f.read()) for f in files.getlist("file")] == [
        ("a.png", b"\x89PNG..."), ("b.nii.gz", b"\x1f\x8b\x00")]


def test_free_port_can_be_bound_on_loopback():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# --- targets ---------------------------------------------------------------------------------

def _results(volume_ms, slice_ms, rss, cold, base_volume=None, base_slice=None, base_rss=None):
    base = {} if base_volume is None else {"volume": {"median_ms": base_volume},
                                           "slice": {"median_ms": base_slice}, "peak_rss_mb": base_rss}
    return {"floors": {"volume_floor_ms": 700.0, "slice_floor_ms": 20.0},
            "service": {"volume": {"median_ms": volume_ms}, "slice": {"median_ms": slice_ms},
                        "peak_rss_mb": rss, "cold_start_s": cold}, "baseline": base}


def test_checks_pass_and_fail_at_the_limits():
    rows = report.checks(_results(1050.0, 60.0, 400.0, 3.0, 2100.0, 120.0, 1600.0))
    assert [r["pass"] for r in rows] == [True] * 7, rows     # every value exactly at its limit
    rows = [r["pass"] for r in report.checks(_results(1051.0, 60.1, 400.1, 3.01, 2000.0, 110.0, 1500.0))]
    assert rows == [False] * 7


def test_volume_limit_is_the_smaller_of_floor_ratio_and_3_s():
    results = _results(2900.0, 10.0, 100.0, 1.0)
    results["floors"]["volume_floor_ms"] = 2500.0            # 1.5 x floor = 3750 > 3000
    assert report.checks(results)[0]["pass"] is True
    results["service"]["volume"]["median_ms"] = 3100.0
    assert report.checks(results)[0]["pass"] is False


def test_checks_without_baseline_are_not_applicable():
    rows = report.checks(_results(900.0, 50.0, 300.0, 2.0))
    assert [r["pass"] for r in rows[4:]] == [None, None, None]
    assert "n/a" in report.render({**_results(900.0, 50.0, 300.0, 2.0), "checks": rows})
