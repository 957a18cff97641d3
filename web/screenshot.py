"""Screenshot of a result page for the README: ``python -m web.screenshot [--out PATH]``.

Starts the service on 127.0.0.1 with the trained weights (ICH_MODEL_DIR, default
model/weights), uploads a synthetic head-CT phantom (no patient data) in headless Chromium and
saves the page. The helpers (``find_chromium``, ``serve``, ``open_browser``, ``phantom_nifti``)
are shared with tests/test_browser.py. Needs Playwright and a Chromium (``apt-get install
chromium``); not used by the service itself.
"""
from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def find_chromium() -> Optional[str]:
    """Path of a Chromium executable: $CHROMIUM_PATH, a Debian/Ubuntu location or PATH."""
    explicit = os.environ.get("CHROMIUM_PATH")
    if explicit and os.access(explicit, os.X_OK):
        return explicit
    for path in CHROMIUM_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def serve(app) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 (free port) in a thread; yields the base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@contextmanager
def open_browser(executable: str):
    """Headless Chromium through Playwright's sync API."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def phantom_volume(depth: int = 24, size: int = 256, seed: int = 0) -> np.ndarray:
    """Synthetic head CT in HU, (Z, Y, X): air, skull, brain, ventricles, one hemorrhage.

    The hemorrhage is a 70 HU ellipsoid in one hemisphere over slices 9-15 (not patient data).
    """
    from scipy.ndimage import gaussian_filter

    zz, yy, xx = np.mgrid[0:depth, 0:size, 0:size].astype(np.float32)
    cy, cx = size / 2, size / 2
    scale = 1.0 - ((zz - depth / 2) / depth) ** 2 * 0.6          # head narrows at the ends
    head = ((yy - cy) / (0.42 * size * scale)) ** 2 + ((xx - cx) / (0.34 * size * scale)) ** 2
    volume = np.full(zz.shape, -1000.0, np.float32)
    volume[head <= 1.0] = 1000.0                                 # skull
    volume[head <= 0.85] = 32.0                                  # brain
    ventricles = (((yy - cy + 8) / 26) ** 2 + ((np.abs(xx - cx) - 9) / 6) ** 2 <= 1.0) \
        & (np.abs(zz - depth / 2) < depth / 4)
    volume[ventricles & (head <= 0.85)] = 6.0
    bleed = ((zz - 12) / 3.5) ** 2 + ((yy - cy + 20) / 20) ** 2 + ((xx - cx - 38) / 14) ** 2
    volume[bleed <= 1.0] = 70.0
    volume += np.random.default_rng(seed).normal(0.0, 3.0, volume.shape).astype(np.float32)
    return gaussian_filter(volume, sigma=(0, 0.8, 0.8))


def nifti_bytes(volume_zyx: np.ndarray, spacing_zyx_mm=(5.0, 0.9, 0.9)) -> bytes:
    """Gzipped NIfTI of a (Z, Y, X) HU volume, stored (X, Y, Z) int16 with a diagonal affine."""
    import nibabel as nib

    data = np.asarray(volume_zyx).transpose(2, 1, 0).round().astype(np.int16)
    affine = np.diag([spacing_zyx_mm[2], spacing_zyx_mm[1], spacing_zyx_mm[0], 1.0])
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm")
    return gzip.compress(image.to_bytes(), mtime=0)


def phantom_nifti() -> bytes:
    """The README phantom as .nii.gz bytes."""
    return nifti_bytes(phantom_volume())


def capture(page, base_url: str, upload: tuple[str, bytes], out: Path, width: int = 1280) -> None:
    """Upload ``(name, bytes)`` on the page at ``base_url`` and save a full-page screenshot."""
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(base_url)
    page.set_input_files("#file-input", files=[{"name": upload[0], "mimeType":
                                                "application/octet-stream", "buffer": upload[1]}])
    page.click("#submit-btn")
    page.wait_for_selector("#result:not([hidden])", timeout=120_000)
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/screenshot.png", type=Path)
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("screenshot: no Chromium found (apt-get install chromium)", file=sys.stderr)
        return 2
    from app import create_app

    app = create_app()
    if not app.config["SEGMENTER"].models():
        print(f"screenshot: no trained weights in {app.config['MODEL_DIR']}; train first",
              file=sys.stderr)
        return 2
    with serve(app) as base_url, open_browser(chromium) as browser:
        capture(browser.new_page(), base_url, ("phantom.nii.gz", phantom_nifti()), args.out)
    print(f"screenshot: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
