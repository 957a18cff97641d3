"""Write model/weights/MODEL_CARD.md and reports/cv_table.md from the CV reports and weight JSONs.

    python -m training.report [--weights model/weights] [--reports reports]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from model.postprocess import TYPICAL_SLICE_MM, central_slab_fraction

from .cv_tables import NAMES, _fmt, cv_reports, cv_table, per_patient_lines

BASELINE_DICE = 0.31  # Hssayeni et al. 2020, U-Net, 5-fold patient-level CV on this dataset


def accuracy_caveat(reports: Path) -> str:
    """The model-card bullet on how good the models are, from the measured CV reports."""
    dices, minutes, held_out = {}, [], False
    for name, report in cv_reports(reports).items():
        if report is None:
            continue
        held_out |= not cross_fitted(report)
        dices[name] = report["summary"]["mean_dice"]
        durations = [c.get("duration_s") for c in report.get("fold_choices", []) if c.get("duration_s")]
        if durations:
            steps = report["fold_choices"][0].get("steps")
            lo, hi = f"{min(durations) / 60:.0f}", f"{max(durations) / 60:.0f}"
            minutes.append(f"{name} {steps} steps, {lo if lo == hi else lo + '-' + hi} min per fold")
    if not dices:
        return "- **Not cross-validated.** No CV report was found; accuracy is unknown."
    above = {name: dice >= BASELINE_DICE for name, dice in dices.items()}
    verdict = ("below" if not any(above.values()) else "at or above" if all(above.values()) else
               ", ".join(f"{name} {'at or above' if a else 'below'}" for name, a in above.items()))
    parts = ", ".join(f"{name} {_fmt(dice)}" for name, dice in dices.items())
    return (f"- **Weak models.** Mean CV Dice {parts}: {verdict} the published baseline of this "
            f"dataset ({BASELINE_DICE}) and far from a clinical tool; many bleeds are missed entirely (see the "
            f"per-patient lines above), above all those barely brighter than the brain. The limits were "
            f"training time ({'; '.join(minutes) or 'see the JSON'}, on a 2-core CPU) and the few "
            f"patients there are to learn from and to choose postprocessing on "
            f"({'~10 per validation split' if held_out else '29 bleeds in all, 48 patients per fold'}). "
            f"Treat a negative result as \"not found\", never as \"no bleed\".")


def scaling_line(reports: Path) -> str:
    """A sentence on what more network and training did (reports/experiments/unet_gpu_scale.json), or ''."""
    path = Path(reports) / "experiments" / "unet_gpu_scale.json"
    results = json.loads(path.read_text()).get("results") if path.exists() else None
    if not results:
        return ""
    big, base = results["scaled"], results["runs_base (comparison)"]
    paired = results["paired_scaled_minus_runs_base"]
    lo, hi = paired["interval_95"]
    return (f" More network and training lift it: the U-Net 3x wider and trained on ~3x the samples (~27x the compute, on a GPU) scored "
            f"{_fmt(big['mean_dice'])} with {big['bleeds_found']} of 29 bleeds found and {big['false_positive_patients']} "
            f"of 31 false-positive patients, against {_fmt(base['mean_dice'])}, {base['bleeds_found']} and "
            f"{base['false_positive_patients']} for the base-8 recipe retrained on this CPU (paired +{paired['mean_dice']:.3f}, 95% {lo:.3f} to "
            f"{hi:.3f}; `reports/experiments/unet_gpu_scale.json`), but it does not train in 2 hours on this CPU.")


CROSS_FITTED = ("each fold trains on all of its 48 patients for the fixed step count, as the shipped "
                "model does on all 60, and its threshold / size is the {choice} on the "
                "other four folds' out-of-fold predictions (cross-fitted: `training.crossfit`; the test fold's "
                "own patients never influence it)")
HELD_OUT = ("each fold holds out 20% of its patients for early stopping (the best-scoring checkpoint) and "
            "for the choice (of the checkpoint's threshold / size grid, the point nearest a threshold of 0.5 "
            "within 0.02 of its best score)")


def cross_fitted(report: dict) -> bool:
    from .crossfit import POOLED

    return (report.get("chosen") or {}).get("chosen_on") == POOLED


def fp_limit(report: dict) -> float | None:
    """The false-positive share a cross-fitted choice was made under (None: the selection score)."""
    return (report.get("chosen") or {}).get("max_fp_share")


def _by_protocol(reports: Path) -> list[tuple[bool, float | None, str]]:
    """(cross-fitted?, false-positive limit, "unet and two_branch") per CV protocol in use, cross-fitted first."""
    groups: dict[tuple, list[str]] = {}
    for name, r in cv_reports(reports).items():
        if r is not None:
            groups.setdefault((cross_fitted(r), fp_limit(r)), []).append(name)
    order = sorted(groups, key=lambda k: (k[0], k[1] is not None, k[1] or 0.0), reverse=True)
    return [(crossfit, limit, " and ".join(groups[crossfit, limit])) for crossfit, limit in order]


def _flagging(limit: float) -> str:
    return f"flagging at most {limit:.1%} of the lesion-free patients"


def protocol_lines(reports: Path) -> str:
    """One bullet per CV protocol in use: how those models' folds trained and chose postprocessing."""
    def text(crossfit: bool, limit: float | None) -> str:
        if not crossfit:
            return HELD_OUT
        choice = ("best-scoring point of the grid" if limit is None else
                  f"point of the grid with the highest mean Dice among those {_flagging(limit)} (the target's 2 of 31)")
        return CROSS_FITTED.format(choice=choice)
    return "\n".join(f"- {names}: {text(crossfit, limit)}." for crossfit, limit, names in _by_protocol(reports))


