"""Targets of the performance issue, pass/fail checks and the printed tables."""
from __future__ import annotations

from typing import Optional

from .stats import ratio

MAX_VOLUME_FLOOR_RATIO = 1.5
MAX_VOLUME_MS = 3000.0
MAX_SLICE_FLOOR_RATIO, SLICE_SLACK_MS = 2.0, 20.0
MAX_RSS_MB = 400.0
MAX_COLD_START_S = 3.0
MIN_SPEEDUP, MIN_MEMORY_RATIO = 2.0, 4.0


def _get(data: dict, *keys):
    for key in keys:
        if not isinstance(data, dict) or data.get(key) is None:
            return None
        data = data[key]
    return data


def check(name: str, target: str, measured, passed: Optional[bool], unit: str = "") -> dict:
    """One row: passed is None when the value could not be measured."""
    shown = "n/a" if measured is None else f"{measured:g}{unit}" if isinstance(measured, (int, float)) \
        else str(measured)
    return {"name": name, "target": target, "measured": measured, "shown": shown,
            "pass": passed}


def checks(results: dict) -> list[dict]:
    """Pass/fail of every target from the collected ``results`` (see bench.run)."""
    floors, ours, base = results.get("floors", {}), results.get("service", {}), results.get("baseline", {})
    vol_ms, slice_ms = _get(ours, "volume", "median_ms"), _get(ours, "slice", "median_ms")
    vol_floor, slice_floor = floors.get("volume_floor_ms"), floors.get("slice_floor_ms")
    rows = []
    vol_limit = None if vol_floor is None else min(MAX_VOLUME_FLOOR_RATIO * vol_floor, MAX_VOLUME_MS)
    rows.append(check("volume 512x512x35 POST /segment, median", f"<= {MAX_VOLUME_FLOOR_RATIO}x floor "
                      f"and <= {MAX_VOLUME_MS:g} ms" + (f" (= {vol_limit:.0f} ms)" if vol_limit else ""),
                      vol_ms, None if vol_ms is None or vol_limit is None else vol_ms <= vol_limit, " ms"))
    slice_limit = None if slice_floor is None else MAX_SLICE_FLOOR_RATIO * slice_floor + SLICE_SLACK_MS
    rows.append(check("slice 512x512 PNG POST /segment, median",
                      f"<= {MAX_SLICE_FLOOR_RATIO:g}x floor + {SLICE_SLACK_MS:g} ms"
                      + (f" (= {slice_limit:.0f} ms)" if slice_limit else ""),
                      slice_ms, None if slice_ms is None or slice_limit is None else slice_ms <= slice_limit,
                      " ms"))
    rss = ours.get("peak_rss_mb")
    rows.append(check("peak worker RSS (both models, volume)", f"<= {MAX_RSS_MB:g} MB", rss,
                      None if rss is None else rss <= MAX_RSS_MB, " MB"))
    cold = ours.get("cold_start_s")
    rows.append(check("cold start to first answer", f"<= {MAX_COLD_START_S:g} s", cold,
                      None if cold is None else cold <= MAX_COLD_START_S, " s"))
    for label, key in (("volume", "volume"), ("slice", "slice")):
        speedup = ratio(_get(base, key, "median_ms"), _get(ours, key, "median_ms"))
        rows.append(check(f"speed-up vs baseline ({label})", f">= {MIN_SPEEDUP:g}x", speedup,
                          None if speedup is None else speedup >= MIN_SPEEDUP, "x"))
    memory = ratio(base.get("peak_rss_mb"), ours.get("peak_rss_mb"))
    rows.append(check("memory: baseline peak RSS / ours", f">= {MIN_MEMORY_RATIO:g}x", memory,
                      None if memory is None else memory >= MIN_MEMORY_RATIO, "x"))
    return rows


