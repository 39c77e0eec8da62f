"""The post-hoc peers on the Keras network: IG in closed form, the PyTorch twins, cross-fitting.

The Keras side runs once, in a subprocess with ``KERAS_BACKEND=tensorflow``
(``keras_peers_child.py``; TensorFlow stays out of this process, which has
torch loaded), and every test reads its results; without TensorFlow those
tests are skipped. The parent's side (the registry, the scoring of the
halves, the flags) needs no TensorFlow.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.methods import METHODS, Trained, _background
from benchmarks.real_data.data import appended_metrics, make_real_problem, split_standardise
from benchmarks.real_data.keras_peers import (
    KERAS_PEERS,
    background_rows,
    gauss_legendre,
    logit_loss,
)
from benchmarks.real_data.report import POSTHOC, POSTHOC_KERAS, flags
from benchmarks.real_data.run import (
    DEFAULT_METHODS,
    REAL_METHODS,
    Retrainer,
    _selection,
    run_real,
)
from benchmarks.training import keras_backend_env, torch_mlp
from neural_feature_importance.core.modes import RECOMMENDED_MODE

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def keras_side(tmp_path_factory):
    """Everything ``keras_peers_child.py`` computed, by name."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("the Keras peers need TensorFlow")
    path = tmp_path_factory.mktemp("keras_peers") / "out.npz"
    child = Path(__file__).with_name("keras_peers_child.py")
    subprocess.run(
        [sys.executable, str(child), str(path)],
        cwd=REPO,
        env=keras_backend_env("tensorflow", 1, REPO),
        check=True,
        timeout=300,
    )
    with np.load(path) as saved:
        return dict(saved)


def test_ig_is_weight_times_input_on_a_linear_model(keras_side):
    # f(x) = w.x + b from a zero baseline: the gradient is w all along the path, the
    # Gauss-Legendre weights sum to 1, so IG_j = w_j x_j (the bias does not count).
    X, w = keras_side["linear_X"], keras_side["linear_w"]
    np.testing.assert_allclose(keras_side["linear_rows"], X * w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras_side["linear_mean"], np.abs(X * w).mean(axis=0), rtol=1e-5)
    # Row 2 by hand: x = (1.304, 0.947, -0.704) (rng 0), w = (1.5, -2, 0.5).
    np.testing.assert_allclose(keras_side["linear_rows"][2], [1.956, -1.894, -0.352], atol=1e-3)


def test_ig_explains_the_true_class_logit(keras_side):
    X, W, y = keras_side["softmax_X"], keras_side["softmax_W"], keras_side["softmax_y"]
    logits, probs = keras_side["softmax_logits"], keras_side["softmax_probs"]
    # logit_model left the softmax out: the softmax of its outputs is the model's.
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), probs, rtol=1e-5)
    assert np.ptp(logits.sum(axis=1)) > 0.1  # not probabilities
    # The logit of class y is linear in x: IG_j = W[j, y] x_j for each row's true class.
    expected = np.abs(X * W[:, y].T).mean(axis=0)
    np.testing.assert_allclose(keras_side["softmax_mean"], expected, rtol=1e-5)


def test_gauss_legendre_is_captums():
    approximation = pytest.importorskip("captum.attr._utils.approximation_methods")
    step_sizes, alphas = approximation.approximation_parameters("gausslegendre")
    points, weights = gauss_legendre(50)
    np.testing.assert_allclose(points, alphas(50), rtol=1e-12)
    np.testing.assert_allclose(weights, step_sizes(50), rtol=1e-12)
    assert weights.sum() == pytest.approx(1.0)
    # Exact for a polynomial of degree below 2 * n: the integral of a^k on [0, 1] is 1/(k+1).
    for k in (0, 1, 5, 99):
        assert weights @ points**k == pytest.approx(1 / (k + 1), rel=1e-10)
    with pytest.raises(ValueError, match="at least one step"):
        gauss_legendre(0)


