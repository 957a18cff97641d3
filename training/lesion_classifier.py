"""A learned component rule: keep a candidate lesion if a logistic score of its features says so.

    python -m training.lesion_classifier --model unet --runs runs_base --out reports/experiments/

The size, core and area rules (``training.oof``) each look at one property of a candidate
component. This module scores every component of ``prob >= threshold`` (at least
``MIN_CANDIDATE_VOXELS`` original-grid voxels) with an L2-regularised logistic regression on
:data:`FEATURES` (size, shape, confidence and image intensity), trained on the out-of-fold
candidates of the CV folds: a component is a bleed (label 1) when at least ``TRUE_OVERLAP`` of
its voxels lie in the radiologists' mask.

Cross-fitted twice, so that no test patient influences its own fold's rule: for test fold k the
(threshold, cutoff) is the best ``selection_score`` on the other folds' patients, each of them
scored by a classifier fitted without its own fold and without fold k; fold k is then scored by
the classifier fitted on all other folds at that (threshold, cutoff). An analysis on the model
grid (224 x 224, sizes in original-grid voxels), as ``training.oof`` is.
"""
from __future__ import annotations

import json
import sys

import numpy as np
from scipy import ndimage

from model.postprocess import label_components, largest_cross_sections

from .configs import model_config
from .data import dataset_folds, load_dataset
from .device import set_threads
from .head_geometry import location_maps
from .oof import analysis_parser, grid_voxels_covering
from .oof_probs import ensemble_oof_probabilities, run_member
from .validate import grid_scale_for, selection_key

FEATURES = ("log10_voxels", "log10_largest_cross_section_pixels", "slices", "compactness",
            "max_probability", "mean_probability", "fraction_above_0.9", "mean_intensity")
#: Appended with ``--features location``: the means of training.head_geometry.location_maps.
LOCATION_FEATURES = ("head_depth", "midline_distance", "bone_contact")
FEATURE_SETS = {"base": FEATURES, "location": FEATURES + LOCATION_FEATURES}
THRESHOLDS = (0.4, 0.5, 0.6, 0.7)
CUTOFFS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))
MIN_CANDIDATE_VOXELS = 100     # original-grid voxels
TRUE_OVERLAP = 0.1
L2 = 1.0


def component_features(labels: np.ndarray, count: int, prob: np.ndarray, image: np.ndarray,
                       scale: float, location: np.ndarray | None = None) -> np.ndarray:
    """(count, F) float64 for components 1..count of a (Z, Y, X) label array: FEATURES, then
    LOCATION_FEATURES when ``location`` is given.

    prob, image: (Z, Y, X) probabilities and unit-range image on the same grid; location: (3, Z, Y, X)
    maps on it (training.head_geometry.location_maps); scale: original-grid voxels (and pixels) per
    grid voxel. compactness = voxels / (largest cross-section x slices).
    """
    ids = np.arange(1, count + 1)
    voxels = ndimage.sum_labels(np.ones_like(prob), labels, ids)
    largest = largest_cross_sections(labels, count)[1:].astype(np.float64)
    per_slice = np.stack([np.bincount(plane.ravel(), minlength=count + 1)[1:] > 0 for plane in labels])
    slices = per_slice.sum(axis=0).astype(np.float64)
    columns = [np.log10(voxels * scale), np.log10(largest * scale), slices, voxels / (largest * slices),
               ndimage.maximum(prob, labels, ids), ndimage.mean(prob, labels, ids),
               ndimage.mean(prob >= 0.9, labels, ids), ndimage.mean(image, labels, ids)]
    if location is not None:
        columns += [ndimage.mean(m, labels, ids) for m in location]
    return np.column_stack(columns)