def shipped_choice(reports: Path) -> str:
    """How each shipped model's threshold / minimum size was chosen from its CV report."""
    def how(crossfit: bool, limit: float | None) -> str:
        if not crossfit:
            return "the median of the five folds' validation choices"
        under = f" {_flagging(limit)}" if limit is not None else ""
        return f"the best on all 60 patients' out-of-fold predictions{under}"
    return "; ".join(f"{names}, {how(crossfit, limit)}" for crossfit, limit, names in _by_protocol(reports)) \
        or "not cross-validated"


def _cycles(t: dict) -> str:
    """' (2 cycles of 2000 steps, peak lr 0.002 then x0.5 per cycle)' for a warm-restart schedule."""
    if not t.get("lr_cycle_steps") or not t.get("steps"):
        return f" (peak lr {t['learning_rate']})" if t.get("learning_rate") else ""
    lengths, length, left = [], float(t["lr_cycle_steps"]), int(t["steps"])
    while left > 0:
        lengths.append(min(left, int(round(length))))
        left, length = left - lengths[-1], length * float(t.get("lr_cycle_mul") or 1.0)
    sizes = f"{len(lengths)} cycles of {lengths[0]} steps" if len(set(lengths)) == 1 else \
        f"{len(lengths)} cycles of {', '.join(map(str, lengths))} steps"
    return f" ({sizes}, peak lr {t.get('learning_rate')} then x{t.get('lr_cycle_decay')} per cycle)"


def postprocessing_text(config: dict) -> str:
    """The postprocessing sentence of a model config (size rule, or core rule when set)."""
    p = config["postprocess"]
    text = (f"threshold {config['threshold']}, lesions smaller than {p['min_lesion_pixels']} voxels (spacing "
            f"unknown) or {p['min_lesion_mm3']} mm³ (spacing known) removed")
    if p.get("core_threshold") is not None:
        text += (f", and lesions with fewer than {p['min_core_pixels']} voxels / {p['min_core_mm3']} mm³ "
                 f"of probability >= {p['core_threshold']}")
    if p.get("min_lesion_area_pixels"):
        text += (f", and lesions whose largest single-slice cross-section is under {p['min_lesion_area_pixels']} "
                 f"pixels / {p['min_lesion_area_mm2']} mm² (thin structures running over many slices)")
    return text + ", holes filled."


def model_section(weights: Path, name: str) -> str:
    path = weights / f"{name}.json"
    if not path.exists():
        return f"### {name}\nNo weights shipped.\n"
    c = json.loads(path.read_text())
    t = c.get("training", {})
    crops = f"{t['crop_size']} px crops" if t.get("crop_size") else "whole slices"
    note = f"; {t['timing_note']}" if t.get("timing_note") else ""   # e.g. a CPU shared with other runs
    return (f"### {name}\n"
            f"- Architecture: `{c['architecture']}` {json.dumps(c.get('arch_params', {}))}, input "
            f"{c['input_size'][0]}x{c['input_size'][1]}x{c['in_channels']} (the slice and its neighbours, "
            f"{c['context_slices']} on each side"
            f"{', and the slice mirrored about the head midline' if c.get('mirror_channel') else ''}), window level {c['window']['level']} / width {c['window']['width']} HU.\n"
            f"- Postprocessing: {postprocessing_text(c)}\n"
            f"- Training: {t.get('steps')} steps of {t.get('batch_size')} samples ({crops}), "
            f"{t.get('optimizer')}{_cycles(t)}, {t.get('loss')}, {len(t.get('train_patients', []))} patients, "
            f"{t.get('device')} ({t.get('dtype_policy', 'float32')}), BCE lesion weight {t.get('pos_weight', 1.0)}, "
            f"{_fmt((t.get('duration_s') or 0) / 60, 1)} min on a 2-core CPU "
            f"({t.get('cpu_threads') or 'all'} TensorFlow thread(s){note}), seed {t.get('seed')}.\n"
            f"- Sampling: {t.get('sampling')}.\n"
            f"- Augmentation: {t.get('augmentation')}.\n"
            f"- Orientation: {orientation_text(c)}\n")


