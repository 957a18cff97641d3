"""PNG/JPG exported with another window: the user states it and the grey values are read back as HU.

The fake model's probability is the model-window value of the centre slice (threshold 0.5), so with
the model window L40/W120 a pixel is marked exactly when it is at least 40 HU: the bleed and the skull.
"""
import io
import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from model.errors import InputError
from model.preprocess import ABOVE_WINDOW_HU, BELOW_WINDOW_HU, Window, apply_export_window, parse_export_window
from tests.conftest import CentreChannelPredictor

NO_FILLING = {"min_lesion_mm3": 0.0, "min_lesion_pixels": 0, "fill_holes": False}   # the skull ring stays a ring

BRAIN_HU, FAINT_BLEED_HU, SKULL_HU = 30.0, 45.0, 1000.0


def head(shape=(3, 64, 64)) -> tuple[np.ndarray, np.ndarray]:
    """(Z, Y, X) HU: air, a skull ring, 30 HU brain and a faint 45 HU bleed; and the bleed's mask.
    64 x 64, the fake model's grid: no resizing blurs the edges, so masks compare exactly."""
    yy, xx = np.mgrid[0:shape[1], 0:shape[2]]
    radius = np.hypot((yy - shape[1] / 2) / (shape[1] / 2), (xx - shape[2] / 2) / (shape[2] / 2))
    plane = np.where(radius < 0.95, SKULL_HU, -1000.0)
    plane[radius < 0.8] = BRAIN_HU
    bleed = (np.abs(yy - 20) < 5) & (np.abs(xx - 15) < 4)
    plane[bleed] = FAINT_BLEED_HU
    return np.repeat(plane[None], shape[0], 0).astype(np.float32), np.repeat(bleed[None], shape[0], 0)


def exported(hu: np.ndarray, level: float, width: float) -> list[tuple[str, bytes]]:
    """The volume as 8-bit PNG slices exported in window (level, width)."""
    grey = np.round(Window(level, width)(hu) * 255).astype(np.uint8)
    files = []
    for z, plane in enumerate(grey):
        buf = io.BytesIO()
        Image.fromarray(plane).save(buf, format="PNG")
        files.append((f"s{z}.png", buf.getvalue()))
    return files


@pytest.fixture
def segmenter():
    from model.pipeline import Segmenter

    return Segmenter(predictors={"unet": CentreChannelPredictor(postprocess=NO_FILLING)})


def test_to_hu_undoes_an_export_inside_its_window_and_keeps_air_black_and_bone_white():
    window = Window(40, 80)
    hu = np.array([[-500.0, 0.0, 12.5, 40.0, 66.0, 80.0, 1200.0]], np.float32)
    grey = np.round(window(hu) * 255)
    back = window.to_hu(grey)
    inside = (hu > 0) & (hu < 80)
    assert np.all(np.abs(back[inside] - hu[inside]) <= 80 / 255 / 2 + 1e-4)   # 8-bit rounding only
    assert back[0, 0] == back[0, 1] == BELOW_WINDOW_HU                       # grey 0: at or below 0 HU
    assert back[0, 5] == back[0, 6] == ABOVE_WINDOW_HU                       # grey 255: at or above 80 HU
    model = Window(40, 120)(back)
    assert model[0, 0] == 0.0 and model[0, 6] == 1.0                         # not grey at the window's edge


def test_a_declared_export_segments_like_the_hu_volume_and_an_undeclared_one_does_not(segmenter):
    from model.types import CTImage

    hu, bleed = head()
    from_hu_mask = segmenter.segment_image(CTImage(hu, "hu", "nifti", True)).mask
    assert from_hu_mask[bleed].all() and np.array_equal(from_hu_mask, (hu >= 40))   # bleed and skull, no brain
    # L50/W100 puts 45 HU below mid-grey: read as L40/W120 grey values the faint bleed vanishes
    undeclared = segmenter.segment_sources(exported(hu, 50, 100))
    declared = segmenter.segment_sources(exported(hu, 50, 100), export_window="50,100")
    assert undeclared.mask[bleed].sum() == 0
    assert np.array_equal(declared.mask, from_hu_mask)
    assert any("export in window L50/W100" in w for w in declared.report()["warnings"])
    assert np.array_equal(segmenter.segment_sources(exported(hu, 50, 100), export_window=(50, 100)).mask,
                          from_hu_mask)


