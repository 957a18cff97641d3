"""Default model configs: the JSON written next to each .weights.h5 starts from these."""
from __future__ import annotations

import copy

BASE = {
    "version": "1.0.0",
    "input_size": [224, 224],
    "context_slices": 1,
    "in_channels": 3,
    "window": {"level": 40.0, "width": 120.0},
    "threshold": 0.5,
    # min_lesion_pixels counts voxels on the original grid when spacing is unknown;
    # min_lesion_mm3 applies when it is known (see MODEL_CARD.md for how they relate).
    "postprocess": {"min_lesion_mm3": 50.0, "min_lesion_pixels": 50, "fill_holes": True},
}

MODELS = {
    "unet": {"name": "unet", "architecture": "unet",
             "arch_params": {"depth": 4, "base_filters": 8, "dropout": 0.1, "batch_norm": True}},
    "two_branch": {"name": "two_branch", "architecture": "two_branch",
                   "arch_params": {"filters": 12, "dropout": 0.1, "batch_norm": True}},
}

TRAINING = {
    # Whole 224x224 slices (crop_size None). 128x128 crops (crop_size 128) were 1.5x cheaper
    # per step, but a net trained on them found almost nothing on whole validation slices at
    # the same budget (its receptive field, ~125 px, sees the crop's padded border everywhere).
    # pos_weight 10: the unweighted U-Net predicted nothing on validation for its first 600-900
    # steps in every fold (see training/losses.py); the two-branch net found bleeds by step 600.
    # U-Net: one 2000-step cosine. A second cycle (4000 steps, warm restart at half the peak;
    # lr_cycle_steps 2000, lr_cycle_decay 0.5) raised CV mean Dice 0.260 -> 0.269 but false-positive
    # patients 4 -> 13 of 31 (reports/experiments/), so it is not used.
    "unet": {"steps": 2000, "batch_size": 8, "learning_rate": 2e-3, "val_every": 250, "crop_size": None,
             "pos_weight": 10.0},
    # Two-branch: two 1000-step cosine cycles (warm restart at half the peak).
    "two_branch": {"steps": 2000, "batch_size": 8, "learning_rate": 2e-3, "val_every": 250, "crop_size": None,
                   "pos_weight": 1.0, "lr_cycle_steps": 1000, "lr_cycle_decay": 0.5},
}


def model_config(name: str) -> dict:
    """Full config for model ``name`` ("unet" or "two_branch"; "two-branch" accepted)."""
    name = name.replace("-", "_")
    if name not in MODELS:
        raise SystemExit(f"unknown model {name!r}: choose unet or two-branch")
    return {**copy.deepcopy(BASE), **copy.deepcopy(MODELS[name])}


def training_config(name: str) -> dict:
    return dict(TRAINING[name.replace("-", "_")])
