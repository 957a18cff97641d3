"""Command line: a thin layer over :class:`model.pipeline.Segmenter`.

    python -m model segment INPUT [INPUT ...] --out DIR [--model unet|two-branch]
                            [--spacing ROW_MM COL_MM [SLICE_MM]] [--export-window LEVEL WIDTH]
    python -m model info [--json]
    python -m model export-onnx [--model unet|two_branch|all]

``segment`` writes, for each INPUT with base name NAME: DIR/NAME.mask.png (2D) or
DIR/NAME.mask.nii.gz (3D), DIR/NAME.overlay.png, DIR/NAME.json and, for volumes with a
lesion, DIR/NAME.montage.png. Exit status: 0 all inputs done, 1 some input failed, 2 no
trained weights / bad arguments.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from . import config as cfg
from .errors import InputError, ModelUnavailableError, PipelineError


def error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model",
                                     description="Intracranial hemorrhage segmentation on head CT.")
    sub = parser.add_subparsers(dest="command", required=True)
    seg = sub.add_parser("segment", help="segment CT images/volumes",
                         description="INPUT: .png .jpg .nii .nii.gz .dcm, a folder of .dcm files or a .zip")
    seg.add_argument("inputs", nargs="+", metavar="INPUT")
    seg.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    seg.add_argument("--model", help="unet or two-branch (default: unet when trained, else two-branch)")
    seg.add_argument("--spacing", nargs="+", type=float, metavar="MM",
                     help="ROW_MM COL_MM [SLICE_MM]: voxel size, overrides the file's (put it after the inputs)")
    seg.add_argument("--export-window", nargs=2, type=float, metavar=("LEVEL", "WIDTH"),
                     help="HU window the PNG/JPG slices were exported with (e.g. 40 80), if not the "
                          "training PNGs' L40/W120: their grey values are then read back as HU")
    info = sub.add_parser("info", help="list the trained models and their metrics")
    info.add_argument("--json", action="store_true", help="print JSON")
    export = sub.add_parser("export-onnx", help="export trained Keras weights to ONNX")
    export.add_argument("--model", default="all", help="unet, two_branch or all (default)")
    for command in (seg, info, export):
        command.add_argument("--weights-dir", type=Path, default=cfg.DEFAULT_WEIGHTS_DIR,
                             help="folder with NAME.json + NAME.weights.h5 / NAME.onnx")
    return parser


def summary_line(report: dict) -> str:
    """One line: name, volume (or why unknown), lesion count, voxels, time, model."""
    if report["volume_ml"] is not None:
        volume = f"volume {report['volume_ml']:.2f} mL"
        if report["abc2_ml"] is not None:
            volume += f" (ABC/2 {report['abc2_ml']:.2f} mL)"
    else:
        volume = "volume unknown (no spacing)"
    count = report["lesion_count"]
    model = report["model"]
    return (f"{report['name']}: {volume}, {count} lesion{'s' if count != 1 else ''} "
            f"({report['lesion_voxels']} voxels), {report['timings_ms']['total'] / 1000:.2f} s "
            f"[{model['name']}/{model['runtime']}]")


def write_outputs(result, out_dir: Path) -> list[Path]:
    """Write NAME.mask.*, NAME.overlay.png, NAME.json (and NAME.montage.png) into ``out_dir``."""
    files = {}
    suffix, data = result.mask_file()
    files[suffix] = data
    files[".overlay.png"] = result.overlay_png()
    montage = result.montage_png()
    if montage is not None:
        files[".montage.png"] = montage
    files[".json"] = (json.dumps(result.report(), indent=2) + "\n").encode("utf-8")
    paths = []
    for suffix, data in files.items():
        path = out_dir / f"{result.name}{suffix}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def unique_name(stem: str, used: set) -> str:
    name, k = stem, 2
    while name in used:
        name, k = f"{stem}_{k}", k + 1
    used.add(name)
    return name


def segment_one(segmenter, path: str, out_dir: Path, model: Optional[str], options: dict, used: set) -> bool:
    """Segment one INPUT and write its files; prints one line either way. True on success.
    ``options``: keyword arguments of ``Segmenter.segment_sources`` (spacing_mm, export_window)."""
    from .readers import input_stem, sources_from_path

    try:
        if not Path(path).exists():
            raise InputError("no such file or directory", stage="read", status=400)
        stem = input_stem(Path(path).name)
        name = unique_name(stem, used)
        if name != stem:
            print(f"warning: {path}: another input is also named {stem!r}; writing {name}.*",
                  file=sys.stderr)
        sources = sources_from_path(path, segmenter.limits)
        result = segmenter.segment_sources(sources, model=model, name=name, **options)
        write_outputs(result, out_dir)
    except PipelineError as exc:
        error(f"{path}: {exc}")
        return False
    except OSError as exc:
        error(f"{path}: cannot read or write: {exc.strerror or exc}")
        return False
    print(summary_line(result.report()), flush=True)
    return True


def cmd_segment(args) -> int:
    from .pipeline import Segmenter, parse_spacing
    from .preprocess import parse_export_window

    try:
        options = {"spacing_mm": parse_spacing(args.spacing), "export_window": parse_export_window(args.export_window)}
        segmenter = Segmenter(args.weights_dir)
        model = segmenter.predictor(args.model).name
        args.out.mkdir(parents=True, exist_ok=True)
    except (PipelineError, OSError) as exc:
        error(exc.message if isinstance(exc, PipelineError) else f"{args.out}: {exc}")
        return 2
    used: set = set()
    ok = [segment_one(segmenter, path, args.out, model, options, used) for path in args.inputs]
    return 0 if all(ok) else 1


def model_rows(weights_dir: Path) -> list[dict]:
    """Config summary of each trained model in ``weights_dir`` (loads no model)."""
    from .runtime import choose_runtime

    rows = []
    for name in cfg.available_models(weights_dir):
        config = cfg.load_config(weights_dir, name)
        keys = ("name", "architecture", "version", "input_size", "context_slices", "threshold", "metrics")
        rows.append({**{k: config.get(k) for k in keys},
                     "runtime": choose_runtime(weights_dir, name, config)})
    return rows


def cmd_info(args) -> int:
    try:
        rows = model_rows(args.weights_dir)
    except PipelineError as exc:
        error(exc.message)
        return 2
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no trained models in {args.weights_dir}; " + cfg.TRAIN_HINT.format(name="unet"))
        return 0
    for row in rows:
        cv = {k: v for k, v in (row["metrics"] or {}).get("cv", {}).items() if isinstance(v, (int, float))}
        metrics = ", ".join(f"{k}={v:.3f}" for k, v in cv.items()) or "no metrics recorded"
        size = "x".join(map(str, row["input_size"]))
        print(f"{row['name']}: {row['architecture']} v{row['version']}, input {size}, "
              f"{2 * row['context_slices'] + 1} slice(s), runtime {row['runtime']}; cv {metrics}")
    return 0


def cmd_export(args) -> int:
    from .export import export_all

    if args.model == "all":
        names = cfg.available_models(args.weights_dir)
        if not names:
            error(f"no trained weights in {args.weights_dir}; " + cfg.TRAIN_HINT.format(name="unet"))
            return 2
    else:
        names = [cfg.canonical_name(args.model)]
        if names[0] not in cfg.KNOWN_MODELS:
            error(f"unknown model {args.model!r}; choose unet, two_branch or all")
            return 2
    return export_all(args.weights_dir, names)


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"segment": cmd_segment, "info": cmd_info, "export-onnx": cmd_export}
    try:
        return handlers[args.command](args)
    except ModelUnavailableError as exc:
        error(exc.message)
        return 2
    except KeyboardInterrupt:
        error("interrupted")
        return 130
