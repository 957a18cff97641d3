"""How far postprocessing can take the trained CV folds: out-of-fold analysis on the model grid.

    python -m training.oof --model unet --runs runs --out reports/experiments/

Each fold's weights predict its own test patients (never trained on), giving out-of-fold
probabilities for all 60 patients. On them it reports

- the ceiling: Dice and false-positive patients at a plain threshold, no component removal;
- two postprocessing rules, each chosen *cross-fitted*: fold k's rule is the best selection score
  (``training.validate.selection_score``) on the other four folds' test patients (48 patients
  instead of the ~10 validation patients training chooses on), then scored on fold k:
  ``size`` (threshold x minimum component size, the shipped rule) and ``core`` (threshold 0.5,
  a component is kept only if it holds enough voxels above a high "core" probability);
- with ``--tta``, the same with each slice's probability averaged over 4 flips;
- with several ``--runs``, the same for the mean of their probabilities (an ensemble), and for
  each run alone (``members``: the ensemble's paired reference); a run given as ``MODEL=PATH``
  holds folds of that model instead of ``--model``'s, so the U-Net and the two-branch CNN can be
  averaged (same folds and model grid);
- with ``--z-smooth W``, the same with each slice's probability smoothed across its neighbouring
  slices (``training.oof_probs.smooth_across_slices``, weight W on each neighbour);
- with ``--max-fp-share``, each rule chosen as the highest mean Dice flagging at most that share
  of the other folds' lesion-free patients (as ``training.evaluate --max-fp-share``).

It is an analysis on the model grid (224 x 224, sizes in original-grid voxels), not the CLI
pipeline's evaluation (``training.evaluate``), which stays the reported number.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from model.postprocess import (drop_thin, drop_unconfident, full_connectivity, label_components,
                               largest_cross_sections, remove_small_components)

from .configs import model_config
from .data import dataset_folds
from .device import set_threads
from .oof_probs import ensemble_oof_probabilities, smooth_across_slices
from .validate import MIN_VOXELS, THRESHOLDS, grid_scale_for, selection_key, selection_score

CORE_THRESHOLDS = (0.8, 0.9, 0.95, 0.98, 0.99)
MIN_AREAS = (100, 200, 400, 800, 1200, 1600)   # original-grid pixels of the largest cross-section


def grid_voxels_covering(original_voxels: float, scale: float) -> int:
    """Fewest model-grid voxels (``scale`` original-grid voxels each) holding ``original_voxels``,
    rounded up with a float tolerance, as the pipeline counts a limit on the original grid."""
    return int(math.ceil(original_voxels / scale - 1e-9))


def grid_limits(min_voxels: float, core: float | None, min_area: float, scale: float) -> tuple[int, int]:
    """A grid point's limits in model-grid voxels (``scale`` original-grid voxels each):
    (size or core-voxel limit, cross-section limit). The size rule rounds as training's own
    choice does (``training.validate``); the core and area limits round up, as the pipeline
    would count them on the original grid."""
    size = int(round(min_voxels / scale)) if core is None else grid_voxels_covering(min_voxels, scale)
    return size, grid_voxels_covering(min_area, scale)


def component_mask(prob: np.ndarray, threshold: float, min_voxels: float, core: float | None,
                   scale: float, min_area: float = 0) -> np.ndarray:
    """(Z, H, W) bool: components of prob >= threshold (``model.postprocess`` connectivity) kept
    by one of two rules. ``core`` None: the size rule exactly as training chooses it
    (``training.validate``: at least round(min_voxels / scale) model voxels). ``core`` set: at
    least ``min_voxels`` original-grid voxels (``scale`` per model voxel) with prob >= ``core``.
    ``min_area`` > 0 (either rule): the component's largest single-slice cross-section must hold
    at least that many original-grid pixels (the pipeline's area rule)."""
    binary = prob >= threshold
    limit, area_limit = grid_limits(min_voxels, core, min_area, scale)
    if core is None and not min_area:
        return remove_small_components(binary, limit)
    components = label_components(binary, limit if core is None else 0)
    out = np.zeros(binary.shape, bool)
    if components is None:
        return out
    # the pipeline's rules (model.postprocess) with the limits in model-grid voxels
    if core is not None:
        drop_unconfident(components, prob >= core, limit)
    if min_area:
        drop_thin(components, area_limit)
    out[components.box] = components.labels > 0
    return out


# A grid point: (threshold, min voxels, core threshold or None, min cross-section pixels).
RULES = {
    "size": [(t, m, None, 0) for t, m in itertools.product(THRESHOLDS, MIN_VOXELS)],
    "core": [(0.5, m, c, 0) for c, m in itertools.product(CORE_THRESHOLDS, MIN_VOXELS)],
    "area": [(t, m, None, a) for t, m, a in itertools.product(THRESHOLDS, MIN_VOXELS, MIN_AREAS)],
}


def outcome_table(patients: dict, points: list, scale: float) -> dict:
    """{(pid, point): Dice (hemorrhage patient) or 1.0/0.0 (lesion-free: any lesion left?)}.

    Each threshold is labelled once per patient; every rule at that threshold then only selects
    components (per-component sizes, core counts, largest cross-sections and truth overlaps),
    giving exactly :func:`component_mask`'s outcome without building each mask."""
    table = {}
    for pid, (_, prob, truth) in patients.items():
        for threshold in sorted({pt[0] for pt in points}):
            binary = prob >= threshold
            labels, n = ndimage.label(binary, structure=full_connectivity(binary))
            count = lambda where: np.bincount(labels[where], minlength=n + 1)  # noqa: E731
            sizes, overlap = count(binary), count(truth & binary)
            largest = largest_cross_sections(labels, n)
            confident = {}                     # core threshold -> confident voxels per component
            for point in (pt for pt in points if pt[0] == threshold):
                _, min_voxels, core, min_area = point
                limit, area_limit = grid_limits(min_voxels, core, min_area, scale)
                if core is None:
                    keep = sizes >= limit if limit > 1 else np.ones(n + 1, bool)
                else:
                    if core not in confident:
                        confident[core] = count(binary & (prob >= core))
                    keep = confident[core] >= max(limit, 1)
                if min_area:
                    keep = keep & (largest >= area_limit)
                keep[0] = False
                kept = int(sizes[keep].sum())
                if truth.any():
                    table[pid, point] = 2.0 * int(overlap[keep].sum()) / (kept + int(truth.sum()))
                else:
                    table[pid, point] = float(kept > 0)
    return table


def score(table: dict, patients: dict, pids: list[str], point) -> tuple[float, float, int]:
    """(selection score, mean Dice on hemorrhage patients, false-positive patients) of ``point``."""
    pos = [table[p, point] for p in pids if patients[p][2].any()]
    fps = [table[p, point] for p in pids if not patients[p][2].any()]
    return selection_score(pos, int(sum(fps)), len(fps)), float(np.mean(pos)) if pos else 0.0, int(sum(fps))


def best_point(table: dict, patients: dict, pids: list[str], points: list,
               max_fp_share: float | None = None) -> tuple[tuple, dict]:
    """The best grid point on ``pids`` by ``training.validate.selection_key`` (max_fp_share None:
    the selection score; set: the highest mean Dice flagging at most that share of the lesion-free
    patients) and its (score, Dice, FP)."""
    positive = [p for p in pids if patients[p][2].any()]
    negative = sorted(set(pids) - set(positive))

    def key(pt):
        fp = int(sum(table[p, pt] for p in negative))
        return selection_key([table[p, pt] for p in positive], fp, len(negative), max_fp_share)

    best = max(points, key=key)
    sel, dice, fp = score(table, patients, pids, best)
    return best, {"selection_score": sel, "mean_dice": dice, "false_positive_patients": fp,
                  "patients": len(pids), "max_fp_share": max_fp_share}


def cross_fitted(table: dict, patients: dict, points: list, max_fp_share: float | None = None) -> dict:
    """Each fold scored with the point chosen on the other folds' patients (see module docstring;
    ``max_fp_share``: chosen under that false-positive share, :func:`best_point`)."""
    folds = sorted({f for f, _, _ in patients.values()})
    per_patient, chosen = {}, []
    for k in folds:
        others = [p for p, (f, _, _) in patients.items() if f != k]
        best, _ = best_point(table, patients, others, points, max_fp_share)
        chosen.append(list(best))
        per_patient.update({p: table[p, best] for p, (f, _, _) in patients.items() if f == k})
    everyone = list(patients)
    pos = [per_patient[p] for p in everyone if patients[p][2].any()]
    return {"chosen_per_fold": chosen, "mean_dice": float(np.mean(pos)), "median_dice": float(np.median(pos)),
            "false_positive_patients": int(sum(per_patient[p] for p in everyone if not patients[p][2].any()))}


def frontier(table: dict, patients: dict, points: list, caps=(0, 1, 2, 3, 4, 6, 8)) -> dict:
    """Best mean Dice over ``points`` with at most ``cap`` false-positive patients, for each cap, on all
    patients at once (in-sample: optimistic, but on the same footing for every net): the trade-off
    curve of bleeds against false lesions that a net offers its postprocessing."""
    everyone, out = list(patients), {}
    scored = [(pt, *score(table, patients, everyone, pt)[1:]) for pt in points]
    for cap in caps:
        ok = [(dice, fp, pt) for pt, dice, fp in scored if fp <= cap]
        dice, fp, pt = max(ok, key=lambda t: t[0]) if ok else (0.0, 0, None)
        out[f"fp_at_most_{cap}"] = {"mean_dice": dice, "false_positive_patients": fp, "point": list(pt) if pt else None}
    return out


def analyse(patients: dict, scale: float, max_fp_share: float | None = None) -> dict:
    """Ceiling and cross-fitted rules for {pid: (fold, (Z,H,W) probabilities, (Z,H,W) bool truth)},
    each rule chosen by the selection score or, with ``max_fp_share``, under that false-positive share."""
    ceiling = {}
    for thr in (0.5, 0.9):
        table = outcome_table(patients, [(thr, 0, None, 0)], scale)
        _, d, fp = score(table, patients, list(patients), (thr, 0, None, 0))
        ceiling[f"threshold {thr}"] = {"mean_dice": d, "false_positive_patients": fp}
    out = {"no_postprocessing": ceiling}
    for rule, points in RULES.items():
        table = outcome_table(patients, points, scale)
        out[f"{rule}_rule_cross_fitted"] = cross_fitted(table, patients, points, max_fp_share)
        if rule == "size":
            out["size_rule_frontier_in_sample"] = frontier(table, patients, points)
    return out


def analysis_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every out-of-fold analysis command shares (this one, training.lesion_classifier)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--model", required=True, choices=["unet", "two-branch", "two_branch"])
    ap.add_argument("--data", default="../shared/data/ct-ich", type=Path)
    ap.add_argument("--runs", default=["runs"], nargs="+",
                    help="CV runs dir; several: analyse the mean of their probabilities (an ensemble); "
                         "MODEL=DIR: that model's folds (e.g. two_branch=/tmp/runs_tb beside U-Net runs)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="reports/experiments", type=Path)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for TensorFlow (default: all)")
    return ap


def main(argv=None) -> None:
    ap = analysis_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--tta", action="store_true", help="also analyse flip-averaged probabilities")
    ap.add_argument("--max-fp-share", type=float, default=None,
                    help="choose each cross-fitted rule as the highest mean Dice flagging at most this share of the "
                         "other folds' lesion-free patients (0.0645: the target's 2 of 31); default: the selection score")
    ap.add_argument("--z-smooth", type=float, nargs="+", default=[], metavar="W",
                    help="also analyse the probabilities smoothed across slices, weight W on each neighbour")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    name = args.model.replace("-", "_")
    folds = dataset_folds(args.data, args.folds, args.seed)
    scale = grid_scale_for(model_config(name)["input_size"])
    command = "python -m training.oof " + " ".join(sys.argv[1:] if argv is None else argv)
    report = {"model": name, "runs": [str(r) for r in args.runs], "command": command, "max_fp_share": args.max_fp_share}
    for tta in (False, True) if args.tta else (False,):
        members: list = []
        probs = ensemble_oof_probabilities(name, args.data, args.runs, folds, tta, members)
        key = "flip_tta" if tta else "plain"
        report[key] = analyse(probs, scale, args.max_fp_share)
        if len(args.runs) > 1:   # each member alone, same rules: the ensemble's paired reference
            report[key]["members"] = {str(r): analyse(m, scale, args.max_fp_share) for r, m in zip(args.runs, members)}
        for w in args.z_smooth:
            smoothed = {p: (f, smooth_across_slices(prob, w), t) for p, (f, prob, t) in probs.items()}
            report[key][f"z_smooth_{w:g}"] = analyse(smoothed, scale, args.max_fp_share)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}_oof_postprocessing.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
