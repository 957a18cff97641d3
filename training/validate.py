"""Validation on held-out patients at the model grid: early stopping and threshold choice.

Score = mean per-patient 3D Dice over the hemorrhage patients minus FP_PENALTY times the
fraction of lesion-free patients with any predicted lesion. An empty prediction scores 0, so a
net that finds nothing never wins (an earlier score, with lesion-free patients counted as
Dice 1 when empty, preferred the first, empty checkpoint: 0.5 against 0.31 for a net with
Dice 0.22 on the bleeds), and a false-positive patient costs as much as losing 0.25 of Dice on
every bleed of a split with as many negatives as positives.

The score ranks checkpoints. The threshold / minimum size is then the grid point nearest the
natural cut of 0.5 among those within TOLERANCE of the best score: with ~5 bleeds per validation
split the surface is flat across thresholds (at the largest minimum size one fold scored
0.40-0.42 at every threshold from 0.5 to 0.97), and its arg-max sat at the edge of the plateau
(0.9-0.97) in 3 of 5 folds, where a test patient's slightly less confident bleed disappears.
"""
from __future__ import annotations

import numpy as np

from model.postprocess import remove_small_components
from model.preprocess import stack_input

from .data import Patient, with_mirrors
from .metrics import dice

# Up to 0.97: a net trained with pos_weight > 1 over-predicts, so its best cut is high.
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97)
# Minimum 3D component size in voxels of the original 512x512 grid.
MIN_VOXELS = (0, 100, 200, 400, 800, 1600, 3200)
FP_PENALTY = 0.25
TOLERANCE = 0.02


ORIGINAL_SIZE = 512  # the ct-ich slices are 512 x 512


def grid_scale_for(input_size) -> float:
    """Original-grid (512 x 512) voxels per model-grid voxel: min sizes are counted on the former."""
    return (ORIGINAL_SIZE / input_size[0]) * (ORIGINAL_SIZE / input_size[1])


def predict_patient(predict, patient: Patient, config: dict, batch: int = 16) -> np.ndarray:
    """(Z, H, W) probabilities on the model grid; ``predict`` maps (N,H,W,C) -> (N,H,W,1).

    config: the model's NAME.json (or ``training.configs.model_config``): its ``context_slices``, and
    its ``mirror_channel`` decides whether the input gets the patient's mirrored slices (computed
    here by ``training.data.with_mirrors`` when the patient has none yet). Slices a patient was
    given for another config are not used when this one has no mirror channel.
    """
    mirrored = None
    if config.get("mirror_channel"):
        mirrored = with_mirrors([patient], config)[0].mirrored.astype(np.float32)
    x = stack_input(patient.images.astype(np.float32), config["context_slices"], mirrored)
    return np.concatenate([np.asarray(predict(x[i:i + batch]))[..., 0] for i in range(0, len(x), batch)])


def selection_score(pos_dice: list[float], fp_patients: int, negatives: int) -> float:
    """Mean Dice on hemorrhage patients - FP_PENALTY x share of lesion-free patients with a
    false positive (see the module docstring)."""
    dice_part = float(np.mean(pos_dice)) if pos_dice else 0.0
    return dice_part - FP_PENALTY * (fp_patients / negatives if negatives else 0.0)


def selection_key(pos: list[float], fp_patients: int, negatives: int, max_fp_share: float | None) -> tuple:
    """Sort key of a (threshold, cutoff) or postprocessing grid point on the selection patients, higher is better.

    max_fp_share None: ``selection_score`` (Dice less 0.25 x the false-positive share). Set: the
    highest mean Dice among points with a false-positive share <= max_fp_share (the target's
    2 of 31 as a constraint); if no point meets it, the fewest false-positive patients.
    """
    if max_fp_share is None:
        return (selection_score(pos, fp_patients, negatives),)
    if fp_patients <= max_fp_share * negatives + 1e-9:
        return (1, float(np.mean(pos)) if pos else 0.0)
    return (0, -fp_patients)


def choose_postprocessing(probs: list[np.ndarray], truths: list[np.ndarray], grid_scale: float) -> dict:
    """Grid search of threshold x minimum component size on validation patients.

    grid_scale: original-grid voxels per model-grid voxel ((512/224)**2 for this data).
    Returns {"score": best score on the grid (ranks checkpoints), and of the chosen point (see the
    module docstring): "threshold", "min_lesion_pixels", "point_score", "dice_positive",
    "fp_patients"}.
    """
    grid = []
    for thr in THRESHOLDS:
        binaries = [p >= thr for p in probs]
        for min_vox in MIN_VOXELS:
            pos_dice, fp, negatives = [], 0, 0
            for b, t in zip(binaries, truths):
                pred = remove_small_components(b, int(round(min_vox / grid_scale)))
                if t.any():
                    pos_dice.append(dice(pred, t))
                else:
                    negatives += 1
                    fp += bool(pred.any())
            grid.append({"threshold": thr, "min_lesion_pixels": min_vox,
                         "point_score": selection_score(pos_dice, fp, negatives),
                         "dice_positive": float(np.mean(pos_dice)) if pos_dice else None, "fp_patients": fp})
    best = max(c["point_score"] for c in grid)
    near = [c for c in grid if c["point_score"] >= best - TOLERANCE - 1e-9]
    chosen = min(near, key=lambda c: (abs(c["threshold"] - 0.5), -c["point_score"]))
    return {"score": best, **chosen}


def validate(predict, patients: list[Patient], config: dict, grid_scale: float) -> dict:
    """``choose_postprocessing`` on ``patients`` predicted as ``config`` (NAME.json) asks."""
    probs = [predict_patient(predict, p, config) for p in patients]
    truths = [p.masks.astype(np.float32) >= 0.5 for p in patients]
    return choose_postprocessing(probs, truths, grid_scale)
