"""Patient-level k-fold cross-validation through the same pipeline the CLI uses.

    python -m training.evaluate --model unet|two-branch --data ../shared/data/ct-ich --folds 5 --out reports/

For each fold: train on the other folds' patients, then choose the threshold / minimum lesion
size, either on 20% of them held out (which also early-stops) or, for a model configured with
``fold_validation_fraction`` 0, trained on all of them for the fixed step count and chosen
cross-fitted on the other folds' out-of-fold predictions (``training.crossfit``); then segment
every test patient's slices stacked into a (Z, 512, 512) volume with ``model.pipeline.Segmenter`` and score it against the
radiologists' masks. Writes reports/NAME_cv.json and PNG figures. Resumable: a fold whose
weights exist is not trained again; one trained for fewer steps than
configured continues from its checkpoint.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .configs import model_config, training_config
from .crossfit import POOLED, choose_cross_fitted, folds_without_validation, fp_share_arg, resolve_max_fp_share
from .device import set_threads
from .data import (PNG_WINDOW_HU, dataset_folds, load_dataset, load_patient_png, read_index, stratified_subset,
                   split_validation)
from .metrics import (dice, dice_by_contrast, iou, lesion_contrast_hu, relative_volume_difference,
                      slice_detection, summarize)
from .robustness import VIEWS, on_png_grid
from .uncertainty import cv_intervals


def trained_steps(config_path: Path) -> int:
    """Steps a fold's written weights were trained for (0 if none). A fold trained for fewer
    steps than the config asks is continued from its checkpoint (``--runs``), not retrained."""
    if not config_path.exists():
        return 0
    return int(json.loads(config_path.read_text()).get("training", {}).get("steps") or 0)


def train_folds(name: str, data: Path, folds: list[list[str]], runs: Path, seed: int,
                only: set[int] | None = None, train_fraction: float = 1.0, seed_offset: int = 0) -> None:
    """Train each fold on the patients outside its test fold. ``train_fraction`` < 1 (a learning-curve
    diagnostic) trains on that share of them instead, stratified by has-hemorrhage; the rest is unused.
    Fold i trains with seed ``seed + seed_offset + i``: an offset retrains the same folds (split by ``seed``)
    with other training seeds, for a second CV of one recipe."""
    from .train import train_model

    config, tcfg = model_config(name), training_config(name)
    steps, fraction = int(tcfg["steps"]), float(tcfg.get("fold_validation_fraction", 0.2))
    patients = {p.pid: p for p in load_dataset(data, tuple(config["input_size"]), cache_dir=runs / "cache")}
    positive = {pid for pid, p in patients.items() if p.has_lesion}
    for i, test in enumerate(folds):
        fold_dir = runs / "cv" / name / f"fold{i}"
        if only is not None and i not in only:
            continue
        if trained_steps(fold_dir / f"{name}.json") >= steps:
            print(f"fold {i}: trained already ({fold_dir})")
            continue
        rest = [pid for pid in patients if pid not in test]
        if train_fraction < 1.0:
            rest = stratified_subset(rest, positive, train_fraction, seed + i)
        train_ids, val_ids = split_validation(rest, positive, fraction, seed + i) if fraction else (rest, [])
        print(f"fold {i}: train {len(train_ids)} val {len(val_ids)} test {len(test)} patients", flush=True)
        train_model(name, [patients[p] for p in train_ids], [patients[p] for p in val_ids],
                    fold_dir, runs, seed=seed + seed_offset + i, log=lambda s: print(s, flush=True))


def rechoose_postprocessing(name: str, data: Path, runs: Path, n_folds: int) -> None:
    """Re-choose each trained fold's threshold / minimum lesion size on its own validation
    patients with the current rule (``training.validate``), keeping the checkpoint it chose.
    For folds trained before the rule changed; the test patients are not looked at."""
    from .train import compiled_predict, load_trained
    from .validate import grid_scale_for, validate

    config = model_config(name)
    patients = {p.pid: p for p in load_dataset(data, tuple(config["input_size"]), cache_dir=runs / "cache")}
    scale = grid_scale_for(config["input_size"])
    for i in range(n_folds):
        path = runs / "cv" / name / f"fold{i}" / f"{name}.json"
        cfg, model = load_trained(path)
        val = [patients[pid] for pid in cfg["training"]["val_patients"]]
        res = validate(compiled_predict(model), val, cfg, scale)
        old = (cfg["threshold"], cfg["postprocess"]["min_lesion_pixels"])
        cfg["threshold"], cfg["postprocess"]["min_lesion_pixels"] = res["threshold"], res["min_lesion_pixels"]
        step = cfg.setdefault("metrics", {}).get("validation", {}).get("step")
        cfg["metrics"]["validation"] = {**res, "step": step, "rechosen_from": list(old)}
        path.write_text(json.dumps(cfg, indent=2))
        print(f"fold {i}: threshold/min size {old} -> {(res['threshold'], res['min_lesion_pixels'])}", flush=True)


def score_patient(mask: np.ndarray, truth: np.ndarray, slice_area: list[int],
                  contrast_hu: float | None = None) -> dict:
    """Metrics of one patient: (Z, Y, X) predicted and true masks."""
    return {"dice": dice(mask, truth), "iou": iou(mask, truth), "lesion_contrast_hu": contrast_hu,
            "rvd": relative_volume_difference(mask, truth), "pred_voxels": int(mask.sum()),
            "true_voxels": int(truth.sum()), "has_lesion": bool(truth.any()),
            "false_positive_patient": bool(not truth.any() and mask.any()),
            "slices": slice_detection(mask, truth), "slice_area": slice_area,
            "slice_truth": [int(t.any()) for t in truth]}


def png_stack(grey: np.ndarray):
    """A patient's (Z, Y, X) PNG grey values as the pipeline's input: a display-intensity volume of
    unknown spacing, as the CLI reads a stack of PNG slices."""
    from model.types import CTImage

    return CTImage(array=np.asarray(grey, np.float32), intensity="display", kind="png", is_volume=True)


def evaluate_folds(name: str, data: Path, folds: list[list[str]], runs: Path, view: str = "exported") -> dict:
    """Each fold's test patients through the pipeline, shown as ``view`` (``training.robustness.VIEWS``)."""
    from model.pipeline import Segmenter

    shown = VIEWS[view]

    index = read_index(data)
    per_patient, chosen = {}, []
    for i, test in enumerate(folds):
        fold_dir = runs / "cv" / name / f"fold{i}"
        seg = Segmenter(weights_dir=fold_dir)
        cfg = json.loads((fold_dir / f"{name}.json").read_text())
        t = cfg.get("training", {})
        post = cfg["postprocess"]
        chosen.append({"threshold": cfg["threshold"], "min_lesion_pixels": post["min_lesion_pixels"],
                       **{k: post[k] for k in ("core_threshold", "min_core_pixels", "min_lesion_area_pixels")
                          if k in post},
                       "steps": t.get("steps"), "duration_s": t.get("duration_s"),
                       "best_step": cfg.get("metrics", {}).get("validation", {}).get("step")})
        for pid in test:
            images, truth = load_patient_png(data, index[pid])
            mask = on_png_grid(shown, seg.segment_image(png_stack(shown(images)), model=name, name=pid).mask)
            areas = [int(a) for a in mask.reshape(len(mask), -1).sum(axis=1)]
            contrast = lesion_contrast_hu(images, truth, *PNG_WINDOW_HU)
            per_patient[pid] = {"fold": i, **score_patient(mask, truth, areas, contrast)}
            print(f"fold {i} patient {pid}: dice {per_patient[pid]['dice']:.3f} "
                  f"pred {per_patient[pid]['pred_voxels']} true {per_patient[pid]['true_voxels']}", flush=True)
    return {"per_patient": per_patient, "fold_choices": chosen}


