"""Flask entry point of the ICH segmentation service.

Nothing is created at import time: gunicorn runs ``app:create_app()`` and tests call
``create_app({...})``. Configuration comes from the environment (see ``web.config``) and may
be overridden by the ``config`` mapping, e.g. ``create_app({"SEGMENTER": fake})`` injects a
ready segmenter (anything with the ``model.pipeline.Segmenter`` methods). Debug mode is
Flask's default: off unless ``FLASK_DEBUG=1`` is set (for ``flask run`` in development only).
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Mapping

from flask import Flask

from web.config import config_from_env, request_limits
from web.errors import register_error_handlers
from web.security import MemoryRequest, register_security_headers

log = logging.getLogger("ich.web")


def build_segmenter(config: Mapping[str, Any]):
    """The pipeline's Segmenter for ``config`` (loads every model with weights, once)."""
    from model.pipeline import Segmenter   # imported here so a bare import of app stays light

    return Segmenter(weights_dir=config["MODEL_DIR"], limits=config["LIMITS"],
                     default_model=config["DEFAULT_MODEL"])


def configure_logging() -> None:
    """Under gunicorn, send the service's log records to gunicorn's error log (stderr)."""
    gunicorn_log = logging.getLogger("gunicorn.error")
    if gunicorn_log.handlers and not log.handlers:
        log.handlers = list(gunicorn_log.handlers)
        log.setLevel(gunicorn_log.level)
        log.propagate = False


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: environment config, overrides from ``config``, segmenter, blueprints."""
    configure_logging()
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.request_class = MemoryRequest          # uploads stay in memory, never on disk
    app.config.update(config_from_env())
    app.config.update(config or {})
    app.config.update(request_limits(app.config["LIMITS"]))
    app.config.update(config or {})            # explicit overrides win over derived limits
    if app.config.get("SEGMENTER") is None:
        app.config["SEGMENTER"] = build_segmenter(app.config)
    app.extensions["ich_slots"] = threading.BoundedSemaphore(app.config["MAX_CONCURRENT"])
    register_blueprints(app)
    register_error_handlers(app)
    register_security_headers(app)
    log.info("service ready: models=%s", [m["name"] for m in app.config["SEGMENTER"].models()])
    return app


def register_blueprints(app: Flask) -> None:
    """Attach the page and API blueprints."""
    from web.api import api
    from web.views import pages

    app.register_blueprint(pages)
    app.register_blueprint(api)
