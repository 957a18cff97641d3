"""Intensity robustness: trained CV folds re-scored on their held-out patients as other exports.

    python -m training.robustness --model unet --runs runs [--only-folds 0,3] [--postprocessing-from model/weights/unet.json | --crossfit size] --out reports/

Uploads of PNG/JPG slices come from other viewers and exports: another brain window, JPEG
compression, another display gamma. The ct-ich PNGs are brain-window exports (level 40, width 120
HU: grey 0 is -20 HU, grey 255 is 100 HU). Each condition below maps those grey values to what the
other export would hold (or, for the views, how a viewer shows them); the held-out patients of each trained fold then go through the same
pipeline as in ``training.evaluate`` (``model.pipeline.Segmenter``) and are scored the same way.

Only windows inside [-20, 100] HU can be simulated exactly (the PNGs are clipped there); the standard
brain window (level 40, width 80) is one of them. Writes reports/NAME_robustness.json.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from model.orientation import quarter_turns
from model.preprocess import Window

from .crossfit import choose_cross_fitted, fp_share_arg, resolve_max_fp_share
from .data import PNG_WINDOW_HU, dataset_folds, load_patient_png, read_index
from .device import set_threads

PNG_LOW_HU = PNG_WINDOW_HU[0] - PNG_WINDOW_HU[1] / 2.0      # -20 HU: grey 0 of a ct-ich PNG
PNG_HIGH_HU = PNG_WINDOW_HU[0] + PNG_WINDOW_HU[1] / 2.0     # 100 HU: grey 255


@dataclass(frozen=True)
class Reexport:
    """The slices as exported with window (level, width) in HU instead of L40/W120; ``declared``: the
    user states that window (``export_window``), so the pipeline reads the grey values back as HU.

    Call: (Z, Y, X) grey values 0..255 of a ct-ich PNG -> the same shape, integer grey 0..255.
    """

    level: float
    width: float
    declared: bool = False

    def __post_init__(self):
        low, high = self.level - self.width / 2.0, self.level + self.width / 2.0
        if self.width <= 0 or low < PNG_LOW_HU or high > PNG_HIGH_HU:
            raise ValueError(f"window L{self.level:g}/W{self.width:g} spans [{low:g}, {high:g}] HU: only "
                             f"windows inside the PNGs' [{PNG_LOW_HU:g}, {PNG_HIGH_HU:g}] HU can be simulated")

    @property
    def name(self) -> str:
        return f"window L{self.level:g}/W{self.width:g}" + (", declared" if self.declared else "")

    @property
    def export_window(self) -> tuple[float, float] | None:
        return (self.level, self.width) if self.declared else None

    def __call__(self, grey: np.ndarray) -> np.ndarray:
        hu = PNG_LOW_HU + np.asarray(grey, np.float32) / 255.0 * (PNG_HIGH_HU - PNG_LOW_HU)
        return np.round(Window(self.level, self.width)(hu) * 255.0).astype(np.float32)


@dataclass(frozen=True)
class Jpeg:
    """Each slice saved as a JPEG of ``quality`` (1-95) and decoded again."""

    quality: int

    @property
    def name(self) -> str:
        return f"JPEG quality {self.quality}"

    def __call__(self, grey: np.ndarray) -> np.ndarray:
        out = np.empty(np.shape(grey), np.float32)
        for z, plane in enumerate(np.asarray(grey)):
            buf = io.BytesIO()
            Image.fromarray(np.clip(np.round(plane), 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=self.quality)
            out[z] = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"), np.float32)
        return out


@dataclass(frozen=True)
class Gamma:
    """Display gamma: grey' = 255 * (grey / 255) ** gamma (gamma < 1 brightens the mid-greys)."""

    gamma: float

    @property
    def name(self) -> str:
        return f"gamma {self.gamma:g}"

    def __call__(self, grey: np.ndarray) -> np.ndarray:
        unit = np.clip(np.asarray(grey, np.float32) / 255.0, 0.0, 1.0)
        return np.round(255.0 * unit ** np.float32(self.gamma)).astype(np.float32)


