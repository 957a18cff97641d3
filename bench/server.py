"""Start a gunicorn server on 127.0.0.1 for the bench, watch its worker's memory, stop it.

The server runs in its own process group (killed as a whole on exit, even on errors) with the
repository's ``gunicorn.conf.py``; only HOST, PORT and the variables given are changed.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``gunicorn -c gunicorn.conf.py APP`` bound to 127.0.0.1:<free port>.

    Use as a context manager; the log (access + error) goes to ``log_path``.
    """

    def __init__(self, app: str, env: dict, log_path: Path):
        self.app, self.log_path, self.port = app, Path(log_path), free_port()
        self.env = {**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(self.port),
                    "WEB_CONCURRENCY": "1", "PYTHONUNBUFFERED": "1"}
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> "Server":
        command = [sys.executable, "-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py"), self.app]
        self._log = open(self.log_path, "ab")
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def workers(self) -> list[int]:
        """PIDs of the master's worker processes (empty while booting)."""
        import psutil

        try:
            return [child.pid for child in psutil.Process(self.process.pid).children()]
        except (psutil.NoSuchProcess, AttributeError):
            return []

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 10.0) -> None:
        """Quick shutdown (SIGINT) of the whole process group, SIGKILL after ``timeout_s``."""
        if self.process is None:
            return
        for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGKILL, 5.0)):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        try:  # stray workers of the group, if the master died first
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class RssPoller:
    """Polls the RSS of a server's workers every ``interval_s`` in a thread.

    ``peak_mb``: the largest RSS of any single worker seen while polling; ``pids``: workers seen.
    """

    def __init__(self, server: Server, interval_s: float = 0.02):
        self.server, self.interval_s = server, interval_s
        self.peak_mb, self.samples, self.pids = 0.0, 0, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        handles: dict[int, psutil.Process] = {}
        while not self._stop.is_set():
            for pid in self.server.workers():
                try:
                    handle = handles.setdefault(pid, psutil.Process(pid))
                    rss_mb = handle.memory_info().rss / 1e6
                except psutil.NoSuchProcess:
                    continue
                self.pids.add(pid)
                self.peak_mb = max(self.peak_mb, rss_mb)
                self.samples += 1
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "RssPoller":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


def worker_rss_mb(server: Server) -> float | None:
    """Current RSS (MB, 10^6 bytes) of the largest worker, None when there is none."""
    import psutil

    values = []
    for pid in server.workers():
        try:
            values.append(psutil.Process(pid).memory_info().rss / 1e6)
        except psutil.NoSuchProcess:
            continue
    return round(max(values), 1) if values else None


def worker_hwm_mb(server: Server) -> float | None:
    """Largest peak RSS (VmHWM in /proc/PID/status, MB) of the current workers, None if unknown.

    Exact, unlike polling: the kernel records the high-water mark since the worker started.
    """
    values = []
    for pid in server.workers():
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        values.append(int(line.split()[1]) * 1024 / 1e6)  # kB -> MB
        except (OSError, ValueError, IndexError):
            continue
    return round(max(values), 1) if values else None
