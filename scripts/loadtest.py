"""Load test of POST /segment on a local gunicorn: throughput, latency, errors, worker memory.

    .venv/bin/python scripts/loadtest.py [--clients 8] [--duration 300] [--out load.json]
                                         [--url http://127.0.0.1:8000 [--pid MASTER_PID]]
                                         [--weights-dir model/weights] [--workers 1]
                                         [--max-requests N]

Without --url it starts ``gunicorn -c gunicorn.conf.py "app:create_app()"`` on 127.0.0.1 (a
free port) with the repository's settings and stops it at the end; with --url it targets a
running server, which must be on a loopback address (anything else is refused). N client
threads send, for --duration seconds, a mix of valid uploads (a 256x256 PNG slice, a
128x128x16 NIfTI volume) and invalid ones (truncated PNG, text named .nii, GIF, a header
claiming 2048^3 voxels, unknown model, bad spacing, no file), each with its expected status.
A probe thread times GET /health every 5 s. Worker RSS (sum over the master's child
processes, psutil) is sampled every 2 s. Only the standard library and psutil are used;
the request mix is made in ``loadtest_inputs.py``. Exit status 0 when the run completed (read
the figures: 503s mean the server was busy or had no model), 1 on setup errors.
"""
from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadtest_inputs import multipart, request_kinds  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


# ---------- server ----------

def loopback_target(url: str) -> tuple[str, int]:
    """(host, port) of ``url``; SystemExit when the host is not a loopback address."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise SystemExit(f"error: --url must be http://HOST:PORT on this machine, got {url!r}")
    port = parts.port or 80
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port)}
    except socket.gaierror:
        raise SystemExit(f"error: cannot resolve {parts.hostname!r}") from None
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise SystemExit(f"error: refusing to load-test {parts.hostname!r}: only loopback "
                         "addresses (127.0.0.1, ::1, localhost) are allowed")
    return parts.hostname, port


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args, log_path: Path) -> tuple[subprocess.Popen, int]:
    """gunicorn with the repository's config on 127.0.0.1:<free port>, own process group."""
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "PYTHONUNBUFFERED": "1",
           "WEB_CONCURRENCY": str(args.workers), "ICH_MODEL_DIR": str(args.weights_dir),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py")]
    if args.max_requests is not None:
        command += ["--max-requests", str(args.max_requests)]
    command.append("app:create_app()")
    log = open(log_path, "ab")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    return process, port


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (graceful), SIGKILL after 30 s."""
    for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


def master_pid_on(port: int) -> int | None:
    """PID of the gunicorn master listening on ``port`` (psutil may report a worker, which
    shares the socket: then its gunicorn parent is the master)."""
    try:
        pids = [c.pid for c in psutil.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid]
    except psutil.AccessDenied:
        return None
    for pid in pids:
        try:
            parent = psutil.Process(pid).parent()
            if parent is not None and "gunicorn" in " ".join(parent.cmdline()):
                return parent.pid
            return pid
        except psutil.Error:
            continue
    return None


def workers_rss(master: int | None) -> tuple[int, list[int]]:
    """(sum of RSS bytes, PIDs) over the master's child processes (the gunicorn workers)."""
    if master is None:
        return 0, []
    total, pids = 0, []
    try:
        children = psutil.Process(master).children(recursive=True)
    except psutil.NoSuchProcess:
        return 0, []
    for child in children:
        try:
            total += child.memory_info().rss
            pids.append(child.pid)
        except psutil.NoSuchProcess:
            continue
    return total, pids


# ---------- load ----------

def send(host: str, port: int, method: str, path: str, body: bytes = b"",
         content_type: str | None = None, timeout_s: float = 180.0) -> tuple[int, float]:
    """One request on a fresh connection -> (status, seconds); status 0 = connection failed."""
    start = time.perf_counter()
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        headers = {"Content-Type": content_type} if content_type else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - start
    except (OSError, http.client.HTTPException):
        return 0, time.perf_counter() - start
    finally:
        connection.close()


def wait_healthy(host: str, port: int, timeout_s: float, process=None) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit("error: the server exited while starting (see its log)")
        if send(host, port, "GET", "/health", timeout_s=5)[0] == 200:
            return
        time.sleep(1)
    raise SystemExit(f"error: /health did not answer 200 within {timeout_s:.0f} s")


