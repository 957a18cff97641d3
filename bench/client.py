"""A minimal HTTP client for the bench (stdlib only, loopback only): multipart POST, GET."""
from __future__ import annotations

import http.client
import time
import uuid
from dataclasses import dataclass


@dataclass
class Reply:
    status: int          # HTTP status, or 0 when the connection failed
    body: bytes
    elapsed_s: float     # request sent -> whole body received
    error: str = ""


def multipart(files: list[tuple[str, bytes]], fields: dict | None = None) -> tuple[str, bytes]:
    """(content type, body) of a multipart/form-data request with parts named ``file``."""
    boundary = "bench" + uuid.uuid4().hex
    chunks = []
    for key, value in (fields or {}).items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
                      f"{value}\r\n".encode())
    for filename, data in files:
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                      f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                      .encode())
        chunks.append(data)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(chunks)


def request(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None,
            timeout_s: float = 120.0) -> Reply:
    """One request to 127.0.0.1:``port`` on a fresh connection; never raises for network errors."""
    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        return Reply(response.status, data, time.perf_counter() - start)
    except (OSError, http.client.HTTPException) as exc:
        return Reply(0, b"", time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()


def post_files(port: int, files: list[tuple[str, bytes]], fields: dict | None = None,
               path: str = "/segment", timeout_s: float = 120.0) -> Reply:
    """POST ``files`` as multipart ``file`` parts (Accept: application/json)."""
    content_type, body = multipart(files, fields)
    return request(port, "POST", path, body, {"Content-Type": content_type,
                                              "Accept": "application/json"}, timeout_s)