def candidates(prob: np.ndarray, image: np.ndarray, truth: np.ndarray, threshold: float, scale: float,
               location: np.ndarray | None = None) -> dict:
    """Components of ``prob >= threshold`` with at least MIN_CANDIDATE_VOXELS original voxels:
    {"features": (n, F), "voxels": (n,) grid voxels, "overlap": (n,) grid voxels in ``truth``}
    (location: as for :func:`component_features`)."""
    components = label_components(prob >= threshold, grid_voxels_covering(MIN_CANDIDATE_VOXELS, scale))
    width = len(FEATURES) + (0 if location is None else len(location))
    if components is None or components.count == 0:
        return {"features": np.zeros((0, width)), "voxels": np.zeros(0, int), "overlap": np.zeros(0, int)}
    labels, n, box = components.labels, components.count, components.box
    maps = None if location is None else location[(slice(None),) + tuple(box)]
    return {"features": component_features(labels, n, prob[box], image[box], scale, maps),
            "voxels": np.bincount(labels.ravel(), minlength=n + 1)[1:],
            "overlap": np.bincount(labels[truth[box]], minlength=n + 1)[1:]}


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, iterations: int = 50) -> dict:
    """Class-balanced L2 logistic regression on standardised features (Newton's method).

    Returns {"mean", "scale", "coef", "intercept"}: score = sigmoid(((x - mean) / scale) @ coef + intercept).
    """
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = np.column_stack([(x - mean) / scale, np.ones(len(x))])
    pos = max(int(y.sum()), 1)
    neg = max(len(y) - int(y.sum()), 1)
    weight = np.where(y > 0, len(y) / (2.0 * pos), len(y) / (2.0 * neg))
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0                          # the intercept is not shrunk
    w = np.zeros(z.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        grad = z.T @ (weight * (p - y)) + penalty * w
        hess = (z * (weight * p * (1 - p))[:, None]).T @ z + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": w[:-1].tolist(), "intercept": float(w[-1])}


def predict_logistic(model: dict, x: np.ndarray) -> np.ndarray:
    """(n,) scores in [0, 1] of features (n, F) under a :func:`fit_logistic` model."""
    z = (x - np.asarray(model["mean"])) / np.asarray(model["scale"])
    return 1.0 / (1.0 + np.exp(-(z @ np.asarray(model["coef"]) + model["intercept"])))


def patient_outcome(cands: dict, scores: np.ndarray, cutoff: float, truth_voxels: int) -> float:
    """Dice of the kept candidates (hemorrhage patient) or 1.0 / 0.0 (lesion-free: any kept)."""
    kept = scores >= cutoff
    if truth_voxels == 0:
        return float(kept.any())
    return 2.0 * float(cands["overlap"][kept].sum()) / (float(cands["voxels"][kept].sum()) + truth_voxels)


def fit_on(table: dict, pids: list[str], threshold: float) -> dict:
    """Logistic model fitted on the candidates of ``pids`` at ``threshold``."""
    x = np.concatenate([table[p][threshold]["features"] for p in pids])
    over = np.concatenate([table[p][threshold]["overlap"] for p in pids])
    vox = np.concatenate([table[p][threshold]["voxels"] for p in pids])
    return fit_logistic(x, (over >= TRUE_OVERLAP * vox).astype(np.float64))


def scored(table: dict, fold_of: dict, test_folds: set, exclude: set, threshold: float) -> dict:
    """{pid: candidate scores} for the patients of ``test_folds`` under a classifier fitted on every
    patient outside ``test_folds`` and ``exclude``."""
    train = [p for p in table if fold_of[p] not in test_folds | exclude]
    model = fit_on(table, train, threshold)
    return {p: predict_logistic(model, table[p][threshold]["features"]) for p in table if fold_of[p] in test_folds}


def evaluate(table: dict, fold_of: dict, truth_voxels: dict, max_fp_share: float | None = None) -> dict:
    """Doubly cross-fitted Dice / false-positive patients (see the module docstring); the choice
    on the other folds by :func:`selection_key`."""
    folds = sorted(set(fold_of.values()))
    outcome, chosen = {}, []
    for k in folds:
        others = [p for p in table if fold_of[p] != k]
        inner = {t: {} for t in THRESHOLDS}
        for t in THRESHOLDS:
            for j in folds:
                if j != k:
                    inner[t].update(scored(table, fold_of, {j}, {k}, t))
        best, best_key, best_on = None, None, None
        for t in THRESHOLDS:
            for c in CUTOFFS:
                res = [patient_outcome(table[p][t], inner[t][p], c, truth_voxels[p]) for p in others]
                pos = [r for p, r in zip(others, res) if truth_voxels[p]]
                fps = [r for p, r in zip(others, res) if not truth_voxels[p]]
                key = selection_key(pos, int(sum(fps)), len(fps), max_fp_share)
                if best_key is None or key > best_key:
                    best, best_key = (t, float(c)), key
                    best_on = {"mean_dice": round(float(np.mean(pos)), 4), "false_positive_patients": int(sum(fps)),
                               "lesion_free_patients": len(fps)}
        t, c = best
        for p, s in scored(table, fold_of, {k}, set(), t).items():
            outcome[p] = patient_outcome(table[p][t], s, c, truth_voxels[p])
        chosen.append({"threshold": t, "cutoff": c, "on_other_folds": best_on})
    pos = [outcome[p] for p in table if truth_voxels[p]]
    return {"mean_dice": float(np.mean(pos)), "median_dice": float(np.median(pos)),
            "bleeds_found": int(sum(d > 0 for d in pos)), "hemorrhage_patients": len(pos),
            "false_positive_patients": int(sum(outcome[p] for p in table if not truth_voxels[p])),
            "lesion_free_patients": sum(1 for p in table if not truth_voxels[p]),
            "chosen_per_fold": chosen, "per_patient_dice": {p: round(outcome[p], 4) for p in table if truth_voxels[p]}}


def candidate_table(probs: dict, images: dict, scale: float, features: str = "base") -> tuple[dict, dict, dict]:
    """({pid: {threshold: candidates}}, {pid: fold}, {pid: truth voxels}) from out-of-fold
    probabilities; ``features`` names a FEATURE_SETS entry."""
    if features not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {features!r}: choose one of {', '.join(FEATURE_SETS)}")
    table, fold_of, truth_voxels = {}, {}, {}
    for pid, (fold, prob, truth) in probs.items():
        location = location_maps(images[pid]) if features == "location" else None
        table[pid] = {t: candidates(prob, images[pid], truth, t, scale, location) for t in THRESHOLDS}
        fold_of[pid], truth_voxels[pid] = fold, int(truth.sum())
    return table, fold_of, truth_voxels


def main(argv=None) -> None:
    ap = analysis_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--max-fp-share", type=float, default=None,
                    help="choose the best Dice with at most this share of false-positive lesion-free patients "
                         "(default: the selection score)")
    ap.add_argument("--features", choices=sorted(FEATURE_SETS), default="base",
                    help="base: size, shape, confidence, intensity; location: also where in the head")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    name = args.model.replace("-", "_")
    config = model_config(name)
    folds = dataset_folds(args.data, args.folds, args.seed)
    scale = grid_scale_for(config["input_size"])
    probs = ensemble_oof_probabilities(name, args.data, args.runs, folds, tta=False)
    cache = run_member(args.runs[0], name)[1] / "cache"
    images = {p.pid: p.images.astype(np.float32)
              for p in load_dataset(args.data, tuple(config["input_size"]), cache_dir=cache)}
    table, fold_of, truth_voxels = candidate_table(probs, images, scale, args.features)
    report = {"model": name, "runs": [str(r) for r in args.runs], "features": list(FEATURE_SETS[args.features]),
              "command": "python -m training.lesion_classifier " + " ".join(sys.argv[1:] if argv is None else argv),
              "max_fp_share": args.max_fp_share,
              "cross_fitted": evaluate(table, fold_of, truth_voxels, args.max_fp_share)}
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.features == "base" else f"_{args.features}"
    (args.out / f"{name}_lesion_classifier{suffix}.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report["cross_fitted"].items() if k != "per_patient_dice"}, indent=1))


if __name__ == "__main__":
    main()
