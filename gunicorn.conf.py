"""Gunicorn settings for the ICH service: ``gunicorn -c gunicorn.conf.py "app:create_app()"``.

Each worker builds its own Segmenter (both models in memory), so workers cost memory: keep
WEB_CONCURRENCY at 1 on small instances and let gthread threads serve /health and the page
while a segmentation runs (ICH_MAX_CONCURRENT bounds segmentations per worker).
"""
import os


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


bind = f"{os.environ.get('HOST', '0.0.0.0')}:{_int_env('PORT', 8000)}"
workers = _int_env("WEB_CONCURRENCY", 1)
worker_class = "gthread"
threads = min(4, max(2, _int_env("GUNICORN_THREADS", 2)))
timeout = 120              # a long DICOM series on a small CPU can take a while
graceful_timeout = 30
keepalive = 5
preload_app = False        # models load in each worker after fork, never in the master
max_requests = 2000        # recycle workers rarely: per-request memory is bounded and each
max_requests_jitter = 200  # restart costs a ~2 s cold start; the jitter staggers restarts
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
limit_request_line = 4094
control_socket_disable = True   # no gunicornc socket in $HOME (read-only in the container)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Access log: method, path WITHOUT query string (%(U)s), status, bytes, duration in ms.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
access_log_format = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
