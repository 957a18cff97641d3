"""Train one model on the ct-ich PNG slices.

    python -m training.train --model unet|two-branch --data ../shared/data/ct-ich --out model/weights

Seeded, shows progress, resumable (checkpoints in ``--runs``; a resumed run ends with the weights an
uninterrupted one would have, bit for bit on the same machine, except with hard-negative mining, whose
re-weighting races the batch prefetcher), uses a GPU with mixed precision
when TensorFlow sees one. With ``--val-fraction 0`` (the default for shipped weights) it trains
on every patient for the configured number of steps and takes threshold and minimum lesion
size from the cross-validation report when one exists (``reports/NAME_cv.json``).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF_ENABLE_ONEDNN_OPTS: see training/__init__.py

from model.postprocess import TYPICAL_PIXEL_MM2, TYPICAL_VOXEL_MM3  # noqa: E402

from .configs import model_config, training_config  # noqa: E402
from .data import Patient, load_dataset, with_mirrors  # noqa: E402
from .device import set_threads, training_precision  # noqa: E402
from .mining import mine  # noqa: E402
from .recipe import describe_augmentation, describe_loss, describe_sampling, recipe_sampler  # noqa: E402
from .sampler import prefetch  # noqa: E402
from .validate import grid_scale_for, validate  # noqa: E402


def _cpu_threads() -> int | None:
    """TensorFlow's intra-op thread limit (None: all cores, or another backend)."""
    try:
        import tensorflow as tf
        return tf.config.threading.get_intra_op_parallelism_threads() or None
    except ImportError:
        return None


def improves(candidate: dict, best: dict | None) -> bool:
    """Is a validation result at least as good as the best so far? Ties go to the later, longer-
    trained checkpoint: with validation bleeds too small to find, every checkpoint scores 0 and a
    strict ">" kept the first, untrained one (it predicted nothing on its test fold)."""
    return best is None or candidate["score"] >= best["score"]


def compiled_predict(model):
    """A compiled inference function (model.predict adds ~55 ms per call)."""
    try:
        import tensorflow as tf
        fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return lambda x: fn(x).numpy()
    except ImportError:
        return lambda x: __import__("numpy").asarray(model(x, training=False))


def load_trained(config_path: Path):
    """(config, Keras model) of trained weights: NAME.json and the NAME.weights.h5 beside it."""
    from model.networks import build_model

    config = json.loads(Path(config_path).read_text())
    model = build_model(config)
    model.load_weights(Path(config_path).with_name(f"{config['name']}.weights.h5"))
    return config, model


def save_network(model, config: dict, path: Path) -> None:
    """Write ``model``'s weights to ``path`` (``.weights.h5``) without optimizer state: Keras adds a
    compiled model's Adam moments (twice the weights), which only a checkpoint needs."""
    from model.networks import build_model

    if getattr(model, "optimizer", None) is not None:
        net = build_model(config)
        net.set_weights(model.get_weights())
        model = net
    model.save_weights(path)


def _seed_variables(model) -> list:
    """The state variables of ``model``'s random-seed generators (its dropout layers' masks)."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def seed_states(model) -> list:
    """The state of every random-seed generator in ``model``, as lists of ints. ``save_weights``
    leaves them out, so without them a resumed run redraws its first dropout masks."""
    return [v.numpy().tolist() for v in _seed_variables(model)]


def restore_seed_states(model, states: list) -> None:
    """Set ``model``'s seed generators to ``states`` from :func:`seed_states`."""
    import numpy as np

    variables = _seed_variables(model)
    if len(variables) != len(states):
        raise ValueError(f"checkpoint holds {len(states)} seed generator states, the model has {len(variables)}")
    for v, value in zip(variables, states):
        v.assign(np.asarray(value, dtype=v.dtype))


def lr_schedule(tcfg: dict, steps: int):
    """Cosine decay to 2% of ``learning_rate`` over ``steps``; with ``lr_cycle_steps`` set, cosine
    cycles with warm restarts, the first ``lr_cycle_steps`` long, each next one ``lr_cycle_mul``
    times as long (default 1) and peaking at ``lr_cycle_decay`` times the last peak.

    The first cycle is the same curve as a single cosine of ``lr_cycle_steps``, so a run trained
    for one cycle continues from its checkpoint into the next one exactly as a run trained for both
    cycles at once (same batches too: the checkpoint holds the sampler's random state).
    """
    import keras

    lr, cycle = tcfg["learning_rate"], int(tcfg.get("lr_cycle_steps") or steps)
    if cycle >= steps:
        return keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.02)
    return keras.optimizers.schedules.CosineDecayRestarts(
        lr, cycle, t_mul=float(tcfg.get("lr_cycle_mul", 1.0)), m_mul=float(tcfg.get("lr_cycle_decay", 1.0)),
        alpha=0.02)


