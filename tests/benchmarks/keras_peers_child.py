"""The Keras side of ``test_real_data_keras_peers.py``, run in its own interpreter.

Started with ``KERAS_BACKEND=tensorflow`` (TensorFlow stays out of the test
process, which has torch loaded); writes every result the tests check to one
``.npz`` file, the path given as the only argument.
"""

import sys
import warnings

import numpy as np

from benchmarks.training import start_keras_child


def _dense(n_in: int, n_out: int, kernel: np.ndarray, bias: np.ndarray, activation=None):
    import keras

    model = keras.Sequential([keras.Input((n_in,)), keras.layers.Dense(n_out, activation)])
    model.layers[-1].set_weights([np.asarray(kernel, "float32"), np.asarray(bias, "float32")])
    return model


def main(path: str) -> None:
    start_keras_child(1)
    warnings.simplefilter("ignore")  # shap's and Keras' notes on TensorFlow graphs
    import keras

    from benchmarks.methods import Trained
    from benchmarks.real_data.data import Split
    from benchmarks.real_data.keras_peers import (
        KERAS_PEERS,
        explain_halves,
        integrated_gradients_tf,
        logit_model,
    )
    from benchmarks.training import keras_mlp

    out: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(0)
    ig = KERAS_PEERS["integrated_gradients_keras"].explain
    permutation = KERAS_PEERS["permutation_keras"].explain
    assert ig is not None and permutation is not None

    # 1. A linear regression f(x) = w.x + b: from a zero baseline IG_j = w_j x_j exactly.
    w, b = np.array([1.5, -2.0, 0.5]), np.array([0.3])
    linear = _dense(3, 1, w[:, None], b)
    X = rng.normal(size=(7, 3))
    out["linear_X"], out["linear_w"] = X, w
    out["linear_rows"] = integrated_gradients_tf(linear, X, None)
    out["linear_mean"] = ig(Trained(linear, "regression", X, X[:, 0], X, X[:, 0], 0))

    # 2. A softmax classifier: IG explains the true class's logit, W[j, y] x_j.
    W, c = rng.normal(size=(3, 4)), rng.normal(size=4)
    softmax = _dense(3, 4, W, c, "softmax")
    X, y = rng.normal(size=(6, 3)), np.array([0, 1, 2, 3, 1, 2])
    out.update(softmax_X=X, softmax_W=W, softmax_y=y)
    out["softmax_logits"] = np.asarray(logit_model(softmax)(X.astype("float32")))
    out["softmax_probs"] = np.asarray(softmax(X.astype("float32")))
    out["softmax_mean"] = ig(Trained(softmax, "classification", X, y, X, y, 0))

    # 3. Benchmark MLPs (Glorot init): the three peers, for the PyTorch twins to redo.
    for task, n_out in (("classification", 3), ("regression", 1)):
        keras.utils.set_random_seed(1)
        model = keras_mlp(6, n_out, (16, 16))
        X_train, X_test = rng.normal(size=(40, 6)), rng.normal(size=(30, 6))
        if task == "classification":
            y_train, y_test = rng.integers(0, 3, 40), rng.integers(0, 3, 30)
        else:
            y_train, y_test = rng.normal(size=40), rng.normal(size=30)
        trained = Trained(model, task, X_train, y_train, X_test, y_test, seed=3)
        out[f"{task}_X_train"], out[f"{task}_X_test"] = X_train, X_test
        out[f"{task}_y_train"], out[f"{task}_y_test"] = y_train, y_test
        for i, weight in enumerate(model.get_weights()):
            out[f"{task}_weight_{i}"] = weight
        for name, method in KERAS_PEERS.items():
            assert method.explain is not None
            out[f"{task}_{name}"] = method.explain(trained)

    # 4. A planted problem: the logits read column 0 strongly, column 1 weakly, 2 not at all.
    planted = _dense(3, 2, np.array([[4.0, -4.0], [1.0, -1.0], [0.0, 0.0]]), np.zeros(2), "softmax")
    X = rng.normal(size=(400, 3))
    y = (4 * X[:, 0] + X[:, 1] + rng.normal(scale=0.5, size=400) < 0).astype(int)
    out["planted"] = permutation(Trained(planted, "classification", X, y, X, y, 0))

    # 5. Cross-fitting: f(x) = x0 + 2 x1; half a has column 1 at 0, half b column 0 at 0.
    halves_model = _dense(2, 1, np.array([[1.0], [2.0]]), np.zeros(1))
    X_a, X_b = rng.normal(size=(10, 2)), rng.normal(size=(12, 2))
    X_a[:, 1], X_b[:, 0] = 0.0, 0.0
    split = Split(
        rng.normal(size=(20, 2)), rng.normal(size=20), X_a, X_a @ [1, 2], X_b, X_b @ [1, 2]
    )
    out.update(halves_X_a=X_a, halves_X_b=X_b)
    for name in ("integrated_gradients_keras", "permutation_keras"):
        record = explain_halves(KERAS_PEERS[name], halves_model, "regression", split, 0, {})
        assert record["error"] == "", record["error"]
        for key in ("scores_a", "scores_b", "scores"):
            out[f"halves_{name}_{key}"] = np.asarray(record[key])
        out[f"halves_{name}_seconds"] = np.asarray(record["method_seconds"])
    np.savez(path, **out)


if __name__ == "__main__":
    main(sys.argv[1])
