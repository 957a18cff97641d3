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


def lesion_contrast_hu(display: np.ndarray, truth: np.ndarray, level: float, width: float) -> float | None:
    """How much brighter the lesion is than the tissue around it, in HU (None without a lesion).

    display: (Z, Y, X) windowed grey values 0-255 (window ``level`` / ``width`` HU); truth: the
    lesion mask. Mean of the lesion's voxels minus the median of the other unclipped head voxels
    (0 < value < 255: brain and CSF, not air or bone) on the slices that hold lesion. Acute blood is
    ~30-50 HU brighter than brain; older or mixed bleeds approach 0 or go below it.
    """
    t = np.asarray(truth, bool)
    if not t.any():
        return None
    z = t.reshape(len(t), -1).any(axis=1)
    values, lesion = np.asarray(display)[z].astype(np.float64), t[z]   # only the lesion's slices
    tissue = (values > 0) & (values < 255) & ~lesion
    if not tissue.any():
        return None
    to_hu = width / 255.0
    return float((values[lesion].mean() - np.median(values[tissue])) * to_hu)


CONTRAST_BINS_HU = (10.0, 20.0)   # < 10 HU: about as dense as brain; >= 20 HU: clearly hyperdense


def dice_by_contrast(patients: list[dict]) -> list[dict]:
    """Mean Dice of hemorrhage patients grouped by ``lesion_contrast_hu`` (bins CONTRAST_BINS_HU).

    patients: per-patient metric dicts with "dice" and "lesion_contrast_hu". Returns one
    {"range_hu": [lo, hi], "n", "mean_dice", "missed"} per bin (lo/hi None when open-ended).
    """
    edges = (None, *CONTRAST_BINS_HU, None)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        ds = [p["dice"] for p in patients if p.get("lesion_contrast_hu") is not None
              and (lo is None or p["lesion_contrast_hu"] >= lo) and (hi is None or p["lesion_contrast_hu"] < hi)]
        out.append({"range_hu": [lo, hi], "n": len(ds), "mean_dice": float(np.mean(ds)) if ds else None,
                    "missed": sum(d == 0 for d in ds)})
    return out
