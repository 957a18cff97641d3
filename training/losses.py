"""Binary cross-entropy + soft Dice, written with keras.ops (backend-independent)."""
from __future__ import annotations


def bce_dice_loss(y_true, y_pred, smooth: float = 1.0):
    """Mean BCE over pixels plus (1 - soft Dice over the batch). Shapes (B, H, W, 1)."""
    from keras import ops

    y_pred = ops.clip(ops.cast(y_pred, "float32"), 1e-6, 1.0 - 1e-6)
    y_true = ops.cast(y_true, "float32")
    bce = -ops.mean(y_true * ops.log(y_pred) + (1.0 - y_true) * ops.log(1.0 - y_pred))
    inter = ops.sum(y_true * y_pred)
    soft_dice = (2.0 * inter + smooth) / (ops.sum(y_true) + ops.sum(y_pred) + smooth)
    return bce + (1.0 - soft_dice)
