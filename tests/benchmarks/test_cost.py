import numpy as np
import pytest

from benchmarks.cost import main, run_memory, run_overhead, run_scale


def test_memory_state_is_four_arrays_of_the_statistics_dtype():
    table = run_memory([10, 100], units=8, updates=2).set_index("n_weights")
    # Linear(10, 8): 80 float32 weights = 320 bytes. The tracker keeps shift,
    # mean, M2 and the last weights: 4 x 80 x 8 bytes in float64, half in float32.
    assert table.loc[80, "weight_bytes"] == 320
    assert table.loc[80, "torch_state_bytes_float64"] == 4 * 80 * 8
    assert table.loc[80, "torch_state_bytes_float32"] == 4 * 80 * 4
    assert table.loc[800, "numpy_state_bytes"] == 4 * 800 * 8
    assert (table["numpy_update_peak_extra_bytes"] >= 0).all()
    assert (table["torch_us_per_update_float64"] > 0).all()


def test_scale_sweep_rows_and_budget_skips():
    pytest.importorskip("captum")
    table = run_scale(
        feature_sizes=(4, 8),
        row_sizes=(),
        methods=("viann_epoch", "viann_step", "permutation", "integrated_gradients"),
        epochs=2,
        feature_rows=64,
        feature_explain=16,
        method_budget=0.0,  # every post-hoc method is skipped after its first size
    )
    first = table[table["size"] == 4].set_index("method")
    second = table[table["size"] == 8].set_index("method")
    assert set(first.index) == {
        "training (no tracker)",
        "viann_epoch",
        "viann_step",
        "permutation",
        "integrated_gradients",
    }
    assert (first["status"] == "ok").all()
    assert second.loc["permutation", "status"] == "skipped"
    assert np.isnan(second.loc["permutation", "seconds"])
    # Training and the trackers are never skipped: they are what VIANN costs.
    assert (
        second.loc[["training (no tracker)", "viann_epoch", "viann_step"], "status"] == "ok"
    ).all()
    assert (table["n_explain"] == 16).all() and (table["n_train"] == 64).all()


def test_overhead_counts_snapshots_per_epoch_and_per_step():
    table = run_overhead(["mlp"], ["torch"], rows={"mlp": 96}, epochs=2)
    rows = table.set_index("mode")
    assert rows.loc["epoch", "n_updates"] == 2
    assert rows.loc["step", "n_updates"] == 6  # 96 rows / batch 32 x 2 epochs
    assert (table["tracked_shape"] == "64x100").all()
    assert (table["n_weights"] == 6400).all()
    assert (table["overhead_pct"] > 0).all()


def test_cli_quick_memory_part(tmp_path):
    results = main(["--quick", "--parts", "memory", "--out", str(tmp_path)])
    assert set(results) == {"memory"}
    assert (tmp_path / "cost_memory.csv").exists() and (tmp_path / "cost_memory.png").exists()
    assert "Tracker memory against the tracked weight" in (tmp_path / "cost.md").read_text()


def test_cli_rejects_unknown_part(tmp_path):
    with pytest.raises(SystemExit):
        main(["--quick", "--parts", "speed", "--out", str(tmp_path)])