def table(rows: list[list[str]]) -> str:
    """Left-aligned plain-text table; the first row is the header."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def verdict(passed: Optional[bool]) -> str:
    return "n/a" if passed is None else "PASS" if passed else "FAIL"


def _ms(value) -> str:
    return "n/a" if value is None else f"{value:g}"


def render(results: dict) -> str:
    """The text printed at the end of a run: floors, targets, ours vs baseline, CLI."""
    floors, ours, base = results.get("floors", {}), results.get("service", {}), results.get("baseline", {})
    cli, machine = results.get("cli", {}), results.get("machine", {})
    out = [f"machine: {machine.get('cpu_model')} ({machine.get('cores')} cores), sgemm "
           f"{_get(results, 'gflops', 'best')} GFLOP/s; load at start {machine.get('load_average_at_start')}",
           f"model: {floors.get('model')} ({floors.get('runtime')}), {floors.get('flops_per_slice', 0) / 1e9:.2f} "
           f"GFLOP/slice ({floors.get('flops_source')}); floor slice {floors.get('slice_floor_ms')} ms, "
           f"volume (x{floors.get('volume_slices')}) {floors.get('volume_floor_ms')} ms; weights "
           + ("with cv metrics (trained)" if floors.get("has_cv_metrics") else
              "WITHOUT cv metrics (untrained/test weights?)"), ""]
    out.append(table([["target", "goal", "measured", "result"]]
                     + [[r["name"], r["target"], r["shown"], verdict(r["pass"])] for r in results["checks"]]))
    rows = [["", "ours (ONNX)", "baseline (Keras)", "ratio"]]
    for label, keys in (("slice median ms", ("slice", "median_ms")), ("slice p90 ms", ("slice", "p90_ms")),
                        ("volume median ms", ("volume", "median_ms")), ("volume p90 ms", ("volume", "p90_ms")),
                        ("cold start s", ("cold_start_s",)), ("peak worker RSS MB", ("peak_rss_mb",))):
        a, b = _get(ours, *keys), _get(base, *keys)
        rows.append([label, _ms(a), _ms(b), _ms(ratio(b, a))])
    out += ["", table(rows)]
    light = _get(ours, "volume_no_slice_overlays", "median_ms")
    if light is not None:
        out.append(f"\nvolume without per-slice overlays (slice_overlays=0): median {light:g} ms "
                   f"(n={_get(ours, 'volume_no_slice_overlays', 'n')})")
    tp = ours.get("throughput")
    if tp:
        out.append(f"\nthroughput, {tp['clients']} clients, slice PNG only, {tp['duration_s']} s: "
                   f"{tp['requests_per_s']} req/s ({tp['ok']} ok, {tp['errors']} errors, "
                   f"p90 {tp['latency']['p90_ms']} ms, worker processes seen {tp.get('worker_pids_seen')})")
    if cli:
        rows = [["CLI / pipeline", "slice median ms", "volume median ms"]]
        for label, key in (("CLI process wall (start+load+run+write)", "wall"),
                           ("in-process segment_sources", "inproc")):
            rows.append([label, _ms(_get(cli, key, "slice", "median_ms")),
                         _ms(_get(cli, key, "volume", "median_ms"))])
        out += ["", table(rows)]
        stages = _get(cli, "inproc", "volume", "stage_median_ms")
        if stages:
            out.append("volume stages (in-process, ms): " + ", ".join(f"{k} {v:g}" for k, v in stages.items())
                       + f"; rendering CLI outputs {_get(cli, 'inproc', 'volume', 'render_outputs_median_ms')}")
            floor = floors.get("volume_floor_ms")
            if floor and stages.get("predict"):
                out.append(f"predict stage = {stages['predict'] / floor:.2f} x the volume floor; the "
                           f"rest of the pipeline {stages['total'] - stages['predict']:.0f} ms")
            outside = _get(ours, "volume", "median_ms"), _get(ours, "volume", "pipeline_median_ms")
            if None not in outside:
                out.append(f"service volume request outside the pipeline (rendering, base64/JSON, "
                           f"HTTP): {outside[0] - outside[1]:.0f} ms (median e2e - median pipeline)")
    return "\n".join(out)
