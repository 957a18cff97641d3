"""Cross-validation folds trained in parallel for a fixed wall-clock budget: a scaling diagnostic
for a machine with a GPU (where one process's augmentation thread cannot keep up).

    python -m training.budget_cv pack --data ../shared/data/ct-ich --out DIR     # slices + folds, compact
    python -m training.budget_cv train --packed DIR --out OUT --base-filters 24 --batch-size 16 \\
        --max-steps 8000 --budget-s 420                                           # on the GPU machine
    python -m training.budget_cv unpack --trained OUT --runs RUNS --packed DIR    # fold weights for
    python -m training.evaluate --model unet --evaluate-only --runs RUNS --weights RUNS/w --out RUNS/out

Each fold trains the U-Net recipe of training/configs.py (same sampler, augmentation, loss, peak
learning rate, one cosine to 2%) with a wider net and bigger batches, on the other folds' patients, fed
by ``--workers`` sampling processes. Its step count is set from its measured step time so that it ends
within the budget. The folds are the ones ``training.evaluate`` uses (seed 0), fold i seeded i.
Measured on an H200 with 16 CPU cores, five folds of three workers each: base_filters 24 ran at 67-69 ms a step of
16 with the GPU 69-99% busy, base_filters 8 at 73-76 ms with it 28-79% busy (the sampling processes were the limit:
give a small net more workers or fewer folds at once).

Packed slices are the training cache's (224x224, [0, 1]) rounded to uint8: the net trains on them, the
evaluation reads the PNGs. The packed file is derived from the data: keep it out of the repo.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

NAME = "unet"


def pack(data: Path, out: Path, cache: Path | None) -> None:
    """Write out/slices.npz (uint8 images and masks per patient on the model grid) and out/folds.json."""
    from .configs import model_config
    from .data import dataset_folds, load_dataset

    patients = load_dataset(data, tuple(model_config(NAME)["input_size"]), cache_dir=cache)
    arrays = {}
    for p in patients:
        for key, a in (("img", p.images), ("msk", p.masks)):
            arrays[f"{p.pid}_{key}"] = np.round(np.clip(a.astype(np.float32), 0, 1) * 255).astype(np.uint8)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "slices.npz", **arrays)
    (out / "folds.json").write_text(json.dumps({"folds": dataset_folds(data, 5, 0)}))


def load_packed(packed: Path, pids: list[str]):
    """The packed patients ``pids`` as training.data.Patient (float16 in [0, 1])."""
    from .data import Patient

    blob = np.load(packed / "slices.npz")
    return [Patient(pid, (blob[f"{pid}_img"] / 255.0).astype(np.float16),
                    (blob[f"{pid}_msk"] / 255.0).astype(np.float16)) for pid in pids]


def packed_sampler(packed: Path, pids: list[str], batch_size: int, seed: int):
    """The U-Net recipe's sampler (training.recipe.recipe_sampler) over the packed patients ``pids``, on
    whole slices even where the recipe crops: this module builds, trains and unpacks the net at its full
    input size."""
    from .configs import model_config, training_config
    from .recipe import recipe_sampler

    tcfg = {**training_config(NAME), "crop_size": None}
    return recipe_sampler(load_packed(packed, pids), model_config(NAME), tcfg, seed, batch_size)


def sample_worker(packed: Path, pids: list[str], batch_size: int, seed: int, queue) -> None:
    """Put batches (x float16 (B, H, W, C), y float16 (B, H, W, 1)) of the recipe's sampler on ``queue``."""
    sampler = packed_sampler(packed, pids, batch_size, seed)
    while True:
        x, y = sampler.batch()
        queue.put((x.astype(np.float16), y.astype(np.float16)))


def cosine_lr(step: int, total: int, peak: float, alpha: float = 0.02) -> float:
    """Learning rate at ``step`` of a cosine from ``peak`` to ``alpha * peak`` over ``total`` steps."""
    frac = min(1.0, step / max(1, total))
    return peak * (alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * frac)))


def planned_steps(step: int, seconds_per_step: float, seconds_left: float, max_steps: int) -> int:
    """The step count that ends within ``seconds_left`` at ``seconds_per_step`` (at most ``max_steps``)."""
    return int(min(max_steps, step + max(0.0, seconds_left) / max(seconds_per_step, 1e-6)))


