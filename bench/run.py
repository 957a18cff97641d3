"""``python -m bench``: measure the service, the CLI and a seed-style baseline in one run.

Prints a target-vs-measured table and writes everything to a JSON report. Run it on an
otherwise idle machine: the floors come from this machine's own sgemm rate.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from . import flops as flops_mod
from .cli_bench import cli_wall, in_process
from .machine import load_average, machine_gflops, machine_info
from .phantom import SHAPE_ZYX, head_phantom, nifti_bytes, png_slice_bytes
from .report import checks, render
from .server import REPO
from .service import BenchError, Plan, measure_server


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="short run (few requests, 8 s throughput): for checking the bench itself")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "bench.json",
                        help="JSON report path (default reports/bench.json)")
    parser.add_argument("--weights-dir", type=Path,
                        default=Path(os.environ.get("ICH_MODEL_DIR") or REPO / "model" / "weights"),
                        help="weights folder (default $ICH_MODEL_DIR or model/weights)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the TensorFlow baseline")
    parser.add_argument("--requests", type=int, help="measured requests per input (default 12, quick 4)")
    parser.add_argument("--throughput-s", type=float, help="throughput duration (default 30, quick 8)")
    return parser.parse_args(argv)


def make_plan(args) -> Plan:
    plan = Plan(requests=4, warmup=1, throughput_s=8.0) if args.quick else Plan()
    if args.requests:
        plan.requests = max(1, args.requests)
    if args.throughput_s:
        plan.throughput_s = max(1.0, args.throughput_s)
    return plan


def default_model(weights_dir: Path) -> tuple[str, dict]:
    """(name, config) of the model the service uses by default (model.config.default_model)."""
    from model import config as cfg

    names = cfg.available_models(weights_dir)
    if not names:
        raise BenchError(f"no trained weights in {weights_dir}; train and export first "
                         "(python -m training.train ..., python -m model export-onnx)")
    configs = {name: cfg.load_config(weights_dir, name) for name in names}
    name = cfg.default_model(configs, os.environ.get("ICH_DEFAULT_MODEL"))
    return name, configs[name]


def model_floors(weights_dir: Path, gflops: float) -> dict:
    """FLOPs of the default model (from its ONNX graph, else Keras) and the floors."""
    from model.config import onnx_path
    from model.runtime import choose_runtime

    name, config = default_model(weights_dir)
    onnx_file = onnx_path(weights_dir, name)
    if onnx_file.is_file():
        count, source = flops_mod.onnx_flops(onnx_file), "counted from the ONNX graph"
    else:
        count, source = flops_mod.keras_flops(config), "model.networks.count_flops (Keras)"
    return {**flops_mod.floors(count, gflops), "model": name, "flops_source": source,
            "runtime": choose_runtime(weights_dir, name, config), "input_size": config["input_size"],
            "has_cv_metrics": bool((config.get("metrics") or {}).get("cv"))}


def write_inputs(folder: Path) -> dict:
    """Write the phantom slice/volume into ``folder``; returns paths and multipart files."""
    volume = head_phantom(SHAPE_ZYX)
    png, nii = png_slice_bytes(volume), nifti_bytes(volume)
    (folder / "phantom_slice.png").write_bytes(png)
    (folder / "phantom_head.nii.gz").write_bytes(nii)
    return {"paths": {"slice": folder / "phantom_slice.png", "volume": folder / "phantom_head.nii.gz"},
            "files": {"slice": [("phantom_slice.png", png)], "volume": [("phantom_head.nii.gz", nii)]},
            "sizes": {"slice_png_bytes": len(png), "volume_niigz_bytes": len(nii),
                      "volume_shape_zyx": list(SHAPE_ZYX)}}


def measure_cli(inputs: dict, weights_dir: Path, work: Path, plan: Plan) -> dict:
    runs = max(2, plan.requests // 2)
    out = {"wall": {}, "inproc": {}}
    for key in ("slice", "volume"):
        out["wall"][key] = cli_wall(inputs["paths"][key], work / "cli-out", weights_dir, runs)
        log(f"  CLI {key}: wall median {out['wall'][key]['median_ms']} ms")
    for key in ("slice", "volume"):
        out["inproc"][key] = in_process(weights_dir, inputs["files"][key], plan.requests)
        log(f"  in-process {key}: median {out['inproc'][key]['median_ms']} ms")
    return out


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args) -> dict:
    plan, weights_dir = make_plan(args), args.weights_dir.resolve()
    results: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": args.quick,
                     "plan": vars(plan), "weights_dir": str(weights_dir), "machine": machine_info()}
    if (load := load_average()) and load[0] > 0.5:
        log(f"warning: load average {load[0]} before the run: other processes compete for the CPU; "
            "the numbers will be pessimistic")
    log("sgemm GFLOP/s ...")
    results["gflops"] = machine_gflops(repeats=3 if args.quick else 5)
    results["floors"] = model_floors(weights_dir, results["gflops"]["best"])
    if results["floors"]["runtime"] != "onnx":
        log(f"warning: no up-to-date {results['floors']['model']}.onnx in {weights_dir}: the service "
            "will run Keras/TensorFlow, not ONNX Runtime; run `python -m model export-onnx` first")
    env = {"ICH_MODEL_DIR": str(weights_dir)}
    with tempfile.TemporaryDirectory(prefix="ich-bench-") as tmp:
        work = Path(tmp)
        inputs = write_inputs(work)
        results["inputs"] = inputs["sizes"]
        log("service (gunicorn, ONNX Runtime) ...")
        results["service"] = measure_server("app:create_app()", env, inputs["files"], plan,
                                            work / "service.log", progress=log)
        log("CLI and in-process pipeline ...")
        results["cli"] = measure_cli(inputs, weights_dir, work, plan)
        if not args.no_baseline:
            log("baseline (gunicorn, TensorFlow Keras model.predict) ...")
            try:
                results["baseline"] = measure_server("bench.baseline:create_app()", env,
                                                     inputs["files"], plan, work / "baseline.log",
                                                     with_extras=False, progress=log)
            except BenchError as exc:   # keep the service's numbers; the comparison is n/a
                log(f"error: baseline: {exc}")
                results["baseline"] = {"error": str(exc)}
    results["machine"]["load_average_at_end"] = load_average()
    results["checks"] = checks(results)
    return results


def _terminate(signum, frame):  # SIGTERM -> SystemExit so every finally (server stop) runs
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.perf_counter()
    try:
        results = run(args)
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    results["bench_duration_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(render(results))
    print(f"\nbench took {results['bench_duration_s']:.0f} s; report written to {args.out}")
    return 0
