import numpy as np
import pandas as pd
import pytest

from benchmarks.cost.cli import main
from benchmarks.cost.embedding_step import (
    EMBEDDING_STEP_VARIANTS,
    embedding_step_markdown,
    run_embedding_step,
    summarise_embedding_step,
)
from benchmarks.cost.memory import run_memory, run_memory_modes
from benchmarks.cost.mlp_step import (
    MLP_STEP_VARIANTS,
    mlp_step_markdown,
    run_mlp_step,
    summarise_mlp_step,
)
from benchmarks.cost.overhead import run_overhead
from benchmarks.cost.scale import run_scale
from benchmarks.cost.torch_step import run_torch_step, summarise_torch_step, torch_step_markdown
from neural_feature_importance.core.modes import SCORING_MODES


def test_memory_state_is_four_arrays_of_the_statistics_dtype():
    table = run_memory([10, 100], units=8, updates=2).set_index("n_weights")
    # Linear(10, 8): 80 float32 weights = 320 bytes. VIANN keeps shift, mean, M2
    # and the last weights: 4 x 80 x 8 bytes in float64, half in float32, and no
    # array besides its state (the update's delta is a temporary).
    assert table.loc[80, "weight_bytes"] == 320
    assert table.loc[80, "torch_state_bytes_float64"] == 4 * 80 * 8
    assert table.loc[80, "torch_state_bytes_float32"] == 4 * 80 * 4
    assert (table["torch_extra_bytes_float64"] == 0).all()
    assert (table["torch_extra_bytes_float32"] == 0).all()
    assert table.loc[800, "numpy_state_bytes"] == 4 * 800 * 8
    # The numpy update allocates at least the float64 delta, and less than its state.
    assert 800 * 8 <= table.loc[800, "numpy_update_peak_extra_bytes"] < 4 * 800 * 8
    assert (table["torch_us_per_update_float64"] > 0).all()


# x the float32 weight's bytes with float64 statistics: each per-weight array in
# float64 is 2x (float32 statistics: half). Taylor keeps no per-weight array.
PER_WEIGHT_ARRAYS = {
    "viann": 4,  # shift, mean, M2, last weights
    "growth": 2,  # initial, last
}


def test_memory_per_mode_ratios_on_a_small_layer():
    # A Linear(20, 64) weight: 1,280 float32 weights = 5,120 bytes, 20 input features.
    table = run_memory_modes({"small": ("dense", (64, 20))}, epochs=2)
    assert len(table) == 2 * len(SCORING_MODES) * 2  # torch and numpy, float64 and float32
    assert (table["weight_bytes"] == 5120).all()
    rows = table.set_index(["framework", "scoring", "dtype"])
    for framework in ("torch", "numpy"):
        assert rows.loc[(framework, "viann", "float64"), "ratio"] == 8.0
        assert rows.loc[(framework, "viann", "float32"), "ratio"] == 4.0
        for mode, arrays in PER_WEIGHT_ARRAYS.items():
            assert rows.loc[(framework, mode, "float64"), "ratio"] == 2.0 * arrays
            assert rows.loc[(framework, mode, "float32"), "ratio"] == 1.0 * arrays
            assert rows.loc[(framework, mode, "float64"), "extra_bytes"] == 0
        # Taylor: one float64 sum per feature in its state (20 x 8 bytes) and, one
        # step after the snapshot, that step's held float32 read (20 x 4) beside it.
        taylor = rows.loc[(framework, "taylor", "float64")]
        assert taylor["state_bytes"] == 20 * 8
        assert taylor["extra_bytes"] == 20 * 4
        # The numpy core holds the statistics itself; a torch tracker holds the core.
        assert taylor["extra_arrays"].endswith("statistics.mode.held._held[*]['features'] 80")
        assert taylor["ratio"] == (160 + 80) / 5120 < 0.1
        assert rows.loc[(framework, "taylor", "float32"), "ratio"] == (80 + 80) / 5120
    goals = table[table["scoring"].isin(["viann", "taylor"])]
    assert (goals["verdict"] == "PASS").all()
    assert (table.loc[~table["scoring"].isin(["viann", "taylor"]), "verdict"] == "").all()
    # The feature names and one index array per column are not statistics: apart.
    assert (table["columns_bytes"] > 0).all()