def fold_config(base_filters: int) -> dict:
    from .configs import model_config

    config = model_config(NAME)
    config["arch_params"]["base_filters"] = int(base_filters)
    return config


def train_fold(args, fold: int) -> None:
    """Train one fold; writes OUT/fold{fold}.npz (see :func:`save_fold`)."""
    folds = json.loads((args.packed / "folds.json").read_text())["folds"]
    train_ids = sorted(p for f in folds for p in f if p not in folds[fold])
    spawn = mp.get_context("spawn")
    queue = spawn.Queue(maxsize=4 * args.workers)
    workers = [spawn.Process(
        target=sample_worker, args=(args.packed, train_ids, args.batch_size, 1000 * fold + w, queue), daemon=True)
        for w in range(args.workers)]
    for w in workers:
        w.start()
    import keras

    from model.networks import build_model
    from .configs import training_config
    from .device import training_precision
    from .losses import bce_dice_loss

    tcfg, log = training_config(NAME), partial(print, f"[fold {fold}]", flush=True)
    keras.utils.set_random_seed(fold)
    with training_precision() as (device, policy):
        config = fold_config(args.base_filters)
        model = build_model(config)
        model.compile(optimizer=keras.optimizers.Adam(tcfg["learning_rate"]),
                      loss=partial(bce_dice_loss, pos_weight=tcfg.get("pos_weight", 1.0), dice=tcfg.get("dice", "batch")))
        log(f"{device} {policy} {model.count_params()} parameters, {len(train_ids)} training patients")
        total, step, t_mark, started, losses = args.max_steps, 0, None, time.time(), []
        while step < total:
            x, y = queue.get()
            model.optimizer.learning_rate.assign(cosine_lr(step, total, tcfg["learning_rate"]))
            losses.append(float(model.train_on_batch(x, y)))
            step += 1
            if step == 20:                      # compiled by now: time from here
                t_mark = time.time()
            if t_mark and step % 100 == 0:
                rate = (time.time() - t_mark) / (step - 20)
                total = min(total, planned_steps(step, rate, args.deadline - time.time(), args.max_steps))
                log(f"step {step}/{total} loss {np.mean(losses[-100:]):.4f} {rate * 1000:.0f} ms/step "
                    f"lr {float(model.optimizer.learning_rate.numpy()):.2e}")
    weights = model.get_weights()
    config["training"] = {
        "steps": step, "batch_size": args.batch_size, "learning_rate": tcfg["learning_rate"],
        "schedule": "one cosine to 2%, step count set to the time budget", "seed": fold, "device": device,
        "dtype_policy": policy, "pos_weight": tcfg.get("pos_weight", 1.0), "duration_s": round(time.time() - started, 1),
        "train_patients": train_ids, "val_patients": [], "sampling_workers": args.workers,
        "final_loss": round(float(np.mean(losses[-100:])), 4), "runner": "training.budget_cv"}
    save_fold(args.out / f"fold{fold}.npz", config, weights)
    log(f"done: {step} steps in {config['training']['duration_s']} s")
    for w in workers:
        w.terminate()


def save_fold(path: Path, config: dict, weights: list[np.ndarray]) -> None:
    """A trained fold as one .npz: its config (``meta``, JSON bytes) and its weights in layer order,
    float16 where that keeps them finite (half the size: the GPU machine returns at most 64 MB), else
    float32 (batch-norm variances can exceed float16's 65,504)."""
    def compact(w):
        with np.errstate(over="ignore"):
            half = w.astype(np.float16)
        return half if np.isfinite(half).all() else w.astype(np.float32)
    np.savez(path, meta=np.frombuffer(json.dumps(config).encode(), np.uint8),
             **{f"w{i:03d}": compact(w) for i, w in enumerate(weights)})


def train_all(args) -> None:
    """One process per fold (the GPU is shared; each JAX process takes only the memory it needs)."""
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "OMP_NUM_THREADS": "1"}
    deadline = time.time() + args.budget_s
    common = [sys.executable, "-m", "training.budget_cv", "train", "--packed", str(args.packed), "--out", str(args.out),
              "--base-filters", str(args.base_filters), "--batch-size", str(args.batch_size), "--max-steps",
              str(args.max_steps), "--workers", str(args.workers), "--deadline", str(deadline)]
    procs = [subprocess.Popen(common + ["--fold", str(i)], env=env) for i in args.folds]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"fold exit codes {codes}")