def train_model(name: str, train: list[Patient], val: list[Patient], out_dir: Path, runs_dir: Path,
                seed: int = 0, steps: int | None = None, log=None) -> dict:
    """Train ``name`` on ``train`` patients; early-stop/choose threshold on ``val`` if given.

    Writes out_dir/NAME.weights.h5 and out_dir/NAME.json; returns the config written.
    Mixed precision (GPU float16, CPU bfloat16 where supported) only for the run.
    """
    with training_precision(training_config(name).get("precision", "auto")) as (device, policy):
        return _train(name, train, val, out_dir, runs_dir, seed, steps, log, device, policy)


def _train(name, train, val, out_dir, runs_dir, seed, steps, log, device, policy) -> dict:
    import keras
    import numpy as np

    from model.networks import build_model
    log = log or (lambda msg: print(msg, flush=True))
    from .losses import bce_dice_loss

    keras.utils.set_random_seed(seed)
    config, tcfg = model_config(name), training_config(name)
    steps = int(steps or tcfg["steps"])
    crop = tcfg.get("crop_size")
    model = build_model({**config, "input_size": [crop, crop]} if crop else config)
    full = build_model(config) if crop else model  # same layers, whole-slice input
    schedule = lr_schedule(tcfg, steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=partial(bce_dice_loss, pos_weight=tcfg.get("pos_weight", 1.0),
                               dice=tcfg.get("dice", "batch")))
    ckpt_dir = Path(runs_dir) / f"{config['name']}_{out_dir.name}_s{seed}"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = {"step": 0, "best": None, "history": []}
    # Built before loading: the checkpoint holds Adam's moments too, and Keras skips them
    # (with a warning) when the optimizer has no variables yet.
    model.optimizer.build(model.trainable_variables)
    if (ckpt_dir / "state.json").exists():
        state = json.loads((ckpt_dir / "state.json").read_text())
        model.load_weights(ckpt_dir / "last.weights.h5")
        log(f"resumed {config['name']} from step {state['step']}")
    with_mirrors(train + list(val or []), config)
    sampler = recipe_sampler(train, config, tcfg, seed + state["step"])
    if "sampler_rng" in state:     # checkpoints written before these were stored reseed at seed + step
        sampler.rng.bit_generator.state = state["sampler_rng"]
        restore_seed_states(model, state["seed_states"])
    model.optimizer.iterations.assign(state["step"])
    predict = compiled_predict(full)
    mine(sampler, full, model, predict, tcfg, state["step"], log, resumed=True)   # past the first mining
    scale = grid_scale_for(config["input_size"])
    out_dir.mkdir(parents=True, exist_ok=True)
    t0, batches, losses = time.time(), prefetch(sampler), []
    elapsed0 = state.get("elapsed_s", 0.0)
    while state["step"] < steps:
        x, y, rng_state = next(batches)
        losses.append(float(model.train_on_batch(x, y)))
        state["step"] += 1
        step = state["step"]
        if step % 10 == 0 or step == steps:
            rate = (time.time() - t0) / max(1, len(losses))
            log(f"[{config['name']}] step {step}/{steps} loss {np.mean(losses[-10:]):.4f} "
                f"{rate:.2f}s/step eta {rate * (steps - step) / 60:.1f} min")
        if step < steps:
            mine(sampler, full, model, predict, tcfg, step, log)
        if step % tcfg["val_every"] == 0 or step == steps:
            if full is not model:
                full.set_weights(model.get_weights())
            if val:
                res = validate(predict, val, config, scale)
                res["step"] = step
                state["history"].append(res)
                log(f"[{config['name']}] val step {step}: score {res['score']:.3f}; chosen thr {res['threshold']} "
                    f"min {res['min_lesion_pixels']}: score {res['point_score']:.3f} dice+ {res['dice_positive']} "
                    f"fp {res['fp_patients']}")
                if improves(res, state["best"]):
                    state["best"] = res
                    save_network(full, config, out_dir / f"{config['name']}.weights.h5")
            model.save_weights(ckpt_dir / "last.weights.h5")
            state["sampler_rng"], state["seed_states"] = rng_state, seed_states(model)
            state["elapsed_s"] = elapsed0 + time.time() - t0
            (ckpt_dir / "state.json").write_text(json.dumps(state, indent=1))
    if not val:
        full.set_weights(model.get_weights())
        save_network(full, config, out_dir / f"{config['name']}.weights.h5")
    duration = elapsed0 + time.time() - t0
    config["training"] = {
        "steps": steps, "batch_size": tcfg["batch_size"], "crop_size": crop, "learning_rate": tcfg["learning_rate"],
        "lr_cycle_steps": tcfg.get("lr_cycle_steps"), "lr_cycle_decay": tcfg.get("lr_cycle_decay"),
        "lr_cycle_mul": tcfg.get("lr_cycle_mul"),
        "seed": seed, "device": device, "dtype_policy": policy,
        "pos_weight": tcfg.get("pos_weight", 1.0), "cpu_threads": _cpu_threads(), "duration_s": round(duration, 1),
        "train_patients": [p.pid for p in train], "val_patients": [p.pid for p in val],
        "date": datetime.date.today().isoformat(), "loss": describe_loss(tcfg),
        "optimizer": "adam, cosine decay" + (" with warm restarts" if tcfg.get("lr_cycle_steps") else ""),
        "sampling": describe_sampling(tcfg),
        "augmentation": describe_augmentation(sampler.window_jitter, sampler.all_orientations),
    }
    # A model that never saw another orientation needs uploads turned into the PNGs' frame (model/orientation.py).
    config["orientation"] = "any" if sampler.all_orientations else "anterior_right"
    if state["best"]:
        config["threshold"] = state["best"]["threshold"]
        config["postprocess"]["min_lesion_pixels"] = state["best"]["min_lesion_pixels"]
        config["metrics"] = {"validation": state["best"], "history": state["history"]}
    (out_dir / f"{config['name']}.json").write_text(json.dumps(config, indent=2))
    return config


