"""The distributed benchmark's smoke run: its table, and 2 processes agreeing with 1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from benchmarks.distributed import STRATEGIES, VARIANTS, main, per_run  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    return out, main(["--quick", "--out", str(out)])


def test_quick_run_has_one_row_per_setup(quick):
    out, _ = quick
    summary = pd.read_csv(out / "distributed.csv")
    expected = {
        ("mlp", strategy, processes, variant)
        for strategy in STRATEGIES
        for processes in (1, 2)
        for variant in VARIANTS
    }
    columns = ["model", "strategy", "processes", "variant"]
    keys = set(summary[columns].itertuples(index=False, name=None))
    assert len(summary) == 12 and keys == expected
    assert (summary["rounds"] == 2).all()
    assert (summary["steps_per_epoch"] == 512 // 64).all()
    tracked = summary[summary["variant"] != "plain"]
    assert (tracked["n_updates"] == 2).all()  # one snapshot per epoch, 2 epochs
    assert (tracked["importances_ms"] > 0).all()
    assert summary.loc[summary["variant"] == "plain", "importances_ms"].isna().all()
    # One row per process and run: 1 + 2 processes x 2 strategies x 2 rounds x 3 trackers.
    runs = pd.read_csv(out / "distributed_runs.csv")
    assert len(runs) == (1 + 2) * 2 * 2 * 3
    assert set(runs["backend"]) == {"gloo"}
    text = (out / "distributed.md").read_text()
    assert text.count("| mlp ") == 12
    assert "(reference)" in text


def test_two_processes_agree_with_one(quick):
    _, results = quick
    table = per_run(results["runs"]).set_index(["strategy", "processes", "variant", "round"])
    for strategy in STRATEGIES:
        for variant in ("viann", "taylor"):
            one = table.loc[(strategy, 1, variant, 0), "importances"]
            two = table.loc[(strategy, 2, variant, 0), "importances"]
            assert one.shape == two.shape == (100,)
            assert np.ptp(one) > 0
            np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-4 * np.max(np.abs(one)))
            # Every round trains the same network: the rounds' importances are equal.
            np.testing.assert_array_equal(table.loc[(strategy, 2, variant, 1), "importances"], two)
    assert table["ranks_agree"].all()
    summary = results["summary"]
    two_processes = summary[(summary["processes"] == 2) & (summary["variant"] != "plain")]
    assert two_processes["agrees"].all()
    assert (two_processes["max_rel_diff"] < 1e-4).all()
    assert (two_processes["spearman"] > 0.999).all()
