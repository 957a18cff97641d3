"""CLI contract: `python -m model segment INPUT... --out DIR [--model] [--spacing]`, info, export-onnx."""
import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

import model.pipeline
from model.cli import main
from tests.conftest import REPO, CentreChannelPredictor, blob_volume


def write_png(path, shape=(120, 160), centre=(40, 100), radii=(15, 25)):
    _, inside = blob_volume((1, *shape), (0, *centre), (0.5, *radii))
    Image.fromarray(np.where(inside[0], 230, 20).astype(np.uint8)).save(path)
    return inside[0]


def write_nifti(path, affine=np.diag([-0.5, 0.6, 2.0, 1.0])):
    """(X, Y, Z) = (70, 60, 6) int16 HU volume with a bright blob; returns its mask (X, Y, Z)."""
    hu, inside = blob_volume((70, 60, 6), (35, 25, 3), (16, 12, 1.5), value_hu=80, background_hu=0)
    nib.save(nib.Nifti1Image(hu.astype(np.int16), affine), str(path))
    return inside


@pytest.fixture
def fake_cli(monkeypatch):
    """Make the CLI's Segmenter use the deterministic centre-channel model."""
    real = model.pipeline.Segmenter
    monkeypatch.setattr(model.pipeline, "Segmenter",
                        lambda *a, **k: real(predictors={"unet": CentreChannelPredictor()}))


def test_png_and_nifti_outputs_keep_input_geometry(fake_cli, tmp_path, capsys):
    blob2d = write_png(tmp_path / "slice.png")
    blob3d = write_nifti(tmp_path / "head.nii.gz")
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "slice.png"), str(tmp_path / "head.nii.gz"),
                 "--out", str(out)]) == 0
    mask_png = np.asarray(Image.open(out / "slice.mask.png"))
    assert mask_png.shape == (120, 160) and set(np.unique(mask_png)) == {0, 255}
    assert ((mask_png == 255) & blob2d).sum() / ((mask_png == 255) | blob2d).sum() > 0.9
    nifti = nib.load(str(out / "head.mask.nii.gz"))
    assert nifti.shape == (70, 60, 6) and nifti.get_data_dtype() == np.uint8
    assert np.allclose(nifti.affine, np.diag([-0.5, 0.6, 2.0, 1.0]))
    data = np.asarray(nifti.dataobj).astype(bool)
    assert (data & blob3d).sum() / (data | blob3d).sum() > 0.9
    report = json.loads((out / "head.json").read_text())
    for key in ("volume_ml", "lesion_voxels", "spacing_mm", "lesions", "abc2_ml", "model", "warnings"):
        assert key in report
    assert report["volume_ml"] == pytest.approx(blob3d.sum() * 0.6 / 1000, rel=0.05)
    assert (out / "head.montage.png").is_file() and (out / "head.overlay.png").is_file()
    assert not (out / "slice.montage.png").exists()
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("slice: volume unknown (no spacing), 1 lesion")
    assert lines[1].startswith("head: volume ") and " mL" in lines[1]


def test_spacing_option_gives_volume_for_png(fake_cli, tmp_path, capsys):
    blob = write_png(tmp_path / "s.png")
    assert main(["segment", str(tmp_path / "s.png"), "--out", str(tmp_path),
                 "--spacing", "0.5", "0.5", "5"]) == 0
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["spacing_mm"] == [5.0, 0.5, 0.5]
    assert report["volume_ml"] == pytest.approx(blob.sum() * 1.25 / 1000, rel=0.05)


def test_bad_inputs_get_one_line_each_and_the_rest_is_processed(fake_cli, tmp_path, capsys):
    write_png(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code = main(["segment", str(tmp_path / "broken.png"), str(tmp_path / "missing.nii.gz"),
                 str(tmp_path / "good.png"), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert code == 1 and len(errors) == 2
    assert errors[0].startswith(f"error: {tmp_path / 'broken.png'}: ")
    assert errors[1].startswith(f"error: {tmp_path / 'missing.nii.gz'}: ")
    assert "Traceback" not in captured.err
    assert (tmp_path / "out" / "good.mask.png").is_file()


def test_missing_weights_exit_2_with_one_line(tmp_path, capsys):
    write_png(tmp_path / "a.png")
    code = main(["segment", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"),
                 "--weights-dir", str(tmp_path / "none")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no trained weights" in err[0]


def test_bad_spacing_and_unknown_model_exit_2(fake_cli, tmp_path, capsys):
    write_png(tmp_path / "a.png")
    assert main(["segment", str(tmp_path / "a.png"), "--out", str(tmp_path), "--spacing", "1"]) == 2
    assert main(["segment", str(tmp_path / "a.png"), "--out", str(tmp_path), "--model", "vgg"]) == 2
    err = capsys.readouterr().err
    assert "spacing must be 2 or 3" in err and "available models: unet" in err


def test_info_lists_models_and_metrics(tiny_onnx_dir, capsys):
    assert main(["info", "--weights-dir", str(tiny_onnx_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("unet: unet") and "runtime onnx" in out and "mean_dice=0.100" in out
    assert main(["info", "--json", "--weights-dir", str(tiny_onnx_dir)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["runtime"] == "onnx"


def test_export_onnx_command(weights_copy, tmp_path, capsys):
    (weights_copy / "unet.onnx").unlink()
    assert main(["export-onnx", "--model", "unet", "--weights-dir", str(weights_copy)]) == 0
    assert "max abs diff vs Keras" in capsys.readouterr().out
    assert (weights_copy / "unet.onnx").is_file()
    assert main(["export-onnx", "--weights-dir", str(tmp_path / "empty")]) == 2


def test_python_dash_m_entry_point(tiny_onnx_dir, tmp_path):
    write_png(tmp_path / "x.png")
    run = subprocess.run([sys.executable, "-m", "model", "segment", str(tmp_path / "x.png"),
                          "--out", str(tmp_path / "o"), "--weights-dir", str(tiny_onnx_dir)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("x: volume unknown (no spacing)")
    assert Image.open(tmp_path / "o" / "x.mask.png").size == (160, 120)


def test_dicom_folder_and_zip(fake_cli, tmp_path, capsys):
    from tests.synthetic import make_dicom_series, make_zip

    hu, inside = blob_volume((6, 48, 40), (3, 20, 22), (1.6, 10, 8), value_hu=80, background_hu=0)
    files = make_dicom_series(n=6, shape_yx=(48, 40), spacing_mm=(5.0, 0.5, 0.5), volume=hu)
    folder = tmp_path / "series"
    folder.mkdir()
    for name, data in files:
        (folder / name).write_bytes(data)
    (tmp_path / "series2.zip").write_bytes(make_zip(files))
    out = tmp_path / "out"
    assert main(["segment", str(folder), str(tmp_path / "series2.zip"), "--out", str(out)]) == 0
    for name in ("series", "series2"):
        nifti = nib.load(str(out / f"{name}.mask.nii.gz"))
        assert nifti.shape == (40, 48, 6)
        assert np.allclose(np.abs(np.diag(nifti.affine))[:3], [0.5, 0.5, 5.0])
        data = np.asarray(nifti.dataobj).astype(bool).transpose(2, 1, 0)   # back to (Z, Y, X)
        assert (data & inside).sum() / (data | inside).sum() > 0.9
        report = json.loads((out / f"{name}.json").read_text())
        assert report["spacing_mm"] == [5.0, 0.5, 0.5]
        assert report["volume_ml"] == pytest.approx(inside.sum() * 1.25 / 1000, rel=0.05)
