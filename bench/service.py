"""End-to-end measurements of one HTTP service (ours or the baseline) served by gunicorn.

All traffic goes to 127.0.0.1. Every loop is bounded by a request count AND a time budget.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .client import Reply, post_files
from .server import RssPoller, Server, worker_hwm_mb, worker_rss_mb
from .stats import percentile, summarize_s


class BenchError(RuntimeError):
    """A measurement could not be taken (server did not start, requests failed)."""


@dataclass
class Plan:
    """How much to measure: latency requests per input, warm-ups, throughput clients/duration."""

    requests: int = 12
    warmup: int = 2
    budget_s: float = 150.0          # per latency series
    clients: int = 8
    throughput_s: float = 30.0
    cold_start_timeout_s: float = 180.0
    fields: dict = field(default_factory=dict)   # extra form fields of every POST


def server_ms(reply: Reply) -> float | None:
    """The pipeline's own total time (ms) from a JSON answer's ``timings_ms.total``, if any."""
    try:
        return float(json.loads(reply.body)["timings_ms"]["total"])
    except (ValueError, KeyError, TypeError):
        return None


def cold_start(server: Server, files: list, plan: Plan) -> float:
    """Seconds from starting ``server`` until the first POST of ``files`` answers 200."""
    server.start()
    deadline = server.started_at + plan.cold_start_timeout_s
    while time.perf_counter() < deadline:
        if not server.alive():
            raise BenchError(f"{server.app} exited during start-up:\n{server.log_tail()}")
        reply = post_files(server.port, files, plan.fields, timeout_s=plan.cold_start_timeout_s)
        if reply.status == 200:
            return time.perf_counter() - server.started_at
        if reply.status != 0:
            raise BenchError(f"{server.app}: first POST /segment answered {reply.status}: "
                             f"{reply.body[:300]!r}\n{server.log_tail()}")
        time.sleep(0.02)
    raise BenchError(f"{server.app} did not answer within {plan.cold_start_timeout_s:.0f} s:\n"
                     f"{server.log_tail()}")


def latency(port: int, files: list, plan: Plan) -> dict:
    """Sequential POSTs: ``plan.warmup`` unmeasured, then up to ``plan.requests`` measured
    (fewer when ``plan.budget_s`` runs out). Returns the summary, errors and server time."""
    for _ in range(plan.warmup):
        post_files(port, files, plan.fields)
    samples, server_side, errors, size = [], [], [], None
    deadline = time.perf_counter() + plan.budget_s
    for _ in range(plan.requests):
        reply = post_files(port, files, plan.fields)
        if reply.status == 200:
            samples.append(reply.elapsed_s)
            server_side.append(server_ms(reply))
            size = len(reply.body)
        else:
            errors.append(f"{reply.status} {reply.error or reply.body[:120]!r}")
        if time.perf_counter() > deadline:
            break
    known = [v for v in server_side if v is not None]
    return {**summarize_s(samples), "errors": errors[:5], "error_count": len(errors),
            "pipeline_median_ms": round(percentile(known, 50), 1) if known else None,
            "response_bytes": size}


def throughput(port: int, files: list, plan: Plan) -> dict:
    """``plan.clients`` threads POST ``files`` back to back for ``plan.throughput_s`` seconds."""
    lock, samples, errors = threading.Lock(), [], []
    start = time.perf_counter()
    deadline = start + plan.throughput_s

    def client() -> None:
        while time.perf_counter() < deadline:
            reply = post_files(port, files, plan.fields)
            with lock:
                (samples if reply.status == 200 else errors).append(
                    reply.elapsed_s if reply.status == 200 else reply.status)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(plan.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=plan.throughput_s + 130.0)
    elapsed = time.perf_counter() - start
    return {"clients": plan.clients, "duration_s": round(elapsed, 1), "ok": len(samples),
            "errors": len(errors), "error_statuses": sorted(set(errors))[:5],
            "requests_per_s": round(len(samples) / elapsed, 2), "latency": summarize_s(samples)}


def memory(server: Server, poller: RssPoller) -> dict:
    """Peak worker RSS (MB): the polled maximum, or the kernel's high-water mark (VmHWM) when
    that is higher, plus the RSS right now."""
    hwm = worker_hwm_mb(server)
    return {"peak_rss_polled_mb": round(poller.peak_mb, 1), "peak_rss_hwm_mb": hwm,
            "peak_rss_mb": round(max(poller.peak_mb, hwm or 0.0), 1), "rss_samples": poller.samples,
            "rss_after_requests_mb": worker_rss_mb(server)}


def extras(server: Server, inputs: dict, plan: Plan, progress) -> dict:
    """Our service only: the volume without per-slice overlays, and throughput (slice only)."""
    light = replace(plan, requests=max(2, plan.requests // 3), warmup=0,
                    fields={**plan.fields, "slice_overlays": "0"})
    out = {"volume_no_slice_overlays": latency(server.port, inputs["volume"], light)}
    progress(f"  volume, slice_overlays=0: median {out['volume_no_slice_overlays']['median_ms']} ms")
    with RssPoller(server) as poller:
        out["throughput"] = throughput(server.port, inputs["slice"], plan)
    out["throughput"].update(worker_pids_seen=len(poller.pids), peak_rss_mb=round(poller.peak_mb, 1))
    progress(f"  throughput {out['throughput']['requests_per_s']} req/s")
    return out


def measure_server(app: str, env: dict, inputs: dict, plan: Plan, log_path: Path,
                   with_extras: bool = True, progress=print) -> dict:
    """Cold start, slice and volume latency, peak worker RSS and (``with_extras``) throughput.

    The peak RSS covers the worker's life up to the end of the volume requests (start-up, slice
    and volume requests). inputs: {"slice": [(name, bytes)], "volume": [(name, bytes)]}.
    """
    server = Server(app, env, log_path)
    result: dict = {"app": app}
    try:
        result["cold_start_s"] = round(cold_start(server, inputs["slice"], plan), 2)
        progress(f"  cold start {result['cold_start_s']:.2f} s")
        result["rss_after_start_mb"] = worker_rss_mb(server)
        with RssPoller(server) as poller:
            result["slice"] = latency(server.port, inputs["slice"], plan)
            progress(f"  slice  median {result['slice']['median_ms']} ms")
            result["volume"] = latency(server.port, inputs["volume"], plan)
            progress(f"  volume median {result['volume']['median_ms']} ms")
        result.update(memory(server, poller))
        if with_extras:
            result.update(extras(server, inputs, plan, progress))
    finally:
        server.stop()
    return result