def batch_norm_statistics(model, layer_name: str, batches) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance of the input of batch-norm layer ``layer_name``, averaged over
    ``batches`` (x arrays) run through the net in training mode, as the layer's moving averages saw
    them late in training (by then the weights hardly move)."""
    import keras

    probe = keras.Model(model.inputs, model.get_layer(layer_name).input)
    means, variances = [], []
    for x in batches:
        a = np.asarray(probe([x], training=True), np.float64)
        means.append(a.mean(axis=(0, 1, 2)))
        variances.append(a.var(axis=(0, 1, 2)))
    return np.mean(means, axis=0), np.mean(variances, axis=0)


def restore_batch_norm(model, broken: list[str], batches) -> dict:
    """Re-estimate the moving mean and variance of the batch-norm layers ``broken`` (their returned
    statistics overflowed) on ``batches`` of the fold's training patients; the other weights stay."""
    report, batches = {}, list(batches)       # every layer needs all of them
    for name in broken:
        layer = model.get_layer(name)
        mean, var = batch_norm_statistics(model, name, batches)
        returned_mean = np.asarray(layer.moving_mean)
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(var.astype(np.float32))
        report[name] = {"mean_rel_diff_median": float(np.median(np.abs(mean - returned_mean) /
                                                                 (np.abs(returned_mean) + 1e-6)))}
    return report


def unpack(trained: Path, runs: Path, packed: Path | None = None, n_batches: int = 50) -> None:
    """Turn OUT/fold{i}.npz into RUNS/cv/unet/fold{i}/unet.{weights.h5,json} (float32 again). Batch-norm
    layers whose returned statistics are not finite get them re-estimated on the fold's training
    patients (``packed``; the run's seed + 10,000), recorded in the config's ``training``."""
    from model.networks import build_model

    for path in sorted(trained.glob("fold*.npz")):
        blob = np.load(path)
        config = json.loads(bytes(blob["meta"]).decode())
        model = build_model(config)
        model.set_weights([blob[k].astype(np.float32) for k in sorted(blob.files) if k != "meta"])
        broken = sorted({v.path.split("/")[0] for v in model.weights if not np.isfinite(np.asarray(v)).all()})
        if broken:
            if packed is None:
                raise SystemExit(f"{path}: {broken} not finite; pass --packed to re-estimate them")
            sampler = packed_sampler(packed, config["training"]["train_patients"], config["training"]["batch_size"],
                                     10_000 + int(config["training"]["seed"]))
            config["training"]["batch_norm_reestimated"] = {
                "layers": restore_batch_norm(model, broken, [sampler.batch()[0] for _ in range(n_batches)]),
                "batches": n_batches, "why": "moving variance above float16's range in the returned file"}
        fold_dir = runs / "cv" / NAME / path.stem
        fold_dir.mkdir(parents=True, exist_ok=True)
        model.save_weights(fold_dir / f"{NAME}.weights.h5")
        (fold_dir / f"{NAME}.json").write_text(json.dumps(config, indent=2))
        print(f"{fold_dir}: {config['training']['steps']} steps; re-estimated {broken or 'none'}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--data", default="../shared/data/ct-ich", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--cache", default="runs/cache", type=Path)
    t = sub.add_parser("train")
    t.add_argument("--packed", required=True, type=Path)
    t.add_argument("--out", required=True, type=Path)
    t.add_argument("--base-filters", type=int, default=24)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--max-steps", type=int, default=8000)
    t.add_argument("--budget-s", type=float, default=420.0, help="wall-clock seconds for all folds together")
    t.add_argument("--workers", type=int, default=3, help="sampling processes per fold")
    t.add_argument("--folds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2, 3, 4])
    t.add_argument("--fold", type=int, default=None, help=argparse.SUPPRESS)
    t.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    u = sub.add_parser("unpack")
    u.add_argument("--trained", required=True, type=Path)
    u.add_argument("--runs", required=True, type=Path)
    u.add_argument("--packed", type=Path, default=None, help="packed slices, to re-estimate overflowed batch norms")
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        pack(args.data, args.out, args.cache)
    elif args.cmd == "unpack":
        unpack(args.trained, args.runs, args.packed)
    elif args.fold is not None:
        train_fold(args, args.fold)
    else:
        train_all(args)


if __name__ == "__main__":
    main()
