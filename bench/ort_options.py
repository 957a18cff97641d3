"""ONNX Runtime session settings compared on the default model (``python -m bench.profile --ort``).

Each variant runs 35 random slices of the model's input shape through a fresh session: per slice (what the pipeline
does) or in batches, with 1 or 2 intra-op threads, thread spinning on/off and the memory
arena on/off. Reported: median ms per slice over ``repeats`` passes and the RSS the session
added (RSS after the passes minus RSS before creating the session: the session, its weights
and its memory arena). Each variant runs in its own spawned process so memory figures do not
mix; run on an idle machine.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

VARIANTS = {   # name: (threads, spinning, arena, batch)
    "batch 1 (2 thr, no spin, arena)": (2, "0", True, 1),
    "batch 2": (2, "0", True, 2),
    "batch 4": (2, "0", True, 4),
    "batch 8": (2, "0", True, 8),
    "batch 1, arena off": (2, "0", False, 1),
    "batch 2, arena off": (2, "0", False, 2),
    "spinning on (batch 1)": (2, "1", True, 1),
    "1 thread (batch 1)": (1, "0", True, 1),
}


def session(path: Path, threads: int, spinning: str, arena: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = arena
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def per_slice_ms(sess, x: np.ndarray, batch: int, repeats: int) -> float:
    """Median over ``repeats`` passes of the whole (N, H, W, C) input, in ms per slice."""
    name = sess.get_inputs()[0].name
    passes = []
    for _ in range(repeats + 1):                       # first pass = warm-up
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            sess.run(None, {name: x[i:i + batch]})
        passes.append((time.perf_counter() - start) * 1000.0 / len(x))
    return float(np.median(passes[1:]))


def measure_variant(onnx_file: Path, x_shape: tuple, variant: tuple, repeats: int) -> tuple:
    """(ms per slice, MB of RSS added) of one variant on random input of ``x_shape``
    (N, H, W, C) in [0, 1]; meant to run in a fresh process."""
    import onnxruntime  # noqa: F401 - library memory is not the session's
    import psutil

    x = np.random.default_rng(0).random(x_shape, dtype=np.float32)
    before = psutil.Process().memory_info().rss
    threads, spinning, arena, batch = variant
    sess = session(onnx_file, threads, spinning, arena)
    ms = per_slice_ms(sess, x, batch, repeats)
    return ms, (psutil.Process().memory_info().rss - before) / 1e6


def compare(onnx_file: Path, x_shape: tuple, repeats: int = 3) -> list[tuple[str, float, float]]:
    """[(variant, ms per slice, MB of RSS added by the session)] for every VARIANT."""
    import multiprocessing

    context, rows = multiprocessing.get_context("spawn"), []
    for label, variant in VARIANTS.items():
        with context.Pool(1) as pool:
            ms, added_mb = pool.apply(measure_variant, (onnx_file, x_shape, variant, repeats))
        rows.append((label, round(ms, 1), round(added_mb, 1)))
    return rows
