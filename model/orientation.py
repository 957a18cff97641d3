"""In-plane orientation of axial slices: which quarter turn brings an upload into a model's frame.

A model's JSON says which frame it was trained in (``"orientation"``):

- ``"any"`` (or no key): trained on all 8 flips / quarter turns; uploads are used as they are.
- ``"anterior_right"``: trained on the ct-ich PNGs as exported (the face toward increasing column
  index, i.e. rotated a quarter turn from the radiological view). Uploads are turned into that
  frame before the network and the mask is turned back, so the result is on the upload's grid.

Files that state their geometry (NIfTI with an orientation, axial DICOM with the standard
ImageOrientationPatient) are in the radiological view (anterior up): one clockwise quarter turn.
For the rest (PNG/JPG, DICOM without orientation tags) the turn is estimated from the pixels by
:class:`OrientationEstimator` (a linear scorer on a head-centred thumbnail, see ``training.orientation``).
The estimator is symmetric under a left-right mirror: a mirrored upload is not told apart, and the
network sees a mirrored head (which is anatomically plausible, unlike a head on its side).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image
from scipy import ndimage

from .errors import PipelineError
from .preprocess import Window

FRAMES = ("any", "anterior_right")
#: np.rot90 turns (counter-clockwise, axes (Y, X)) from the radiological view to "anterior_right".
RADIOLOGICAL_TO_ANTERIOR_RIGHT = 3
ESTIMATOR_FILE = "orientation.json"
DOWNSAMPLE = 4                   # slices are block-averaged 4x4 before the head is found
MIN_HEAD_PIXELS = 200            # on the downsampled grid: smaller heads are not scored
LOW_CONFIDENCE = 0.9


def model_frame(config: dict) -> str:
    """The frame a model config was trained in ("any" when the key is absent)."""
    frame = config.get("orientation", "any")
    if frame not in FRAMES:
        raise PipelineError(f"model '{config.get('name')}': unknown orientation frame {frame!r} "
                            f"(expected one of {', '.join(FRAMES)})", stage="orient")
    return frame


def quarter_turns(array: np.ndarray, turns: int) -> np.ndarray:
    """(Z, Y, X) array turned ``turns`` quarter turns counter-clockwise in each slice (a view)."""
    return np.rot90(array, int(turns) % 4, axes=(1, 2))


def largest_filled_component(foreground: np.ndarray) -> Optional[tuple[np.ndarray, int]]:
    """(Y, X) bool -> (its largest component with the holes filled, that component's pixels before
    filling), or None when it is empty: the head, without the scanner table and noise."""
    labels, count = ndimage.label(foreground)
    if count == 0:
        return None
    sizes = ndimage.sum_labels(foreground, labels, range(1, count + 1))
    largest = int(np.argmax(sizes))
    return ndimage.binary_fill_holes(labels == largest + 1), int(sizes[largest])


def head_thumbnail(unit: np.ndarray, size: int, head_level: float, bone_level: float) -> Optional[np.ndarray]:
    """(Y, X) slice in [0, 1] -> (size, size, 2) head-centred thumbnail (brain, bone), or None.

    The head is the largest bright component (the scanner table and ring are dropped), cropped to
    its bounding box and padded to a square, so a quarter turn of the slice turns the thumbnail.
    """
    rows, cols = (s // DOWNSAMPLE * DOWNSAMPLE for s in unit.shape)
    if rows == 0 or cols == 0:
        return None
    small = unit[:rows, :cols].reshape(rows // DOWNSAMPLE, DOWNSAMPLE, cols // DOWNSAMPLE, DOWNSAMPLE).mean((1, 3))
    found = largest_filled_component(ndimage.binary_opening(small > head_level, iterations=2))
    if found is None or found[1] < MIN_HEAD_PIXELS:
        return None
    head = found[0]
    ys, xs = np.nonzero(head)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    channels = []
    for channel in (small * head, (small > bone_level) * head):
        crop = channel[box].astype(np.float32)
        side = max(crop.shape)
        square = np.zeros((side, side), np.float32)
        top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
        square[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
        channels.append(np.asarray(Image.fromarray(square, "F").resize((size, size), Image.BILINEAR)))
    return np.stack(channels, axis=-1)


def candidate_features(thumb: np.ndarray) -> np.ndarray:
    """(size, size, 2) thumbnail -> (4, F): features of the thumbnail after 0..3 quarter turns,
    mirror-symmetrised across the model frame's left-right axis (its rows)."""
    out = []
    for turns in range(4):
        turned = np.rot90(thumb, turns, axes=(0, 1))
        out.append(((turned + turned[::-1]) / 2.0).ravel())
    return np.stack(out)