def test_memory_of_an_embedding_table_counts_its_rows_as_features():
    # Embedding(200, 64): 12,800 weights = 51,200 bytes; taylor keeps one sum per token.
    table = run_memory_modes(
        {"table": ("embedding", (200, 64))}, modes=["viann", "taylor"], frameworks=["torch"]
    )
    rows = table.set_index(["scoring", "dtype"])
    assert rows.loc[("viann", "float64"), "state_bytes"] == 4 * 12_800 * 8
    assert rows.loc[("taylor", "float64"), "state_bytes"] == 200 * 8
    assert rows.loc[("taylor", "float64"), "extra_bytes"] == 200 * 4
    assert rows.loc[("taylor", "float32"), "ratio"] == (200 * 4 + 200 * 4) / 51_200


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
    assert set(results) == {"memory", "memory_modes"}
    assert (tmp_path / "cost_memory.csv").exists() and (tmp_path / "cost_memory.png").exists()
    modes = results["memory_modes"]
    # Two layers x torch and numpy x every mode x two dtypes.
    assert len(modes) == 2 * 2 * len(SCORING_MODES) * 2
    assert len(modes) == len(pd.read_csv(tmp_path / "cost_memory_modes.csv"))
    text = (tmp_path / "cost.md").read_text()
    assert "VIANN's memory against the tracked weight" in text
    assert "Tracker memory per scoring mode" in text
    assert "| dense 64x100 " in text and "| embedding 1000x32 " in text


def test_embedding_step_pairs_every_variant_with_plain_blocks():
    blocks = run_embedding_step(
        vocab=300, dim=8, batch_size=8, seq_len=5, steps=4, repeats=3, optimizers=("sgd",)
    )
    # 3 recorded rounds (the warm-up round is not) x 7 variants.
    assert len(EMBEDDING_STEP_VARIANTS) == 7
    assert len(blocks) == 3 * 7
    assert set(blocks["round"]) == {1, 2, 3}
    # Each round runs the variants in an order rotated by one.
    first = blocks[blocks["position"] == 0].set_index("round")["variant"]
    assert list(first) == ["viann_epoch", "viann_step", "descent_taylor"]
    last = blocks[blocks["position"] == 6].set_index("round")["variant"]
    assert list(last) == ["plain", "viann_epoch", "viann_step"]
    plain = blocks[blocks["variant"] == "plain"]
    assert (plain["tracker_ms_per_step"] == 0).all()
    tracked = blocks[blocks["variant"] != "plain"]
    assert (tracked["step_end_seconds"] > 0).all() and (tracked["epoch_end_seconds"] > 0).all()
    summary = summarise_embedding_step(blocks).set_index("variant")
    assert list(summary.index) == [
        "plain",
        "viann_epoch",
        "viann_step",
        "descent_taylor",
        "taylor",
        "taylor_every_step",
        "steady_taylor",
    ]
    assert summary.loc["plain", "extra_ms"] == 0.0
    # The paired difference is taken round by round against the plain block.
    wide = blocks.pivot(index="round", columns="variant", values="ms_per_step")
    expected = float(np.median(wide["viann_step"] - wide["plain"]))
    assert summary.loc["viann_step", "extra_ms"] == pytest.approx(expected)
    text = embedding_step_markdown(summarise_embedding_step(blocks), blocks)
    assert "`nn.Embedding(300, 8)`" in text
    assert text.count("| sgd: ") == 7


def test_cli_quick_embedding_step_part(tmp_path):
    results = main(["--quick", "--parts", "embedding_step", "--out", str(tmp_path)])
    assert set(results) == {"embedding_step", "embedding_step_summary"}
    summary = pd.read_csv(tmp_path / "cost_embedding_step_summary.csv")
    assert len(summary) == 2 * 7  # adam and sgd x 7 variants
    assert (
        "Per-step cost on a large embedding table"
        in (tmp_path / "cost_embedding_step.md").read_text()
    )
    assert not (tmp_path / "cost.md").exists()  # no default part ran


def test_mlp_step_pairs_every_variant_with_plain_blocks():
    blocks = run_mlp_step(
        n_features=20, hidden=(8,), batch_size=8, steps=4, repeats=3, optimizers=("sgd",)
    )
    variants = list(MLP_STEP_VARIANTS)
    # 3 recorded rounds (the warm-up round is not) x 7 variants.
    assert len(variants) == 7
    assert len(blocks) == 3 * 7
    assert set(blocks["round"]) == {1, 2, 3}
    assert (blocks["n_features"] == 20).all() and (blocks["hidden"] == "8").all()
    assert (blocks["batch_size"] == 8).all() and (blocks["steps"] == 4).all()
    # Round r runs the variants rotated by r.
    for round_, group in blocks.groupby("round"):
        order = list(group.sort_values("position")["variant"])
        assert order == variants[round_:] + variants[:round_]
    plain = blocks[blocks["variant"] == "plain"]
    assert (plain["tracker_ms_per_step"] == 0).all()
    assert (plain["step_end_seconds"] == 0).all() and (plain["epoch_end_seconds"] == 0).all()
    tracked = blocks[blocks["variant"] != "plain"]
    assert (tracked["step_end_seconds"] > 0).all() and (tracked["epoch_end_seconds"] > 0).all()
    summary = summarise_mlp_step(blocks).set_index("variant")
    assert list(summary.index) == variants
    assert (summary["rounds"] == 3).all() and (summary["steps"] == 4).all()
    assert summary.loc["plain", "extra_ms"] == 0.0
    # The paired difference is taken round by round against the plain block.
    wide = blocks.pivot(index="round", columns="variant", values="ms_per_step")
    for variant in ("taylor", "steady_taylor", "steady_taylor_every_step"):
        expected = float(np.median(wide[variant] - wide["plain"]))
        assert summary.loc[variant, "extra_ms"] == pytest.approx(expected)
    text = mlp_step_markdown(summarise_mlp_step(blocks), blocks)
    assert "Per-step cost on the planted-truth MLP" in text
    assert "`Linear(20, 8) -> ReLU -> Linear(8, 1)`" in text
    assert "20 x 8 weights" in text and "A block = 4 optimizer steps" in text
    assert text.count("| sgd: ") == 7
    assert "| sgd: steady_taylor, gradient_every=1 " in text


