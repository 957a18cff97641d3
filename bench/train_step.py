"""``python -m bench.train_step``: seconds per training step of a shipped model's recipe on this machine.

Times ``train_on_batch`` on random inputs (batch and loss of the model's training config, the
precision ``training.device`` would choose) twice: with the networks' batch normalisation (fused
kernel in training under TensorFlow, ``model.networks.BatchNorm``) and with Keras's plain
``BatchNormalization`` (float32 upcast, op by op; the layer the models were built with until
stop 46). Both have the same variables and statistics; the figures show what the fused kernel
saves. Sampling and augmentation are not included (they run in their own thread in training).

    TF_ENABLE_ONEDNN_OPTS=1 python -m bench.train_step --model unet --threads 2
"""
from __future__ import annotations

import argparse
import time
from functools import partial


def time_steps(config: dict, tcfg: dict, plain_batch_norm: bool, steps: int, warmup: int = 3) -> float:
    """Mean wall seconds of one ``train_on_batch`` of ``tcfg["batch_size"]`` slices of ``config``'s input."""
    import keras
    import numpy as np

    from model import networks
    from training.losses import bce_dice_loss

    with networks.keras_batch_norm(plain_batch_norm):
        model = networks.build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=partial(bce_dice_loss, pos_weight=tcfg.get("pos_weight", 1.0), dice=tcfg.get("dice", "batch")))
    rng = np.random.default_rng(0)
    h, w = config["input_size"]
    x = rng.random((tcfg["batch_size"], h, w, config["in_channels"]), dtype=np.float32)
    y = (rng.random((tcfg["batch_size"], h, w, 1)) > 0.97).astype(np.float32)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        float(model.train_on_batch(x, y))
    return (time.perf_counter() - start) / steps


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="unet", choices=["unet", "two-branch", "two_branch"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for TensorFlow (default: all)")
    args = ap.parse_args(argv)
    from training.configs import model_config, training_config
    from training.device import set_threads, training_precision

    set_threads(args.threads)
    config, tcfg = model_config(args.model), training_config(args.model)
    with training_precision("auto") as (device, policy):
        rows = [(label, time_steps(config, tcfg, plain, args.steps)) for label, plain in
                (("fused batch norm", False), ("plain Keras batch norm", True))]
    print(f"{config['name']}: batches of {tcfg['batch_size']}, {device}, {policy}, {args.steps} timed steps")
    for label, seconds in rows:
        print(f"  {label:24s} {seconds:.3f} s/step")
    print(f"  plain / fused: {rows[1][1] / rows[0][1]:.2f}x")


if __name__ == "__main__":
    main()
