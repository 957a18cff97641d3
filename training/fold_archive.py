"""Keep trained CV folds in the repository, so a cross-validation can be built over several sessions.

One fold of the shipped U-Net recipe takes ~75 minutes on the 2-core CPU and a session holds about two;
the scratch disk (``--runs``) does not outlive a session's machine. So each trained fold is archived,
weights only, under ``reports/folds/TAG/`` (the ``--runs`` layout: ``cv/NAME/foldK/NAME.weights.h5`` and
``NAME.json``) and committed; a later session restores the archive into a scratch ``--runs`` directory and
trains the missing folds or scores all of them there (``training.evaluate --evaluate-only``,
``training.robustness``, ``training.oof``), which write into the fold JSONs and a data cache — never into
the archive itself.

    python -m training.fold_archive save --model unet --runs RUNS --folds 1,2 --to reports/folds/TAG
    python -m training.fold_archive restore --model unet --from reports/folds/TAG --runs RUNS
    python -m training.fold_archive list reports/folds/TAG

The archive keeps only the network's weights, which load into the same architecture bit for bit (folds
trained before ``training.train.save_network`` also hold Adam's two moment estimates: the base-16 U-Net
23.6 MB instead of 8.0 MB). Checkpoints are not archived, so an archived fold cannot be
continued; it was trained to its recipe's full step count or it is not archived.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import time
from pathlib import Path

from .crossfit import fold_config_path
from .evaluate import trained_steps


def fold_dir(root: Path, name: str, fold: int) -> Path:
    """runs/cv/NAME/foldK, the layout ``training.evaluate`` trains into."""
    return fold_config_path(Path(root), name, fold).parent


def provenance() -> dict:
    """Where and when a fold was archived: the repository's commit then, the CPU and the date (UTC).
    The commit is the archiving one; the fold may have been trained at an earlier one (say so with
    ``--note``)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
               platform.processor() or None)
    return {"archived_at_commit": commit, "cpu": cpu, "archived_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def save_fold(runs: Path, name: str, fold: int, archive: Path, required_steps: int | None = None,
              note: str | None = None) -> Path:
    """Archive fold ``fold`` of ``name`` from ``runs`` into ``archive``: weights only, plus its JSON with
    an ``archived`` record. Refuses a fold trained for fewer than ``required_steps`` (training writes a
    fold's JSON only once it has run all its steps) and one already archived. Returns the archived JSON."""
    from .train import load_trained, save_network

    src = fold_dir(runs, name, fold) / f"{name}.json"
    if not src.exists():
        raise SystemExit(f"fold {fold}: no trained fold at {src.parent}")
    config, model = load_trained(src)
    steps, wanted = trained_steps(src), required_steps or 0
    if steps < wanted:
        raise SystemExit(f"fold {fold}: trained {steps} of {wanted} steps; finish it before archiving")
    dest = fold_dir(archive, name, fold)
    if (dest / f"{name}.json").exists():
        raise SystemExit(f"fold {fold}: already archived at {dest}; remove it first to replace it")
    dest.mkdir(parents=True, exist_ok=True)
    save_network(model, config, dest / f"{name}.weights.h5")
    config["archived"] = {**provenance(), "from": str(src.parent), **({"note": note} if note else {})}
    (dest / f"{name}.json").write_text(json.dumps(config, indent=2))
    return dest / f"{name}.json"


def restore(archive: Path, runs: Path, name: str) -> list[int]:
    """Copy every archived fold of ``name`` into ``runs`` (a scratch directory), leaving folds that are
    there already untouched. Returns the fold numbers copied."""
    copied = []
    for src in sorted((Path(archive) / "cv" / name).glob("fold*")):
        fold = int(src.name[len("fold"):])
        dest = fold_dir(runs, name, fold)
        if (dest / f"{name}.json").exists():
            print(f"fold {fold}: already in {dest}, left as it is")
            continue
        dest.mkdir(parents=True, exist_ok=True)
        for suffix in (".json", ".weights.h5"):
            shutil.copyfile(src / f"{name}{suffix}", dest / f"{name}{suffix}")
        copied.append(fold)
    return copied


def listing(archive: Path) -> list[dict]:
    """One row per archived fold: model, fold, steps, training minutes, seed, CPU, archiving commit, note."""
    rows = []
    for path in sorted(Path(archive).glob("cv/*/fold*/*.json")):
        cfg = json.loads(path.read_text())
        t, a = cfg.get("training", {}), cfg.get("archived", {})
        rows.append({"model": cfg["name"], "fold": int(path.parent.name[len("fold"):]), "steps": t.get("steps"),
                     "minutes": round(t["duration_s"] / 60, 1) if t.get("duration_s") else None,
                     "seed": t.get("seed"), "cpu": a.get("cpu"), "archived_at_commit": a.get("archived_at_commit"),
                     "note": a.get("note")})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("save", help="archive trained folds (weights only) from a scratch --runs")
    s.add_argument("--model", required=True, choices=["unet", "two-branch", "two_branch"])
    s.add_argument("--runs", required=True, type=Path)
    s.add_argument("--folds", required=True, help="comma-separated fold numbers")
    s.add_argument("--to", required=True, type=Path, help="the archive, e.g. reports/folds/TAG")
    s.add_argument("--steps", type=int, default=None, help="refuse folds trained for fewer steps")
    s.add_argument("--note", default=None, help="provenance to keep with each fold (when / at which commit it trained)")
    r = sub.add_parser("restore", help="copy an archive's folds into a scratch --runs")
    r.add_argument("--model", required=True, choices=["unet", "two-branch", "two_branch"])
    r.add_argument("--from", dest="archive", required=True, type=Path)
    r.add_argument("--runs", required=True, type=Path)
    lst = sub.add_parser("list", help="the folds an archive holds")
    lst.add_argument("archive", type=Path)
    args = ap.parse_args(argv)
    if args.command == "list":
        for row in listing(args.archive):
            print(json.dumps(row))
        return
    name = args.model.replace("-", "_")
    if args.command == "save":
        for fold in (int(f) for f in args.folds.split(",")):
            print(f"fold {fold}: archived {save_fold(args.runs, name, fold, args.to, args.steps, args.note)}")
    else:
        print(f"restored folds {restore(args.archive, args.runs, name)} into {args.runs}")


if __name__ == "__main__":
    main()
