"""``make demo``'s script: trains on Iris and ranks the petal measurements first."""

import runpy
import sys
from pathlib import Path

import pytest

from neural_feature_importance.core import RECOMMENDED_MODE

pytest.importorskip("torch")
pytest.importorskip("sklearn")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"


def test_demo_prints_the_recommended_mode_beside_random_forest(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["demo.py", "--epochs", "30"])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if "(cm)" in line]
    assert len(rows) == 4
    top_two = {" ".join(row[:2]) for row in rows[:2]}
    assert top_two == {"petal length", "petal width"}
    scores = [float(row[-2]) for row in rows]
    assert scores[0] == 1.0 and min(scores) == 0.0
    # The tracker is built without scoring=: the default, the recommended mode.
    assert f"Pearson correlation {RECOMMENDED_MODE} vs random forest" in out
