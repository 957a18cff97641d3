"""Out-of-fold probabilities of the CV folds, the input of every out-of-fold analysis
(``training.oof``, ``training.crossfit``, ``training.lesion_classifier``).

Each patient's probabilities come from the one fold that held it out (never trained on it), on
the model grid, optionally flip-averaged (``tta``), averaged over several CV runs (an ensemble)
or smoothed across slices. Arrays are (Z, H, W) float32, slices in the dataset's order.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .configs import MODELS, model_config
from .data import load_dataset
from .validate import predict_patient

FLIPS = ((False, False), (True, False), (False, True), (True, True))   # (rows, cols) mirrored


def flip_averaged(predict):
    """``predict`` (N, H, W, C) -> (N, H, W, 1), averaged over the 4 row/column mirrorings."""
    def averaged(x):
        out = 0.0
        for rows, cols in FLIPS:
            axes = tuple(a for a, f in ((1, rows), (2, cols)) if f)
            y = np.asarray(predict(np.ascontiguousarray(np.flip(x, axes) if axes else x)))
            out = out + (np.flip(y, axes) if axes else y)
        return out / len(FLIPS)
    return averaged


def oof_probabilities(name: str, data: Path, runs: Path, folds: list[list[str]], tta: bool,
                      only: set[int] | None = None) -> dict:
    """{pid: (fold, (Z, H, W) float32 probabilities on the model grid, bool truth)} for the test
    patients of every fold, or of the folds in ``only``."""
    from .train import compiled_predict, load_trained

    config = model_config(name)
    cached = {p.pid: p for p in load_dataset(data, tuple(config["input_size"]), cache_dir=runs / "cache")}
    out = {}
    for i, test in enumerate(folds):
        if only is not None and i not in only:
            continue
        cfg, model = load_trained(runs / "cv" / name / f"fold{i}" / f"{name}.json")
        seen = set(test) & set(cfg.get("training", {}).get("train_patients") or [])
        if seen:
            raise ValueError(f"{runs} fold {i} was trained on its test patients {sorted(seen)}: "
                             "not out-of-fold (trained with other folds?)")
        predict = flip_averaged(compiled_predict(model)) if tta else compiled_predict(model)
        for pid in test:
            prob = predict_patient(predict, cached[pid], cfg)    # as the fold was trained, not as shipped
            out[pid] = (i, prob.astype(np.float32), cached[pid].masks >= 0.5)
    return out


def run_member(run: str | Path, name: str) -> tuple[str, Path]:
    """(model name, runs dir) of a ``--runs`` entry: ``PATH`` holds ``name``'s folds,
    ``MODEL=PATH`` (e.g. ``two_branch=/tmp/runs_tb``) that model's. A member whose model grid
    differs from ``name``'s is refused: the mean is taken voxel by voxel on that grid."""
    text = str(run)
    model, sep, path = text.partition("=")
    model = model.replace("-", "_")
    if not sep or model not in MODELS:
        return name, Path(text)
    if model_config(model)["input_size"] != model_config(name)["input_size"]:
        raise ValueError(f"{text}: {model}'s model grid differs from {name}'s; they cannot be averaged")
    return model, Path(path)


def ensemble_oof_probabilities(name: str, data: Path, runs: list, folds: list[list[str]],
                               tta: bool, members: list | None = None) -> dict:
    """As :func:`oof_probabilities`, each patient's probabilities the per-voxel mean over the
    CV runs in ``runs`` (an ensemble of independently trained nets on the same folds; a fold
    that trained on one of its test patients is refused by :func:`oof_probabilities`). Each run
    is a runs dir of ``name``'s folds or ``MODEL=PATH`` (:func:`run_member`).
    ``members``: a list that receives each run's own probabilities, in ``runs`` order."""
    total: dict = {}
    for r in runs:
        member, path = run_member(r, name)
        own = oof_probabilities(member, data, path, folds, tta)
        if members is not None:
            members.append(own)
        for pid, (fold, prob, truth) in own.items():
            total[pid] = (fold, prob if pid not in total else total[pid][1] + prob, truth)
    return {pid: (fold, (summed / len(runs)).astype(np.float32), truth)
            for pid, (fold, summed, truth) in total.items()}


def smooth_across_slices(prob: np.ndarray, weight: float) -> np.ndarray:
    """(Z, Y, X) probabilities -> the same shape, each slice replaced by ``weight`` x each
    neighbouring slice + (1 - 2 x weight) x itself (an end slice stands in for its missing
    neighbour). weight 0 returns the input; a single slice is returned unchanged."""
    if not 0.0 <= weight <= 0.5:
        raise ValueError(f"slice smoothing weight {weight} must lie in [0, 0.5]")
    prob = np.asarray(prob, dtype=np.float32)
    if weight == 0 or prob.shape[0] < 2:
        return prob
    padded = np.concatenate([prob[:1], prob, prob[-1:]])
    w = np.float32(weight)
    return (np.float32(1) - 2 * w) * prob + w * (padded[:-2] + padded[2:])
