"""Post-hoc peers on the Keras network: permutation importance, Integrated Gradients, SHAP.

The PyTorch peers of the real-data benchmark (``permutation``,
``integrated_gradients``, ``shap_deep`` in :mod:`benchmarks.methods`) explain
the PyTorch MLP; nothing explained the Keras MLP, so the Keras trackers had no
post-hoc method to be compared with on the *same* network. The three methods
here are their twins on the Keras network, with the same settings, so that a
Keras row and its PyTorch twin differ by the network, not by the method:

- ``permutation_keras``: the library's
  :func:`~neural_feature_importance.baselines.permutation_importance`
  (scikit-learn's shuffles), ``PERMUTATION_REPEATS`` repeats seeded with the
  run's seed, the importance being the increase of the same loss as the
  PyTorch peer's: cross-entropy on the logits, or the mean squared error.
- ``integrated_gradients_keras``: Integrated Gradients written with
  ``tf.GradientTape`` as Captum computes it by default: Gauss-Legendre
  quadrature with ``IG_STEPS`` nodes on the path from an all-zero baseline
  (the standardised mean), each row explaining its true class's logit (or the
  single regression output); mean absolute attribution over at most
  ``MAX_EXPLAIN_ROWS`` held-out rows.
- ``shap_deep_keras``: SHAP's DeepExplainer (its TensorFlow implementation)
  with the same 100 training rows as background as the PyTorch peer draws,
  the same explained rows and outputs.

The Keras classifier ends in a softmax layer, where the PyTorch one outputs
logits; every peer here explains :func:`logit_model`, the same network with
that last softmax left out (its weights copied), so that the explained output
is the logit in both frameworks.

The peers run in the Keras subprocess (:mod:`benchmarks.real_data.keras_run`),
cross-fitted on the two held-out halves like the PyTorch peers
(:func:`explain_halves`); the parent process scores the halves' importances
exactly as it scores the PyTorch peers'. This module imports neither
TensorFlow nor Keras at import time: the parent registers these methods
(:data:`KERAS_PEERS`) without loading them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from benchmarks.methods import (
    IG_STEPS,
    PERMUTATION_REPEATS,
    SHAP_BACKGROUND_ROWS,
    Method,
    Trained,
    _pick_outputs,
)
from benchmarks.real_data.data import Split

IG_BATCH_ROWS = 16384
"""Interpolated rows per gradient call (Captum's ``internal_batch_size`` in the PyTorch peer)."""


def logit_model(model: Any) -> Any:
    """The Keras network with the activation of its last ``Dense`` layer left out.

    The benchmark's Keras classifier ends in ``Dense(k, activation="softmax")``;
    its PyTorch twin outputs the logits. The returned model shares every layer
    but the last, which is replaced by a linear ``Dense`` holding the same
    kernel and bias, so it outputs the logits. A model whose last layer is
    already linear (the regression network) is returned as it is.

    Raises
    ------
    TypeError
        If the last layer is not a ``Dense`` layer.
    """
    import keras

    last = model.layers[-1]
    if not isinstance(last, keras.layers.Dense):
        raise TypeError(
            f"the last layer is a {type(last).__name__}; the Keras peers need a network "
            "that ends in a Dense layer (its logits are what they explain)."
        )
    if last.activation is keras.activations.linear:
        return model
    linear = keras.layers.Dense(last.units, use_bias=last.use_bias, name=f"{last.name}_logits")
    inputs = keras.Input(model.input_shape[1:])
    hidden = inputs
    for layer in model.layers[:-1]:
        hidden = layer(hidden)
    outputs = linear(hidden)
    linear.set_weights(last.get_weights())
    return keras.Model(inputs, outputs)


def gauss_legendre(n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Captum's ``gausslegendre`` path points and weights on [0, 1].

    NumPy's Gauss-Legendre nodes and weights on [-1, 1], mapped to [0, 1]
    (``alpha = (1 + node) / 2``, ``weight / 2``), as
    ``captum.attr._utils.approximation_methods.gauss_legendre_builders`` does.
    The weights sum to 1, and an integrand that is a polynomial of degree
    below ``2 * n_steps`` in ``alpha`` is integrated exactly.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps={n_steps}; Integrated Gradients needs at least one step.")
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    return 0.5 * (1.0 + nodes), 0.5 * weights


def integrated_gradients_tf(
    forward: Callable[[Any], Any],
    X: np.ndarray,
    target: np.ndarray | None,
    *,
    baseline: np.ndarray | None = None,
    n_steps: int = IG_STEPS,
    batch_rows: int = IG_BATCH_ROWS,
) -> np.ndarray:
    """Integrated Gradients of one output per row, with ``tf.GradientTape``.

    ``attribution[i, j] = (x_ij - b_ij) * sum_s w_s * d f_t(b_i + a_s (x_i - b_i)) / d x_j``
    with Gauss-Legendre points ``a_s`` and weights ``w_s``
    (:func:`gauss_legendre`), ``t`` the row's target: Captum's
    ``IntegratedGradients.attribute`` with ``method="gausslegendre"`` (its
    default).

    Parameters
    ----------
    forward : callable
        Maps a float32 tensor ``(rows, features)`` to outputs ``(rows, outputs)``
        (a Keras model, e.g. :func:`logit_model`'s).
    X : ndarray of shape (n, features)
        Rows to explain.
    target : ndarray of int, shape (n,), or None
        The output explained for each row; ``None``: output 0 (regression).
    baseline : ndarray, optional
        Broadcast to ``X``'s shape; default all zeros.
    n_steps : int, default=IG_STEPS
        Points on the path.
    batch_rows : int, default=IG_BATCH_ROWS
        Interpolated rows per gradient call (bounds the memory).

    Returns
    -------
    ndarray of shape (n, features)
        Float64 attributions; each row's sum approximates
        ``f_t(x) - f_t(baseline)`` (completeness).
    """
    import tensorflow as tf

    X = np.asarray(X, dtype=np.float32)
    if baseline is None:
        baseline = np.zeros_like(X)
    base = np.broadcast_to(np.asarray(baseline, dtype=np.float32), X.shape)
    alphas, weights = gauss_legendre(n_steps)
    delta = X - base
    attributions = np.zeros(X.shape, dtype=np.float64)
    rows = max(1, batch_rows // n_steps)
    for start in range(0, len(X), rows):
        part = slice(start, min(start + rows, len(X)))
        n = part.stop - part.start
        # Step-major: row s * n + i is row i at path point s (Captum's order).
        path = base[part][None] + alphas[:, None, None].astype(np.float32) * delta[part][None]
        inputs = tf.constant(path.reshape(n_steps * n, X.shape[1]), dtype=tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = forward(inputs)
            if target is None:
                explained = outputs[:, 0]
            else:
                index = np.tile(np.asarray(target[part], dtype=np.int64), n_steps)
                explained = tf.gather(outputs, index[:, None], axis=1, batch_dims=1)
            total = tf.reduce_sum(explained)
        grads = np.asarray(tape.gradient(total, inputs), dtype=np.float64)
        grads = grads.reshape(n_steps, n, X.shape[1])
        attributions[part] = np.tensordot(weights, grads, axes=1) * delta[part]
    return attributions


def _explained_targets(t: Trained) -> np.ndarray | None:
    """Each explained row's true class (classification), as the PyTorch peer's ``target``."""
    if t.task == "classification":
        return np.asarray(t.y_explain, dtype=np.int64)
    return None


def keras_integrated_gradients(t: Trained, n_steps: int = IG_STEPS) -> np.ndarray:
    """Integrated Gradients on the Keras network; mean |attribution| per feature.

    Mirrors :func:`benchmarks.methods.integrated_gradients`: an all-zero
    baseline, ``n_steps`` Gauss-Legendre points, the true class's logit or the
    output, at most ``MAX_EXPLAIN_ROWS`` held-out rows.
    """
    model = logit_model(t.model)

    def forward(inputs: Any) -> Any:
        return model(inputs, training=False)

    attributions = integrated_gradients_tf(
        forward, t.X_explain, _explained_targets(t), n_steps=n_steps
    )
    return np.abs(attributions).mean(axis=0)


def logit_loss(task: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """``loss(y_true, outputs)`` on logits: the PyTorch peer's loss, in NumPy.

    Classification: cross-entropy of the logits (``torch.nn.CrossEntropyLoss``,
    a mean over rows); regression: the mean squared error
    (``torch.nn.MSELoss``).
    """

    def cross_entropy(y: np.ndarray, logits: np.ndarray) -> float:
        z = np.asarray(logits, dtype=np.float64)
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-log_p[np.arange(len(y)), np.asarray(y, dtype=np.int64)].mean())

    def squared_error(y: np.ndarray, pred: np.ndarray) -> float:
        pred = np.asarray(pred, dtype=np.float64).reshape(len(y), -1)[:, 0]
        return float(np.mean((np.asarray(y, dtype=np.float64) - pred) ** 2))

    return cross_entropy if task == "classification" else squared_error


def keras_permutation(t: Trained) -> np.ndarray:
    """Permutation importance on the Keras network: the mean increase of the loss.

    Mirrors :func:`benchmarks.methods._permutation`: every held-out row of
    the half, ``PERMUTATION_REPEATS`` shuffles per column seeded with
    ``t.seed`` (scikit-learn draws the same shuffles for the same seed), the
    loss of :func:`logit_loss` on :func:`logit_model`'s outputs, computed in
    one ``tf.function`` graph (traced once per call of this function).
    """
    import tensorflow as tf

    from neural_feature_importance.baselines import permutation_importance

    model = logit_model(t.model)
    # One graph for every shuffle (an eager Keras call costs milliseconds each).
    spec = tf.TensorSpec([None, t.X_test.shape[1]], tf.float32)
    forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def predict(X: np.ndarray) -> np.ndarray:
        return np.asarray(forward(tf.constant(X, dtype=tf.float32)), dtype=np.float64)

    result = permutation_importance(
        predict,
        t.X_test,
        t.y_test,
        n_repeats=PERMUTATION_REPEATS,
        random_state=t.seed,
        loss=logit_loss(t.task),
        task=t.task,  # type: ignore[arg-type]
    )
    return np.asarray(result.importances_mean, dtype=np.float64)


def background_rows(t: Trained) -> np.ndarray:
    """Indices of SHAP's background rows in ``t.X_train``: the PyTorch peer's draw.

    ``benchmarks.methods._background`` draws ``SHAP_BACKGROUND_ROWS`` training
    rows without replacement with ``numpy.random.default_rng(t.seed)``; the
    same call gives the same rows here.
    """
    rng = np.random.default_rng(t.seed)
    return rng.choice(len(t.X_train), size=min(SHAP_BACKGROUND_ROWS, len(t.X_train)), replace=False)


def keras_shap_deep(t: Trained) -> np.ndarray:
    """SHAP DeepExplainer on the Keras network; mean |SHAP value| per feature.

    Mirrors :func:`benchmarks.methods.shap_deep`: the same background rows
    (:func:`background_rows`), the explained rows, each row's true class's
    logit (or the output), no additivity check.
    """
    import shap

    background = np.asarray(t.X_train[background_rows(t)], dtype=np.float32)
    explainer = shap.DeepExplainer(logit_model(t.model), background)
    values = explainer.shap_values(
        np.asarray(t.X_explain, dtype=np.float32), check_additivity=False
    )
    return np.abs(_pick_outputs(values, t)).mean(axis=0)


KERAS_PEERS: dict[str, Method] = {
    method.name: method
    for method in (
        Method(
            "permutation_keras",
            "posthoc",
            "keras",
            f"permutation importance, {PERMUTATION_REPEATS} repeats, held-out rows (Keras network)",
            keras_permutation,
        ),
        Method(
            "integrated_gradients_keras",
            "posthoc",
            "keras",
            f"Integrated Gradients (tf.GradientTape, Gauss-Legendre), {IG_STEPS} steps, "
            "mean |attribution| (Keras network)",
            keras_integrated_gradients,
        ),
        Method(
            "shap_deep_keras",
            "posthoc",
            "keras",
            "SHAP DeepExplainer (TensorFlow), mean |SHAP| (Keras network)",
            keras_shap_deep,
        ),
    )
}
"""The post-hoc peers on the Keras network, registered in
:data:`benchmarks.real_data.run.REAL_METHODS` after the Keras trackers."""


def explain_halves(
    method: Method, model: Any, task: str, split: Split, seed: int, settings: Mapping[str, Any]
) -> dict[str, Any]:
    """Run a peer on each held-out half of ``split``, as the parent runs the PyTorch peers.

    Returns
    -------
    dict
        ``scores_a`` and ``scores_b`` (lists: one importance per column, from
        half a's and half b's rows), ``scores`` (their mean, the AUC's input),
        ``method_seconds`` (both halves), and ``error`` (``""``, or the
        exception that stopped the method, when every score is ``None``).
    """
    from benchmarks.real_data.run import _explain

    out: dict[str, Any] = {"scores": None, "scores_a": None, "scores_b": None, "error": ""}
    halves = []
    try:
        for X, y in ((split.X_a, split.y_a), (split.X_b, split.y_b)):
            trained = Trained(
                model, task, split.X_train, split.y_train, X, y, seed, settings=settings
            )
            halves.append(_explain(method, trained))
    except Exception as exc:  # a benchmark records failures and goes on
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["method_seconds"] = float("nan")
        return out
    (a, seconds_a, _), (b, seconds_b, _) = halves
    out.update(
        scores=(0.5 * (a + b)).tolist(),
        scores_a=a.tolist(),
        scores_b=b.tolist(),
        method_seconds=seconds_a + seconds_b,
    )
    return out
