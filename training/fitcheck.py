"""Underfit or overfit? A CV fold's Dice on the patients it trained on against its test patients.

    python -m training.fitcheck --model unet --data ../shared/data/ct-ich --runs runs --only-folds 0,3 \
        [--postprocessing-from model/weights/unet.json] [--out reports/experiments]

Each fold model (``runs/cv/NAME/foldK``) predicts every patient on the model grid (as
``training.oof`` does). Per patient it is scored twice at the fold's own threshold: with no
component removal (what the network itself outputs) and with the fold's minimum lesion size
(or both taken from ``--postprocessing-from``).
The summary, separately for the fold's training patients (``training.train_patients`` in its
NAME.json) and its test patients: mean and median per-patient Dice on hemorrhage patients and
the lesion-free patients left with any lesion. Training Dice about as low as test Dice means
the network does not fit even the slices it saw, so capacity or training budget limits it
rather than generalisation. An analysis on the model grid, not the reported CV number.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .configs import model_config
from .data import Patient, dataset_folds, load_dataset
from .device import set_threads
from .metrics import dice
from .oof import component_mask
from .validate import grid_scale_for, predict_patient


def patient_outcome(prob: np.ndarray, truth: np.ndarray, threshold: float, min_voxels: int,
                    scale: float) -> dict:
    """Scores of one patient's (Z, H, W) probabilities against its bool (Z, H, W) truth:
    {"raw": ..., "size_rule": ...}, each the Dice (hemorrhage patient) or 1.0 / 0.0 (lesion-free:
    any lesion left?). ``min_voxels`` counts original-grid voxels, ``scale`` of them per model voxel."""
    out = {}
    for key, limit in (("raw", 0), ("size_rule", min_voxels)):
        mask = component_mask(prob, threshold, limit, None, scale)
        out[key] = dice(mask, truth) if truth.any() else float(mask.any())
    return out


def summarise(rows: list[dict]) -> dict:
    """rows: {"group", "has_lesion", "raw", "size_rule"} per patient -> per group and scoring:
    hemorrhage patients, their mean / median Dice, lesion-free patients, those with a lesion left."""
    out = {}
    for group in sorted({r["group"] for r in rows}):
        mine = [r for r in rows if r["group"] == group]
        pos = [r for r in mine if r["has_lesion"]]
        neg = [r for r in mine if not r["has_lesion"]]
        out[group] = {"hemorrhage_patients": len(pos), "lesion_free_patients": len(neg)}
        for key in ("raw", "size_rule"):
            scores = [r[key] for r in pos]
            out[group][key] = {
                "mean_dice": float(np.mean(scores)) if scores else None,
                "median_dice": float(np.median(scores)) if scores else None,
                "false_positive_patients": int(sum(r[key] for r in neg)),
            }
    return out


def score_fold(predict, patients: list[Patient], train_pids: set[str], config: dict, scale: float) -> list[dict]:
    """One row per patient (see :func:`summarise`); ``group`` is "train" for the patients in
    ``train_pids``, "test" otherwise. ``config``: the fold's NAME.json (threshold, postprocess)."""
    rows = []
    min_voxels = int(config.get("postprocess", {}).get("min_lesion_pixels", 0))
    for p in patients:
        prob = predict_patient(predict, p, config)
        truth = p.masks >= 0.5
        rows.append({"pid": p.pid, "group": "train" if p.pid in train_pids else "test",
                     "has_lesion": bool(truth.any()),
                     **patient_outcome(prob, truth, float(config["threshold"]), min_voxels, scale)})
    return rows


def main(argv=None) -> None:
    from .train import compiled_predict, load_trained

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, choices=["unet", "two-branch", "two_branch"])
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--runs", default="runs", type=Path)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only-folds", default=None, help="comma-separated fold numbers (default: all)")
    ap.add_argument("--postprocessing-from", type=Path, default=None,
                    help="a NAME.json whose threshold / minimum lesion size replace each fold's own")
    ap.add_argument("--out", default=None, type=Path, help="write NAME_fitcheck.json here")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for TensorFlow (default: all)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    name = args.model.replace("-", "_")
    folds = dataset_folds(args.data, args.folds, args.seed)
    chosen = [int(k) for k in args.only_folds.split(",")] if args.only_folds else list(range(len(folds)))
    input_size = tuple(model_config(name)["input_size"])
    patients = load_dataset(args.data, input_size, cache_dir=args.runs / "cache")
    report = {"model": name, "runs": str(args.runs),
              "command": "python -m training.fitcheck " + " ".join(sys.argv[1:] if argv is None else argv),
              "folds": {}}
    all_rows = []
    for k in chosen:
        config, model = load_trained(args.runs / "cv" / name / f"fold{k}" / f"{name}.json")
        if args.postprocessing_from:
            shipped = json.loads(args.postprocessing_from.read_text())
            config = {**config, "threshold": shipped["threshold"], "postprocess": shipped["postprocess"]}
        train_pids = set(config.get("training", {}).get("train_patients", []))
        if not train_pids:
            raise SystemExit(f"fold {k}: its {name}.json lists no training.train_patients")
        used = [p for p in patients if p.pid in train_pids or p.pid in set(folds[k])]
        rows = score_fold(compiled_predict(model), used, train_pids, config, grid_scale_for(input_size))
        report["folds"][str(k)] = {"threshold": config["threshold"],
                                   "min_lesion_pixels": config.get("postprocess", {}).get("min_lesion_pixels"),
                                   **summarise(rows), "patients": rows}
        all_rows += rows
        print(f"fold {k}: " + json.dumps(summarise(rows)), flush=True)
    report["all_folds"] = summarise(all_rows)
    print("all folds: " + json.dumps(report["all_folds"], indent=1))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{name}_fitcheck.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
