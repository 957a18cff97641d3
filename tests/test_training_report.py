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
