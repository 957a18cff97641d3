"""Cross-fitted postprocessing choice for CV folds trained without a validation split.

A fold trained on all of its training patients (``fold_validation_fraction`` 0 in
``training.configs``, as the shipped model is trained on all 60) has no validation patients to
choose its postprocessing on. Instead, fold k's rule is the best
``training.validate.selection_score`` (or, with ``max_fp_share``, the highest mean Dice within
that false-positive share) over the grids of ``training.oof`` named in ``rules``
(``size``, the default: threshold x minimum lesion size; ``core``: threshold 0.5 x minimum
voxels above a core threshold; ``area``: the size rule x minimum largest cross-section; see
``model.postprocess``) on the out-of-fold predictions of
the *other* folds' test patients (48 patients, none of them fold k's test patients), computed on
the model grid as training's own choice is. The rule for the shipped model is the best on
all patients' out-of-fold predictions (the 60 instead of the median of five noisy choices).

The test fold's own patients never influence its choice; the models that predicted the other
folds did train on them, which is the one indirect link (see the README's evaluation notes).
"""
from __future__ import annotations

import json
from pathlib import Path

from .configs import model_config, training_config
from .oof import RULES, best_point, outcome_table
from .oof_probs import oof_probabilities
from .validate import grid_scale_for

POOLED = "all patients' out-of-fold predictions (training.crossfit)"   # the report's "chosen_on"


OFF = "off"


def fp_share_arg(value: str) -> str | float:
    """argparse type of ``--max-fp-share``: a share in [0, 1], or "off" (the selection score)."""
    if value == OFF:
        return OFF
    share = float(value)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"a false-positive share is between 0 and 1, not {share}")
    return share


def resolve_max_fp_share(name: str, asked: str | float | None) -> float | None:
    """The false-positive share the cross-fitted choice of ``name`` is made under: ``asked`` if
    given ("off": none, the selection score), else the model's ``crossfit_max_fp_share`` in
    ``training.configs`` (None there: the selection score)."""
    if asked is None:
        return training_config(name).get("crossfit_max_fp_share")
    return None if asked == OFF else float(asked)


def fold_config_path(runs: Path, name: str, fold: int) -> Path:
    return runs / "cv" / name / f"fold{fold}" / f"{name}.json"


def folds_without_validation(name: str, runs: Path, n_folds: int) -> bool:
    """True if every trained fold of ``name`` under ``runs`` was trained with no validation split."""
    paths = [fold_config_path(runs, name, i) for i in range(n_folds)]
    return all(p.exists() and not json.loads(p.read_text()).get("training", {}).get("val_patients")
               for p in paths)


def choose_cross_fitted(name: str, data: Path, runs: Path, folds: list[list[str]],
                        rules: tuple[str, ...] = ("size",), only: set[int] | None = None,
                        max_fp_share: float | None = None) -> dict:
    """Write each fold's cross-fitted threshold / min_lesion_pixels into its NAME.json.

    ``only``: the folds to use (a screen of a few trained folds: each is then chosen on the other
    screened folds' test patients); default all. ``max_fp_share``: choose under that false-positive
    share (``best_point``) instead of by the selection score. Returns {"fold_choices": [...] in fold order,
    "pooled": {"threshold", "min_lesion_pixels", ...}}.
    """
    from .train import set_postprocessing

    scale = grid_scale_for(model_config(name)["input_size"])
    used = sorted(only) if only is not None else list(range(len(folds)))
    if len(used) < 2:
        raise SystemExit("a cross-fitted choice needs at least two trained folds")
    patients = oof_probabilities(name, data, runs, folds, tta=False, only=set(used))
    unknown = set(rules) - set(RULES)
    if unknown or not rules:
        raise SystemExit(f"unknown postprocessing rules {sorted(unknown)}: choose from {sorted(RULES)}")
    points = [point for rule in rules for point in RULES[rule]]
    table = outcome_table(patients, points, scale)
    choices = []
    for k in used:
        others = [p for p, (fold, _, _) in patients.items() if fold != k]
        point, on_others = best_point(table, patients, others, points, max_fp_share)
        path = fold_config_path(runs, name, k)
        cfg = json.loads(path.read_text())
        set_postprocessing(cfg, *point)
        cfg.setdefault("metrics", {})["cross_fitted"] = {"chosen_on": "other folds' test patients",
                                                         **on_others}
        path.write_text(json.dumps(cfg, indent=2))
        choices.append({**rule_fields(point), **on_others})
        print(f"fold {k}: cross-fitted {describe(point)} (on {len(others)} patients: Dice "
              f"{on_others['mean_dice']:.3f}, {on_others['false_positive_patients']} FP)", flush=True)
    point, on_all = best_point(table, patients, list(patients), points, max_fp_share)
    return {"fold_choices": choices, "pooled": {**rule_fields(point), **on_all}}


def rule_fields(point: tuple) -> dict:
    """A grid point (threshold, min voxels, core threshold or None, min cross-section pixels) as
    config-style fields."""
    threshold, min_voxels, core, min_area = point
    area = {"min_lesion_area_pixels": min_area} if min_area else {}
    if core is None:
        return {"threshold": threshold, "min_lesion_pixels": min_voxels, **area}
    return {"threshold": threshold, "min_lesion_pixels": 0, "core_threshold": core, "min_core_pixels": min_voxels,
            **area}


def describe(point: tuple) -> str:
    threshold, min_voxels, core, min_area = point
    area = f", largest cross-section >= {min_area} pixels" if min_area else ""
    rule = ("core" if core is not None else "size") + (" + area" if min_area else "")
    if core is None:
        return f"{rule} rule: threshold {threshold}, min {min_voxels} voxels{area}"
    return f"{rule} rule: threshold {threshold}, >= {min_voxels} voxels of p >= {core}{area}"
