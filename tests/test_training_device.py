"""Training precision/threads setup and the weighted loss."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training.device import choose_policy, cpu_has_bf16, training_precision


def test_cpu_bf16_flag_is_read_from_cpuinfo(tmp_path):
    with_amx = tmp_path / "amx"
    with_amx.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\n")
    plain = tmp_path / "plain"
    plain.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert cpu_has_bf16(str(with_amx)) is True
    assert cpu_has_bf16(str(plain)) is False
    assert cpu_has_bf16(str(tmp_path / "missing")) is False


def test_training_turns_onednn_on_before_tensorflow_is_imported():
    """training.evaluate set the threads (importing TensorFlow) before training.train set
    TF_ENABLE_ONEDNN_OPTS, so its fold trainings ran without oneDNN at ~1.6x the step time."""
    pytest.importorskip("tensorflow")
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"                 # TensorFlow logs the oneDNN state at import
    run = subprocess.run([sys.executable, "-c", "from training.device import set_threads; set_threads(1)"],
                         cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "oneDNN custom operations are on" in run.stderr


def test_float32_precision_is_always_float32():
    pytest.importorskip("keras")
    assert choose_policy("float32")[1] == "float32"


def test_training_precision_restores_the_global_policy(monkeypatch):
    keras = pytest.importorskip("keras")
    import training.device as device

    monkeypatch.setattr(device, "choose_policy", lambda precision: ("cpu", "mixed_bfloat16"))
    before = keras.mixed_precision.global_policy().name
    with training_precision("auto") as (_, policy):
        assert keras.mixed_precision.global_policy().name == policy == "mixed_bfloat16"
    # inference models built later in the same process must be float32 again
    assert keras.mixed_precision.global_policy().name == before == "float32"


def test_pos_weight_raises_the_cost_of_a_missed_lesion_only():
    pytest.importorskip("keras")
    from training.losses import bce_dice_loss

    truth = np.zeros((1, 8, 8, 1), np.float32)
    truth[0, 2:4, 2:4] = 1
    missed = np.full_like(truth, 0.01)          # lesion predicted absent
    false_alarm = np.where(truth > 0, 0.99, 0.5).astype(np.float32)  # lesion found, background 0.5

    def loss(pred, w):
        return float(bce_dice_loss(truth, pred, pos_weight=w))

    assert loss(missed, 10.0) > loss(missed, 1.0) + 0.5  # 4 of 64 pixels x 9 x -log(0.01) / 64
    assert loss(false_alarm, 10.0) == pytest.approx(loss(false_alarm, 1.0), abs=0.01)


def test_model_card_accuracy_caveat_follows_the_measured_cv(tmp_path):

    from training.report import accuracy_caveat

    from training.crossfit import POOLED

    def write(name, mean_dice, chosen_on=POOLED, durations_s=(600.0, 900.0)):
        (tmp_path / f"{name}_cv.json").write_text(json.dumps({
            "summary": {"mean_dice": mean_dice}, "chosen": {"chosen_on": chosen_on},
            "fold_choices": [{"steps": 2000, "duration_s": d} for d in durations_s]}))

    assert "Not cross-validated" in accuracy_caveat(tmp_path)
    write("unet", 0.12)
    text = accuracy_caveat(tmp_path)
    assert "unet 0.120: below the published baseline" in text and "2000 steps, 10-15 min per fold" in text
    assert "48 patients per fold" in text and "validation split" not in text
    write("two_branch", 0.40, chosen_on="median of the folds' choices on their validation patients",
          durations_s=(5770.0, 5790.0))
    text = accuracy_caveat(tmp_path)
    assert "unet below, two_branch at or above the published baseline" in text and "~10 per validation split" in text
    assert "two_branch 2000 steps, 96 min per fold" in text  # equal ends print once, not "96-96"
    write("unet", 0.31)
    assert "two_branch 0.400: at or above the published baseline" in accuracy_caveat(tmp_path)


def test_checkpoint_ties_go_to_the_later_checkpoint():
    from training.train import improves

    assert improves({"score": 0.0}, None)
    assert improves({"score": 0.0}, {"score": 0.0})  # later checkpoint, same score: take it
    assert improves({"score": 0.3}, {"score": 0.2})
    assert not improves({"score": 0.1}, {"score": 0.2})


def test_model_card_minimum_sizes_come_from_the_shipped_configs(tmp_path):
    from training.report import min_sizes

    assert min_sizes(tmp_path) == "none shipped"
    (tmp_path / "unet.json").write_text(json.dumps({"postprocess": {"min_lesion_mm3": 3240.0}}))
    (tmp_path / "two_branch.json").write_text(json.dumps({"postprocess": {"min_lesion_mm3": 810.0}}))
    assert min_sizes(tmp_path) == "unet 3.2 mL, two_branch 0.8 mL"


def test_a_gpu_trains_in_mixed_precision_bfloat16_from_ampere_on():
    pytest.importorskip("keras")
    assert choose_policy("auto", capability=lambda: (9, 0)) == ("gpu", "mixed_bfloat16")   # H100/H200
    assert choose_policy("auto", capability=lambda: (8, 0)) == ("gpu", "mixed_bfloat16")   # A100
    assert choose_policy("auto", capability=lambda: (7, 5)) == ("gpu", "mixed_float16")    # T4: no fast bf16
    assert choose_policy("float32", capability=lambda: (9, 0)) == ("gpu", "float32")
    assert choose_policy("auto", capability=lambda: None)[0] == "cpu"


def test_this_machine_reports_no_gpu_capability_without_a_gpu():
    keras = pytest.importorskip("keras")
    from training.device import gpu_capability

    cc = gpu_capability()
    assert cc is None or (isinstance(cc, tuple) and len(cc) == 2)
    if cc is None:
        assert choose_policy("auto")[0] == "cpu", keras.backend.backend()


def test_model_card_states_the_scaling_measurement_when_there_is_one(tmp_path):
    from training.report import scaling_line

    assert scaling_line(tmp_path) == ""
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "unet_gpu_scale.json").write_text(json.dumps({"results": {
        "scaled": {"mean_dice": 0.31, "bleeds_found": 17, "false_positive_patients": 4},
        "runs_base (comparison)": {"mean_dice": 0.234, "bleeds_found": 11, "false_positive_patients": 2},
        "paired_scaled_minus_runs_base": {"mean_dice": 0.077, "interval_95": [0.034, 0.126]}}}))
    text = scaling_line(tmp_path)
    assert "0.310 with 17 of 29 bleeds found and 4 of 31" in text and "0.234, 11 and 2" in text
    assert "+0.077, 95% 0.034 to 0.126" in text
