"""The grouped-column benchmark: a tiny run, grouped permutation by hand, the CLI."""

import re

import numpy as np
import pandas as pd
import pytest

from benchmarks.methods import GROUPED_METHODS, Trained, grouped_permutation
from benchmarks.training import torch_embedding_mlp
from benchmarks.truth import GROUPED_TABLE_COLUMNS, grouped_markdown, main, run_grouped

TORCH_GROUPED = ["viann", "growth", "taylor", "grouped_permutation"]
COLUMNS = ["store", "weekday", "price", "colour", "humidity", "city", "temperature"]
COLUMNS += ["distance", "weight"]


@pytest.fixture(scope="module")
def table():
    return run_grouped(
        seeds=[1], epochs=[2, 3], methods=TORCH_GROUPED, n_samples=200, warm_up=False
    )


def test_one_row_per_seed_epochs_method(table):
    assert list(table.columns) == GROUPED_TABLE_COLUMNS
    assert [c for c in table.columns if c.startswith("score_")] == [f"score_{c}" for c in COLUMNS]
    assert len(table) == 2 * len(TORCH_GROUPED)
    assert (table["error"] == "").all(), table.loc[table["error"] != "", "error"].tolist()
    assert sorted(table["epochs"].unique()) == [2, 3]
    assert (table["n_columns"] == 9).all() and (table["n_informative"] == 4).all()
    assert (table["n_train"] == 150).all()
    rows = table.set_index(["method", "epochs"])
    # The trackers see the first Linear: 2 embeddings x 4 dims + 14 numeric/one-hot inputs;
    # the permutation sees the model's input: 2 code columns + 14.
    assert rows.loc[("taylor", 3), "n_inputs"] == 22
    assert rows.loc[("grouped_permutation", 3), "n_inputs"] == 16
    # 150 rows in batches of 32: 5 steps per epoch; snapshots once per epoch.
    assert rows.loc[("viann", 3), "n_snapshots"] == 3
    assert rows.loc[("growth", 2), "n_snapshots"] == 2


def test_taylor_auc_is_a_number_in_the_unit_interval(table):
    taylor = table[table["method"] == "taylor"]
    assert taylor["auc"].between(0.0, 1.0).all() and taylor["auc"].notna().all()
    assert table["precision_at_k"].between(0.0, 1.0).all()
    # precision@4 over 9 columns moves in quarters.
    np.testing.assert_allclose((table["precision_at_k"] * 4) % 1, 0.0, atol=1e-12)
    scores = table[[f"score_{c}" for c in COLUMNS]].to_numpy(dtype=float)
    assert np.isfinite(scores).all()
    trackers = table[table["family"] == "viann"][[f"score_{c}" for c in COLUMNS]]
    np.testing.assert_allclose(trackers.max(axis=1), 1.0)  # minmax-normalised per run


def test_trackers_and_permutation_share_one_network_per_length(table):
    for _, same in table.groupby("epochs"):
        assert same["test_score"].nunique() == 1
        assert same["train_seconds"].nunique() == 1
    trackers = table[table["family"] == "viann"]
    assert (trackers["overhead_pct"] > 0).all()


def test_markdown_has_the_tables(table):
    text = grouped_markdown(table)
    assert "**ROC-AUC per column, informative vs noise columns** (4 vs 5;" in text
    assert "**Precision@4 per column**" in text
    assert "| taylor " in text and "| grouped_permutation " in text
    assert re.search(r"^\| method +\| 2 epochs \| 3 epochs \|$", text, re.MULTILINE)
    assert "store*" in text and "weekday |" in text
    assert "(training, torch network)" in text


class _OnlyColumns:
    """A fake trained model whose output reads some inputs only (checks one-hot rows)."""

    def __init__(self, weights, one_hot):
        self.weights = np.asarray(weights, dtype=np.float32)
        self.one_hot = one_hot

    def __call__(self, x):
        import torch

        block = x[:, self.one_hot]
        assert torch.all(block.sum(dim=1) == 1), "a shuffled one-hot row is not one-hot"
        return x @ torch.as_tensor(self.weights)[:, None]

    def eval(self):
        return self

    def train(self):
        return self


