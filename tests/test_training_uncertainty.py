"""Patient-bootstrap intervals and paired comparisons of CV reports (training/uncertainty.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from training.uncertainty import (bootstrap_interval, clopper_pearson, cv_intervals, load_per_patient, main,
                                  paired_difference)


def _patients(dices, fps, rvd=0.5):
    """Per-patient metrics: hemorrhage patients h0.. with ``dices``, lesion-free n0.. flagged per ``fps``."""
    out = {f"h{i}": {"has_lesion": True, "dice": d, "rvd": rvd, "false_positive_patient": False}
           for i, d in enumerate(dices)}
    out.update({f"n{i}": {"has_lesion": False, "dice": 1.0 if not f else 0.0, "rvd": None,
                          "false_positive_patient": f} for i, f in enumerate(fps)})
    return out


def test_bootstrap_interval_holds_the_mean_and_widens_with_spread():
    rng = np.random.default_rng(1)
    narrow, wide = rng.normal(0.5, 0.05, 29), rng.normal(0.5, 0.3, 29)
    lo, hi = bootstrap_interval(narrow)
    assert lo < narrow.mean() < hi
    wlo, whi = bootstrap_interval(wide)
    assert whi - wlo > 3 * (hi - lo)
    assert bootstrap_interval([0.3] * 10) == [pytest.approx(0.3), pytest.approx(0.3)]
    assert bootstrap_interval([]) is None
    assert bootstrap_interval(wide) == bootstrap_interval(wide)   # seeded: a report is reproducible


def test_bootstrap_interval_of_a_mostly_missed_cohort_is_wide():
    """18 of 29 bleeds missed and the rest found at ~0.65: the shipped U-Net's shape of result."""
    dices = [0.0] * 18 + [0.65] * 11
    lo, hi = bootstrap_interval(dices)
    assert lo < 0.2 < 0.3 < hi and hi < 0.65


def test_clopper_pearson_matches_its_closed_forms():
    lo, hi = clopper_pearson(0, 31)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 31))
    lo, hi = clopper_pearson(31, 31)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 31))
    lo, hi = clopper_pearson(2, 31)
    assert lo < 2 / 31 < hi and hi < 0.25
    assert clopper_pearson(0, 0) is None


def test_cv_intervals_use_hemorrhage_patients_for_dice_and_lesion_free_ones_for_false_positives():
    per_patient = _patients([1.0] * 5, [True, False, False, False])
    ci = cv_intervals(per_patient)
    assert ci["mean_dice"] == [pytest.approx(1.0), pytest.approx(1.0)]
    assert ci["median_relative_volume_difference"] == [pytest.approx(0.5), pytest.approx(0.5)]
    assert ci["false_positive_rate"] == pytest.approx(clopper_pearson(1, 4))
    assert "bootstrap" in ci["method"] and "Clopper-Pearson" in ci["method"]


def test_paired_difference_of_a_uniformly_better_model():
    a = _patients([0.1, 0.2, 0.3, 0.4], [True, True, False, False])
    b = _patients([0.2, 0.3, 0.4, 0.5], [False, True, True, False])
    d = paired_difference(a, b)
    assert d["hemorrhage_patients"] == 4 and d["patients"] == 8
    assert d["mean_dice"]["b_minus_a"] == pytest.approx(0.1)
    assert d["mean_dice"]["interval"] == [pytest.approx(0.1), pytest.approx(0.1)]
    assert d["mean_dice"]["share_b_better"] == 1.0
    fp = d["false_positive_patients"]
    assert (fp["a"], fp["b"], fp["only_a"], fp["only_b"]) == (2, 2, 1, 1)
    assert fp["mcnemar_p"] == pytest.approx(1.0)


def test_paired_difference_uses_only_the_patients_both_scored():
    a = _patients([0.0, 0.0, 0.9], [])
    b = {k: v for k, v in _patients([0.5, 0.5, 0.9], []).items() if k != "h2"}
    d = paired_difference(a, b)
    assert d["hemorrhage_patients"] == 2 and d["mean_dice"]["b_minus_a"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no hemorrhage patient"):
        paired_difference(a, _patients([], [False]))


def _robustness_report(path, dices):
    path.write_text(json.dumps({"summary": {}, "per_patient": {
        "as exported": _patients(dices, [False]), "window L40/W80": _patients([0.0] * len(dices), [True])}}))
    return path


def test_reports_load_as_cv_reports_or_robustness_conditions(tmp_path):
    cv = tmp_path / "unet_cv.json"
    cv.write_text(json.dumps({"summary": {}, "per_patient": _patients([0.5], [False])}))
    label, per_patient = load_per_patient(str(cv))
    assert label == str(cv) and set(per_patient) == {"h0", "n0"}
    rob = _robustness_report(tmp_path / "unet_robustness.json", [0.5, 0.7])
    assert load_per_patient(str(rob))[1]["h1"]["dice"] == 0.7             # first condition by default
    assert load_per_patient(f"{rob}:window L40/W80")[1]["n0"]["false_positive_patient"] is True
    with pytest.raises(SystemExit, match="no condition 'nope'"):
        load_per_patient(f"{rob}:nope")
    with pytest.raises(SystemExit, match="no report at"):
        load_per_patient(str(tmp_path / "missing.json"))


def test_command_prints_intervals_and_paired_differences(tmp_path, capsys):
    a = _robustness_report(tmp_path / "a.json", [0.2, 0.4, 0.6])
    b = _robustness_report(tmp_path / "b.json", [0.3, 0.5, 0.7])
    main([str(a)])
    assert "mean Dice 95%" in capsys.readouterr().out
    main([str(a), str(b)])
    out = capsys.readouterr().out
    assert "= +0.100" in out and "B better in 100% of resamples" in out
    result = json.loads(out[out.index("{"):])
    assert result["mean_dice"]["b_minus_a"] == pytest.approx(0.1)


def test_cv_summary_and_table_carry_the_intervals(tmp_path):
    from training.evaluate import summarize_cv
    from training.cv_tables import cv_table

    per_patient = {pid: {**m, "iou": m["dice"], "slices": {"tp": 1, "fp": 0, "fn": 0, "tn": 1},
                         "lesion_contrast_hu": 30.0}
                   for pid, m in _patients([0.0, 0.0, 0.6, 0.8], [True, False, False]).items()}
    summary = summarize_cv(per_patient)
    assert summary["intervals"] == cv_intervals(per_patient)
    (tmp_path / "unet_cv.json").write_text(json.dumps({"summary": summary, "per_patient": per_patient}))
    lo, hi = summary["intervals"]["mean_dice"]
    table = cv_table(tmp_path)
    assert f"| unet | 0.350 ({lo:.3f}-{hi:.3f}) |" in table
    assert "1 of 3 (" in table and "two_branch | not measured" in table
    assert "bootstrap over patients" in table
