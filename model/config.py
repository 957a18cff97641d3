"""Model configs: ``NAME.json`` next to ``NAME.weights.h5`` (and ``NAME.onnx``) in a weights dir.

A config says how to build the network (``architecture``, ``arch_params``), how to prepare its
input (``input_size`` [rows, cols], ``in_channels``, ``context_slices``, ``mirror_channel``,
``window`` in HU) and how to turn its output into a mask (``threshold``, ``postprocess``).
Nothing here imports TensorFlow, Keras or ONNX Runtime.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from .errors import InputError, ModelUnavailableError, PipelineError

KNOWN_MODELS = ("unet", "two_branch")
ALIASES = {"two-branch": "two_branch", "twobranch": "two_branch", "u-net": "unet"}
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
POSTPROCESS_DEFAULTS = {"min_lesion_mm3": 50.0, "min_lesion_pixels": 50, "fill_holes": True}
TRAIN_HINT = "train them with `python -m training.train --model {name}`"


def canonical_name(name: str) -> str:
    """'two-branch' -> 'two_branch'; other names are lower-cased and returned unchanged."""
    key = str(name).strip().lower()
    return ALIASES.get(key, key)


def config_path(weights_dir: str | Path, name: str) -> Path:
    return Path(weights_dir) / f"{name}.json"


def weights_path(weights_dir: str | Path, name: str) -> Path:
    return Path(weights_dir) / f"{name}.weights.h5"


def onnx_path(weights_dir: str | Path, name: str) -> Path:
    return Path(weights_dir) / f"{name}.onnx"


def available_models(weights_dir: str | Path) -> list[str]:
    """Names of the models in ``weights_dir`` that have a config and trained weights (.h5 or .onnx)."""
    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        return []
    names = []
    for json_file in sorted(weights_dir.glob("*.json")):
        name = json_file.stem
        if weights_path(weights_dir, name).is_file() or onnx_path(weights_dir, name).is_file():
            names.append(name)
    return names


def unavailable(weights_dir: str | Path, name: str) -> ModelUnavailableError:
    """The error for a model without trained weights (never fall back to random weights)."""
    return ModelUnavailableError(
        f"no trained weights for model '{name}' in {weights_dir}; " + TRAIN_HINT.format(name=name),
        detail=f"expected {weights_path(weights_dir, name).name} and {config_path(weights_dir, name).name}")


def unknown_model(name: str, available: list[str]) -> InputError:
    listed = ", ".join(available) if available else "none (no trained weights found)"
    return InputError(f"unknown model {name!r}; available models: {listed}",
                      stage="read", status=400, detail="use 'unet' or 'two-branch'")


def load_config(weights_dir: str | Path, name: str) -> dict:
    """Read and validate ``weights_dir/NAME.json``.

    Raises ModelUnavailableError when the file is missing and PipelineError (500) when it is
    malformed: a broken config is a deployment problem, not the user's.
    """
    path = config_path(weights_dir, name)
    if not path.is_file():
        raise unavailable(weights_dir, name)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PipelineError(f"cannot read model config {path}: {exc}", stage="predict") from exc
    return validate_config(config, source=str(path), name=name)


def _require(condition: bool, message: str, source: str) -> None:
    if not condition:
        raise PipelineError(f"invalid model config {source}: {message}", stage="predict")


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and value > 0


def expected_channels(config: dict) -> int:
    """Network input channels: the slice and its 2 * context_slices neighbours, plus the slice
    mirrored about the head's midline when ``mirror_channel`` (``model.symmetry``)."""
    return 2 * int(config.get("context_slices", 0)) + 1 + int(bool(config.get("mirror_channel", False)))


