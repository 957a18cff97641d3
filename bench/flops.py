"""FLOPs of one forward pass of a single slice, and the hardware floors they imply.

Counted from the exported ONNX graph (no TensorFlow needed): 2 x multiply-accumulates of
every Conv / ConvTranspose / MatMul / Gemm, the same convention as
``model.networks.count_flops`` (element-wise ops, pooling and the sigmoid are not counted;
they are < 1 % of the work). Bias additions are not counted either.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SLICES_PER_VOLUME = 35


def _shapes(model) -> dict[str, tuple[int, ...]]:
    """Static shapes of every value in an ONNX model after shape inference (batch fixed to 1)."""
    import onnx

    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = 1                      # dynamic batch -> one slice
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for value in (list(inferred.graph.value_info) + list(inferred.graph.input)
                  + list(inferred.graph.output)):
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.dim_value > 0 for d in dims):
            shapes[value.name] = tuple(int(d.dim_value) for d in dims)
    for init in inferred.graph.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
    return shapes


def _attr(node, name: str, default):
    import onnx

    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


def node_flops(op_type: str, in_shapes: list, out_shape: tuple, group: int = 1) -> int:
    """FLOPs (2 x MACs) of one node from its input/output shapes (ONNX layouts: NCHW, weights
    (Cout, Cin/group, kh, kw) for Conv and (Cin, Cout/group, kh, kw) for ConvTranspose).

    Returns 0 for op types that are not counted.
    """
    if op_type == "Conv":
        cout, cin_g, *kernel = in_shapes[1]
        return int(2 * cin_g * int(np.prod(kernel)) * int(np.prod(out_shape)))
    if op_type == "ConvTranspose":
        x_shape, (cin, cout_g, *kernel) = in_shapes[0], in_shapes[1]
        batch, spatial = x_shape[0], int(np.prod(x_shape[2:]))
        return int(2 * batch * cin * cout_g * int(np.prod(kernel)) * spatial)
    if op_type in ("MatMul", "Gemm"):
        inner = in_shapes[0][-1]
        return int(2 * inner * int(np.prod(out_shape)))
    return 0


def onnx_flops(path: str | Path) -> int:
    """FLOPs of one forward pass of ONE slice (batch 1) of the ONNX model at ``path``.

    Raises ValueError when a counted node has no static shape.
    """
    import onnx

    model = onnx.load(str(path))
    shapes = _shapes(model)
    total = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "MatMul", "Gemm"):
            continue
        try:
            in_shapes = [shapes[name] for name in node.input[:2]]
            out_shape = shapes[node.output[0]]
        except KeyError as exc:
            raise ValueError(f"{path}: no static shape for {exc} of node {node.name}") from None
        total += node_flops(node.op_type, in_shapes, out_shape, int(_attr(node, "group", 1)))
    return total


def keras_flops(config: dict) -> int:
    """FLOPs from ``model.networks.count_flops(build_model(config))`` (imports Keras/TF)."""
    from model.networks import build_model, count_flops

    return count_flops(build_model(config))


def floors(flops_per_slice: int, gflops: float, slices: int = SLICES_PER_VOLUME) -> dict:
    """Hardware floors in ms: the model's arithmetic at the machine's sgemm rate, nothing else."""
    slice_ms = flops_per_slice / (gflops * 1e9) * 1000.0
    return {"flops_per_slice": int(flops_per_slice), "gflops_machine": round(gflops, 2),
            "slice_floor_ms": round(slice_ms, 2), "volume_slices": slices,
            "volume_floor_ms": round(slice_ms * slices, 1)}
