"""A training config's options read with their defaults, and described in words.

The descriptions are recorded in NAME.json's ``training`` section and shown in the model card,
so a weights file says how it was trained. ``tcfg`` is an entry of ``training.configs.TRAINING``.
"""
from __future__ import annotations

from .augment import JITTER_LEVEL_HU, JITTER_WIDTH_HU
from .sampler import POSITIVE_FRACTION


def describe_loss(tcfg: dict) -> str:
    """The loss of a training config, in words (recorded in NAME.json and the model card)."""
    if tcfg.get("dice", "batch") == "per_image":
        return "bce (lesion pixels weighted by pos_weight) + soft dice per lesion image, averaged"
    return "bce (lesion pixels weighted by pos_weight) + soft dice"


def window_jitter(tcfg: dict, config: dict) -> dict | None:
    """The sampler's window re-export augmentation, its ranges completed with the defaults; None
    when the training config has none."""
    jitter = tcfg.get("window_jitter")
    if not jitter:
        return None
    return {"level_hu": JITTER_LEVEL_HU, "width_hu": JITTER_WIDTH_HU, **jitter,
            "source_hu": (config["window"]["level"], config["window"]["width"])}


def positive_fraction(tcfg: dict) -> float:
    """Share of each batch drawn from lesion slices (the sampler's default unless the config says)."""
    return float(tcfg.get("positive_fraction", POSITIVE_FRACTION))


def all_orientations(tcfg: dict) -> bool:
    """``"orientations"`` of a training config: "all" (the 8 flips / rotations, default) or "as_exported"."""
    value = tcfg.get("orientations", "all")
    if value not in ("all", "as_exported"):
        raise SystemExit(f"training config: orientations must be 'all' or 'as_exported', not {value!r}")
    return value == "all"


def describe_augmentation(jitter: dict | None, all_orientations: bool = True) -> str:
    """The augmentation, in words, given the sampler's ``window_jitter`` (None: off) and orientations."""
    window = (f"{jitter['p']:.0%} of the samples re-exported with a window of level "
              f"{jitter['level_hu'][0]:g}-{jitter['level_hu'][1]:g} HU, width {jitter['width_hu'][0]:g}-"
              f"{jitter['width_hu'][1]:g} HU inside the model's window; ") if jitter else ""
    return (("8 flips/90-degree rotations, " if all_orientations else "exported orientation only (no flips or "
             "90-degree rotations), ") + "rotation +-15 deg, zoom 0.85-1.15, shift; " + window
            + "half of the samples: gamma 0.8-1.25, contrast 0.75-1.33, brightness +-0.05, "
              "noise; 25% single-slice (2D) inputs")


def dim_factor(tcfg: dict) -> tuple[float, float]:
    """The range of a dimmed bleed's contrast factor in training config ``tcfg`` (training.paste)."""
    from .paste import DIM_FACTOR

    return tuple(tcfg.get("dim_factor", DIM_FACTOR))


def describe_sampling(tcfg: dict) -> str:
    """The batch sampling of a training config, in words."""
    power = float(tcfg.get("lesion_patient_power", 0.0))
    crop = tcfg.get("crop_size")
    pos = positive_fraction(tcfg)
    return (f"{pos:.0%} lesion slices, {1 - pos:.0%} lesion-free slices per batch; "
            + (f"a patient's lesion slices weighted n^-{power:g} (n = its lesion slices); " if power else "")
            + (f"from step {hard['start']}, every {hard['every']} steps, {hard['fraction']:.0%} of the lesion-free "
               "slices drawn in proportion to the net's false-positive pixels on them (hard negatives); "
               if (hard := tcfg.get("hard_negatives")) else "")
            + (f"from step {hard['start']}, every {hard['every']} steps, {hard['fraction']:.0%} of the lesion "
               "slices drawn in proportion to the share of their bleed the net misses (hard positives); "
               if (hard := tcfg.get("hard_positives")) else "")
            + (f"{paste:.0%} of the lesion samples transplanted into a lesion-free slice where it lands on brain "
                  "(training.paste); "
               if (paste := tcfg.get("paste_fraction")) else "")
            + (f"{dimmed:.0%} of the lesion samples with the bleed's contrast scaled by "
               "{:g}-{:g} (training.paste.dim); ".format(*dim_factor(tcfg))
               if (dimmed := tcfg.get("dim_fraction")) else "")
            + (f"{crop}x{crop} crops around a lesion pixel or inside the head" if crop else "whole slices"))


def recipe_sampler(patients, config: dict, tcfg: dict, seed: int, batch_size: int | None = None):
    """The recipe's BalancedSampler over ``patients`` (training.data.Patient) for model ``config`` and
    training config ``tcfg``; ``batch_size`` overrides ``tcfg["batch_size"]``."""
    from .sampler import BalancedSampler

    return BalancedSampler(patients, int(batch_size or tcfg["batch_size"]), config["context_slices"], seed,
                           crop_size=tcfg.get("crop_size"), lesion_patient_power=tcfg.get("lesion_patient_power", 0.0),
                           window_jitter=window_jitter(tcfg, config), all_orientations=all_orientations(tcfg),
                           paste_fraction=tcfg.get("paste_fraction", 0.0), positive_fraction=positive_fraction(tcfg),
                           dim_fraction=tcfg.get("dim_fraction", 0.0), dim_factor=dim_factor(tcfg))
