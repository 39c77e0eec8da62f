import numpy as np
import pandas as pd
import pytest

from benchmarks import report
from benchmarks.methods import (
    DEFAULT_METHODS,
    METHODS,
    resolve_methods,
    viann_variant,
)
from benchmarks.truth import COLUMNS, main, markdown, run_truth, summarise

TORCH_METHODS = [
    "viann_epoch_torch",
    "viann_step_torch",
    "garson",
    "olden",
    "permutation",
    "lofo",
    "integrated_gradients",
    "shap_deep",
    "random_forest",
]


@pytest.fixture(scope="module")
def table():
    pytest.importorskip("captum")
    pytest.importorskip("shap")
    variant = viann_variant("viann_sum", normalize="sum")
    return run_truth(
        ["xor", "friedman1"],
        [*TORCH_METHODS, variant],
        seeds=[3],
        epochs=3,
        n_samples=120,
        warm_up=False,
    )


def test_one_row_per_dataset_seed_method_and_no_failures(table):
    assert list(table.columns) == COLUMNS
    assert len(table) == 2 * (len(TORCH_METHODS) + 1)
    assert (table["error"] == "").all(), table.loc[table["error"] != "", "error"].tolist()
    assert set(table["seed"]) == {3}
    assert table["auc"].between(0, 1).all()
    assert table["precision_at_k"].between(0, 1).all()
    # friedman1 has no decoys; xor neither.
    assert table["auc_vs_decoys"].isna().all()
    assert (table.loc[table["dataset"] == "xor", "n_informative"] == 3).all()
    assert (table["n_train"] == 90).all()


def test_viann_rows_count_snapshots_and_overhead(table):
    viann = table[table["family"] == "viann"].set_index(["dataset", "method"])
    # 90 training rows in batches of 32 -> 3 steps per epoch, 3 epochs.
    assert viann.loc[("xor", "viann_epoch_torch"), "n_snapshots"] == 3
    assert viann.loc[("xor", "viann_step_torch"), "n_snapshots"] == 9
    assert viann.loc[("xor", "viann_sum"), "n_snapshots"] == 3
    assert (viann["overhead_pct"] > 0).all() and np.isfinite(viann["overhead_pct"]).all()
    # The three trackers watched the same network: same test score.
    assert viann.xs("xor")["test_score"].nunique() == 1
    # normalize only rescales, so the ranking metrics of the variant equal the default's.
    for column in ("auc", "precision_at_k"):
        assert (
            viann.loc[("xor", "viann_sum"), column]
            == viann.loc[("xor", "viann_epoch_torch"), column]
        )


def test_posthoc_rows_explain_the_torch_network(table):
    xor = table[table["dataset"] == "xor"].set_index("method")
    assert xor.loc["permutation", "test_score"] == xor.loc["viann_epoch_torch", "test_score"]
    assert np.isnan(xor.loc["random_forest", "test_score"])
    assert (xor.drop(index=["random_forest"])["method_seconds"] >= 0).all()


def test_summary_and_markdown(table, tmp_path):
    summary = summarise(table)
    assert len(summary) == len(table)  # one seed: one row per (dataset, method)
    assert (summary["seeds"] == 1).all()
    text = markdown(table)
    assert "**ROC-AUC, informative vs all other features**" in text
    assert "| viann_epoch_torch" in text and "tracker overhead" in text


def test_failures_are_recorded_not_raised():
    from benchmarks.methods import Method

    def broken(trained):
        raise RuntimeError("no luck")

    bad = Method("broken", "posthoc", "torch", "always fails", broken)
    out = run_truth(
        ["xor"], ["viann_epoch_torch", bad], seeds=1, epochs=2, n_samples=60, warm_up=False
    )
    row = out.set_index("method").loc["broken"]
    assert row["error"] == "RuntimeError: no luck" and np.isnan(row["auc"])
    assert "**Failures**" in markdown(out)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        resolve_methods(["nope"])
    with pytest.raises(ValueError, match="given twice"):
        resolve_methods(["garson", "garson"])
    with pytest.raises(ValueError, match="built-in method"):
        viann_variant("garson")
    with pytest.raises(ValueError, match="unknown data set"):
        run_truth(["iris"], ["garson"], seeds=1)
    with pytest.raises(ValueError, match="at least 2 epochs"):
        run_truth(["xor"], ["garson"], seeds=1, epochs=1)
    assert "shap_gradient" in METHODS and "shap_gradient" not in DEFAULT_METHODS


def test_cli_quick_writes_csv_markdown_and_plots(tmp_path, capsys):
    out = main(
        [
            "--quick",
            "--datasets",
            "correlated_decoys",
            "--methods",
            "viann_epoch_torch,olden",
            "--epochs",
            "2",
            "--n-samples",
            "80",
            "--seeds",
            "0,1",
            "--out",
            str(tmp_path),
        ]
    )
    assert isinstance(out, pd.DataFrame) and sorted(out["seed"].unique()) == [0, 1]
    for name in (
        "truth.csv",
        "truth_summary.csv",
        "truth.md",
        "truth_auc.png",
        "truth_cost_vs_auc.png",
    ):
        assert (tmp_path / name).stat().st_size > 0
    text = (tmp_path / "truth.md").read_text()
    assert "Machine:" in text and "informative vs correlated decoys only" in text
    assert "updated" not in capsys.readouterr().out  # --quick never edits RESULTS.md


def test_keras_trackers_in_the_suite():
    pytest.importorskip("keras")
    pytest.importorskip("neural_feature_importance.keras")
    out = run_truth(
        ["xor"],
        ["viann_epoch_keras", "viann_step_keras"],
        seeds=1,
        epochs=2,
        n_samples=80,
        warm_up=False,
    )
    assert (out["error"] == "").all(), out["error"].tolist()
    snaps = out.set_index("method")["n_snapshots"]
    assert snaps["viann_epoch_keras"] == 2 and snaps["viann_step_keras"] == 4  # 60 rows / 32


def test_update_section_replaces_only_its_block(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\nhand-written summary\n")
    report.update_section("truth", "table v1", path)
    report.update_section("cost", "cost v1", path)
    report.update_section("truth", "table v2", path)
    text = path.read_text()
    assert "hand-written summary" in text
    assert "table v2" in text and "table v1" not in text and "cost v1" in text
    assert text.index("table v2") < text.index("cost v1")
    assert text.count("<!-- BEGIN truth -->") == 1


def test_the_warm_up_run_gives_every_gradient_tracker_enough_reads():
    out = run_truth(["xor"], ["steady_taylor_torch"], seeds=[0], epochs=2, n_samples=120)
    row = out.set_index("method").loc["steady_taylor_torch"]
    assert row["error"] == "" and 0.0 <= row["auc"] <= 1.0
    # 90 training rows in batches of 32: 3 steps per epoch, 6 in all, read at 1 and 5.
    assert row["n_snapshots"] == 2
