"""End-to-end tests of the upload page in headless Chromium (Playwright, sync API).

The real app runs on 127.0.0.1 in a thread with the real pipeline and the deterministic
centre-channel test model (conftest), so the lesion is exactly the bright block of the
synthetic NIfTI made here. Skipped when no Chromium is installed (apt-get install chromium).
Set ICH_SCREENSHOT=path to also save the result page there (e.g. docs/screenshot.png).
"""
from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from app import create_app
from test_web_api import make_segmenter
from web.screenshot import find_chromium, nifti_bytes, open_browser, serve

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (apt-get install "
                                "chromium, or set CHROMIUM_PATH)")

DEPTH, LESION_SLICES = 12, (4, 5, 6)


def lesion_nifti() -> bytes:
    """(Z=12, Y=64, X=64) HU volume, 0.5 x 0.5 mm pixels, 3 mm slices; a 12 x 10 px block of
    80 HU on slices 4-6 (slice 5 larger) -> 12*10*3 + 40 voxels; elsewhere 0 HU and air."""
    volume = np.zeros((DEPTH, 64, 64), np.float32)
    volume[:, :, :4] = -1000.0                         # a strip of air, as in any CT
    for z in LESION_SLICES:
        volume[z, 20:32, 30:40] = 80.0
    volume[5, 32:36, 30:40] = 80.0
    return nifti_bytes(volume, spacing_zyx_mm=(3.0, 0.5, 0.5))


EXPECTED_VOXELS = 12 * 10 * 3 + 4 * 10
EXPECTED_ML = EXPECTED_VOXELS * 0.5 * 0.5 * 3.0 / 1000.0


@pytest.fixture(scope="module")
def base_url():
    app = create_app({"SEGMENTER": make_segmenter("unet", "two_branch")})
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with open_browser(CHROMIUM) as instance:
        yield instance


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda msg: msg.type == "error" and page.problems.append(msg.text))
    yield page
    context.close()


def upload(page, base_url: str, name: str, content: bytes) -> None:
    page.goto(base_url)
    page.set_input_files("#file-input", files=[{"name": name, "mimeType":
                                                "application/octet-stream", "buffer": content}])
    page.click("#submit-btn")


def test_volume_result_slider_and_mask_download(page, base_url, tmp_path):
    upload(page, base_url, "scan.nii.gz", lesion_nifti())
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    assert page.locator("#stat-volume").inner_text() == f"{EXPECTED_ML:.2f} mL"
    assert "3 of 12" in page.locator("#stat-slices").inner_text()
    assert page.evaluate("document.getElementById('overlay-img').naturalWidth") == 64

    slider = page.locator("#slice-slider")
    assert slider.is_visible() and slider.get_attribute("max") == str(DEPTH - 1)
    assert slider.input_value() == "5"                       # key slice = largest area
    assert "key slice" in page.locator("#slice-caption").inner_text()
    strip_red = page.evaluate("""() => { const c = document.getElementById('lesion-strip');
        const d = c.getContext('2d').getImageData(Math.floor(c.width * 5.5 / 12), 5, 1, 1).data;
        return d[0] > 150 && d[3] > 0; }""")
    assert strip_red, "lesion slices are not marked on the strip"

    before = page.get_attribute("#overlay-img", "src")
    slider.focus()
    page.keyboard.press("Home")
    assert slider.input_value() == "0"
    assert page.get_attribute("#overlay-img", "src") != before
    assert page.locator("#slice-caption").inner_text().startswith("Slice 1 of 12")
    page.click("#next-lesion")
    assert slider.input_value() == "4"

    with page.expect_download() as info:
        page.click("#dl-mask")
    download = info.value
    assert download.suggested_filename == "scan.mask.nii.gz"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    mask = nib.Nifti1Image.from_bytes(gzip.decompress(saved.read_bytes()))
    assert mask.shape == (64, 64, DEPTH) and int(np.asarray(mask.dataobj).sum()) == EXPECTED_VOXELS

    with page.expect_download() as info:
        page.click("#dl-report")
    assert info.value.suggested_filename == "scan.report.json"
    assert page.locator("#warnings").is_hidden()             # a clean NIfTI gives no warnings
    assert page.problems == [], page.problems                  # no CSP violations, no JS errors
    save_screenshot(page, tmp_path)