def turn_log_probs(scores: np.ndarray) -> np.ndarray:
    """(..., 4) raw scores of the quarter turns -> log-probabilities (softmax over the last axis)."""
    return scores - np.logaddexp.reduce(scores, axis=-1, keepdims=True)


def stack_probabilities(log_probs: np.ndarray) -> np.ndarray:
    """(N, 4) slices' log-probabilities -> (4,) probabilities of each turn for the whole stack."""
    total = log_probs.sum(axis=0)
    return np.exp(turn_log_probs(total))


@dataclass(frozen=True)
class Estimate:
    """turns: quarter turns (counter-clockwise) that bring the upload into the model frame;
    confidence: probability of that choice (0..1); slices: slices that were scored."""

    turns: int
    confidence: float
    slices: int


@dataclass(frozen=True)
class OrientationEstimator:
    """Linear scorer of the 4 quarter turns; ``weights`` (F,) for :func:`candidate_features`.

    head_level / bone_level are unit intensities in ``window`` (level, width in HU): the window the
    thumbnails it was fitted on were exported in (the ct-ich PNGs' brain window), so an upload is
    brought to the same unit range before it is scored.
    """

    weights: np.ndarray
    size: int = 32
    head_level: float = 0.1
    bone_level: float = 0.97
    metrics: Optional[dict] = None
    window: Window = Window(40.0, 120.0)

    def slice_log_probs(self, unit) -> np.ndarray:
        """(Z, Y, X) image in [0, 1] (or an iterable of (Y, X) slices) -> (N, 4) log-probabilities
        of each turn, one row per slice where a head was found."""
        rows = []
        for plane in unit:
            thumb = head_thumbnail(plane, self.size, self.head_level, self.bone_level)
            if thumb is not None:
                rows.append(turn_log_probs(candidate_features(thumb) @ self.weights))
        return np.array(rows, dtype=np.float64).reshape(-1, 4)

    def estimate(self, unit) -> Optional[Estimate]:
        """One turn for the whole stack (the slices' log-probabilities summed); None if no head was found."""
        log_probs = self.slice_log_probs(unit)
        if len(log_probs) == 0:
            return None
        probs = stack_probabilities(log_probs)
        best = int(np.argmax(probs))
        return Estimate(turns=best, confidence=float(probs[best]), slices=len(log_probs))

    def to_json(self) -> dict:
        return {"kind": "quarter-turn scorer", "thumbnail_size": self.size, "head_level": self.head_level,
                "bone_level": self.bone_level, "window": {"level": self.window.level, "width": self.window.width},
                "metrics": self.metrics or {},
                "weights": [round(float(w), 7) for w in self.weights]}

    def save(self, weights_dir: str | Path) -> Path:
        path = Path(weights_dir) / ESTIMATOR_FILE
        path.write_text(json.dumps(self.to_json()))
        return path


def load_estimator(weights_dir: str | Path) -> Optional[OrientationEstimator]:
    """The estimator saved in ``weights_dir`` (``orientation.json``), or None if there is none."""
    path = Path(weights_dir) / ESTIMATOR_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        size = int(data["thumbnail_size"])
        weights = np.asarray(data["weights"], dtype=np.float64)
        if weights.shape != (size * size * 2,):
            raise ValueError(f"{weights.size} weights for a {size}x{size}x2 thumbnail")
        window = data["window"]
        return OrientationEstimator(weights=weights, size=size, head_level=float(data["head_level"]),
                                    bone_level=float(data["bone_level"]), metrics=data.get("metrics"),
                                    window=Window(float(window["level"]), float(window["width"])))
    except (ValueError, KeyError, TypeError) as exc:
        raise PipelineError(f"cannot load the orientation estimator {path}: {exc}", stage="orient") from exc