def _torch_twin(keras_side, task: str):
    """The Keras MLP's weights in the benchmark's PyTorch MLP."""
    import torch

    model = torch_mlp(6, 3 if task == "classification" else 1, (16, 16))
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for i, linear in enumerate(linears):
            linear.weight.copy_(torch.as_tensor(keras_side[f"{task}_weight_{2 * i}"].T))
            linear.bias.copy_(torch.as_tensor(keras_side[f"{task}_weight_{2 * i + 1}"]))
    return model


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_keras_peers_match_their_pytorch_twins(keras_side, task):
    """Same weights, rows, seed: each Keras peer gives its PyTorch twin's importances.

    Same shuffles and loss (permutation), same path points, baseline and target
    (Integrated Gradients against Captum), same background and outputs (SHAP).
    """
    trained = Trained(
        _torch_twin(keras_side, task),
        task,
        keras_side[f"{task}_X_train"],
        keras_side[f"{task}_y_train"],
        keras_side[f"{task}_X_test"],
        keras_side[f"{task}_y_test"],
        seed=3,
    )
    for name in ("permutation", "integrated_gradients", "shap_deep"):
        twin = METHODS[name].explain
        assert twin is not None
        expected = twin(trained)
        got = keras_side[f"{task}_{name}_keras"]
        assert np.abs(expected).max() > 1e-2, name  # a network that does read its inputs
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=name)


def test_permutation_ranks_the_planted_column_first(keras_side):
    # Logits +-(4 x0 + x1), labels from 4 x0 + x1 + noise: column 0 carries the
    # label, column 1 a quarter of it, column 2 none (its shuffles change nothing).
    scores = keras_side["planted"]
    assert list(np.argsort(-scores)) == [0, 1, 2]
    assert scores[0] > 2.0 and 0.02 < scores[1] < 0.5
    assert scores[2] == 0.0


def test_halves_are_explained_apart(keras_side):
    # f(x) = x0 + 2 x1; half a has x1 = 0, half b has x0 = 0.
    X_a, X_b = keras_side["halves_X_a"], keras_side["halves_X_b"]
    ig = "halves_integrated_gradients_keras"
    np.testing.assert_allclose(keras_side[f"{ig}_scores_a"], [np.abs(X_a[:, 0]).mean(), 0.0])
    np.testing.assert_allclose(keras_side[f"{ig}_scores_b"], [0.0, 2 * np.abs(X_b[:, 1]).mean()])
    np.testing.assert_allclose(
        keras_side[f"{ig}_scores"],
        0.5 * (keras_side[f"{ig}_scores_a"] + keras_side[f"{ig}_scores_b"]),
    )
    perm = "halves_permutation_keras"
    assert keras_side[f"{perm}_scores_a"][1] == 0.0 and keras_side[f"{perm}_scores_a"][0] > 0.1
    assert keras_side[f"{perm}_scores_b"][0] == 0.0 and keras_side[f"{perm}_scores_b"][1] > 0.1
    assert keras_side[f"{ig}_seconds"] > 0 and keras_side[f"{perm}_seconds"] > 0


def test_the_parent_scores_a_keras_peer_cross_fitted():
    """A Keras peer's halves are scored like a PyTorch peer's: AUC of the mean, a on b and back."""
    data = make_real_problem("iris", 0)
    split = split_standardise(data, 0)
    a, b = np.zeros(14), np.zeros(14)
    a[[2, 8]] = [2.0, 1.0]  # petal length, then a Gaussian column
    b[[3, 1, 9]] = [2.0, 1.0, 1.5]  # petal width, a Gaussian column, sepal width
    record = {
        "scores": 0.5 * (a + b),
        "scores_a": a,
        "scores_b": b,
        "test_score": 0.9,
        "method_seconds": 1.25,
        "train_seconds": 2.5,
        "error": "",
    }
    table = run_real(
        "iris",
        ["permutation_keras"],
        [0],
        2,
        keras_scores={("iris", 0, 2, "permutation_keras"): record},
        warm_up=False,
    )
    row = table.set_index("method").loc["permutation_keras"]
    assert (row["family"], row["framework"], row["error"]) == ("posthoc", "keras", "")
    assert (row["test_score"], row["method_seconds"], row["train_seconds"]) == (0.9, 1.25, 2.5)
    assert row["auc"] == pytest.approx(appended_metrics(0.5 * (a + b), data)["auc"])
    # Half a's top column (2) is scored on half b, half b's (3) on half a.
    retrain = Retrainer(
        data, split, 0, {"hidden": (64, 64), "batch_size": 32, "lr": 1e-3, "epochs": 2}
    )
    expected: dict = {}
    _selection(expected, a, b, retrain)
    assert row["select_25"] == pytest.approx(expected["select_25"])
    assert row["select_50"] == pytest.approx(expected["select_50"])
    assert row["real_share_50"] == 0.5  # a keeps (2, 8), b keeps (3, 9): one real column each
    crossed = 0.5 * (retrain.cache[(2,)][1] + retrain.cache[(3,)][0])
    assert row["select_25"] == pytest.approx(crossed)