def save_screenshot(page, tmp_path: Path) -> None:
    """Screenshot of the result page; copied to $ICH_SCREENSHOT when that is set."""
    page.locator("#slice-slider").focus()
    page.keyboard.press("End")
    page.click("#prev-lesion")   # back to a lesion slice
    shot = tmp_path / "result.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    target = os.environ.get("ICH_SCREENSHOT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target)


def test_bad_file_shows_error_message(page, base_url):
    upload(page, base_url, "notes.txt", b"this is not a CT scan")
    error = page.locator("#error")
    error.wait_for(state="visible", timeout=30_000)
    assert "HTTP 415" in error.inner_text()
    assert page.locator("#result").is_hidden()


def test_client_side_checks(page, base_url):
    page.goto(base_url)
    page.click("#submit-btn")
    assert "Choose a file first" in page.locator("#error").inner_text()
    page.set_input_files("#file-input", files=[{"name": "a.png", "mimeType": "image/png",
                                                "buffer": b"x"}])
    page.fill("#spacing-slice", "5")
    page.click("#submit-btn")
    assert "row and column" in page.locator("#error").inner_text()
    assert "research use only" in page.locator("#disclaimer").inner_text()


def test_a_stated_export_window_reaches_the_pipeline(page, base_url):
    """A 45 HU block exported in window L50/W100 is grey 115: under the fake model's 0.5 as a plain
    grey value, over it once the page sends the window and the pipeline reads it back as HU."""
    import io

    from PIL import Image

    grey = np.zeros((64, 64), np.uint8)
    grey[20:30, 30:42] = 115
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    upload(page, base_url, "slice.png", buf.getvalue())
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    assert page.locator("#stat-volume").inner_text().startswith("0 pixels")

    page.goto(base_url)
    page.set_input_files("#file-input", files=[{"name": "slice.png", "mimeType": "image/png",
                                                "buffer": buf.getvalue()}])
    page.fill("#window-level", "50")
    page.click("#submit-btn")
    assert "window level and width" in page.locator("#error").inner_text()
    page.fill("#window-width", "100")
    page.click("#submit-btn")
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    assert page.locator("#stat-volume").inner_text().startswith("120 pixels")
    assert "L50/W100" in page.locator("#warnings").inner_text()
    assert page.problems == [], page.problems


def test_phone_width_has_no_horizontal_scroll(page, base_url):
    page.set_viewport_size({"width": 375, "height": 800})
    upload(page, base_url, "scan.nii.gz", lesion_nifti())
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375
    assert page.locator("#slice-slider").bounding_box()["width"] > 250


def test_drag_and_drop_selects_files(page, base_url):
    page.goto(base_url)
    page.evaluate("""() => {
        const data = new DataTransfer();
        data.items.add(new File([new Uint8Array(2048)], "one.dcm"));
        data.items.add(new File([new Uint8Array(2048)], "two.dcm"));
        document.getElementById('dropzone').dispatchEvent(
            new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
    }""")
    assert page.locator("#file-summary").inner_text() == "2 files (4 KB)"


class SlowSegmenter:
    """Delegates to a real segmenter after a pause, so the 'segmenting' state can be seen."""

    def __init__(self, inner, delay_s: float):
        self.inner, self.delay_s = inner, delay_s

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def segment_sources(self, *args, **kwargs):
        import time

        time.sleep(self.delay_s)
        return self.inner.segment_sources(*args, **kwargs)


def test_progress_and_segmenting_state_are_shown(page):
    app = create_app({"SEGMENTER": SlowSegmenter(make_segmenter("unet"), delay_s=2.0)})
    with serve(app) as url:
        upload(page, url, "scan.nii.gz", lesion_nifti())
        page.wait_for_selector("#spinner:not([hidden])", timeout=10_000)
        assert "Segmenting" in page.locator("#progress-text").inner_text()
        assert page.locator("#submit-btn").is_disabled()
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        assert page.locator("#progress").is_hidden() and page.locator("#submit-btn").is_enabled()
