"""How uncertain a cross-validation number is: patient-bootstrap intervals and paired comparisons.

    python -m training.uncertainty reports/unet_cv.json              # 95% intervals of one CV
    python -m training.uncertainty A.json B.json                     # B minus A, paired over patients

A report is a ``training.evaluate`` CV report (``per_patient``: {patient id: metrics}) or a
``training.robustness`` report, for which ``PATH:CONDITION`` picks one condition (default: the
first, "as exported"). With 29 hemorrhage patients, most of them missed (Dice 0) or found well, the
mean Dice of one CV is uncertain by about +-0.1 from the choice of patients alone; these intervals
say so next to every number. They do not contain the training seed's part (retraining the same
recipe moved the CV mean by 0.04: ``reports/experiments/unet_full_cv_seed_noise.json``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RESAMPLES = 10_000
LEVEL = 0.95
METHOD = (f"{LEVEL:.0%} intervals: percentile bootstrap over patients ({RESAMPLES} resamples, seed 0) for "
          "Dice and relative volume difference; Clopper-Pearson for the false-positive rate")


def _bootstrap(a: np.ndarray, statistic, resamples: int, seed: int) -> np.ndarray:
    """(resamples,) values of ``statistic`` over resamples (with replacement) of the 1-D ``a``."""
    return statistic(a[np.random.default_rng(seed).integers(0, a.size, size=(resamples, a.size))], axis=1)


def _percentiles(stats: np.ndarray, level: float) -> list[float]:
    tail = (1.0 - level) / 2.0 * 100.0
    return [float(np.percentile(stats, tail)), float(np.percentile(stats, 100.0 - tail))]


def bootstrap_interval(values, statistic=np.mean, resamples: int = RESAMPLES, level: float = LEVEL,
                       seed: int = 0) -> list[float] | None:
    """[low, high] percentile-bootstrap interval of ``statistic`` over the 1-D ``values``
    (None for no values). ``statistic`` must take an array and an ``axis`` keyword."""
    a = np.asarray(values, dtype=float)
    return None if a.size == 0 else _percentiles(_bootstrap(a, statistic, resamples, seed), level)


def clopper_pearson(k: int, n: int, level: float = LEVEL) -> list[float] | None:
    """Exact [low, high] interval of a proportion k / n (None for n = 0)."""
    from scipy.stats import beta

    if n == 0:
        return None
    alpha = 1.0 - level
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return [low, high]


def cv_intervals(per_patient: dict) -> dict:
    """Intervals of a CV's headline numbers from its per-patient metrics.

    per_patient: {patient id: {"has_lesion", "dice", "rvd", "false_positive_patient", ...}}.
    Returns {"mean_dice", "median_dice", "median_relative_volume_difference",
    "false_positive_rate": [low, high] (or None), "method": str}.
    """
    pos = [m for m in per_patient.values() if m["has_lesion"]]
    neg = [m for m in per_patient.values() if not m["has_lesion"]]
    dice = [m["dice"] for m in pos]
    rvd = [m["rvd"] for m in pos if m.get("rvd") is not None]
    return {"mean_dice": bootstrap_interval(dice, np.mean), "median_dice": bootstrap_interval(dice, np.median),
            "median_relative_volume_difference": bootstrap_interval(rvd, np.median),
            "false_positive_rate": clopper_pearson(sum(bool(m["false_positive_patient"]) for m in neg), len(neg)),
            "method": METHOD}


def paired_difference(a: dict, b: dict, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0) -> dict:
    """B minus A on the patients both per-patient dicts scored (same patients, two models or runs).

    Mean Dice difference over the shared hemorrhage patients with a paired bootstrap interval and
    the share of resamples in which B is better; false-positive patients of each and the lesion-free
    patients only one of them flags, with the exact two-sided McNemar p-value.
    """
    from scipy.stats import binomtest

    shared = sorted(set(a) & set(b))
    pos = [p for p in shared if a[p]["has_lesion"]]
    if not pos:
        raise ValueError("the two reports share no hemorrhage patient")
    diff = np.array([b[p]["dice"] - a[p]["dice"] for p in pos], dtype=float)
    means = _bootstrap(diff, np.mean, resamples, seed)
    out = {"patients": len(shared), "hemorrhage_patients": len(pos),
           "mean_dice": {"a": float(np.mean([a[p]["dice"] for p in pos])),
                         "b": float(np.mean([b[p]["dice"] for p in pos])),
                         "b_minus_a": float(diff.mean()), "interval": _percentiles(means, level),
                         "share_b_better": float((means > 0).mean())}}
    neg = [p for p in shared if not a[p]["has_lesion"]]
    fa = {p for p in neg if a[p]["false_positive_patient"]}
    fb = {p for p in neg if b[p]["false_positive_patient"]}
    only_a, only_b = len(fa - fb), len(fb - fa)
    out["false_positive_patients"] = {
        "lesion_free_patients": len(neg), "a": len(fa), "b": len(fb), "only_a": only_a, "only_b": only_b,
        "mcnemar_p": float(binomtest(only_a, only_a + only_b).pvalue) if only_a + only_b else 1.0}
    out["method"] = (f"paired percentile bootstrap over the shared hemorrhage patients ({resamples} resamples, "
                     f"seed {seed}, {level:.0%}); exact McNemar test on the lesion-free patients")
    return out


def load_per_patient(spec: str) -> tuple[str, dict]:
    """(label, per-patient metrics) from 'PATH' or 'PATH:CONDITION' (see the module docstring)."""
    path, condition = spec, ""
    if not Path(spec).exists() and ":" in spec:      # a path that itself holds ':' wins over a condition
        path, condition = spec.rsplit(":", 1)
    if not Path(path).exists():
        raise SystemExit(f"no report at {path}")
    per_patient = json.loads(Path(path).read_text())["per_patient"]
    if per_patient and not any("has_lesion" in v for v in per_patient.values()):
        condition = condition or next(iter(per_patient))   # a robustness report: one block per condition
        if condition not in per_patient:
            raise SystemExit(f"{path}: no condition {condition!r}; it has {', '.join(per_patient)}")
        return f"{path} [{condition}]", per_patient[condition]
    return path, per_patient


def _fmt(interval) -> str:
    return "n/a" if interval is None else f"{interval[0]:.3f} to {interval[1]:.3f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reports", nargs="+", help="one report (intervals) or two (B minus A, paired)")
    args = ap.parse_args(argv)
    if len(args.reports) > 2:
        raise SystemExit("give one report (its intervals) or two (A then B, compared)")
    loaded = [load_per_patient(s) for s in args.reports]
    if len(loaded) == 1:
        label, per_patient = loaded[0]
        result = {"report": label, **cv_intervals(per_patient)}
        print(f"{label}: mean Dice 95% {_fmt(result['mean_dice'])}; median relative volume difference "
              f"{_fmt(result['median_relative_volume_difference'])}; false-positive rate "
              f"{_fmt(result['false_positive_rate'])}")
    else:
        (label_a, a), (label_b, b) = loaded
        try:
            result = {"a": label_a, "b": label_b, **paired_difference(a, b)}
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
        d, f = result["mean_dice"], result["false_positive_patients"]
        print(f"B {label_b} minus A {label_a}: mean Dice {d['b']:.3f} - {d['a']:.3f} = {d['b_minus_a']:+.3f} "
              f"(95% {_fmt(d['interval'])}; B better in {d['share_b_better']:.0%} of resamples); false-positive "
              f"patients {f['a']} -> {f['b']} of {f['lesion_free_patients']} (McNemar p {f['mcnemar_p']:.2f})")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
