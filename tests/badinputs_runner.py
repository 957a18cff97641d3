"""Run the bad-input catalogue against the web service and the CLI; write docs/bad_inputs.md.

    .venv/bin/python tests/badinputs_runner.py [--out docs/bad_inputs.md]

The service is ``create_app()`` configured only through environment variables
(``badinputs.TEST_ENV`` + ICH_MODEL_DIR pointing at a tiny random-init test model, enough to
exercise every code path; results of 200 cases are therefore meaningless masks). The CLI is
``model.cli.main(argv)`` run in-process with the same segmenter (same limits).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

TRACE_WORDS = ("Traceback", 'File "', "site-packages")
SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options",
                    "Referrer-Policy")


@dataclass
class Outcome:
    """What one channel answered. code: HTTP status or CLI exit code."""

    code: int
    message: str            # error (+ detail), or "warnings: ..." for a success
    raw: str                # the whole body / stderr + stdout, for trace checks
    headers: Optional[dict] = None
    report: Optional[dict] = None
    outputs: tuple = ()     # CLI: files written into the output folder


@contextlib.contextmanager
def environment(values: dict):
    """Temporarily set environment variables."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def build_service(weights_dir: Path):
    """The Flask app as gunicorn builds it, configured by ICH_* environment variables only."""
    from app import create_app
    from badinputs import TEST_ENV

    with environment({**TEST_ENV, "ICH_MODEL_DIR": str(weights_dir)}):
        return create_app()


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def run_web(client, case) -> Outcome:
    """POST the case to /segment through the Flask test client."""
    files = case.files()
    if case.raw_body:
        response = client.post("/segment", data=files[0][1], content_type="image/png")
    else:
        data = {"file": [(io.BytesIO(content), name) for name, content in files], **case.form}
        response = client.post("/segment", data=data, content_type="multipart/form-data")
    raw = response.get_data(as_text=True)
    body = response.get_json(silent=True) or {}
    if response.status_code == 200:
        message = "warnings: " + " / ".join(body.get("warnings", [])) if body.get("warnings") \
            else "ok"
        report = body
    else:
        message = str(body.get("error", ""))
        if body.get("detail"):
            message += f" — {body['detail']}"
        report = None
    return Outcome(response.status_code, _one_line(message), raw, dict(response.headers), report)


def _write_inputs(case, folder: Path) -> list[str]:
    """Write the case's files; -> CLI input arguments (a file, or a folder for several)."""
    files = case.files()
    if not files:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    if len(files) == 1:
        name, data = files[0]
        path = folder / (Path(name).name or "upload")
        path.write_bytes(data)
        return [str(path)]
    target = folder / case.name
    target.mkdir()
    for name, data in files:
        (target / Path(name).name).write_bytes(data)
    return [str(target)]


@contextlib.contextmanager
def cli_segmenter(segmenter):
    """Make ``python -m model segment`` use ``segmenter`` (its weights and limits)."""
    import model.pipeline

    real = model.pipeline.Segmenter
    model.pipeline.Segmenter = lambda *args, **kwargs: segmenter
    try:
        yield
    finally:
        model.pipeline.Segmenter = real


def run_cli(case, workdir: Path, segmenter) -> Optional[Outcome]:
    """``model.cli.main(["segment", ...])`` in-process; None when the case has no CLI form."""
    from model.cli import main

    if case.cli_exit is None:
        return None
    inputs = _write_inputs(case, workdir / "in")
    out_dir = workdir / "out"
    argv = ["segment", *inputs, "--out", str(out_dir), *case.cli_args]
    stdout, stderr = io.StringIO(), io.StringIO()
    with cli_segmenter(segmenter), contextlib.redirect_stdout(stdout), \
            contextlib.redirect_stderr(stderr):
        try:
            code = main(argv)
        except SystemExit as exc:      # argparse errors
            code = exc.code if isinstance(exc.code, int) else 2
    err_lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
    outputs = tuple(sorted(p.name for p in out_dir.iterdir())) if out_dir.is_dir() else ()
    report = None
    jsons = [p for p in out_dir.glob("*.json")] if out_dir.is_dir() else []
    if jsons:
        report = json.loads(jsons[0].read_text())
    if code == 0:
        warnings = (report or {}).get("warnings", [])
        message = ("warnings: " + " / ".join(warnings)) if warnings else "ok"
    else:
        message = err_lines[-1] if err_lines else ""
        message = message.replace(str(workdir / "in") + os.sep, "")   # inputs by their own name
    return Outcome(code, _one_line(message), stderr.getvalue() + stdout.getvalue(),
                   report=report, outputs=outputs)


def _cell(text: str, limit: int = 220) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def markdown_table(rows: list[tuple], temp_root: str = "\0") -> str:
    """rows: (case, web Outcome, cli Outcome | None) -> the docs/bad_inputs.md text
    (``temp_root``, the run's temporary folder, is written as $TMP)."""
    lines = [
        "# Bad and hostile inputs",
        "",
        "Generated by `.venv/bin/python tests/badinputs_runner.py --out docs/bad_inputs.md` from",
        "the catalogue in `tests/badinputs.py` (also run by `tests/test_bad_inputs.py`). The",
        "service ran with `ICH_MAX_UPLOAD_MB=4 ICH_MAX_VOXELS=4000000 ICH_MAX_FILES=200",
        "ICH_MAX_DECOMPRESSED_MB=16`, so bombs stay small; the defaults are 256 MiB, 512x512x1024",
        "voxels, 2000 files and 1024 MiB. Every error is JSON `{\"error\", \"detail\"}` without a",
        "stack trace, and `/health` still answers 200 after each case. CLI: exit 0 done, 1 input",
        "failed, 2 bad arguments / model; the message is the last stderr line.",
        "",
        "| case | input | HTTP | web message | CLI exit | CLI message |",
        "|---|---|---|---|---|---|",
    ]
    for case, web, cli in rows:
        cli_text = "(no CLI equivalent)" if cli is None else cli.message.replace(temp_root, "$TMP")
        lines.append(f"| `{case.name}` | {_cell(case.what)} | {web.code} | {_cell(web.message)} "
                     f"| {'—' if cli is None else cli.code} | {_cell(cli_text)} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/bad_inputs.md"))
    args = parser.parse_args(argv)
    from badinputs import CASES
    from conftest import write_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights"
        weights.mkdir()
        write_tiny_model(weights, "unet")
        app = build_service(weights)
        client = app.test_client()
        rows = []
        for case in CASES:
            web = run_web(client, case)
            cli = run_cli(case, Path(tmp) / "cli" / case.name, app.config["SEGMENTER"])
            rows.append((case, web, cli))
            print(f"{case.name:32s} {web.code} {'-' if cli is None else cli.code}", flush=True)
        args.out.write_text(markdown_table(rows, tmp))
    print(f"wrote {args.out} ({len(rows)} cases)")
    return 0


if __name__ == "__main__":
    HERE = Path(__file__).resolve().parent
    sys.path[:0] = [str(HERE), str(HERE.parent)]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
