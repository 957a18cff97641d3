"""Default model configs: the JSON written next to each .weights.h5 starts from these."""
from __future__ import annotations

import copy

from model.config import expected_channels

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
    # "mirror_channel": True on the U-Net (the centre slice mirrored about the head's midline as a fourth
    # channel, model/symmetry.py): folds 0+3 with --crossfit size 0.295 with 1 FP of 12, none of the four
    # bleeds under 10 HU found (reports/experiments/unet_base16_mirror_channel.json): not used.
    "unet": {"name": "unet", "architecture": "unet",
             "arch_params": {"depth": 4, "base_filters": 16, "dropout": 0.1, "batch_norm": True}},
    # "skips": True in the two-branch's arch_params (decoder skips from both branches, model/networks.py): folds 0+3
    # 0.260 against 0.212, then the full CV 0.222 with 2 of 31 FP against 0.232 / 2 (its folds had to choose
    # thresholds 0.8-0.9 to stay under the limit; reports/experiments/two_branch_decoder_skips.json): not used.
    "two_branch": {"name": "two_branch", "architecture": "two_branch",
                   "arch_params": {"filters": 16, "dropout": 0.1, "batch_norm": True}},
}

TRAINING = {
    # Whole 224x224 slices (crop_size None). 128x128 crops (crop_size 128) were 1.5x cheaper
    # per step, but a net trained on them found almost nothing on whole validation slices at
    # the same budget (its receptive field, ~125 px, sees the crop's padded border everywhere).
    # pos_weight 10: the unweighted U-Net predicted nothing on validation for its first 600-900
    # steps in every fold (see training/losses.py); the two-branch net found bleeds by step 600.
    # U-Net: a 2000-step cosine, then a 1000-step one at a quarter of the peak. With the older
    # validation-split folds, training longer raised CV mean Dice a little and the false-positive
    # patients a lot (reports/experiments/): a second 2000-step cycle at half the peak gave
    # 0.260 -> 0.269 with false-positive patients 4 -> 13 of 31; a 1000-step one at a quarter of
    # the peak ("lr_cycle_steps": 2000, "lr_cycle_mul": 0.5, "lr_cycle_decay": 0.25, 3000 steps)
    # 0.277 with 13 of 31. So it is not used. With the folds trained as the shipped model is
    # (fold_validation_fraction 0) that 3000-step schedule gave 0.245 with 1 of 31 against 0.246 with 2
    # (reports/experiments/unet_3000_steps_fixed_cv.json); on the recipe's second full CV (seeds + 100) the
    # same continuation gave 0.238 with 3 against 0.210 with 4, paired on the same nets: it passed the rule
    # registered in reports/experiments/unet_3000_steps_paired_seeds.json and is the recipe since stop 23.
    # "window_jitter" (30% of samples re-exported at level 30-50 / width 70-120 HU) lifted the L40/W80
    # export on folds 0+3 from 0.070 (4 FP of 12) to 0.109 (2 FP) but the full CV gave 0.216 with 5 of
    # 31 FP (reports/experiments/unet_window_jitter.json): not used.
    # "extra_windows" [{"level": 55, "width": 50}] in the U-Net's arch_params (the 3 channels also fed at
    # 30-80 HU): folds 0+3 0.230 with 0 FP against 0.227 / 0 for this recipe retrained on the same machine,
    # full CV 0.219 with 1 of 31 (reports/experiments/unet_input_windows.json): not used.
    # "positive_fraction" 0.6 (60% lesion slices per batch): folds 0+3 0.226 with 1 FP of 12 against 0.227 / 0
    # (reports/experiments/unet_positive_fraction_screen.json): not used.
    # base_filters 12 (in MODELS above): folds 0+3 0.183 with 0 FP against 0.227 / 0
    # (reports/experiments/unet_base_filters_12.json): not used.
    # 6000 steps (one cosine): folds 0+3 as exported 0.167 with 0 FP against 0.227 / 0; raw test Dice 0.256 -> 0.286
    # (reports/experiments/unet_6000_steps_screen.json); its full CV with its own cross-fitted choice 0.236 with
    # 2 of 31 FP against 0.246 / 2 (folds chose thresholds 0.3-0.97): not used.
    # "hard_negatives" {"fraction": 0.5, "every": 250, "start": 1000} (mining the lesion-free slices the net marks):
    # folds 0+3 with --crossfit size 0.229 with 1 FP of 12 against 0.247 / 4
    # (reports/experiments/unet_hard_negatives_screen.json); with "dice": "per_image" and "lesion_patient_power" 0.5
    # too 0.250 with 5 FP of 12 (reports/experiments/unet_small_bleeds_hard_negatives_screen.json): not used.
    # "orientations": "as_exported" (no flips / 90-degree rotations; a diagnostic, uploads come in any orientation):
    # folds 0+3 with --crossfit size 0.273 with 1 FP of 12 against 0.247 / 4; training patients' raw Dice 0.449 against
    # 0.315, test 0.274 against 0.256 (reports/experiments/unet_orientation_diagnostic.json): not used.
    # A second training (seed + 100): 0.267 with 4 FP of 12, mean of the two 0.270 against the full recipe's 0.226 +- 0.019
    # over three trainings (reports/experiments/unet_orientation_diagnostic_seed_100.json): worth canonicalising orientation.
    # With the pipeline's orient stage (model/orientation.py), all 5 folds, uploads in the radiological view: 0.190 with
    # 4 of 31 FP against 0.246 / 2 (reports/experiments/unet_orientation_canonical.json): not used. This recipe itself, CV'd again
    # with seeds + 100: 0.210 / 4 (reports/experiments/unet_full_cv_seed_noise.json): the full CV's seed spread is ~0.04.
    # pos_weight 3 instead of 10: folds 0+3 with --crossfit size 0.221 with 1 FP of 12 against 0.247 / 4
    # (reports/experiments/unet_pos_weight_3_screen.json): not used.
    # "paste_fraction" 1.0 (bleeds transplanted into lesion-free slices, training/paste.py): folds 0+3 with --crossfit
    # size 0.180 with 0 FP of 12 against 0.247 / 4 (reports/experiments/unet_bleed_transplant_screen.json): not used.
    # context_slices 2 / in_channels 5 (in BASE above): folds 0+3 with --crossfit size 0.192 with 0 FP of 12 against
    # 0.247 / 4 (reports/experiments/unet_context_2_screen.json): not used.
    # input_size [320, 320] (in BASE above; 2.3x the training time): folds 0+3 with --crossfit size 0.226 with 5 FP of 12
    # against 0.247 / 4 (reports/experiments/unet_input_320_screen.json): not used. The same 224 recipe with another training
    # seed scored 0.209 / 1 there (reports/experiments/unet_screen_seed_noise.json): the screen's noise is ~0.04.
    # fold_validation_fraction 0: each CV fold trains on all its training patients for the fixed
    # step count, as the shipped model does on all 60, and its threshold / minimum size is chosen
    # cross-fitted (training.crossfit) instead of on a ~12-patient validation split.
    # Since stop 31: base_filters 16 (in MODELS above; 1.95 M parameters), batches of 16, 4,700 steps, one cosine,
    # and each fold's threshold / minimum size chosen as the highest mean Dice flagging at most 2 of 31 (6.45%) of
    # the other folds' lesion-free patients ("crossfit_max_fp_share"), since the selection score picked 0.3 / 400
    # voxels for this net (0.350 with 6 of 31 FP). Full CV 0.284 with 2 of 31 against the base-8 recipe's 0.234 with
    # 2 chosen the same way, paired +0.050 (95% 0.019 to 0.087) (reports/experiments/unet_base16_cpu_cv.json).
    # "dim_fraction" 0.5, "dim_factor" [0.3, 1.0] (bleeds shown fainter, training.paste.dim): folds 0+3 with --crossfit
    # size 0.278 with 4 FP of 12 against 0.260 / 3 and 0.288 / 2 for this recipe's two seeds, the same 6 bleeds found
    # (reports/experiments/unet_base16_bleed_dimming.json): not used.
    # "hard_positives" {"fraction": 0.5, "every": 250, "start": 1000} (training.mining): full CV 0.316 with 2 of 31 FP,
    # paired +0.012 (95% -0.012 to 0.046) against this recipe's seed-0 archive CV
    # (reports/experiments/unet_base16_hard_positives.json): not used.
    # hard_negatives and hard_positives together (each as above): folds 0+3 with --crossfit size 0.272 with 1 FP
    # of 12, the same 6 bleeds as this recipe's seeds (hard positives alone 0.317 / 7 / 1)
    # (reports/experiments/unet_base16_hard_neg_pos.json): not used.
    # "steps" 8000 (fused batch norm made it fit the 2 hours on the faster machine: 0.62 s/step; 1.02 on a slower one):
    # folds 0+3 with --crossfit size 0.300 with 2 FP of 12, the same 6 bleeds found; raw Dice on the training
    # patients 0.550 against 0.472 (reports/experiments/unet_base16_8000_steps.json): not used.
    # The base-8 recipe was: base_filters 8, steps 3000, batch_size 8, lr_cycle_steps 2000 (then 1000 at x0.25).
    "unet": {"steps": 4700, "lr_cycle_steps": None, "lr_cycle_mul": 0.5, "lr_cycle_decay": 0.25,
             "batch_size": 16, "learning_rate": 2e-3, "val_every": 250, "crop_size": None,
             "pos_weight": 10.0, "fold_validation_fraction": 0.0, "crossfit_max_fp_share": 0.0645},
    # Two-branch: three 1000-step cosine cycles, each restart at half the previous peak (CV mean
    # Dice 0.140 / 0.165 / 0.179 after one / two / three, false-positive patients 9 / 5 / 5, with the
    # older validation-split folds). fold_validation_fraction 0 since stop 24, as for the U-Net:
    # CV 0.214 with 7 false-positive patients (reports/experiments/two_branch_fixed_steps_cv.json).
    # Since stop 48: 16 filters (was 12), pos_weight 10 (was 1), choice under the 2-of-31 false-positive
    # limit as the U-Net: CV 0.232 with 2 false-positive patients (reports/experiments/two_branch_recipe_transfer.json).
    # Since stop 52: batches of 16 (was 8), twice the samples at the same steps and schedule: CV 0.293 with 2
    # false-positive patients, paired +0.061 (95% 0.023-0.109) (reports/experiments/two_branch_batch_16.json).
    # Since stop 57: batches of 32 (was 16), twice the samples again: CV 0.335 with the same 2 false-positive
    # patients, paired +0.042 (95% 0.006-0.081); all-60 training 91.3 min (reports/experiments/two_branch_batch_32.json).
    # "window_jitter" {"p": 0.3} on top: folds 0+3 as exported 0.277 with 2 of 12 FP (0.297 / 1 without), L40/W80
    # unstated 4 of 12 FP (6 without; bar 2) (reports/experiments/two_branch_b32_window_jitter.json): not used.
    # 4000 steps (a fourth 1000-step cycle at 1/8 of the peak, continued from the folds' step-3000 checkpoints):
    # CV 0.270 with 2 false-positive patients, paired -0.023 (95% -0.068-0.008) (reports/experiments/two_branch_4000_steps.json).
    "two_branch": {"steps": 3000, "batch_size": 32, "learning_rate": 2e-3, "val_every": 250, "crop_size": None,
                   "pos_weight": 10.0, "lr_cycle_steps": 1000, "lr_cycle_decay": 0.5, "fold_validation_fraction": 0.0,
                   "crossfit_max_fp_share": 0.0645},
}


def model_config(name: str) -> dict:
    """Full config for model ``name`` ("unet" or "two_branch"; "two-branch" accepted)."""
    name = name.replace("-", "_")
    if name not in MODELS:
        raise SystemExit(f"unknown model {name!r}: choose unet or two-branch")
    config = {**copy.deepcopy(BASE), **copy.deepcopy(MODELS[name])}
    config["in_channels"] = expected_channels(config)
    return config


def training_config(name: str) -> dict:
    return dict(TRAINING[name.replace("-", "_")])