def test_grouped_permutation_scores_whole_columns():
    rng = np.random.default_rng(0)
    n = 400
    levels = rng.integers(0, 3, size=n)
    X = np.column_stack([rng.normal(size=n), np.eye(3)[levels], rng.normal(size=n)]).astype(
        np.float32
    )
    # Columns: "a" = input 0 (used), "b" = inputs 1-3 (one-hot, used), "c" = input 4 (unused).
    weights = [1.0, 0.0, 2.0, -2.0, 0.0]
    model = _OnlyColumns(weights, one_hot=[1, 2, 3])
    y = (X @ np.asarray(weights)).astype(np.float64)
    trained = Trained(model, "regression", X, y, X, y, seed=0, column_members=[[0], [1, 2, 3], [4]])
    scores = grouped_permutation(trained, n_repeats=3)
    assert scores.shape == (3,)
    assert scores[2] == 0.0  # an unused column changes nothing
    # Perfect fit (R² = 1); shuffling a used column costs about twice its share of variance.
    share_a = np.var(X[:, 0]) / np.var(y)
    assert scores[0] == pytest.approx(2 * share_a, rel=0.25)
    assert scores[1] > 0.5
    with pytest.raises(ValueError, match="column_members"):
        grouped_permutation(Trained(model, "regression", X, y, X, y, seed=0))


def test_embedding_mlp_reads_codes_from_the_leading_columns():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch_embedding_mlp([3, 5], embedding_dim=2, n_numeric=4, n_outputs=1, hidden=(8,))
    assert model.mlp[0].in_features == 2 * 2 + 4
    x = torch.tensor([[2.0, 4.0, 0.1, 0.2, 0.3, 0.4]])
    expected = model.mlp(
        torch.cat([model.embeddings[0].weight[2], model.embeddings[1].weight[4], x[0, 2:]])[None]
    )
    torch.testing.assert_close(model(x), expected)


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 2 epochs"):
        run_grouped(seeds=1, epochs=[1], methods=["taylor"], warm_up=False)
    with pytest.raises(ValueError, match="unknown method 'permutation'"):
        run_grouped(seeds=1, epochs=[2], methods=["permutation"], warm_up=False)
    assert set(TORCH_GROUPED) <= set(GROUPED_METHODS)


def test_cli_grouped_quick_writes_csv_and_markdown(tmp_path, capsys):
    out = main(
        [
            "--grouped",
            "--quick",
            "--methods",
            "taylor,grouped_permutation",
            "--n-samples",
            "120",
            "--out",
            str(tmp_path),
        ]
    )
    assert isinstance(out, pd.DataFrame) and set(out["method"]) == {"taylor", "grouped_permutation"}
    assert (out["epochs"] == 3).all()
    written = pd.read_csv(tmp_path / "truth_grouped.csv")
    assert list(written.columns) == GROUPED_TABLE_COLUMNS and len(written) == 2
    text = (tmp_path / "truth_grouped.md").read_text()
    assert text.startswith("Command: `python -m benchmarks.truth --grouped --quick")
    assert "Machine:" in text and "ROC-AUC per column" in text
    assert "updated" not in capsys.readouterr().out  # --quick never edits RESULTS.md


def test_cli_rejects_an_epoch_list_without_grouped():
    with pytest.raises(SystemExit):
        main(["--quick", "--epochs", "3,5"])


def test_keras_rows_watch_their_own_network():
    pytest.importorskip("keras")
    pytest.importorskip("neural_feature_importance.keras")
    out = run_grouped(
        seeds=[0],
        epochs=[2],
        methods=["viann_keras", "growth_keras", "taylor"],
        n_samples=120,
        warm_up=False,
    )
    assert (out["error"] == "").all(), out["error"].tolist()
    rows = out.set_index("method")
    assert rows.loc["viann_keras", "framework"] == "keras"
    assert rows.loc["viann_keras", "n_snapshots"] == 2 and rows.loc["viann_keras", "n_inputs"] == 22
    assert rows["auc"].between(0, 1).all()
    assert rows.loc["viann_keras", "test_score"] == rows.loc["growth_keras", "test_score"]


def test_the_warm_up_run_gives_every_gradient_tracker_enough_reads():
    # steady_taylor needs two gradient reads (steps 1 and 5 at one step in 4):
    # the throw-away warm-up run must have that many steps, or the benchmark
    # stops before its first timed run.
    out = run_grouped(seeds=[0], epochs=[2], methods=["steady_taylor"], n_samples=200)
    row = out.set_index("method").loc["steady_taylor"]
    assert row["error"] == "" and 0.5 <= row["auc"] <= 1.0
    assert row["n_snapshots"] == 2