@pytest.mark.parametrize("steps", [0, 6, -4])
def test_mlp_step_steps_must_be_a_multiple_of_four(steps):
    with pytest.raises(ValueError, match="multiple of 4"):
        run_mlp_step(n_features=5, hidden=(4,), steps=steps, repeats=1, optimizers=("sgd",))


def test_mlp_step_rejects_unknown_variants_and_needs_plain():
    with pytest.raises(ValueError, match="unknown variant"):
        run_mlp_step(n_features=5, steps=4, repeats=1, variants=("plain", "viann_step"))
    with pytest.raises(ValueError, match="must include 'plain'"):
        run_mlp_step(n_features=5, steps=4, repeats=1, variants=("taylor",))


def test_cli_quick_mlp_step_part(tmp_path):
    results = main(["--quick", "--parts", "mlp_step", "--out", str(tmp_path)])
    assert set(results) == {"mlp_step", "mlp_step_summary"}
    blocks = pd.read_csv(tmp_path / "cost_mlp_step.csv")
    # --quick: 2 recorded rounds x 7 variants x adam and sgd, 50 inputs, 8 steps.
    assert len(blocks) == 2 * 7 * 2
    assert (blocks["n_features"] == 50).all() and (blocks["steps"] == 8).all()
    summary = pd.read_csv(tmp_path / "cost_mlp_step_summary.csv")
    assert len(summary) == 2 * 7
    assert list(summary["variant"][:7]) == list(MLP_STEP_VARIANTS)
    text = (tmp_path / "cost_mlp_step.md").read_text()
    assert "Per-step cost on the planted-truth MLP" in text
    assert "`Linear(50, 64) -> ReLU -> Linear(64, 64) -> ReLU -> Linear(64, 1)`" in text
    assert not (tmp_path / "cost.md").exists()  # no default part ran


def test_cli_rejects_unknown_part(tmp_path):
    with pytest.raises(SystemExit):
        main(["--quick", "--parts", "speed", "--out", str(tmp_path)])


def test_torch_step_times_each_network_against_its_own_untracked_copy():
    blocks = run_torch_step(models=("mlp", "conv2d"), quick=True, steps=4, conv_steps=4, repeats=2)
    # 2 networks x 2 recorded rounds x 4 variants (no tracker and the three gradient modes).
    assert len(blocks) == 2 * 2 * 4
    assert list(dict.fromkeys(blocks["model"])) == ["mlp", "conv2d"]
    plain = blocks[blocks["variant"] == "plain"]
    assert (plain["tracker_ms_per_step"] == 0).all()
    tracked = blocks[blocks["variant"] != "plain"]
    # The optimizer hook that counts the layer's updates is timed with on_step_end.
    assert (tracked["step_end_seconds"] > 0).all()
    summary = summarise_torch_step(blocks).set_index(["model", "variant"])
    for model in ("mlp", "conv2d"):
        step = summary.loc[(model, "plain"), "step_ms"]
        row = summary.loc[(model, "steady_taylor")]
        assert row["inside_pct"] == pytest.approx(100 * row["inside_ms"] / step)
    text = torch_step_markdown(summarise_torch_step(blocks), blocks)
    assert "| mlp: steady_taylor " in text and "| conv2d: no tracker " in text
    # The recommended mode is judged against its goal on the two networks that have one.
    assert text.count(" 1 % |") == 1 and text.count(" 0.5 % |") == 1


def test_torch_step_rejects_an_unknown_network():
    with pytest.raises(ValueError, match="unknown model"):
        run_torch_step(models=("resnet",), quick=True)
