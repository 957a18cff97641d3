"""The model card is generated from the CV reports and the shipped weight JSONs."""
from __future__ import annotations

import shutil
from pathlib import Path

from training.report import main

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_model_card_is_regenerated_exactly_from_the_shipped_reports(tmp_path):
    """Fails when a report or weight JSON changed without `python -m training.report`, or the
    template lost a placeholder's value."""
    reports, weights = tmp_path / "reports", tmp_path / "weights"
    shutil.copytree(ROOT / "reports", reports, ignore=shutil.ignore_patterns("*.png", "folds"))
    weights.mkdir()
    for path in (ROOT / "model" / "weights").glob("*.json"):
        shutil.copy(path, weights)
    main(["--weights", str(weights), "--reports", str(reports)])
    card = (weights / "MODEL_CARD.md").read_text()
    assert card == (ROOT / "model" / "weights" / "MODEL_CARD.md").read_text()
    assert "Not a medical device" in card
    assert (reports / "cv_table.md").read_text() == (ROOT / "reports" / "cv_table.md").read_text()


def test_single_slice_share_is_the_central_5_mm_slab_of_a_sphere_of_the_minimum_volume(tmp_path):
    from training.report import single_slice_shares
    assert single_slice_shares(tmp_path) == "no model shipped"
    # a 1620 mm3 sphere: radius 7.285 mm, central slab pi*5*(r^2 - 25/12) = 801 mm3, 49.4% of it
    (tmp_path / "unet.json").write_text('{"postprocess": {"min_lesion_mm3": 1620.0}}')
    assert single_slice_shares(tmp_path) == "unet 49% of it"
    (tmp_path / "unet.json").write_text('{"postprocess": {"min_lesion_mm3": 3240.0}}')
    assert single_slice_shares(tmp_path) == "unet 40% of it"
