"""HTML pages: the upload page (GET /). All behaviour lives in static/js/app.js."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

pages = Blueprint("pages", __name__)


def model_label(info: dict) -> str:
    """Human label for a model: name, version and cross-validated Dice when known."""
    dice = ((info.get("metrics") or {}).get("cv") or {}).get("mean_dice")
    label = f"{info['name']} v{info.get('version', '?')}"
    return f"{label} (CV Dice {dice:.2f})" if isinstance(dice, (int, float)) else label


@pages.get("/")
def index():
    """Upload form; model choices and limits are rendered into the page."""
    seg = current_app.config["SEGMENTER"]
    models = [{"name": m["name"], "label": model_label(m)} for m in seg.models()]
    limits = current_app.config["LIMITS"]
    return render_template("index.html", models=models,
                           default_model=seg.default_model if models else None,
                           max_upload_mb=limits.max_upload_bytes / (1024 * 1024),
                           max_files=limits.max_files)
