"""Balanced batches of 2.5D training samples.

Only ~11% of slices contain blood, so each batch draws 40% of its samples from lesion slices and
60% from lesion-free slices (the 31 lesion-free patients included, as negatives). Lesion slices
can be weighted by patient (``lesion_patient_power``) so that a patient with 20 bleeding slices
does not drown one with 2. With hard-negative mining (``set_hard_negatives``) a share of the
lesion-free samples is drawn where the net currently marks false lesions; with hard-positive
mining (``set_hard_positives``) a share of the lesion samples where it currently misses the bleed.
"""
from __future__ import annotations

import queue
import threading

import numpy as np

from model.preprocess import context_indices

from .augment import augment
from .data import Patient
from .paste import DIM_FACTOR, dim, transplant


POSITIVE_FRACTION = 0.4   # share of each batch drawn from lesion slices
PASTE_LEVEL = 0.1         # a transplanted bleed goes to a slice at most this far in relative height


class BalancedSampler:
    """Yields (x, y) batches: x (B, H, W, 2*context+1) float32 (one channel more, the centre slice
    mirrored about the head's midline, for patients given ``mirrored`` slices), y (B, H, W, 1) float32.

    p_single: probability that a sample repeats its centre slice in every channel, as a lone
    2D upload does at inference.
    lesion_patient_power: a lesion slice of a patient with n lesion slices is drawn with weight
    n ** -power: 0 draws lesion slices uniformly (large bleeds spanning many slices dominate),
    1 draws every lesion patient equally often, 0.5 makes a patient's share grow as sqrt(n).
    window_jitter, all_orientations: passed to ``augment`` (a share of samples re-exported with
    another window; False: no flips / 90-degree rotations, a diagnostic).
    paste_fraction: share of the lesion samples shown transplanted into a random lesion-free slice
    at about the same height (``training.paste``); the batch's lesion share is unchanged.
    dim_fraction, dim_factor: share of the lesion samples whose bleed is shown fainter, its excess
    over its surroundings scaled by a factor drawn uniformly from ``dim_factor`` (``training.paste.dim``).
    """

    def __init__(self, patients: list[Patient], batch_size: int, context: int, seed: int,
                 positive_fraction: float = POSITIVE_FRACTION, p_single: float = 0.25, augment_data: bool = True,
                 crop_size: int | None = None, lesion_patient_power: float = 0.0,
                 window_jitter: dict | None = None, all_orientations: bool = True, paste_fraction: float = 0.0,
                 dim_fraction: float = 0.0, dim_factor: tuple[float, float] = DIM_FACTOR):
        self.patients, self.batch_size, self.context = patients, batch_size, context
        self.crop_size, self.window_jitter, self.all_orientations = crop_size, window_jitter, all_orientations
        self.paste_fraction, self.neg_levels = float(paste_fraction), None
        self.dim_fraction, self.dim_factor = float(dim_fraction), tuple(dim_factor)
        if any(p.mirrored is not None for p in patients) and (self.paste_fraction > 0 or self.dim_fraction > 0):
            raise ValueError("the mirror channel cannot be combined with bleed transplant or dimming: "
                             "the mirrored slice would not show the changed bleed")
        self.rng = np.random.default_rng(seed)
        self.positive_fraction, self.p_single, self.augment_data = positive_fraction, p_single, augment_data
        pos, neg = [], []
        for pi, p in enumerate(patients):
            has = p.masks.reshape(len(p.masks), -1).max(axis=1) > 0
            for z in range(len(p.images)):
                (pos if has[z] else neg).append((pi, z))
        self.pos, self.neg = np.array(pos), np.array(neg)
        self.pos_p = lesion_slice_weights(self.pos, lesion_patient_power)
        self.hard: tuple[np.ndarray | None, float] = (None, 0.0)   # (lesion-free slice weights, share)
        self.hard_pos: tuple[np.ndarray | None, float] = (None, 0.0)   # (lesion slice weights, share)

    def set_hard_negatives(self, hardness: np.ndarray, fraction: float) -> None:
        """Draw ``fraction`` of the lesion-free samples in proportion to ``hardness`` (one value >= 0
        per row of ``self.neg``: e.g. the net's false-positive pixels there), the rest uniformly.
        All-zero hardness (no false lesion anywhere) keeps uniform drawing."""
        self.hard = _drawing_weights(hardness, fraction)

    def set_hard_positives(self, hardness: np.ndarray, fraction: float) -> None:
        """Draw ``fraction`` of the lesion samples in proportion to ``hardness`` (one value >= 0 per
        row of ``self.pos``: e.g. the share of the slice's bleed the net misses), the rest as without
        mining. All-zero hardness (every bleed found) keeps the usual drawing."""
        self.hard_pos = _drawing_weights(hardness, fraction)

    def channels(self, pi: int, z: int, single: bool) -> np.ndarray:
        """Slice indices of sample (pi, z)'s channels: its neighbours, or itself repeated (2D upload)."""
        if single:
            return np.full(2 * self.context + 1, z)
        return context_indices(len(self.patients[pi].images), self.context)[z]

    def sample(self, pi: int, z: int, into: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One augmented (H, W, C) input and (H, W) mask of slice ``z`` of patient ``pi``; with ``into``
        (a lesion-free (patient, slice)) that slice's bleed transplanted there (``training.paste``),
        or slice ``z`` itself when the bleed would not land on brain."""
        single = self.rng.random() < self.p_single
        idx = self.channels(pi, z, single)
        stack, mask = self.patients[pi].images[idx].astype(np.float32), self.patients[pi].masks[z].astype(np.float32)
        mirrored = self.patients[pi].mirrored
        if mirrored is not None:
            # last channel; flips, turns and intensity changes below treat it like the others
            stack = np.concatenate([stack, mirrored[z][None].astype(np.float32)])
        if into is not None:
            target = self.patients[into[0]].images[self.channels(*into, single)].astype(np.float32)
            pasted = transplant(target, stack, self.patients[pi].masks[idx].astype(np.float32))
            if pasted is not None:
                stack, mask = pasted
        # no extra random draw without dimming: the stream of earlier runs is unchanged
        if self.dim_fraction > 0 and mask.any() and self.rng.random() < self.dim_fraction:
            stack = dim(stack, self.patients[pi].masks[idx].astype(np.float32), self.rng.uniform(*self.dim_factor))
        rows, cols = self.crop_window(stack[len(idx) // 2], mask)   # the centre slice
        image = stack[:, rows, cols].transpose(1, 2, 0)
        mask = mask[rows, cols]
        if self.augment_data:
            image, mask = augment(image, mask, self.rng, window_jitter=self.window_jitter,
                                  all_orientations=self.all_orientations)
        return image, mask

    def crop_window(self, image: np.ndarray, mask: np.ndarray) -> tuple[slice, slice]:
        """Crop of ``crop_size`` around a lesion pixel, or around a random pixel inside the head.

        Training on crops makes a step ~3x cheaper and raises the share of lesion pixels; the
        network is fully convolutional, so its weights serve the whole slice at inference.
        Lesion-free crops are centred inside the head (brain and skull edges: the hard
        negatives), not on the empty air around it. Whole slice if ``crop_size`` is None.
        """
        h, w = mask.shape
        if not self.crop_size or self.crop_size >= min(h, w):
            return slice(0, h), slice(0, w)
        c = self.crop_size
        lesion = np.argwhere(mask > 0.5)
        if len(lesion):
            cy, cx = lesion[self.rng.integers(len(lesion))] + self.rng.integers(-c // 2, c // 2 + 1, 2)
        else:
            head = np.argwhere(image[::4, ::4] > 0.15) * 4
            if len(head):
                cy, cx = head[self.rng.integers(len(head))]
            else:
                cy, cx = self.rng.integers(c // 2, h - c // 2 + 1), self.rng.integers(c // 2, w - c // 2 + 1)
        y0 = int(np.clip(cy - c // 2, 0, h - c))
        x0 = int(np.clip(cx - c // 2, 0, w - c))
        return slice(y0, y0 + c), slice(x0, x0 + c)

    def draw_lesion_slice(self) -> int:
        # without mining no extra random draw, so the stream of earlier runs is unchanged
        hard_p, fraction = self.hard_pos
        if hard_p is not None and self.rng.random() < fraction:
            return int(self.rng.choice(len(self.pos), p=hard_p))
        # integers() when uniform keeps the random stream of runs made before the weighting existed
        if self.pos_p is None:
            return int(self.rng.integers(len(self.pos)))
        return int(self.rng.choice(len(self.pos), p=self.pos_p))

    def draw_negative_slice(self) -> int:
        # without mining no extra random draw, so the stream of earlier runs is unchanged
        neg_p, fraction = self.hard
        if neg_p is not None and self.rng.random() < fraction:
            return int(self.rng.choice(len(self.neg), p=neg_p))
        return int(self.rng.integers(len(self.neg)))

    def level(self, pi: int, z: int) -> float:
        """Slice z's height in its patient's stack, 0 (first slice) to 1 (last)."""
        return z / max(len(self.patients[pi].images) - 1, 1)

    def paste_target(self, pi: int, z: int) -> tuple[int, int]:
        """A random lesion-free (patient, slice) at about the height of slice z of patient pi (within
        PASTE_LEVEL of the stacks' extent), so that the bleed meets similar anatomy."""
        if self.neg_levels is None:
            self.neg_levels = np.array([self.level(int(a), int(b)) for a, b in self.neg])
        near = np.flatnonzero(np.abs(self.neg_levels - self.level(int(pi), int(z))) <= PASTE_LEVEL)
        row = near[self.rng.integers(len(near))] if len(near) else self.rng.integers(len(self.neg))
        return int(self.neg[row, 0]), int(self.neg[row, 1])

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        n_pos = int(round(self.batch_size * self.positive_fraction)) if len(self.pos) else 0
        picks = [self.pos[self.draw_lesion_slice()] for _ in range(n_pos)]
        picks += [self.neg[self.draw_negative_slice()] for _ in range(self.batch_size - n_pos)]
        # no extra random draw without pasting: the stream of earlier runs is unchanged
        into = [self.paste_target(*picks[i]) if i < n_pos and self.paste_fraction > 0
                and self.rng.random() < self.paste_fraction else None for i in range(len(picks))]
        xs, ys = zip(*(self.sample(int(pi), int(z), target) for (pi, z), target in zip(picks, into)))
        return np.stack(xs), np.stack(ys)[..., None]


def _drawing_weights(hardness: np.ndarray, fraction: float) -> tuple[np.ndarray | None, float]:
    """(normalised ``hardness``, ``fraction``), or (None, 0.0) when nothing is hard. One tuple: the
    prefetch thread reads weights and share together."""
    hardness = np.asarray(hardness, np.float64)
    total = hardness.sum()
    return (hardness / total, float(fraction)) if total > 0 else (None, 0.0)


def lesion_slice_weights(pos: np.ndarray, power: float) -> np.ndarray | None:
    """Drawing probabilities of lesion slices ``pos`` ((N, 2) rows of patient index, slice):
    n ** -power for a patient with n lesion slices, normalised; None (uniform) for power 0."""
    if not len(pos) or not power:
        return None
    _, inverse, counts = np.unique(pos[:, 0], return_inverse=True, return_counts=True)
    weights = counts[inverse].astype(np.float64) ** -float(power)
    return weights / weights.sum()


def prefetch(sampler: BalancedSampler, depth: int = 4):
    """Iterate over (x, y, rng_state) batches produced by a background thread (overlaps augmentation
    and training). ``rng_state`` is the sampler's random state right after drawing that batch: a
    checkpoint that stores it lets a resumed run draw the very batches the uninterrupted run would
    have drawn next, although the thread is up to ``depth`` batches ahead of training."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work():
        while not stop.is_set():
            x, y = sampler.batch()
            q.put((x, y, sampler.rng.bit_generator.state))

    threading.Thread(target=work, daemon=True).start()
    try:
        while True:
            yield q.get()
    finally:
        stop.set()
