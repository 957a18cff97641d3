"""Bleed transplant and bleed dimming: a training bleed's excess over its surroundings, moved or scaled.

Transplant: a training patient's bleed added onto a lesion-free slice (of any training head).

With 48 training patients the U-Net fits their bleeds far better than it finds those of unseen
patients (``training.fitcheck``): it learns these bleeds in these heads. A transplant shows the
same bleed against other anatomy. Only the bleed's excess over its surroundings is added, slice by
slice in all context channels, so the target keeps its own texture and the lesion its 3D extent.

Dimming: the same excess scaled down in place, so that a conspicuous bleed is also shown as a faint
one (all 6 bleeds under 10 HU of contrast are missed by every CV of the shipped recipe).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

RING_PX = (1, 5)            # the bleed's surroundings: 1-5 pixels outside its mask (model grid)
BRAIN_RANGE = (0.3, 0.9)    # unit values of brain at the L40/W120 export (~-4 to 88 HU)
MIN_BRAIN_SHARE = 0.8       # of the pasted pixels that must land on brain-like values
DIM_FACTOR = (0.3, 1.0)     # default range of a dimmed bleed's contrast factor (training config "dim_factor")


def excess(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W) float32: how much brighter than its surroundings (median of a ring around it) each
    pixel of the bleed ``mask`` (soft, (H, W)) is, times the mask; zero outside and where darker."""
    inside = mask >= 0.5
    if not inside.any():
        return np.zeros(image.shape, np.float32)
    ring = ndimage.binary_dilation(inside, iterations=RING_PX[1]) & ~ndimage.binary_dilation(inside, iterations=RING_PX[0])
    background = float(np.median(image[ring])) if ring.any() else float(np.median(image[inside]))
    return (np.clip(image - background, 0.0, None) * mask).astype(np.float32)


def transplant(target: np.ndarray, source: np.ndarray, source_masks: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Add a bleed onto a lesion-free sample.

    target: (C, H, W) lesion-free input channels in [0, 1] (centre channel C // 2); source: (C, H, W)
    the bleed's slice and neighbours, source_masks: (C, H, W) their masks. Returns (image (C, H, W),
    mask (H, W) of the centre channel), or None when the bleed would land mostly outside the brain
    (air, bone, or CSF), where it is no bleed at all.
    """
    centre = target.shape[0] // 2
    spot = source_masks[centre] >= 0.5
    if not spot.any():
        return None
    values = target[centre][spot]
    if np.mean((values >= BRAIN_RANGE[0]) & (values <= BRAIN_RANGE[1])) < MIN_BRAIN_SHARE:
        return None
    added = np.stack([excess(s, m) for s, m in zip(source, source_masks)])
    return np.clip(target + added, 0.0, 1.0).astype(np.float32), source_masks[centre].astype(np.float32)


def dim(stack: np.ndarray, masks: np.ndarray, factor: float) -> np.ndarray:
    """(C, H, W) input channels in [0, 1] with each channel's bleed (``masks`` (C, H, W), soft) made
    ``factor`` (0-1) times as bright above its surroundings: ``stack - (1 - factor) * excess``.
    Pixels outside the masks are unchanged; the label stays the same."""
    lowered = np.stack([s - (1.0 - factor) * excess(s, m) for s, m in zip(stack, masks)])
    return np.clip(lowered, 0.0, 1.0).astype(np.float32)
