"""Configuration from the environment, read when the app is created, never at import."""
from __future__ import annotations

import importlib

import pytest

import app as app_module
from model.types import Limits
from test_web_api import make_client, make_segmenter
from web.config import ConfigError, config_from_env, limits_from_env


def test_defaults_match_pipeline_limits():
    config = config_from_env({})
    assert config["LIMITS"] == Limits()
    assert config["MODEL_DIR"] == "model/weights" and config["DEFAULT_MODEL"] is None


def test_environment_overrides_limits():
    limits = limits_from_env({"ICH_MAX_UPLOAD_MB": "2.5", "ICH_MAX_VOXELS": "1000",
                              "ICH_MAX_FILES": "7", "ICH_MAX_DECOMPRESSED_MB": "3"})
    assert limits.max_upload_bytes == int(2.5 * 1024 * 1024)
    assert (limits.max_voxels, limits.max_files) == (1000, 7)
    assert limits.max_decompressed_bytes == 3 * 1024 * 1024


@pytest.mark.parametrize("name, value", [("ICH_MAX_UPLOAD_MB", "-1"), ("ICH_MAX_UPLOAD_MB", "abc"),
                                         ("ICH_MAX_VOXELS", "1.5"), ("ICH_MAX_FILES", "0"),
                                         ("ICH_MAX_DECOMPRESSED_MB", "nan")])
def test_invalid_environment_is_a_clear_error(name, value):
    with pytest.raises(ConfigError, match=name):
        config_from_env({name: value})


def test_create_app_reads_environment_at_call_time(monkeypatch):
    monkeypatch.setenv("ICH_MAX_UPLOAD_MB", "3")
    monkeypatch.setenv("ICH_MAX_FILES", "5")
    app = make_client().application
    assert app.config["MAX_CONTENT_LENGTH"] == 3 * 1024 * 1024
    assert app.config["LIMITS"].max_files == 5
    assert app.config["MAX_FORM_PARTS"] > 5
    monkeypatch.setenv("ICH_MAX_UPLOAD_MB", "4")
    assert make_client().application.config["MAX_CONTENT_LENGTH"] == 4 * 1024 * 1024


def test_model_dir_and_default_model_reach_the_segmenter(monkeypatch, tmp_path):
    seen = {}

    def fake_build(config):
        seen.update(config)
        return make_segmenter("unet")

    monkeypatch.setenv("ICH_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("ICH_DEFAULT_MODEL", "unet")
    monkeypatch.setattr(app_module, "build_segmenter", fake_build)
    app_module.create_app()
    assert seen["MODEL_DIR"] == str(tmp_path) and seen["DEFAULT_MODEL"] == "unet"


def test_import_creates_no_app():
    module = importlib.reload(app_module)
    assert not hasattr(module, "app") and callable(module.create_app)
