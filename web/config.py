"""Service configuration read from the environment (inside ``create_app``, never at import).

Environment variables (all optional):

=========================  =================================================  ==============
variable                   meaning                                            default
=========================  =================================================  ==============
ICH_MODEL_DIR              folder with NAME.json + NAME.weights.h5            model/weights
ICH_DEFAULT_MODEL          model used when a request names none               unet if loaded
ICH_MAX_UPLOAD_MB          largest request body in MiB (all files together)   256
ICH_MAX_VOXELS             largest decoded volume in voxels                   512*512*1024
ICH_MAX_FILES              most files in one upload / members in one zip      2000
ICH_MAX_DECOMPRESSED_MB    cap on zip / gzip expansion in MiB                 1024
ICH_MAX_CONCURRENT         segmentations run at once per worker               1
ICH_BUSY_TIMEOUT_S         how long a request waits for a free slot (s)       90
=========================  =================================================  ==============
"""
from __future__ import annotations

import math
import os
from dataclasses import replace
from typing import Mapping

from model.types import Limits

MIB = 1024 * 1024
FORM_PARTS_SLACK = 16   # non-file form fields (model, spacing, ...) on top of ICH_MAX_FILES


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


def _number(env: Mapping[str, str], name: str, default: float, *, integer: bool) -> float:
    """Positive number from ``env[name]``; ``default`` when unset or empty."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a positive {'integer' if integer else 'number'}, "
                          f"got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def limits_from_env(env: Mapping[str, str]) -> Limits:
    """``model.types.Limits`` with the ICH_MAX_* overrides applied (sizes given in MiB)."""
    base = Limits()
    return replace(
        base,
        max_upload_bytes=int(_number(env, "ICH_MAX_UPLOAD_MB",
                                     base.max_upload_bytes / MIB, integer=False) * MIB),
        max_voxels=int(_number(env, "ICH_MAX_VOXELS", base.max_voxels, integer=True)),
        max_files=int(_number(env, "ICH_MAX_FILES", base.max_files, integer=True)),
        max_decompressed_bytes=int(_number(env, "ICH_MAX_DECOMPRESSED_MB",
                                           base.max_decompressed_bytes / MIB,
                                           integer=False) * MIB),
    )


def config_from_env(env: Mapping[str, str] | None = None) -> dict:
    """Flask config keys derived from the environment (``os.environ`` by default)."""
    env = os.environ if env is None else env
    limits = limits_from_env(env)
    return {
        "MODEL_DIR": env.get("ICH_MODEL_DIR", "").strip() or "model/weights",
        "DEFAULT_MODEL": env.get("ICH_DEFAULT_MODEL", "").strip() or None,
        "LIMITS": limits,
        "MAX_CONCURRENT": int(_number(env, "ICH_MAX_CONCURRENT", 1, integer=True)),
        "BUSY_TIMEOUT_S": _number(env, "ICH_BUSY_TIMEOUT_S", 90.0, integer=False),
    }


def request_limits(limits: Limits) -> dict:
    """Werkzeug request-parsing limits matching the pipeline ``limits``."""
    return {
        "MAX_CONTENT_LENGTH": limits.max_upload_bytes,
        "MAX_FORM_PARTS": limits.max_files + FORM_PARTS_SLACK,
    }
