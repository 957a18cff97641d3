"""``python -m bench.profile``: where the time of one request goes (in-process, no HTTP).

Runs the web service's work for the phantom slice and volume (Segmenter.segment_sources +
web.payload.segment_payload, i.e. pipeline + rendering + base64) under cProfile and prints
the pipeline's stage timings, the payload encoding time and the top functions by own time.
CPU time (process_time) is shown next to wall time: it is less distorted by other load.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time
from pathlib import Path

from .phantom import SHAPE_ZYX, head_phantom, nifti_bytes, png_slice_bytes
from .server import REPO


def timed(fn):
    """(result, wall_ms, cpu_ms) of calling ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3


def profile_one(segmenter, sources, with_slices: bool, top: int) -> str:
    """Stage timings and the cProfile top-``top`` (own time) of one request's work."""
    from web.payload import segment_payload

    segmenter.segment_sources(sources)                              # warm-up
    profiler = cProfile.Profile()
    profiler.enable()
    result, seg_wall, seg_cpu = timed(lambda: segmenter.segment_sources(sources))
    payload, pay_wall, pay_cpu = timed(lambda: segment_payload(result, with_slices=with_slices))
    profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(top)
    lines = [f"{sources[0][0]}: shape {list(result.mask.shape)}, lesion fraction "
             f"{result.mask.mean():.4f}, runtime {result.runtime}",
             f"  segment_sources {seg_wall:.0f} ms wall / {seg_cpu:.0f} ms CPU; stages {result.timings_ms}",
             f"  segment_payload(with_slices={with_slices}) {pay_wall:.0f} ms wall / {pay_cpu:.0f} ms CPU; "
             f"JSON fields ~{sum(len(str(v)) for v in payload.values()) / 1e6:.1f} MB",
             stream.getvalue()]
    return "\n".join(lines)


def compare_ort(weights_dir: Path) -> int:
    """Print ms/slice of the default model's ONNX session under each bench.ort_options variant."""
    from model.config import onnx_path
    from .ort_options import compare
    from .run import default_model

    name, config = default_model(weights_dir)
    if not onnx_path(weights_dir, name).is_file():
        print(f"no {name}.onnx in {weights_dir}; run `python -m model export-onnx` first")
        return 2
    x_shape = (SHAPE_ZYX[0], *map(int, config["input_size"]), int(config["in_channels"]))
    print(f"{name}: {x_shape[0]} slices of {list(x_shape[1:])}")
    for label, ms, rss in compare(onnx_path(weights_dir, name), x_shape):
        print(f"  {label:48s} {ms:7.1f} ms/slice   +{rss:6.1f} MB RSS")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--weights-dir", type=Path,
                        default=Path(os.environ.get("ICH_MODEL_DIR") or REPO / "model" / "weights"))
    parser.add_argument("--top", type=int, default=20, help="functions listed per input")
    parser.add_argument("--no-slices", action="store_true", help="payload without per-slice overlays")
    parser.add_argument("--ort", action="store_true",
                        help="compare ONNX Runtime session settings instead (see bench.ort_options)")
    args = parser.parse_args(argv)
    if args.ort:
        return compare_ort(args.weights_dir)
    from model.pipeline import Segmenter

    segmenter = Segmenter(args.weights_dir)
    volume = head_phantom(SHAPE_ZYX)
    for sources in ([("phantom_slice.png", png_slice_bytes(volume))],
                    [("phantom_head.nii.gz", nifti_bytes(volume))]):
        print(profile_one(segmenter, sources, not args.no_slices, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
