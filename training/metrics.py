"""Segmentation metrics on binary volumes (any shape, compared element-wise)."""
from __future__ import annotations

import numpy as np


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice = 2|P∩T| / (|P|+|T|). Both empty -> 1.0 (nothing to find, nothing found)."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    denom = int(p.sum()) + int(t.sum())
    return 1.0 if denom == 0 else 2.0 * int(np.logical_and(p, t).sum()) / denom


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union. Both empty -> 1.0."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    union = int(np.logical_or(p, t).sum())
    return 1.0 if union == 0 else int(np.logical_and(p, t).sum()) / union


def relative_volume_difference(pred: np.ndarray, truth: np.ndarray) -> float | None:
    """|V_pred - V_true| / V_true in voxels (needs no spacing); None when the truth is empty."""
    t = int(np.asarray(truth, bool).sum())
    if t == 0:
        return None
    return abs(int(np.asarray(pred, bool).sum()) - t) / t


def slice_detection(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Slice-level confusion counts for (Z, Y, X) volumes: a slice is positive if it has any lesion."""
    p = np.asarray(pred, bool).reshape(len(pred), -1).any(axis=1)
    t = np.asarray(truth, bool).reshape(len(truth), -1).any(axis=1)
    return {"tp": int((p & t).sum()), "fp": int((p & ~t).sum()),
            "fn": int((~p & t).sum()), "tn": int((~p & ~t).sum())}


def summarize(values: list[float]) -> dict:
    """Mean, median, std, min, max of a list (empty -> None values)."""
    if not values:
        return {"mean": None, "median": None, "std": None, "min": None, "max": None, "n": 0}
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "median": float(np.median(a)), "std": float(a.std()),
            "min": float(a.min()), "max": float(a.max()), "n": int(a.size)}