def client_loop(host, port, kinds, deadline, seed, results, lock) -> None:
    rng = random.Random(seed)
    weights = [k["weight"] for k in kinds]
    while time.time() < deadline:
        kind = rng.choices(kinds, weights)[0]
        content_type, body = multipart(kind["files"], kind["fields"])
        status, seconds = send(host, port, "POST", "/segment", body, content_type)
        with lock:
            results.append((kind["kind"], kind["expect"], status, seconds, time.time()))


def sample_memory(master, started, stop, samples, interval_s=2.0) -> None:
    """Append (seconds since start, RSS bytes, worker PIDs) every ``interval_s``."""
    while not stop.is_set():
        rss, pids = workers_rss(master)
        samples.append((time.time() - started, rss, pids))
        stop.wait(interval_s)


def probe_health(host, port, stop, latencies, interval_s=5.0) -> None:
    while not stop.wait(interval_s):
        latencies.append(send(host, port, "GET", "/health", timeout_s=60))


# ---------- report ----------

def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values`` in ms, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] * 1000, 1)


def latency(values: list[float]) -> dict:
    return {"n": len(values), "p50_ms": percentile(values, 50), "p90_ms": percentile(values, 90),
            "p99_ms": percentile(values, 99), "max_ms": percentile(values, 100)}


def memory_summary(samples: list, first_minute_s: float) -> dict:
    mb = lambda b: round(b / 2**20, 1)  # noqa: E731
    usable = [(t, rss) for t, rss, _ in samples if rss > 0]
    if not usable:
        return {"available": False}
    before = usable[0][1]
    after_first = min(usable, key=lambda s: abs(s[0] - first_minute_s))[1]
    end = usable[-1][1]
    pids = set().union(*(set(p) for _, _, p in samples))
    return {"available": True, "before_mb": mb(before), "after_first_minute_mb": mb(after_first),
            "end_mb": mb(end), "peak_mb": mb(max(r for _, r in usable)),
            "growth_after_first_minute_pct": round((end - after_first) / after_first * 100, 1),
            "worker_pids_seen": len(pids),
            "series_mb": [[round(t), mb(rss)] for i, (t, rss) in enumerate(usable) if i % 5 == 0]}


def summarise(results, health, samples, wall_s, args) -> dict:
    by_status: dict = {}
    kinds: dict = {}
    for kind, expect, status, seconds, _ in results:
        by_status[str(status)] = by_status.get(str(status), 0) + 1
        entry = kinds.setdefault(kind, {"expect": expect, "statuses": {}, "_t": []})
        entry["statuses"][str(status)] = entry["statuses"].get(str(status), 0) + 1
        entry["_t"].append(seconds)
    for entry in kinds.values():
        entry.update(latency(entry.pop("_t")))
    unexpected = sum(1 for _, expect, status, _, _ in results if status != expect)
    valid = [s for k, _, status, s, _ in results if k.startswith("valid") and status == 200]
    return {
        "config": {"clients": args.clients, "duration_s": args.duration, "url": args.url,
                   "weights_dir": str(args.weights_dir), "workers": args.workers,
                   "max_requests": args.max_requests},
        "wall_s": round(wall_s, 1), "requests": len(results),
        "requests_per_s": round(len(results) / wall_s, 2) if wall_s else None,
        "segmentations_ok": len(valid), "by_status": by_status,
        "unexpected_status": unexpected, "connection_errors": by_status.get("0", 0),
        "server_errors_5xx": sum(n for s, n in by_status.items() if s.startswith("5")),
        "latency_all": latency([r[3] for r in results]), "latency_valid_ok": latency(valid),
        "by_kind": kinds,
        "health_probe": {**latency([s for st, s in health if st == 200]),
                         "failed": sum(1 for st, _ in health if st != 200)},
        "worker_rss": memory_summary(samples, args.first_minute),
    }


