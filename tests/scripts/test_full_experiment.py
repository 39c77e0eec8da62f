"""``scripts/full_experiment.py --quick``: the paper's pipeline end to end, tiny budget.

The command-line run of two models on two data sets is marked ``slow``; its
fast variant is the same command on one model and one data set.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras")
pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
COMPARISONS = ["VIANN-LOFO", "VIANN-RF", "Garson-LOFO", "Garson-VIANN"]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fast_backend():
    """Keras' torch backend traces nothing, so tiny runs are several times faster."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return []
    return ["--backend", "torch"]


def _cli_run(out, models, datasets):
    """The one-command reproduction, as CI runs it: a subprocess with --quick."""
    argv = ["--quick", "--models", *models, "--datasets", *datasets]
    argv += ["--seeds", "2", "--out", str(out), "--no-progress", *_fast_backend()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("KERAS_BACKEND", None)
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "full_experiment.py"), *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, out


@pytest.fixture(scope="module")
def quick_cli_run(tmp_path_factory):
    return _cli_run(tmp_path_factory.mktemp("paper"), ["NN1", "DeepNN"], ["iris", "diabetes"])


@pytest.mark.slow
def test_cli_prints_the_table_beside_the_published_values(quick_cli_run):
    stdout, _ = quick_cli_run
    assert "NN1: mean ± std over seeds (published)" in stdout
    assert "DeepNN: mean ± std over seeds (published)" in stdout
    iris = next(line for line in stdout.splitlines() if line.startswith("iris"))
    assert "(0.99)" in iris and "(0.62)" in iris  # NN1's published VIANN-LOFO, Garson-VIANN
    assert stdout.count("mean |reproduced - published| = ") == 2
    assert "8 runs" in stdout


@pytest.mark.slow
def test_cli_writes_runs_summary_and_markdown(quick_cli_run):
    _, out = quick_cli_run
    runs = pd.read_csv(out / "paper_quick_runs.csv")
    assert len(runs) == 8 and sorted(runs["seed"].unique()) == [0, 1]
    values = runs[COMPARISONS].to_numpy()
    assert np.isfinite(values).all() and (np.abs(values) <= 1.0).all()
    assert (runs.loc[runs["dataset"] == "diabetes", "epochs"] == 8).all()  # no early stop
    assert runs.loc[runs["dataset"] == "iris", "epochs"].between(7, 12).all()  # min_epochs=7
    summary = pd.read_csv(out / "paper_quick_summary.csv")
    assert len(summary) == 2 * 2 * 4
    cells = summary[(summary["model"] == "NN1") & (summary["dataset"] == "iris")]
    assert cells["published"].tolist() == [0.99, 0.88, 0.73, 0.62]
    expected = runs[(runs["model"] == "NN1") & (runs["dataset"] == "iris")][COMPARISONS]
    np.testing.assert_allclose(cells["mean"], expected.mean().to_numpy(), atol=1e-5)
    np.testing.assert_allclose(cells["std"], expected.std(ddof=1).to_numpy(), atol=1e-5)
    text = (out / "paper_quick_results.md").read_text()
    assert "python scripts/full_experiment.py --quick --models NN1 DeepNN" in text
    assert "Quick mode" in text and "## DeepNN" in text
    assert "Mean |reproduced - published| over 8 cells" in text


def test_cli_on_one_model_and_data_set_prints_and_writes_the_tables(tmp_path):
    """The fast variant of the two tests above: NN1 on iris, 2 seeds."""
    stdout, out = _cli_run(tmp_path, ["NN1"], ["iris"])
    assert "NN1: mean ± std over seeds (published)" in stdout and "DeepNN" not in stdout
    iris = next(line for line in stdout.splitlines() if line.startswith("iris"))
    assert "(0.99)" in iris and "(0.62)" in iris  # NN1's published VIANN-LOFO, Garson-VIANN
    assert stdout.count("mean |reproduced - published| = ") == 1
    assert "2 runs" in stdout

    runs = pd.read_csv(out / "paper_quick_runs.csv")
    assert len(runs) == 2 and sorted(runs["seed"].unique()) == [0, 1]
    values = runs[COMPARISONS].to_numpy()
    assert np.isfinite(values).all() and (np.abs(values) <= 1.0).all()
    assert runs["epochs"].between(7, 12).all()  # min_epochs=7
    summary = pd.read_csv(out / "paper_quick_summary.csv")
    assert len(summary) == 4
    assert summary["published"].tolist() == [0.99, 0.88, 0.73, 0.62]
    np.testing.assert_allclose(summary["mean"], runs[COMPARISONS].mean().to_numpy(), atol=1e-5)
    np.testing.assert_allclose(summary["std"], runs[COMPARISONS].std(ddof=1).to_numpy(), atol=1e-5)
    text = (out / "paper_quick_results.md").read_text()
    assert "python scripts/full_experiment.py --quick --models NN1 --datasets iris" in text
    assert "Quick mode" in text and "## NN1" in text and "## DeepNN" not in text
    assert "Mean |reproduced - published| over 4 cells" in text


def test_main_as_a_function_is_reproducible_with_run_once(tmp_path):
    from neural_feature_importance.experiments.paper import QUICK_BUDGET, run_once

    script = _load("full_experiment")
    argv = ["--quick", "--models", "NN1", "--datasets", "iris", "--seed-list", "5"]
    results = script.main([*argv, "--no-write", "--no-progress"])
    assert results.shape[0] == 1 and results.loc[0, "seed"] == 5
    again = run_once("NN1", "iris", seed=5, budget=QUICK_BUDGET)
    assert again.epochs == results.loc[0, "epochs"]
    for name in COMPARISONS:
        assert again.correlations[name] == pytest.approx(results.loc[0, name], abs=1e-5)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_exit_with_a_message(capsys):
    script = _load("full_experiment")
    with pytest.raises(SystemExit):
        script.main(["--models", "NN3"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--seeds", "0"])
    assert "--seeds must be at least 1" in capsys.readouterr().err


def test_compare_feature_importance_ranks_petals_first(capsys):
    pytest.importorskip("torch")
    script = _load("compare_feature_importance")
    table, correlations = script.main(["--epochs", "15", "--seed", "0"])
    assert list(table.columns) == ["keras_viann", "torch_viann", "random_forest"]
    for column in ("keras_viann", "torch_viann"):
        assert table[column].max() == 1.0 and table[column].min() == 0.0
    forest_top = set(table["random_forest"].nlargest(2).index)
    assert forest_top == {"petal length (cm)", "petal width (cm)"}
    np.testing.assert_allclose(table["random_forest"].sum(), 1.0)
    assert set(correlations) == {"keras-rf", "torch-rf", "keras-torch"}
    assert "Pearson correlation keras-rf" in capsys.readouterr().out