def set_postprocessing(config: dict, threshold: float, min_voxels: int, core_threshold: float | None = None,
                       min_area: int = 0) -> None:
    """Set a model config's postprocessing: the size rule (components of at least ``min_voxels``)
    or, with ``core_threshold``, the core rule (components holding at least ``min_voxels`` voxels
    of probability >= core_threshold; no size limit); ``min_area`` > 0 adds the area rule (a
    component's largest single-slice cross-section). Pixel counts get an mm^3 / mm^2 twin for
    inputs with spacing: ct-ich does not record its spacing, so a typical voxel converts them."""
    post = config["postprocess"]
    for key in ("core_threshold", "min_core_pixels", "min_core_mm3", "min_lesion_area_pixels", "min_lesion_area_mm2"):
        post.pop(key, None)
    part = "lesion" if core_threshold is None else "core"
    if core_threshold is not None:
        post.update(min_lesion_pixels=0, min_lesion_mm3=0.0, core_threshold=float(core_threshold))
    config["threshold"] = float(threshold)
    post[f"min_{part}_pixels"] = int(min_voxels)
    post[f"min_{part}_mm3"] = round(int(min_voxels) * TYPICAL_VOXEL_MM3, 1)
    if min_area:
        post["min_lesion_area_pixels"] = int(min_area)
        post["min_lesion_area_mm2"] = round(int(min_area) * TYPICAL_PIXEL_MM2, 1)


def apply_cv_choice(config_path: Path, cv_report: Path) -> None:
    """Copy the postprocessing that cross-validation chose and its metrics into NAME.json."""
    if not cv_report.exists():
        return
    cv = json.loads(cv_report.read_text())
    config = json.loads(config_path.read_text())
    chosen = cv["chosen"]
    core = chosen.get("core_threshold")
    min_voxels = chosen["min_core_pixels"] if core is not None else chosen["min_lesion_pixels"]
    set_postprocessing(config, chosen["threshold"], min_voxels, core, chosen.get("min_lesion_area_pixels", 0))
    config.setdefault("metrics", {})["cv"] = cv["summary"]
    config_path.write_text(json.dumps(config, indent=2))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, choices=["unet", "two-branch", "two_branch"])
    ap.add_argument("--data", default="../shared/data/ct-ich", type=Path)
    ap.add_argument("--out", default="model/weights", type=Path)
    ap.add_argument("--runs", default="runs", type=Path, help="checkpoints and cache (not committed)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reports", default="reports", type=Path)
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for TensorFlow (default: all); see training/device.py")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    name = args.model.replace("-", "_")
    config = model_config(name)
    patients = load_dataset(args.data, tuple(config["input_size"]), cache_dir=args.runs / "cache")
    print(f"training {name} on {len(patients)} patients ({sum(p.has_lesion for p in patients)} with hemorrhage)")
    train_model(name, patients, [], args.out, args.runs, seed=args.seed, steps=args.steps)
    apply_cv_choice(args.out / f"{name}.json", args.reports / f"{name}_cv.json")
    print(f"wrote {args.out / (name + '.weights.h5')} and {name}.json")


if __name__ == "__main__":
    main()