def summarize_cv(per_patient: dict) -> dict:
    pos = [m for m in per_patient.values() if m["has_lesion"]]
    neg = [m for m in per_patient.values() if not m["has_lesion"]]
    tot = {k: sum(m["slices"][k] for m in per_patient.values()) for k in ("tp", "fp", "fn", "tn")}
    return {
        "patients": len(per_patient), "hemorrhage_patients": len(pos), "lesion_free_patients": len(neg),
        "dice": summarize([m["dice"] for m in pos]), "iou": summarize([m["iou"] for m in pos]),
        "relative_volume_difference": summarize([m["rvd"] for m in pos]),
        "mean_dice": float(np.mean([m["dice"] for m in pos])) if pos else None,
        "median_dice": float(np.median([m["dice"] for m in pos])) if pos else None,
        "false_positive_patients": sum(m["false_positive_patient"] for m in neg),
        "dice_by_lesion_contrast": dice_by_contrast(pos),
        "slice_sensitivity": tot["tp"] / max(1, tot["tp"] + tot["fn"]),
        "slice_specificity": tot["tn"] / max(1, tot["tn"] + tot["fp"]),
        "slice_counts": tot,
        "intervals": cv_intervals(per_patient),
    }


def choose_postprocessing(name: str, args, folds: list[list[str]]) -> dict | None:
    """Folds trained without a validation split get a cross-fitted choice (training.crossfit) and
    the shipped model the pooled one, returned; others keep their own (optionally re-chosen)."""
    if folds_without_validation(name, args.runs, args.folds):
        rules = tuple(args.crossfit_rules.split(","))
        pooled = choose_cross_fitted(name, args.data, args.runs, folds, rules,
                                     max_fp_share=resolve_max_fp_share(name, args.max_fp_share))["pooled"]
        return {**pooled, "chosen_on": POOLED}
    if args.rechoose_postprocessing:
        rechoose_postprocessing(name, args.data, args.runs, args.folds)
    return None