def print_table(summary: dict) -> None:
    def fmt(value):
        return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    print(f"\nrequests {summary['requests']} in {summary['wall_s']} s "
          f"({summary['requests_per_s']}/s), segmentations ok {summary['segmentations_ok']}, "
          f"unexpected status {summary['unexpected_status']}, 5xx {summary['server_errors_5xx']}, "
          f"connection errors {summary['connection_errors']}")
    print(f"{'kind':16s} {'expect':>6s} {'n':>6s} {'p50 ms':>9s} {'p90 ms':>9s} {'p99 ms':>9s}  statuses")
    rows = list(summary["by_kind"].items()) + [("ALL", {**summary["latency_all"], "expect": "",
                                                          "statuses": summary["by_status"]})]
    for kind, row in rows:
        print(f"{kind:16s} {fmt(row['expect']):>6s} {row['n']:>6d} {fmt(row['p50_ms']):>9s} "
              f"{fmt(row['p90_ms']):>9s} {fmt(row['p99_ms']):>9s}  {row['statuses']}")
    h = summary["health_probe"]
    print(f"GET /health under load: n={h['n']} p50={fmt(h['p50_ms'])} ms p99={fmt(h['p99_ms'])} ms "
          f"failed={h['failed']}")
    m = summary["worker_rss"]
    if m["available"]:
        print(f"worker RSS (sum): before {m['before_mb']} MiB, after first minute "
              f"{m['after_first_minute_mb']} MiB, end {m['end_mb']} MiB, peak {m['peak_mb']} MiB; "
              f"growth after first minute {m['growth_after_first_minute_pct']} %; "
              f"worker processes seen {m['worker_pids_seen']}")
    else:
        print("worker RSS: unavailable (pass --pid MASTER_PID with --url)")


# ---------- main ----------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="target a running server (loopback only) instead of starting one")
    parser.add_argument("--pid", type=int, help="gunicorn master PID of --url (for worker RSS)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load (default 300)")
    parser.add_argument("--first-minute", type=float, default=60.0,
                        help="memory growth is measured from this many seconds in (default 60)")
    parser.add_argument("--weights-dir", type=Path, default=REPO / "model" / "weights")
    parser.add_argument("--workers", type=int, default=1, help="WEB_CONCURRENCY of a started server")
    parser.add_argument("--max-requests", type=int, default=None,
                        help="override gunicorn max_requests (0 = never recycle workers)")
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the summary JSON here")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration <= 0:
        parser.error("--clients and --duration must be positive")
    return args


def run(args, host: str, port: int, master: int | None) -> dict:
    kinds = request_kinds()
    results, health, samples, lock, stop = [], [], [], threading.Lock(), threading.Event()
    started = time.time()
    threads = [threading.Thread(target=sample_memory, args=(master, started, stop, samples), daemon=True),
               threading.Thread(target=probe_health, args=(host, port, stop, health), daemon=True)]
    threads[0].start()
    time.sleep(0.5)                      # first sample = memory before any load
    threads[1].start()
    deadline = time.time() + args.duration
    clients = [threading.Thread(target=client_loop, args=(host, port, kinds, deadline,
                                                          args.seed + i, results, lock))
               for i in range(args.clients)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    wall_s = time.time() - started - 0.5
    stop.set()
    for thread in threads:
        thread.join(timeout=70)
    return summarise(results, health, samples, wall_s, args)


def main(argv=None) -> int:
    args = parse_args(argv)
    process, log_path = None, None
    if args.url:
        host, port = loopback_target(args.url)
        master = args.pid or master_pid_on(port)
        wait_healthy(host, port, 30)
    else:
        host = "127.0.0.1"
        log_path = Path(tempfile.mkstemp(prefix="loadtest-gunicorn-", suffix=".log")[1])
        process, port = start_server(args, log_path)
        master = process.pid
        print(f"started gunicorn on {host}:{port} (pid {master}, log {log_path}); waiting for /health")
    try:
        if process is not None:
            wait_healthy(host, port, args.startup_timeout, process)
        print(f"load: {args.clients} clients for {args.duration:g} s on http://{host}:{port}/segment",
              flush=True)
        summary = run(args, host, port, master)
    finally:
        if process is not None:
            stop_server(process)
    if log_path is not None:
        log = log_path.read_text(errors="replace")
        summary["server_log"] = {"path": str(log_path), "worker_boots": log.count("Booting worker"),
                                 "boots_without_models": log.count("service ready: models=[]"),
                                 "worker_timeouts": log.count("WORKER TIMEOUT"),
                                 "tracebacks": log.count("Traceback")}
    print_table(summary)
    if "server_log" in summary:
        print(f"server log: {summary['server_log']}")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
