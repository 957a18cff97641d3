"""Validation on held-out patients at the model grid: early stopping and threshold choice.

Scores use per-patient 3D Dice with the convention that a lesion-free patient scores 1 when
nothing is predicted and 0 otherwise, so false-positive patients are penalised as much as
missed bleeds.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from model.preprocess import context_indices

from .data import Patient
from .metrics import dice

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
# Minimum 3D component size in voxels of the original 512x512 grid.
MIN_VOXELS = (0, 50, 100, 200, 400, 800)


def predict_patient(predict, patient: Patient, context: int, batch: int = 16) -> np.ndarray:
    """(Z, H, W) probabilities on the model grid; ``predict`` maps (N,H,W,C) -> (N,H,W,1)."""
    x = patient.images[context_indices(len(patient.images), context)].astype(np.float32)
    x = x.transpose(0, 2, 3, 1)
    return np.concatenate([np.asarray(predict(x[i:i + batch]))[..., 0] for i in range(0, len(x), batch)])


def remove_small(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """Drop 3D components (full connectivity) with fewer than ``min_voxels`` voxels."""
    if min_voxels <= 0 or not mask.any():
        return mask
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels]


def choose_postprocessing(probs: list[np.ndarray], truths: list[np.ndarray], grid_scale: float) -> dict:
    """Grid search of threshold x minimum component size on validation patients.

    grid_scale: original-grid voxels per model-grid voxel ((512/224)**2 for this data).
    Returns the best {"threshold", "min_lesion_pixels", "score", "dice_positive", "fp_patients"}.
    """
    best = None
    for thr in THRESHOLDS:
        binaries = [p >= thr for p in probs]
        for min_vox in MIN_VOXELS:
            scores, pos_dice, fp = [], [], 0
            for b, t in zip(binaries, truths):
                pred = remove_small(b, int(round(min_vox / grid_scale)))
                d = dice(pred, t)
                scores.append(d)
                if t.any():
                    pos_dice.append(d)
                elif pred.any():
                    fp += 1
            cand = {"threshold": thr, "min_lesion_pixels": min_vox, "score": float(np.mean(scores)),
                    "dice_positive": float(np.mean(pos_dice)) if pos_dice else None, "fp_patients": fp}
            if best is None or cand["score"] > best["score"] + 1e-9:
                best = cand
    return best


def validate(predict, patients: list[Patient], context: int, grid_scale: float) -> dict:
    probs = [predict_patient(predict, p, context) for p in patients]
    truths = [p.masks.astype(np.float32) >= 0.5 for p in patients]
    return choose_postprocessing(probs, truths, grid_scale)