def median_choice(choices: list[dict]) -> dict:
    """The median of the folds' own threshold / minimum size choices."""
    return {"threshold": float(np.median([c["threshold"] for c in choices])),
            "min_lesion_pixels": int(np.median([c["min_lesion_pixels"] for c in choices])),
            "chosen_on": "median of the folds' choices on their validation patients"}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, choices=["unet", "two-branch", "two_branch"])
    ap.add_argument("--data", default="../shared/data/ct-ich", type=Path)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", default="reports", type=Path)
    ap.add_argument("--runs", default="runs", type=Path)
    ap.add_argument("--seed", type=int, default=0,
                    help="splits the patients into folds (and seeds fold i's training with seed + i)")
    ap.add_argument("--train-seed-offset", type=int, default=0,
                    help="train fold i with seed + offset + i on the same folds (a second CV of one recipe: 100)")
    ap.add_argument("--weights", default="model/weights", type=Path,
                    help="shipped weights dir whose NAME.json receives the CV choice and metrics")
    ap.add_argument("--train-only", action="store_true", help="train the folds, do not evaluate")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for TensorFlow (default: all); see training/device.py")
    ap.add_argument("--evaluate-only", action="store_true",
                    help="evaluate the folds as trained, even those trained for fewer steps than configured")
    ap.add_argument("--rechoose-postprocessing", action="store_true",
                    help="re-choose trained folds' threshold/min size on their validation patients first")
    ap.add_argument("--crossfit-rules", default="size",
                    help="for folds trained without validation: the postprocessing rules to choose from, "
                         "size, core and/or area (comma-separated; see training/crossfit.py)")
    ap.add_argument("--max-fp-share", type=fp_share_arg, default=None,
                    help="cross-fitted choice: the highest mean Dice flagging at most this share of the "
                         "lesion-free patients (the target's 2 of 31: 0.0645), or 'off' for the selection "
                         "score; default: the model's crossfit_max_fp_share in training/configs.py")
    ap.add_argument("--view", default="exported", choices=sorted(VIEWS),
                    help="show the test patients' slices as exported (the PNGs' frame) or in the radiological "
                         "view (anterior up, as viewers export them); the pipeline finds the orientation itself")
    ap.add_argument("--only-folds", default=None,
                    help="comma-separated fold numbers to train (lets folds train in parallel processes)")
    ap.add_argument("--train-fraction", type=float, default=1.0,
                    help="train each fold on this share of its training patients (stratified; a learning-curve "
                         "diagnostic, use its own --runs)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    name = args.model.replace("-", "_")
    folds = dataset_folds(args.data, args.folds, args.seed)
    only = {int(f) for f in args.only_folds.split(",")} if args.only_folds else None
    if not args.evaluate_only:
        train_folds(name, args.data, folds, args.runs, args.seed, only, args.train_fraction, args.train_seed_offset)
    if args.train_only:
        return
    chosen = choose_postprocessing(name, args, folds)
    result = evaluate_folds(name, args.data, folds, args.runs, args.view)
    report = {"model": name, "folds": folds, "view": args.view, "summary": summarize_cv(result["per_patient"]),
              "chosen": chosen or median_choice(result["fold_choices"]), **result,
              "command": f"python -m training.evaluate --model {args.model} --folds {args.folds} --view {args.view}"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}_cv.json").write_text(json.dumps(report, indent=1))
    from .figures import write_figures
    write_figures(report, args.out)
    from .train import apply_cv_choice
    if (args.weights / f"{name}.json").exists():
        apply_cv_choice(args.weights / f"{name}.json", args.out / f"{name}_cv.json")
    s = report["summary"]
    print(json.dumps({k: s[k] for k in ("mean_dice", "median_dice", "false_positive_patients",
                                        "slice_sensitivity", "slice_specificity")}, indent=1))
    print(f"median relative volume difference {s['relative_volume_difference']['median']}")


if __name__ == "__main__":
    main()