def test_only_grey_values_without_a_stated_window_are_warned_about(segmenter):
    """A PNG/JPG segmented without its export window is read as the model's own window; the user is told so.
    Not when the window is stated, nor for HU input (NIfTI, DICOM)."""
    from model.types import CTImage

    hu, _ = head()
    unstated = "grey values taken as exported in the model's window L40/W120 HU"
    warned = lambda result: [w for w in result.report()["warnings"] if unstated in w]   # noqa: E731
    assert len(warned(segmenter.segment_sources(exported(hu, 40, 80)))) == 1
    assert warned(segmenter.segment_sources(exported(hu, 40, 80), export_window="40,80")) == []
    assert warned(segmenter.segment_image(CTImage(hu, "hu", "nifti", True))) == []


def test_the_default_window_declared_changes_nothing_inside_it(segmenter):
    hu, _ = head()
    files = exported(hu, 40, 120)
    plain, declared = segmenter.segment_sources(files), segmenter.segment_sources(files, export_window=(40, 120))
    assert np.array_equal(plain.mask, declared.mask)


def test_an_hu_input_keeps_its_values_and_says_the_window_was_ignored(segmenter):
    hu, bleed = head()
    image = nib.Nifti1Image(hu.transpose(2, 1, 0).astype(np.int16), np.diag([0.5, 0.5, 5.0, 1.0]))
    result = segmenter.segment_sources([("head.nii", image.to_bytes())], export_window="50,100")
    assert result.mask.sum() == (hu >= 40).sum()          # on the reader's axes: compared by count
    assert any("ignored: this input is already in HU" in w for w in result.report()["warnings"])
    array, intensity, notes = apply_export_window(hu, "hu", Window(50, 100), Window(40, 120))
    assert array is hu and intensity == "hu" and len(notes) == 1


@pytest.mark.parametrize("bad", ["40", "a,b", "40,0", "40,-5", "nan,80", "40,inf", "5000,80", "40,80,1",
                                 (40,), (40, 5000)])
def test_a_malformed_export_window_is_a_400_read_error(segmenter, bad):
    with pytest.raises(InputError) as info:
        parse_export_window(bad)
    assert info.value.status == 400 and info.value.stage == "read" and "export window" in str(info.value)
    hu, _ = head()
    with pytest.raises(InputError):
        segmenter.segment_sources(exported(hu, 40, 80), export_window=bad)


@pytest.mark.parametrize("empty", [None, "", "  "])
def test_no_export_window_means_none(empty):
    assert parse_export_window(empty) is None
    assert parse_export_window(" 40 , 80 ") == Window(40.0, 80.0)


def test_the_api_takes_export_window_and_answers_400_on_a_bad_one(segmenter):
    from tests.test_web_api import assert_error, make_client, post

    client = make_client(segmenter)
    hu, bleed = head()
    files = exported(hu, 50, 100)
    ok = post(client, files, export_window="50,100")
    assert ok.status_code == 200
    body = ok.get_json()
    assert body["lesion_voxels"] == (hu >= 40).sum()
    assert any("L50/W100" in w for w in body["warnings"])
    assert post(client, files).get_json()["lesion_voxels"] == (hu >= 40).sum() - bleed.sum()   # the bleed lost
    assert_error(post(client, files, export_window="50,0"), 400, "export window")
    assert "export_window" in client.get("/openapi.json").get_json()["paths"]["/segment"]["post"][
        "requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]


def test_the_cli_takes_export_window(tmp_path, monkeypatch, capsys):
    import model.pipeline
    from model.cli import main

    real = model.pipeline.Segmenter
    monkeypatch.setattr(model.pipeline, "Segmenter", lambda *a, **k: real(predictors={"unet": CentreChannelPredictor(postprocess=NO_FILLING)}))
    hu, bleed = head(shape=(1, 64, 64))
    (tmp_path / "s.png").write_bytes(exported(hu, 50, 100)[0][1])
    assert main(["segment", str(tmp_path / "s.png"), "--out", str(tmp_path / "o"), "--export-window", "50", "100"]) == 0
    report = json.loads((tmp_path / "o" / "s.json").read_text())
    assert report["lesion_voxels"] == (hu >= 40).sum() > bleed.sum()
    assert main(["segment", str(tmp_path / "s.png"), "--out", str(tmp_path / "o"), "--export-window", "50", "-1"]) == 2
    assert "export window level must lie in" in capsys.readouterr().err
