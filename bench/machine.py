"""What machine the numbers were taken on, and its float32 matrix-multiply rate (GFLOP/s)."""
from __future__ import annotations

import os
import platform
import sys
import time
from importlib import metadata

import numpy as np

PACKAGES = ("numpy", "onnxruntime", "tensorflow-cpu", "tensorflow", "keras", "scipy", "pillow",
            "flask", "gunicorn", "nibabel")


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The SIMD flags that matter for sgemm speed (avx2, avx512f, amx...)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f in ("avx2", "fma", "avx512f", "avx512_vnni",
                                                            "avx512_bf16", "amx_tile", "amx_bf16"))
    except OSError:
        pass
    return []


def versions() -> dict:
    """Installed versions of the packages that decide the speed (absent ones are left out)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict:
    """CPU model, usable cores, memory, Python and package versions, load average."""
    import psutil

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return {"cpu_model": cpu_model(), "cpu_flags": cpu_flags(), "cores": cores,
            "memory_mb": round(psutil.virtual_memory().total / 2**20),
            "python": sys.version.split()[0], "platform": platform.platform(),
            "packages": versions(), "load_average_at_start": load_average()}


def sgemm_gflops(n: int, repeats: int = 5, budget_s: float = 20.0) -> float:
    """Best float32 (n x n) @ (n x n) rate in GFLOP/s (2 n^3 FLOPs) over ``repeats`` runs
    (fewer when ``budget_s`` seconds are spent), after one warm-up multiply."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=out)
    best, deadline = float("inf"), time.perf_counter() + budget_s
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return 2.0 * n ** 3 / best / 1e9


def machine_gflops(sizes=(2048, 4096), repeats: int = 5) -> dict:
    """sgemm GFLOP/s for each size; ``best`` (the highest) is the rate the floors use."""
    rates = {str(n): round(sgemm_gflops(n, repeats), 1) for n in sizes}
    return {"sizes": rates, "best": max(rates.values()), "threads": "numpy/OpenBLAS default"}
