import math
import sys
from functools import partial

import numpy as np
import pytest
import torch

from benchmarks.methods import DEFAULT_METHODS, METHODS, Method, Trained
from benchmarks.selectors import (
    LASSONET_INSTALL,
    Selection,
    lassonet_importance,
    lassonet_selection,
    network_settings,
    stg_gate,
    stg_importance,
    stg_regulariser,
    stg_selection,
)
from benchmarks.truth import markdown, run_truth

# A LassoNet path short enough for tests: a fixed start skips the automatic
# estimate (seconds on its own), 20 % steps instead of 2 %, fewer epochs.
FAST_LASSONET = {"lambda_start": 1.0, "path_multiplier": 1.2, "n_iters": (100, 10)}


def planted(n=300, d=10, seed=0, task="regression", settings=None):
    """y depends on features 0 and 1 strongly, on nothing else."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    signal = 2.0 * X[:, 0] - 2.0 * X[:, 1]
    if task == "regression":
        y = signal + 0.1 * rng.standard_normal(n)
        y = (y - y.mean()) / y.std()
    else:
        y = (signal > 0).astype(np.int64)
    cut = 3 * n // 4
    return Trained(
        None, task, X[:cut], y[:cut], X[cut:], y[cut:], seed=seed, settings=settings or {}
    )


def top_two(scores):
    return set(np.argsort(-np.asarray(scores))[:2].tolist())


def test_gate_and_regulariser_match_hand_computation():
    mu = torch.tensor([-1.0, -0.5, 0.0, 0.3, 0.7])
    assert stg_gate(mu).tolist() == pytest.approx([0.0, 0.0, 0.5, 0.8, 1.0])
    noise = torch.tensor([0.6, 0.2, -0.6, 0.1, -0.5])
    assert stg_gate(mu, noise).tolist() == pytest.approx([0.1, 0.2, 0.0, 0.9, 0.7])
    sigma = 0.5
    by_hand = np.mean([0.5 * (1 + math.erf((m + 0.5) / sigma / math.sqrt(2))) for m in mu.tolist()])
    assert float(stg_regulariser(mu, sigma)) == pytest.approx(by_hand, rel=1e-6)
    # A gate at mu = -0.5 is open half the time.
    assert float(stg_regulariser(torch.tensor([-0.5]), 0.3)) == pytest.approx(0.5)


def test_settings_default_to_the_benchmark_mlp():
    t = planted(settings={"hidden": [8], "epochs": 3})
    assert network_settings(t) == {"hidden": (8,), "epochs": 3, "batch_size": 32, "lr": 1e-3}


def test_stg_ranks_the_planted_features_first_and_scores_its_network():
    t = planted(settings={"epochs": 30})
    result = stg_selection(t)
    assert isinstance(result, Selection) and result.importances.dtype == np.float64
    assert top_two(result.importances) == {0, 1}
    assert result.test_score > 0.9  # R² of the gated network on the held-out rows
    # Same seed, same result; the caller's random state is left alone.
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    again = stg_importance(t)
    assert torch.rand(1) == expected
    np.testing.assert_array_equal(again, result.importances)


def test_stg_classification():
    t = planted(task="classification", settings={"epochs": 30})
    result = stg_selection(t)
    assert top_two(result.importances) == {0, 1}
    assert 0.8 < result.test_score <= 1.0  # accuracy


def test_a_strong_penalty_closes_every_gate():
    t = planted(settings={"epochs": 30, "lr": 1e-2})
    gentle = stg_selection(t)
    closed = stg_selection(t, lam=100.0)
    # With lam=0.1 the planted gates open, the others drift shut.
    assert (gentle.importances[:2] > 0).all()
    # With a huge penalty every mu goes below -0.5: no gate is open at evaluation,
    # and the network predicts a constant (R² about 0).
    assert (closed.importances < -0.5).all()
    assert (closed.details["gate_probability"] == 0).all()
    assert closed.test_score < 0.05
    with pytest.raises(ValueError, match="sigma"):
        stg_selection(t, sigma=0.0)


def test_lassonet_ranks_the_planted_features_first():
    pytest.importorskip("lassonet")
    t = planted(settings={"hidden": (8,), "lassonet": FAST_LASSONET})
    result = lassonet_selection(t)
    assert top_two(result.importances) == {0, 1}
    assert np.isfinite(result.importances).all() and (result.importances > 0).all()
    assert result.details["n_lambdas"] > 5
    assert result.test_score > 0.8
    np.testing.assert_array_equal(lassonet_importance(t), result.importances)


def test_missing_lassonet_is_a_clear_row_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "lassonet", None)  # import lassonet -> ImportError
    with pytest.raises(ImportError, match="pip install lassonet"):
        lassonet_selection(planted())
    out = run_truth(["xor"], ["lassonet"], seeds=[0], epochs=2, n_samples=60, warm_up=False)
    row = out.set_index("method").loc["lassonet"]
    assert row["error"] == f"ImportError: {LASSONET_INSTALL}"
    assert np.isnan(row["auc"])


def test_selectors_are_registered_and_stg_runs_by_default():
    for name in ("lassonet", "stg"):
        assert METHODS[name].family == "selector" and METHODS[name].framework == "torch"
    # STG costs about two trainings and runs by default; LassoNet's path, 30-40, on request.
    assert "stg" in DEFAULT_METHODS and "lassonet" not in DEFAULT_METHODS


@pytest.fixture(scope="module")
def table():
    pytest.importorskip("lassonet")
    # The registered "lassonet" with a short path (the registered one walks
    # LassoNet's default path: tens of seconds).
    fast = Method(
        "lassonet",
        "selector",
        "torch",
        "LassoNet, short path",
        partial(lassonet_selection, **FAST_LASSONET),
    )
    return run_truth(
        ["friedman1"],
        [fast, "stg", "viann_epoch_torch"],
        seeds=[0],
        epochs=3,
        n_samples=150,
        warm_up=False,
    )


def test_selector_rows_carry_their_cost_relative_to_training(table):
    assert (table["error"] == "").all(), table["error"].tolist()
    rows = table.set_index("method")
    tracker = rows.loc["viann_epoch_torch"]
    for name in ("lassonet", "stg"):
        row = rows.loc[name]
        assert row["family"] == "selector"
        assert row["method_seconds"] > 0
        # Measured against the PyTorch MLP's training on the same data and seed.
        assert row["train_seconds"] == tracker["train_seconds"]
        assert np.isfinite(row["overhead_pct"])
        assert row["overhead_pct"] == pytest.approx(
            100.0 * row["method_seconds"] / row["train_seconds"]
        )
        assert 0 <= row["auc"] <= 1
        # Its own network's score, not the explained MLP's.
        assert np.isfinite(row["test_score"]) and row["test_score"] != tracker["test_score"]


def test_markdown_shows_selector_cost_as_multiple_of_training(table):
    text = markdown(table)
    cost = text[text.index("**Cost") :]
    stg_line = next(line for line in cost.splitlines() if line.startswith("| stg"))
    assert stg_line.rstrip(" |").endswith("x training")
    tracker_line = next(line for line in cost.splitlines() if line.startswith("| viann_epoch"))
    assert tracker_line.rstrip(" |").endswith("%")
    assert "tracker overhead / selector cost" in cost
    assert "| stg (own network)" in text and "| MLP (torch)" in text
