"""Fit the quarter-turn orientation estimator (model/orientation.py) and measure it by patient CV.

    python -m training.orientation --data ../shared/data/ct-ich --out model/weights [--runs runs] [--reports reports]

Self-supervised: every ct-ich slice is in the model frame ("anterior_right"), so its four quarter
turns are candidates of which the unturned one is right. The scorer is a conditional logit
(softmax over the four candidates, L2-penalised), fitted with L-BFGS. Cross-validation uses the
evaluation's patient folds; each held-out patient is presented in all 8 orientations (4 turns,
with and without a mirror). With ``--runs``, each trained CV fold directory (runs/cv/NAME/foldK)
gets the estimator fitted without its test patients, so CV scoring through the pipeline is honest.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from scipy import optimize

from model.orientation import (ESTIMATOR_FILE, OrientationEstimator, candidate_features, head_thumbnail,
                               stack_probabilities, turn_log_probs)

from .data import dataset_folds, load_patient_png, read_index

L2 = 10.0


def patient_thumbnails(data: Path, estimator_like: OrientationEstimator) -> dict[str, np.ndarray]:
    """{patient id: (N, size, size, 2)} thumbnails of the slices where a head was found."""
    out = {}
    for pid, rows in read_index(data).items():
        images, _ = load_patient_png(data, rows)
        thumbs = [head_thumbnail(plane.astype(np.float32) / 255.0, estimator_like.size,
                                 estimator_like.head_level, estimator_like.bone_level) for plane in images]
        found = [t for t in thumbs if t is not None]
        if found:
            out[pid] = np.stack(found)
    return out


def fit(thumbs: np.ndarray, settings: OrientationEstimator, l2: float = L2) -> OrientationEstimator:
    """Fit the scorer on (N, size, size, 2) thumbnails in the model frame (candidate 0 is right),
    made with ``settings`` (its size, levels and window; its weights are ignored)."""
    cands = np.stack([candidate_features(t) for t in thumbs])      # (N, 4, F)

    def loss_grad(w):
        scores = cands @ w
        scores -= scores.max(axis=1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=1, keepdims=True)
        loss = -np.log(probs[:, 0] + 1e-12).sum() + l2 * w @ w
        grad = np.einsum("nj,njf->f", probs, cands) - cands[:, 0].sum(axis=0) + 2 * l2 * w
        return loss, grad

    w = optimize.minimize(loss_grad, np.zeros(cands.shape[2]), jac=True, method="L-BFGS-B",
                          options={"maxiter": 500}).x
    return dataclasses.replace(settings, weights=w, metrics=None)


def score_patient(estimator: OrientationEstimator, thumbs: np.ndarray) -> dict:
    """The patient shown in 8 orientations: slices right, volumes right, lowest volume confidence."""
    slices_right = volumes_right = 0
    lowest = 1.0
    for mirror in (False, True):
        for turns in range(4):
            shown = [np.rot90(t[::-1] if mirror else t, -turns, axes=(0, 1)) for t in thumbs]
            log_probs = turn_log_probs(np.stack([candidate_features(t) @ estimator.weights for t in shown]))
            slices_right += int((log_probs.argmax(axis=1) == turns).sum())
            probs = stack_probabilities(log_probs)
            volumes_right += int(probs.argmax() == turns)
            lowest = min(lowest, float(probs[turns]))
    return {"slices": 8 * len(thumbs), "slices_right": slices_right, "volumes": 8,
            "volumes_right": volumes_right, "lowest_true_probability": lowest}


def cross_validate(thumbs: dict, folds: list[list[str]],
                   settings: OrientationEstimator) -> tuple[dict, list[OrientationEstimator]]:
    """Per-patient scores of each fold's estimator on its held-out patients, and the estimators
    (``settings``: as for :func:`fit`)."""
    per_patient, estimators = {}, []
    for i, test in enumerate(folds):
        train = np.concatenate([thumbs[p] for j, fold in enumerate(folds) if j != i for p in fold if p in thumbs])
        estimator = fit(train, settings)
        estimators.append(estimator)
        for pid in (p for p in test if p in thumbs):
            per_patient[pid] = {"fold": i, **score_patient(estimator, thumbs[pid])}
    return per_patient, estimators


def summarize(per_patient: dict) -> dict:
    sums = {k: sum(m[k] for m in per_patient.values()) for k in ("slices", "slices_right", "volumes", "volumes_right")}
    return {"single_slice_accuracy": round(sums["slices_right"] / sums["slices"], 4),
            "volume_accuracy": round(sums["volumes_right"] / sums["volumes"], 4),
            "volumes": sums["volumes"], "volumes_right": sums["volumes_right"],
            "lowest_true_volume_probability": round(min(m["lowest_true_probability"] for m in per_patient.values()), 4)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/ct-ich", type=Path)
    ap.add_argument("--out", default="model/weights", type=Path, help="where orientation.json is written")
    ap.add_argument("--runs", default=None, type=Path, help="also write each CV fold's estimator into runs/cv/*/foldK")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reports", default="reports", type=Path)
    args = ap.parse_args(argv)
    folds = dataset_folds(args.data, args.folds, args.seed)
    # The PNGs' unit range is their export window (level 40, width 120): the estimator's default.
    settings = OrientationEstimator(weights=np.zeros(0))
    thumbs = patient_thumbnails(args.data, settings)
    per_patient, estimators = cross_validate(thumbs, folds, settings)
    summary = summarize(per_patient)
    print(json.dumps(summary), flush=True)
    if args.runs is not None:
        for i, estimator in enumerate(estimators):
            for fold_dir in sorted((args.runs / "cv").glob(f"*/fold{i}")):
                estimator.save(fold_dir)
                print(f"fold {i}: {fold_dir / ESTIMATOR_FILE}")
    final = dataclasses.replace(fit(np.concatenate(list(thumbs.values())), settings), metrics={
        "cross_validation": summary, "folds": args.folds, "patients": len(thumbs),
        "data": "ct-ich PNG slices, each held-out patient shown in 8 orientations"})
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"wrote {final.save(args.out)}")
    args.reports.mkdir(parents=True, exist_ok=True)
    report = {"summary": summary, "per_patient": per_patient, "l2": L2,
              "command": "python -m training.orientation " + " ".join(sys.argv[1:] if argv is None else argv)}
    (args.reports / "orientation_cv.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
