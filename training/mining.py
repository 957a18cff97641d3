"""Hard-example mining during training: every so often the current net predicts its training slices
whole (as at inference) and the sampler re-weights them by the net's errors.

``"hard_negatives"``: lesion-free slices drawn by the false-lesion pixels the net marks there;
``"hard_positives"``: lesion slices drawn by the share of their bleed the net misses. A training
config turns either on with ``{key: {"fraction", "every", "start"}}`` (off in the shipped config).
"""
from __future__ import annotations

import time
from typing import Callable, NamedTuple

import numpy as np

from .sampler import BalancedSampler
from .validate import predict_patient


def mine_hard_negatives(sampler: BalancedSampler, predict, fraction: float, threshold: float = 0.5) -> np.ndarray:
    """Hard-negative mining: count, per lesion-free slice of ``sampler`` (rows of ``sampler.neg``),
    the pixels the net marks with probability >= ``threshold`` (all false positives), and draw
    ``fraction`` of the lesion-free samples in proportion to them from now on. ``predict`` maps
    (n, H, W, C) to (n, H, W, 1). Returns the counts."""
    counts = np.zeros(len(sampler.neg))
    for rows, prob, _ in _slice_predictions(sampler, sampler.neg, predict):
        counts[rows] = (prob >= threshold).reshape(len(rows), -1).sum(axis=1)
    sampler.set_hard_negatives(counts, fraction)
    return counts


def mine_hard_positives(sampler: BalancedSampler, predict, fraction: float, threshold: float = 0.5) -> np.ndarray:
    """Hard-positive mining: per lesion slice of ``sampler`` (rows of ``sampler.pos``), the share of
    its lesion pixels the net leaves below ``threshold`` (0: all found, 1: all missed, whatever the
    bleed's size), and draw ``fraction`` of the lesion samples in proportion to it from now on.
    ``predict`` maps (n, H, W, C) to (n, H, W, 1). Returns the missed shares."""
    missed = np.zeros(len(sampler.pos))
    for rows, prob, masks in _slice_predictions(sampler, sampler.pos, predict):
        lesion = (masks > 0.5).reshape(len(rows), -1)
        hit = lesion & (prob.reshape(len(rows), -1) >= threshold)
        missed[rows] = 1.0 - hit.sum(axis=1) / np.maximum(lesion.sum(axis=1), 1)
    sampler.set_hard_positives(missed, fraction)
    return missed


def _slice_predictions(sampler: BalancedSampler, table: np.ndarray, predict):
    """Per patient with slices in ``table`` ((N, 2) rows of patient index, slice): (its row indices,
    the net's (n, H, W) probabilities on those slices, their (n, H, W) masks). Whole slices with
    their neighbours, as at inference (no augmentation), and the mirror channel where the sampler
    gives one (patients with ``mirrored`` slices)."""
    for pi, patient in enumerate(sampler.patients):
        rows = np.flatnonzero(table[:, 0] == pi)
        if len(rows):
            z = table[rows, 1]
            inputs = {"context_slices": sampler.context, "mirror_channel": patient.mirrored is not None}
            yield rows, predict_patient(predict, patient, inputs)[z], patient.masks[z]


class Miner(NamedTuple):
    """A miner (sampler, predict, fraction) -> per-slice values, and what its log line counts."""
    run: Callable
    what: str                                   # the slices counted, in words
    counted: Callable[[np.ndarray], np.ndarray]  # per-slice values -> which slices are counted


MINERS = {"hard_negatives": Miner(mine_hard_negatives, "lesion-free slices marked", lambda v: v > 0),
          "hard_positives": Miner(mine_hard_positives, "lesion slices with most of the bleed missed",
                                  lambda v: v > 0.5)}


def mine(sampler: BalancedSampler, full, model, predict, tcfg: dict, step: int, log, resumed: bool = False) -> None:
    """Re-weight the slices by the current net's errors where a miner of ``tcfg`` (a training config)
    is due at ``step``. ``full``: the whole-slice net ``predict`` runs, given ``model``'s weights
    first when it is another object (crop training). ``resumed``: a resumed run re-mines every
    miner already started."""
    due = [key for key in MINERS if (hard := tcfg.get(key)) and step >= hard["start"]
           and (resumed or step % hard["every"] == 0)]
    if not due:
        return
    if full is not model:
        full.set_weights(model.get_weights())
    for key in due:
        started, miner = time.time(), MINERS[key]
        values = miner.run(sampler, predict, float(tcfg[key]["fraction"]))
        log(f"{key.replace('_', ' ')}: {int(miner.counted(values).sum())} of {len(values)} {miner.what} "
            f"({time.time() - started:.0f} s)")
