"""Keras architectures built from a JSON-compatible config.

Both networks take a float32 tensor of shape (batch, H, W, C) with values in [0, 1]
(C = 2 * context_slices + 1 neighbouring axial slices, the centre slice in the middle)
and return (batch, H, W, 1) hemorrhage probabilities from a sigmoid. With ``extra_windows``
in ``arch_params`` the network first appends each channel re-windowed to narrower HU windows
(:class:`InputWindows`), so the weights JSON alone still says how to prepare the input.

The weights files (`*.weights.h5`) load by layer order, so a model must always be built
by :func:`build_model` from the same config that trained it.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Any, Mapping

from .preprocess import Window

UNET_DEFAULTS = {"depth": 4, "base_filters": 16, "dropout": 0.1, "batch_norm": True}
TWO_BRANCH_DEFAULTS = {"filters": 32, "dropout": 0.1, "batch_norm": True}


def window_affine(source: Window, target: Window) -> tuple[float, float]:
    """(scale, offset) taking a value in [0, 1] under window ``source`` to window ``target`` (HU).

    The result is clipped to [0, 1] by the caller, so ``target`` should lie inside ``source``
    (outside it the source has already clipped).
    """
    s_low = float(source.level) - float(source.width) / 2.0
    t_low = float(target.level) - float(target.width) / 2.0
    return float(source.width) / float(target.width), (s_low - t_low) / float(target.width)


def _input(input_shape, affines):
    """Keras input "image" and the tensor the network starts from (input + re-windowed copies)."""
    import keras

    inputs = keras.Input(shape=input_shape, name="image")
    if not affines:
        return inputs, inputs
    return inputs, InputWindows(affines, name="input_windows")(inputs)


@functools.lru_cache(maxsize=None)
def _input_windows_layer():
    import keras
    from keras import ops

    class _InputWindows(keras.layers.Layer):
        """(B, H, W, C) in [0, 1] -> (B, H, W, C * (1 + len(affines))): the input followed by
        clip(x * scale + offset, 0, 1) for each (scale, offset). No weights."""

        def __init__(self, affines, **kwargs):
            super().__init__(**kwargs)
            self.affines = [(float(a), float(b)) for a, b in affines]

        def call(self, x):
            return ops.concatenate([x] + [ops.clip(x * a + b, 0.0, 1.0) for a, b in self.affines], axis=-1)

        def get_config(self):
            return {**super().get_config(), "affines": self.affines}

    return _InputWindows


def InputWindows(affines, **kwargs):  # noqa: N802 - builds a Keras layer lazily (Keras imports late)
    return _input_windows_layer()(affines, **kwargs)


@functools.lru_cache(maxsize=None)
def _batch_norm_layer():
    import keras

    # The class name must stay "BatchNormalization": Keras 3 weights files key each layer's
    # variables by its class name (layers/batch_normalization_3/vars), not by the layer's name.
    class BatchNormalization(keras.layers.BatchNormalization):
        """Keras BatchNormalization, computed in training under TensorFlow by one fused kernel
        (for channel counts where that is faster: ``_fusable``).

        Keras's own layer casts bfloat16 activations to float32 and normalises them op by op; on a
        2-core CPU in mixed bfloat16 that took ~half of a U-Net training step (1.17 -> 0.66 s per
        step of 16, python -m bench.train_step). Same variables, same statistics (the fused kernel's
        unbiased batch variance is turned back into Keras's biased one for the moving average),
        so weights files are interchangeable with the plain layer; inference and other backends
        use the plain layer's code.
        """

        def call(self, inputs, training=None, mask=None):
            if not (training and self.trainable) or mask is not None or not _fusable(self, inputs):
                return super().call(inputs, training=training, mask=mask)
            import tensorflow as tf

            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, tf.cast(self.gamma, "float32"), tf.cast(self.beta, "float32"),
                epsilon=self.epsilon, is_training=True, data_format="NHWC")
            shape = tf.shape(inputs)
            n = tf.cast(shape[0] * shape[1] * shape[2], "float32")
            variance = variance * (n - 1.0) / n
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
            return tf.cast(y, self.compute_dtype)

    return BatchNormalization


FUSED_CHANNEL_MULTIPLE = 16


def _fusable(layer, inputs) -> bool:
    """Whether the fused kernel may run. Only for channel counts that are multiples of 16: in mixed
    bfloat16 on this CPU, a conv + batch norm training step of (8, 224, 224, C) took 2-2.6x less
    time fused for C = 16, 32, 48, 64 but 2.3-5.5x more for C = 8, 12, 24, 40 (stop 47, scratch
    timing), which made the two-branch CNN (12-24-48 channels) train 1.7x slower."""
    import keras

    return (keras.backend.backend() == "tensorflow" and len(inputs.shape) == 4 and layer.axis in (-1, 3)
            and inputs.shape[-1] is not None and inputs.shape[-1] % FUSED_CHANNEL_MULTIPLE == 0
            and layer.scale and layer.center and not layer.renorm)


_KERAS_BATCH_NORM = False     # True only inside keras_batch_norm()


@contextlib.contextmanager
def keras_batch_norm(active: bool = True):
    """Build networks with Keras's own ``BatchNormalization`` inside this block (``active`` False:
    the usual layer): the reference that ``bench.train_step`` and the tests compare the fused layer with."""
    global _KERAS_BATCH_NORM
    previous, _KERAS_BATCH_NORM = _KERAS_BATCH_NORM, active
    try:
        yield
    finally:
        _KERAS_BATCH_NORM = previous


def BatchNorm(**kwargs):  # noqa: N802 - builds a Keras layer lazily (Keras imports late)
    if _KERAS_BATCH_NORM:
        import keras

        return keras.layers.BatchNormalization(**kwargs)
    return _batch_norm_layer()(**kwargs)


def _conv_block(x, filters: int, batch_norm: bool, kernel: int = 3, dilation: int = 1, name: str = ""):
    from keras import layers

    for i in (1, 2):
        x = layers.Conv2D(filters, kernel, padding="same", dilation_rate=dilation,
                          use_bias=not batch_norm, name=f"{name}_conv{i}")(x)
        x = _norm_relu(x, batch_norm, name, suffix=str(i))
    return x


def _norm_relu(x, batch_norm: bool, name: str, suffix: str = ""):
    """Batch norm (if ``batch_norm``) then ReLU, as layers ``{name}_bn{suffix}`` / ``{name}_relu{suffix}``."""
    from keras import layers

    if batch_norm:
        x = BatchNorm(name=f"{name}_bn{suffix}")(x)
    return layers.Activation("relu", name=f"{name}_relu{suffix}")(x)


def build_unet(input_shape: tuple[int, int, int], depth: int = 4, base_filters: int = 16,
               dropout: float = 0.1, batch_norm: bool = True, input_affines=()):
    """U-Net (Ronneberger 2015). Filters double per level: base_filters * 2**level.

    depth=4, base_filters=64 gives the classic 64-128-256-512 encoder with a 1024 bottleneck.
    ``input_affines``: (scale, offset) pairs for :class:`InputWindows` (none by default).
    """
    import keras
    from keras import layers

    inputs, x = _input(input_shape, input_affines)
    skips = []
    for level in range(depth):
        x = _conv_block(x, base_filters * 2 ** level, batch_norm, name=f"enc{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = _conv_block(x, base_filters * 2 ** depth, batch_norm, name="bottleneck")
    if dropout:
        x = layers.Dropout(dropout, name="bottleneck_dropout")(x)
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(base_filters * 2 ** level, 2, strides=2, padding="same",
                                   name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_block(x, base_filters * 2 ** level, batch_norm, name=f"dec{level}")
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="mask", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="unet")


def build_two_branch(input_shape: tuple[int, int, int], filters: int = 32, dropout: float = 0.1,
                     batch_norm: bool = True, skips: bool = False, input_affines=()):
    """Two parallel conv/pool branches with different receptive fields, concatenated.

    Branch A uses 3x3 kernels (fine detail), branch B 3x3 kernels dilated by 3 (7x7 effective,
    wider context). Each branch downsamples by 8; the concatenated features are decoded by
    three stride-2 transposed convolutions back to the input size and a 1x1 sigmoid.
    ``skips``: after each transposed convolution, both branches' features of that resolution
    (before pooling) are concatenated and mixed by a 1x1 convolution, so the mask's edges come
    from full-resolution features instead of the 1/8 grid alone (~7% more multiply-adds, yet a
    float32 training step on a 2-core Xeon took 1.4x as long and ONNX inference 1.2x: stop 49).
    Off in the shipped config: its CV scored 0.222 against 0.232 without (batches of 8, stop 50)
    (reports/experiments/two_branch_decoder_skips.json).
    """
    import keras
    from keras import layers

    inputs, start = _input(input_shape, input_affines)
    branches, features = [], {}
    for tag, dilation in (("a", 1), ("b", 3)):
        x = start
        for level in range(3):
            x = _conv_block(x, filters * 2 ** level, batch_norm, dilation=dilation,
                            name=f"branch{tag}{level}")
            features.setdefault(level, []).append(x)
            x = layers.MaxPooling2D(2, name=f"branch{tag}_pool{level}")(x)
        branches.append(x)
    x = layers.Concatenate(name="merge")(branches)
    if dropout:
        x = layers.Dropout(dropout, name="merge_dropout")(x)
    for level in reversed(range(3)):
        x = layers.Conv2DTranspose(filters * 2 ** level, 3, strides=2, padding="same",
                                   name=f"deconv{level}")(x)
        x = _norm_relu(x, batch_norm, f"deconv{level}")
        if skips:
            x = layers.Concatenate(name=f"skip{level}")([x, *features[level]])
            x = layers.Conv2D(filters * 2 ** level, 1, use_bias=not batch_norm, name=f"fuse{level}")(x)
            x = _norm_relu(x, batch_norm, f"fuse{level}")
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="mask", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="two_branch")


def build_model(config: Mapping[str, Any]):
    """Build the Keras model described by a weights config (the JSON next to the weights)."""
    size = config["input_size"]
    shape = (int(size[0]), int(size[1]), int(config.get("in_channels", 1)))
    arch = config["architecture"]
    params = dict(config.get("arch_params", {}))
    source = Window(**config.get("window", {}))
    params["input_affines"] = [window_affine(source, Window(**w)) for w in params.pop("extra_windows", ())]
    if arch == "unet":
        return build_unet(shape, **{**UNET_DEFAULTS, **params})
    if arch == "two_branch":
        return build_two_branch(shape, **{**TWO_BRANCH_DEFAULTS, **params})
    raise ValueError(f"unknown architecture {arch!r} (expected 'unet' or 'two_branch')")


def count_flops(model) -> int:
    """Multiply-accumulates x2 of the convolutions of one forward pass of a single image."""
    total = 0
    for layer in model.layers:
        cls = type(layer).__name__
        if cls not in ("Conv2D", "Conv2DTranspose"):
            continue
        kh, kw = layer.kernel_size
        cin = layer.input.shape[-1]
        cout = layer.filters
        if cls == "Conv2D":
            oh, ow = layer.output.shape[1:3]
            total += 2 * kh * kw * cin * cout * oh * ow
        else:
            ih, iw = layer.input.shape[1:3]
            total += 2 * kh * kw * cin * cout * ih * iw
    return int(total)
