"""The cross-validation results as Markdown: the CV table with its intervals and the per-patient lines.

Read by ``training.report`` for the model card and ``reports/cv_table.md``.
"""
from __future__ import annotations

import json
from pathlib import Path

from .uncertainty import METHOD, cv_intervals

NAMES = ("unet", "two_branch")


def _fmt(value, digits=3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def cv_reports(reports: Path) -> dict[str, dict | None]:
    """{model name: its reports/NAME_cv.json, or None when not measured}, in NAMES order."""
    return {name: json.loads(path.read_text()) if (path := reports / f"{name}_cv.json").exists() else None
            for name in NAMES}


def _interval(interval, digits=3, percent=False) -> str:
    if interval is None:
        return ""
    lo, hi = (100 * interval[0], 100 * interval[1]) if percent else interval
    return f" ({lo:.0f}-{hi:.0f}%)" if percent else f" ({lo:.{digits}f}-{hi:.{digits}f})"


def cv_table(reports: Path) -> str:
    """Markdown table of the measured cross-validation metrics of every model with a report, with
    95% patient-bootstrap intervals (``training.uncertainty``) in brackets."""
    lines = ["| model | mean Dice (hemorrhage patients) | median Dice | mean IoU | median rel. volume diff. "
             "| slice sensitivity | slice specificity | false-positive patients (of lesion-free) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, report in cv_reports(reports).items():
        if report is None:
            lines.append(f"| {name} | not measured | | | | | | |")
            continue
        s, ci = report["summary"], cv_intervals(report["per_patient"])
        lines.append(
            f"| {name} | {_fmt(s['mean_dice'])}{_interval(ci['mean_dice'])} | {_fmt(s['median_dice'])} "
            f"| {_fmt(s['iou']['mean'])} | {_fmt(s['relative_volume_difference']['median'])}"
            f"{_interval(ci['median_relative_volume_difference'])} | {_fmt(s['slice_sensitivity'])} "
            f"| {_fmt(s['slice_specificity'])} | {s['false_positive_patients']} of {s['lesion_free_patients']}"
            f"{_interval(ci['false_positive_rate'], percent=True)} |")
    return "\n".join(lines) + "\n\n" + INTERVALS_NOTE


INTERVALS_NOTE = ("In brackets: " + METHOD + " (`python -m training.uncertainty reports/NAME_cv.json`). They "
                  "show what the choice of patients alone leaves open, not what retraining with another seed "
                  "moves (`reports/experiments/unet_full_cv_seed_*.json`).")


def per_patient_lines(reports: Path) -> str:
    """One line per model: how many hemorrhage patients were missed (Dice 0) or found well."""
    lines = []
    for name, report in cv_reports(reports).items():
        if report is None:
            continue
        scores = [p["dice"] for p in report["per_patient"].values() if p["has_lesion"]]
        missed = sum(d == 0 for d in scores)
        good = sum(d >= 0.5 for d in scores)
        lines.append(f"- {name}: Dice 0 (bleed missed entirely) on {missed} of {len(scores)} hemorrhage "
                     f"patients, Dice >= 0.5 on {good}.{contrast_sentence(report['summary'])}")
    return "\n".join(lines)


def _range(lo, hi) -> str:
    return f"< {hi:g} HU" if lo is None else f">= {lo:g} HU" if hi is None else f"{lo:g}-{hi:g} HU"


def contrast_sentence(summary: dict) -> str:
    """' By lesion contrast over the surrounding tissue: < 10 HU mean Dice 0.000 (6 patients, 6
    missed), ...' from a CV summary's ``dice_by_lesion_contrast`` ('' for older reports)."""
    bins = [b for b in summary.get("dice_by_lesion_contrast") or [] if b["n"]]
    if not bins:
        return ""
    parts = [f"{_range(*b['range_hu'])} mean Dice {_fmt(b['mean_dice'])} ({b['n']} patients, {b['missed']} missed)"
             for b in bins]
    return " By lesion contrast over the surrounding tissue: " + "; ".join(parts) + "."
