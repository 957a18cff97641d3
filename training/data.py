"""The ct-ich dataset: loading, patient-level splits and folds.

Every slice is kept as float32 in [0, 1] on the model grid (``input_size``), produced by the
very preprocessing functions the inference pipeline uses (``model.preprocess``). Masks are
resized the same way and kept soft (fraction of hemorrhage per model pixel).
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from model.preprocess import Window, resize_slices, to_unit_range
from model.symmetry import mirrored_stack

# The window the ct-ich PNGs were exported with (level, width in HU; see the data's README).
PNG_WINDOW_HU = (40.0, 120.0)


@dataclass
class Patient:
    """One patient's slices in slice order.

    images: (Z, H, W) float32 in [0, 1] on the model grid; masks: (Z, H, W) float32 in [0, 1];
    mirrored: None, or for a model with a mirror channel (Z, H, W) float16, each slice mirrored about
    the stack's midline (``with_mirrors``).
    """

    pid: str
    images: np.ndarray
    masks: np.ndarray
    mirrored: np.ndarray | None = None

    @property
    def has_lesion(self) -> bool:
        return bool(self.masks.max() > 0)


def read_index(data_dir: Path) -> dict[str, list[dict]]:
    """slices.csv -> {patient id: rows sorted by slice number}."""
    rows = list(csv.DictReader(open(Path(data_dir) / "slices.csv", newline="")))
    by_patient: dict[str, list[dict]] = {}
    for row in rows:
        by_patient.setdefault(row["patient"], []).append(row)
    for pid in by_patient:
        by_patient[pid].sort(key=lambda r: int(r["slice"]))
    return dict(sorted(by_patient.items()))


def load_patient_png(data_dir: Path, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution (Z, 512, 512) uint8 image and mask (0/1) stacks of one patient."""
    images = np.stack([np.asarray(Image.open(Path(data_dir) / r["image"]).convert("L")) for r in rows])
    masks = np.stack([np.asarray(Image.open(Path(data_dir) / r["mask"]).convert("L")) > 127 for r in rows])
    return images, masks.astype(np.uint8)


def load_dataset(data_dir: Path, input_size: tuple[int, int], cache_dir: Path | None = None,
                 window: Window = Window()) -> list[Patient]:
    """All patients on the model grid; cached as .npz in ``cache_dir`` (never in the repo)."""
    data_dir = Path(data_dir)
    index = read_index(data_dir)
    key = hashlib.sha1(f"{data_dir.resolve()}|{tuple(input_size)}|v1".encode()).hexdigest()[:12]
    cache = Path(cache_dir) / f"ctich_{key}.npz" if cache_dir else None
    if cache and cache.exists():
        blob = np.load(cache)
        return [Patient(pid, blob[f"{pid}_img"], blob[f"{pid}_msk"]) for pid in index]
    patients = []
    for pid, rows in index.items():
        images, masks = load_patient_png(data_dir, rows)
        unit = to_unit_range(images.astype(np.float32), "display", window)
        patients.append(Patient(pid, resize_slices(unit, input_size).astype(np.float16),
                                resize_slices(masks.astype(np.float32), input_size).astype(np.float16)))
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for p in patients:
            arrays[f"{p.pid}_img"], arrays[f"{p.pid}_msk"] = p.images, p.masks
        np.savez(cache, **arrays)
    return patients


def with_mirrors(patients: list[Patient], config: dict) -> list[Patient]:
    """Give every patient its mirrored slices (``model.symmetry.mirrored_stack``, as the pipeline
    computes them) when ``config`` asks for the mirror channel; the same list, changed in place."""
    if config.get("mirror_channel"):
        for p in patients:
            if p.mirrored is None:
                p.mirrored = mirrored_stack(p.images.astype(np.float32)).astype(np.float16)
    return patients


def hemorrhage_groups(pids: list[str], positive: set[str]) -> tuple[list[str], list[str]]:
    """(patients with hemorrhage, patients without), each sorted: the strata of every split here."""
    return sorted(p for p in pids if p in positive), sorted(p for p in pids if p not in positive)


def stratified_folds(pids: list[str], positive: set[str], k: int, seed: int) -> list[list[str]]:
    """Split patient ids into ``k`` folds, dealing positives and negatives round-robin."""
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(k)]
    dealt = 0
    for group in hemorrhage_groups(pids, positive):
        for pid in rng.permutation(group):
            folds[dealt % k].append(str(pid))
            dealt += 1
    return [sorted(f) for f in folds]


def dataset_folds(data_dir: Path, k: int, seed: int) -> list[list[str]]:
    """The cross-validation folds of the dataset in ``data_dir``: ``k`` patient-id lists,
    stratified by has-hemorrhage (any slice with mask pixels)."""
    index = read_index(data_dir)
    positive = {pid for pid, rows in index.items() if any(int(r["mask_pixels"]) > 0 for r in rows)}
    return stratified_folds(list(index), positive, k, seed)


def stratified_subset(pids: list[str], positive: set[str], fraction: float, seed: int) -> list[str]:
    """A random ``fraction`` of ``pids`` (sorted), rounded separately for patients with and without
    hemorrhage so that the subset keeps their proportion."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    kept: list[str] = []
    for group in hemorrhage_groups(pids, positive):
        kept += [str(p) for p in rng.permutation(group)[:int(round(fraction * len(group)))]]
    return sorted(kept)


def split_validation(pids: list[str], positive: set[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, validation) patient ids, validation stratified by has-hemorrhage."""
    k = max(2, int(round(1.0 / fraction)))
    folds = stratified_folds(pids, positive, k, seed)
    val = folds[0]
    return sorted(p for p in pids if p not in val), val
