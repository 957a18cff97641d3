"""The CLI (``python -m model segment``) timed per invocation, and the pipeline in-process."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from .server import REPO
from .stats import percentile, summarize_s

STAGES = ("read", "preprocess", "predict", "postprocess", "measure", "total")


def cli_wall(input_path: Path, out_dir: Path, weights_dir: Path, runs: int,
             budget_s: float = 120.0) -> dict:
    """Wall time of ``runs`` whole CLI invocations on ``input_path`` (process start, imports,
    model loading, segmentation, writing the outputs), fewer when ``budget_s`` runs out."""
    command = [sys.executable, "-m", "model", "segment", str(input_path), "--out", str(out_dir),
               "--weights-dir", str(weights_dir)]
    samples, errors = [], []
    deadline = time.perf_counter() + budget_s
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        if done.returncode == 0:
            samples.append(time.perf_counter() - start)
        else:
            errors.append(f"exit {done.returncode}: {done.stderr.strip()[-300:]}")
        if time.perf_counter() > deadline:
            break
    return {**summarize_s(samples), "errors": errors[:3], "error_count": len(errors)}


def in_process(weights_dir: Path, sources: list, runs: int, warmup: int = 1,
               budget_s: float = 120.0) -> dict:
    """Segmenter.segment_sources timed in this process (models loaded once, not timed), plus
    the medians of the pipeline's own stage timings and of rendering the CLI's output files."""
    from model.pipeline import Segmenter

    segmenter = Segmenter(weights_dir)
    for _ in range(warmup):
        segmenter.segment_sources(sources)
    samples, render_s, stages = [], [], {k: [] for k in STAGES}
    deadline = time.perf_counter() + budget_s
    for _ in range(runs):
        start = time.perf_counter()
        result = segmenter.segment_sources(sources)
        samples.append(time.perf_counter() - start)
        start = time.perf_counter()
        result.mask_file(), result.overlay_png(), result.montage_png()
        render_s.append(time.perf_counter() - start)
        for key in STAGES:
            stages[key].append(float(result.timings_ms.get(key, 0.0)))
        if time.perf_counter() > deadline:
            break
    return {**summarize_s(samples), "runtime": result.runtime, "model": result.config["name"],
            "stage_median_ms": {k: round(percentile(v, 50), 1) for k, v in stages.items()},
            "render_outputs_median_ms": round(1000 * percentile(render_s, 50), 1),
            "lesion_fraction": round(float(result.mask.mean()), 4)}