def test_the_peers_are_keras_posthoc_methods_in_the_default_run():
    names = list(KERAS_PEERS)
    assert names == ["permutation_keras", "integrated_gradients_keras", "shap_deep_keras"]
    assert tuple(names) == POSTHOC_KERAS
    for name in names:
        method = REAL_METHODS[name]
        assert (method.family, method.framework) == ("posthoc", "keras")
        assert name in DEFAULT_METHODS
    # After the Keras trackers (the order of the rows), before the PyTorch peers.
    order = list(DEFAULT_METHODS)
    assert order.index("viann_keras") < order.index("permutation_keras")
    assert order.index("shap_deep_keras") < order.index(POSTHOC[0])


def test_flags_compare_each_recommended_tracker_with_its_own_networks_peers():
    aucs = {
        RECOMMENDED_MODE: 0.90,
        "permutation": 0.85,
        "integrated_gradients": 0.80,
        f"{RECOMMENDED_MODE}_keras": 0.80,
        "permutation_keras": 0.95,
        "integrated_gradients_keras": 0.75,
        "viann": 0.60,
    }
    table = pd.DataFrame(
        {"dataset": "wine", "epochs": 20, "method": m, "auc": v, "error": ""}
        for m, v in aucs.items()
    )
    # The Keras tracker is below the Keras permutation peer; the PyTorch one beats its peers.
    assert flags(table) == [
        f"wine, 20 epochs: `{RECOMMENDED_MODE}_keras` AUC 0.800 below `permutation_keras` 0.950"
    ]
    table.loc[table["method"] == "permutation", "auc"] = 0.99
    assert flags(table)[0] == (
        f"wine, 20 epochs: `{RECOMMENDED_MODE}` AUC 0.900 below `permutation` 0.990"
    )
    # The default (the recommended mode) below 0.75 is named; VIANN, no longer a default, is not.
    table.loc[table["method"] == f"{RECOMMENDED_MODE}_keras", "auc"] = 0.70
    assert (
        flags(table)[0]
        == f"wine, 20 epochs: `{RECOMMENDED_MODE}_keras` (the default) AUC 0.700 < 0.75"
    )


def test_background_rows_are_the_pytorch_peers():
    rng = np.random.default_rng(0)
    for n in (30, 300):
        t = Trained(None, "regression", rng.normal(size=(n, 4)), rng.normal(size=n), None, None, 5)
        # The PyTorch peer hands its rows over as float32, the Keras peer too.
        rows = t.X_train[background_rows(t)].astype(np.float32)
        np.testing.assert_array_equal(rows, _background(t).numpy())
        assert len(background_rows(t)) == min(n, 100)


def test_logit_loss_is_the_pytorch_peers_loss():
    import torch

    rng = np.random.default_rng(0)
    logits, y = rng.normal(scale=3, size=(50, 4)), rng.integers(0, 4, 50)
    expected = torch.nn.CrossEntropyLoss()(torch.as_tensor(logits), torch.as_tensor(y))
    assert logit_loss("classification")(y, logits) == pytest.approx(float(expected), rel=1e-12)
    pred, target = rng.normal(size=(50, 1)), rng.normal(size=50)
    expected = torch.nn.MSELoss()(torch.as_tensor(pred[:, 0]), torch.as_tensor(target))
    assert logit_loss("regression")(target, pred) == pytest.approx(float(expected), rel=1e-12)
