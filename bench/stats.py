"""Small statistics helpers for latency samples (seconds in, milliseconds out)."""
from __future__ import annotations

import math
from typing import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100) with linear interpolation between order statistics
    (numpy's default method). Raises ValueError for an empty sequence or q outside [0, 100]."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q}")
    ordered = sorted(float(v) for v in values)
    position = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize_s(samples_s: Sequence[float]) -> dict:
    """{n, median_ms, p90_ms, min_ms, max_ms} of latencies given in seconds; n=0 when empty."""
    if not samples_s:
        return {"n": 0, "median_ms": None, "p90_ms": None, "min_ms": None, "max_ms": None}
    ms = [1000.0 * s for s in samples_s]
    return {"n": len(ms), "median_ms": round(percentile(ms, 50), 1),
            "p90_ms": round(percentile(ms, 90), 1), "min_ms": round(min(ms), 1),
            "max_ms": round(max(ms), 1)}


def ratio(numerator, denominator) -> float | None:
    """numerator / denominator rounded to 2 decimals, None when either is missing or zero."""
    if numerator is None or denominator in (None, 0):
        return None
    return round(float(numerator) / float(denominator), 2)