def orientation_text(config: dict) -> str:
    if config.get("orientation", "any") == "any":
        return "trained on all 8 flips / quarter turns; uploads are used as they are."
    return ("trained only in the ct-ich PNGs' own frame (face toward the right edge); the pipeline turns every "
            "upload into it and the mask back: from the file's geometry (NIfTI with an orientation, axial DICOM) "
            "or, for PNG/JPG and DICOM without orientation tags, by the orientation estimator (below).")


def estimator_lines(weights: Path) -> str:
    """Model-card line on the shipped orientation estimator's measured accuracy, if one is shipped."""
    from model.orientation import load_estimator

    estimator = load_estimator(weights)
    metrics = (estimator.metrics or {}) if estimator is not None else {}
    cv = metrics.get("cross_validation")
    if not cv:
        return ""
    return (f"\n- Orientation estimator (PNG/JPG, DICOM without orientation tags), patient-level "
            f"{metrics.get('folds')}-fold CV on ct-ich with every held-out patient shown "
            f"in all 8 orientations (`python -m training.orientation`): {cv['volumes_right']} of {cv['volumes']} "
            f"stacks turned right; single slices {cv['single_slice_accuracy']:.1%} (a single-slice upload can be "
            "turned wrong: the result warns when the estimate is uncertain). A left-right mirrored upload is not "
            "detected.")


CARD_TEMPLATE = Path(__file__).with_name("model_card_template.md")  # str.format placeholders


def shipped_min_mm3(weights: Path) -> dict[str, float]:
    """{model name: min_lesion_mm3} of each shipped model's JSON in ``weights``."""
    return {name: json.loads(path.read_text())["postprocess"]["min_lesion_mm3"]
            for name in NAMES if (path := weights / f"{name}.json").exists()}


def min_sizes(weights: Path) -> str:
    """'unet 3.2 mL, two_branch 0.8 mL': each shipped model's minimum lesion volume (spacing known)."""
    return ", ".join(f"{name} {mm3 / 1000:.1f} mL" for name, mm3 in shipped_min_mm3(weights).items()) or "none shipped"


def single_slice_shares(weights: Path) -> str:
    """'unet 49%, two_branch 49% of it': the share of each shipped minimum lesion volume that a
    single 5 mm slice must show (model.postprocess.single_slice_settings)."""
    parts = [f"{name} {central_slab_fraction(mm3, TYPICAL_SLICE_MM):.0%}" for name, mm3 in shipped_min_mm3(weights).items()]
    return ", ".join(parts) + " of it" if parts else "no model shipped"


def robustness_lines(reports: Path) -> str:
    """Model-card lines from reports/NAME_robustness.json (training.robustness), where measured."""
    lines = []
    for name in NAMES:
        path = reports / f"{name}_robustness.json"
        if not path.exists():
            continue
        r = json.loads(path.read_text())
        s = next(iter(r["summary"].values()))
        recipe = f" on {r['recipe']}" if r.get("recipe") else ""
        lines += [f"- Other exports, measured for {name}{recipe} (`{r['command']}`): held-out patients of CV folds "
                  f"{', '.join(map(str, r['folds_scored']))} ({s['hemorrhage_patients']} bleeds, "
                  f"{s['lesion_free_patients']} lesion-free), the same trained folds and postprocessing, "
                  "the PNGs re-exported as below:", "",
                  "  | input | mean Dice | bleeds found | false-positive patients |", "  |---|---|---|---|"]
        lines += [f"  | {cond} | {_fmt(c['mean_dice'])} | {c['found']} of {c['hemorrhage_patients']} | "
                  f"{c['false_positive_patients']} of {c['lesion_free_patients']} |" for cond, c in r["summary"].items()]
    return "".join("\n" + line for line in lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="model/weights", type=Path)
    ap.add_argument("--reports", default="reports", type=Path)
    args = ap.parse_args(argv)
    table = cv_table(args.reports)
    args.reports.mkdir(parents=True, exist_ok=True)
    (args.reports / "cv_table.md").write_text(table + "\n")
    models = "\n".join(model_section(args.weights, n) for n in NAMES)
    (args.weights / "MODEL_CARD.md").write_text(
        CARD_TEMPLATE.read_text().format(table=table, models=models, per_patient=per_patient_lines(args.reports),
                    weak=accuracy_caveat(args.reports) + scaling_line(args.reports), min_sizes=min_sizes(args.weights),
                    single_slice_shares=single_slice_shares(args.weights),
                    robustness=robustness_lines(args.reports), estimator=estimator_lines(args.weights),
                    protocols=protocol_lines(args.reports), shipped_choice=shipped_choice(args.reports)))
    print(table)


if __name__ == "__main__":
    main()
