"""PNG figures of a cross-validation report (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_figures(report: dict, out: Path) -> list[Path]:
    """Per-patient Dice bars, predicted vs true volume scatter, slice-detection precision-recall."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, pp = report["model"], report["per_patient"]
    paths = []
    pids = sorted(pp, key=lambda p: -pp[p]["true_voxels"])
    fig, ax = plt.subplots(figsize=(12, 3.5))
    colors = ["tab:blue" if pp[p]["has_lesion"] else ("tab:red" if pp[p]["false_positive_patient"] else "tab:gray") for p in pids]
    ax.bar(range(len(pids)), [pp[p]["dice"] for p in pids], color=colors)
    ax.set_xticks(range(len(pids)), pids, rotation=90, fontsize=6)
    ax.set_ylabel("3D Dice")
    ax.set_title(f"{name}: per-patient Dice (blue: hemorrhage; grey: lesion-free, correct; red: lesion-free, false positive)")
    paths.append(_save(fig, out / f"{name}_dice.png"))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    true = np.array([pp[p]["true_voxels"] for p in pids]) + 1
    pred = np.array([pp[p]["pred_voxels"] for p in pids]) + 1
    ax.loglog(true, pred, "o", alpha=0.7)
    lim = [1, max(true.max(), pred.max()) * 1.5]
    ax.plot(lim, lim, "k--", lw=1)
    ax.set_xlabel("true lesion voxels + 1")
    ax.set_ylabel("predicted lesion voxels + 1")
    ax.set_title(f"{name}: lesion volume")
    paths.append(_save(fig, out / f"{name}_volume.png"))
    scores = np.concatenate([pp[p]["slice_area"] for p in pids])
    labels = np.concatenate([pp[p]["slice_truth"] for p in pids]).astype(bool)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    prec, rec = [], []
    for t in np.unique(scores):
        hit = scores >= max(t, 1)
        if hit.sum():
            prec.append((hit & labels).sum() / hit.sum())
            rec.append((hit & labels).sum() / max(1, labels.sum()))
    ax.plot(rec, prec, ".-")
    ax.set_xlabel("recall (slices with hemorrhage)")
    ax.set_ylabel("precision")
    ax.set_title(f"{name}: slice detection (score = predicted area)")
    paths.append(_save(fig, out / f"{name}_pr.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path