def validate_config(config: Any, *, source: str = "config", name: str | None = None) -> dict:
    """Check the fields the pipeline relies on and fill defaults; returns a new dict."""
    _require(isinstance(config, dict), "top level must be an object", source)
    config = dict(config)
    config.setdefault("name", name)
    config.setdefault("version", "unknown")
    config.setdefault("context_slices", 0)
    config.setdefault("mirror_channel", False)
    config.setdefault("in_channels", expected_channels(config))
    config.setdefault("threshold", 0.5)
    config.setdefault("metrics", {})
    config["window"] = {"level": 40.0, "width": 120.0, **config.get("window", {})}
    config["postprocess"] = {**POSTPROCESS_DEFAULTS, **config.get("postprocess", {})}
    _require(config.get("architecture") in KNOWN_MODELS,
             f"architecture must be one of {KNOWN_MODELS}", source)
    size = config.get("input_size")
    _require(isinstance(size, list) and len(size) == 2 and all(_positive(v) for v in size),
             "input_size must be [rows, cols]", source)
    context = config["context_slices"]
    _require(isinstance(context, int) and context >= 0, "context_slices must be an int >= 0", source)
    _require(isinstance(config["mirror_channel"], bool), "mirror_channel must be true or false", source)
    _require(config["in_channels"] == expected_channels(config),
             "in_channels must equal 2 * context_slices + 1 (+ 1 with mirror_channel)", source)
    _require(isinstance(config["threshold"], (int, float)) and 0 < config["threshold"] < 1,
             "threshold must be in (0, 1)", source)
    _require(_positive(config["window"]["width"]), "window.width must be > 0", source)
    extra = config.get("arch_params", {}).get("extra_windows", [])
    _require(isinstance(extra, list) and all(isinstance(w, dict) and _positive(w.get("width"))
                                             and isinstance(w.get("level"), (int, float)) for w in extra),
             "arch_params.extra_windows must be a list of {level, width > 0} in HU", source)
    post = config["postprocess"]
    _require(isinstance(post["min_lesion_mm3"], (int, float)) and post["min_lesion_mm3"] >= 0,
             "postprocess.min_lesion_mm3 must be >= 0", source)
    _require(isinstance(post["min_lesion_pixels"], int) and post["min_lesion_pixels"] >= 0,
             "postprocess.min_lesion_pixels must be an int >= 0", source)
    if post.get("core_threshold") is not None:
        core = post["core_threshold"]
        _require(isinstance(core, (int, float)) and config["threshold"] <= core < 1,
                 "postprocess.core_threshold must be in [threshold, 1)", source)
        _require(isinstance(post.get("min_core_pixels"), int) and post["min_core_pixels"] >= 0
                 and isinstance(post.get("min_core_mm3"), (int, float)) and post["min_core_mm3"] >= 0,
                 "postprocess.core_threshold needs min_core_pixels (int >= 0) and min_core_mm3 (>= 0)",
                 source)
    return config


# The model served when a request names none, in order of preference among those loaded.
# The U-Net first: its CV mean Dice is below the two-branch CNN's (0.284 vs 0.335 since stop 57, paired
# -0.051, 95% -0.093 to -0.015), but on PNGs exported in an unstated narrower window (L40/W80, a common
# brain window) it flags far fewer lesion-free patients (5 of 31 against 23; reports/unet_robustness.json,
# reports/two_branch_robustness.json). Picking by CV Dice alone would trade false bleeds on users'
# exports for Dice on the training export.
DEFAULT_PREFERENCE = ("unet", "two_branch")


def default_model(names, wanted: str | None = None) -> str:
    """The model served when a request names none: ``wanted`` (e.g. ICH_DEFAULT_MODEL) when given,
    else the preferred one among ``names`` (loaded models); "unet" when none is loaded."""
    if wanted:
        return canonical_name(wanted)
    names = {canonical_name(name) for name in names}
    return next((name for name in DEFAULT_PREFERENCE if name in names), "unet")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def update_config(weights_dir: str | Path, name: str, **fields: Any) -> dict:
    """Merge ``fields`` into ``weights_dir/NAME.json`` (top level) and write it back."""
    path = config_path(weights_dir, name)
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(fields)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return config
