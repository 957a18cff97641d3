"""The networks' batch normalisation (``model.networks.BatchNorm``): a fused kernel in training under
TensorFlow, but the same layer as Keras's ``BatchNormalization`` in every observable way — outputs,
gradients, moving statistics and the weights file."""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import tiny_config

keras = pytest.importorskip("keras")


def _build(name: str, plain: bool, seed: int = 0):
    from model.networks import build_model, keras_batch_norm

    keras.utils.set_random_seed(seed)
    config = tiny_config(name)
    config["arch_params"] = {**config["arch_params"], "dropout": 0.0, "batch_norm": True}
    with keras_batch_norm(plain):
        return build_model(config)


def _batch(seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (4, 32, 32, 3)).astype(np.float32)
    y = (rng.uniform(0.0, 1.0, (4, 32, 32, 1)) > 0.9).astype(np.float32)
    return x, y


def _loss_and_grads(model, x, y):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        p = model(x, training=True)
        loss = tf.reduce_mean(keras.losses.binary_crossentropy(y, p))
    return float(loss), [np.asarray(g) for g in tape.gradient(loss, model.trainable_variables)]


@pytest.fixture
def fused_calls(monkeypatch):
    """The tiny test nets have 4-16 channels, and the fused kernel runs only for multiples of 16 (a
    speed rule, ``model.networks._fusable``): let it run at any width here, and count its calls."""
    tf = pytest.importorskip("tensorflow")
    from model import networks

    monkeypatch.setattr(networks, "FUSED_CHANNEL_MULTIPLE", 1)
    calls, real = [], tf.compat.v1.nn.fused_batch_norm

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(tf.compat.v1.nn, "fused_batch_norm", counting)
    return calls


def test_the_fused_kernel_runs_only_for_channel_counts_that_are_multiples_of_16():
    """The two-branch CNN's 12- and 24-channel layers trained 2-3x slower fused (stop 47)."""
    pytest.importorskip("tensorflow")
    from model.networks import BatchNorm, _fusable

    layer = BatchNorm()
    for channels, fused in ((8, False), (12, False), (24, False), (16, True), (48, True), (128, True)):
        assert bool(_fusable(layer, np.zeros((1, 8, 8, channels), np.float32))) is fused, channels


@pytest.mark.parametrize("name", ["unet", "two_branch"])
def test_a_training_step_gives_the_same_loss_gradients_and_moving_statistics_as_keras_batch_norm(name, fused_calls):
    fused, plain = _build(name, plain=False), _build(name, plain=True)
    plain.set_weights(fused.get_weights())
    bn = [layer for layer in fused.layers if "bn" in layer.name]
    assert bn and all(type(layer) is not keras.layers.BatchNormalization for layer in bn)   # the fused one is in use
    assert all(type(plain.get_layer(layer.name)) is keras.layers.BatchNormalization for layer in bn)   # the reference
    x, y = _batch()
    loss_f, grads_f = _loss_and_grads(fused, x, y)
    assert len(fused_calls) == len(bn)                  # every batch norm of the fused net ran the kernel
    loss_p, grads_p = _loss_and_grads(plain, x, y)
    assert len(fused_calls) == len(bn)                  # and the reference never did
    assert loss_f == pytest.approx(loss_p, rel=1e-5)
    # A bias right before a batch norm has an analytically zero gradient: only rounding noise (~1e-7) is left.
    floor = 1e-5 * max(np.linalg.norm(g) for g in grads_p)
    for g_f, g_p in zip(grads_f, grads_p):
        assert np.linalg.norm(g_f - g_p) <= 1e-3 * np.linalg.norm(g_p) + floor
    for layer in bn:
        other = plain.get_layer(layer.name)
        # Keras's moving variance uses the biased batch variance; the fused kernel's is unbiased and is converted.
        np.testing.assert_allclose(np.asarray(layer.moving_mean), np.asarray(other.moving_mean), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(np.asarray(layer.moving_variance), np.asarray(other.moving_variance),
                                   rtol=1e-5, atol=1e-7)
        assert not np.allclose(np.asarray(layer.moving_variance), 1.0)     # the step did update them


def test_weights_saved_with_keras_batch_norm_load_into_the_fused_layer_and_predict_the_same(tmp_path):
    """Every weights file trained before the fused layer (model/weights, reports/folds) must still load."""
    plain = _build("unet", plain=True, seed=3)
    x, y = _batch()
    plain.compile(optimizer="adam", loss="binary_crossentropy")
    plain.train_on_batch(x, y)                       # moving statistics away from their initial values
    path = tmp_path / "unet.weights.h5"
    plain.save_weights(str(path))
    fused = _build("unet", plain=False, seed=9)
    fused.load_weights(str(path))
    np.testing.assert_array_equal(np.asarray(fused(x, training=False)), np.asarray(plain(x, training=False)))
    fused.save_weights(str(tmp_path / "back.weights.h5"))
    again = _build("unet", plain=True, seed=5)
    again.load_weights(str(tmp_path / "back.weights.h5"))
    np.testing.assert_array_equal(np.asarray(again(x, training=False)), np.asarray(plain(x, training=False)))