@dataclass(frozen=True)
class Unchanged:
    """The ct-ich PNGs as they are (the reference the other conditions are compared with)."""

    name: str = "as exported (L40/W120 PNG)"

    def __call__(self, grey: np.ndarray) -> np.ndarray:
        return np.asarray(grey, np.float32)


@dataclass(frozen=True)
class Viewed:
    """The slices as a viewer shows them: the radiological view (anterior up, patient left on the
    right) is one counter-clockwise quarter turn of a ct-ich PNG; ``mirror`` flips left and right
    (the neurological convention). ``undo`` maps a mask on the shown grid back to the PNG grid."""

    mirror: bool = False

    @property
    def name(self) -> str:
        return "neurological view (mirrored)" if self.mirror else "radiological view (anterior up)"

    def __call__(self, grey: np.ndarray) -> np.ndarray:
        shown = quarter_turns(np.asarray(grey, np.float32), 1)
        return np.ascontiguousarray(shown[:, :, ::-1] if self.mirror else shown)

    def undo(self, mask: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(quarter_turns(mask[:, :, ::-1] if self.mirror else mask, -1))


def on_png_grid(condition, mask: np.ndarray) -> np.ndarray:
    """A mask segmented from ``condition(images)`` back on the PNGs' grid (only views move pixels)."""
    return condition.undo(mask) if hasattr(condition, "undo") else mask


#: (level, width) in HU of the other exports simulated (inside the PNGs' [-20, 100] HU).
OTHER_WINDOWS = ((40, 80), (40, 100), (50, 100))
CONDITIONS = (Unchanged(), *(Reexport(*w) for w in OTHER_WINDOWS), Jpeg(75), Jpeg(40),
              Gamma(0.8), Gamma(1.25), Viewed(), Viewed(mirror=True),
              *(Reexport(*w, declared=True) for w in OTHER_WINDOWS))
#: ``--conditions windows``: the other export windows, each undeclared and declared.
WINDOW_CONDITIONS = (Unchanged(), *(Reexport(*w, declared) for w in OTHER_WINDOWS for declared in (False, True)))
#: ``--conditions`` choices.
CONDITION_SETS = {"all": CONDITIONS, "windows": WINDOW_CONDITIONS, "exported": (Unchanged(),)}
#: How ``training.evaluate --view`` shows the test patients' slices.
VIEWS = {"exported": Unchanged(), "radiological": Viewed()}


def score_conditions(name: str, data: Path, runs: Path, folds: list[list[str]], only: list[int],
                     conditions=CONDITIONS, postprocessing: dict | None = None) -> dict:
    """{condition name: {patient id: metrics}} for the held-out patients of the folds in ``only``.

    ``postprocessing``: a weights config whose threshold and postprocess replace each fold's own.
    """
    from model.pipeline import Segmenter

    from .evaluate import png_stack, score_patient

    index = read_index(data)
    scores: dict[str, dict] = {c.name: {} for c in conditions}
    for i in only:
        seg = Segmenter(weights_dir=runs / "cv" / name / f"fold{i}")
        if postprocessing is not None:
            config = seg.predictor(name).config
            config["threshold"] = postprocessing["threshold"]
            config["postprocess"] = dict(postprocessing["postprocess"])
        for pid in folds[i]:
            images, truth = load_patient_png(data, index[pid])
            for condition in conditions:
                shown = png_stack(condition(images))
                mask = on_png_grid(condition, seg.segment_image(
                    shown, model=name, name=pid, export_window=getattr(condition, "export_window", None)).mask)
                scores[condition.name][pid] = {"fold": i, **score_patient(mask, truth, [])}
            print(f"fold {i} patient {pid}: " + ", ".join(
                f"{c.name} {scores[c.name][pid]['dice']:.2f}" for c in conditions), flush=True)
    return scores


def summarize_condition(per_patient: dict) -> dict:
    """Mean Dice on the hemorrhage patients, bleeds found, false-positive lesion-free patients."""
    pos = [m for m in per_patient.values() if m["has_lesion"]]
    neg = [m for m in per_patient.values() if not m["has_lesion"]]
    return {"mean_dice": float(np.mean([m["dice"] for m in pos])) if pos else None,
            "found": sum(m["dice"] > 0 for m in pos), "hemorrhage_patients": len(pos),
            "false_positive_patients": sum(m["false_positive_patient"] for m in neg),
            "lesion_free_patients": len(neg),
            "dice": {pid: round(m["dice"], 4) for pid, m in per_patient.items() if m["has_lesion"]}}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, choices=["unet", "two-branch", "two_branch"])
    ap.add_argument("--data", default="../shared/data/ct-ich", type=Path)
    ap.add_argument("--runs", default="runs", type=Path, help="where training.evaluate trained the folds")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only-folds", default=None, help="comma-separated trained folds to score (default: all)")
    ap.add_argument("--postprocessing-from", type=Path, default=None,
                    help="a NAME.json whose threshold / minimum lesion size replace each fold's own")
    ap.add_argument("--crossfit", default=None, metavar="RULES",
                    help="first choose each scored fold's postprocessing on the other scored folds' test "
                         "patients (training.crossfit; rules e.g. size or size,area): fair to a recipe that "
                         "changes the net's calibration, unlike --postprocessing-from")
    ap.add_argument("--max-fp-share", type=fp_share_arg, default=None,
                    help="with --crossfit: choose under this false-positive share, or 'off' (default: the "
                         "model's crossfit_max_fp_share; training.crossfit)")
    ap.add_argument("--conditions", choices=sorted(CONDITION_SETS), default="all",
                    help="windows: only the other export windows, each as is and declared (--export-window); "
                         "exported: only the PNGs as they are (a quick paired comparison of two runs)")
    ap.add_argument("--out", default="reports", type=Path)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    set_threads(args.threads)
    name = args.model.replace("-", "_")
    folds = dataset_folds(args.data, args.folds, args.seed)
    only = [int(f) for f in args.only_folds.split(",")] if args.only_folds else list(range(args.folds))
    if args.crossfit and args.postprocessing_from:
        raise SystemExit("--crossfit and --postprocessing-from exclude each other")
    if args.crossfit:
        choose_cross_fitted(name, args.data, args.runs, folds, tuple(args.crossfit.split(",")), only=set(only),
                            max_fp_share=resolve_max_fp_share(name, args.max_fp_share))
    post = json.loads(args.postprocessing_from.read_text()) if args.postprocessing_from else None
    conditions = CONDITION_SETS[args.conditions]
    scores = score_conditions(name, args.data, args.runs, folds, only, conditions, postprocessing=post)
    summary = {cond: summarize_condition(pp) for cond, pp in scores.items()}
    report = {"model": name, "folds_scored": only, "patients": [pid for i in only for pid in folds[i]],
              "postprocessing": ({"from": str(args.postprocessing_from), "threshold": post["threshold"],
                                  "postprocess": post["postprocess"]} if post else
                                 f"cross-fitted on the other scored folds ({args.crossfit})" if args.crossfit
                                 else "each fold's own"),
              "summary": summary, "per_patient": scores,
              "command": "python -m training.robustness " + " ".join(sys.argv[1:] if argv is None else argv)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}_robustness.json").write_text(json.dumps(report, indent=1))
    for cond, s in summary.items():
        print(f"{cond:40s} mean Dice {s['mean_dice']:.3f}  found {s['found']}/{s['hemorrhage_patients']}  "
              f"false-positive patients {s['false_positive_patients']}/{s['lesion_free_patients']}")


if __name__ == "__main__":
    main()
