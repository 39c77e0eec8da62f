"""Permutation importance for any model, through scikit-learn's implementation.

We do not write permutation importance again: a small estimator wrapper gives a
Keras model, a torch module or a plain function the `predict` /
`predict_proba` / `score` interface, and
`sklearn.inspection.permutation_importance()` does the rest (shuffling,
repeats, parallelism, the `Bunch` result). A scikit-learn estimator is passed
through untouched.

Each column is shuffled `n_repeats` times; the importance is the drop of the
score, `score(X) - score(X with column i shuffled)`. With `scoring=None` the
score is minus the model's loss (Keras' compiled loss, or `loss=`), so the
importance is the *increase* of the loss.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from neural_feature_importance._optional import import_optional
from neural_feature_importance.baselines._models import (
    framework_of,
    loss_function,
    predict_function,
)
from neural_feature_importance.baselines.forest import infer_task

TaskArg = Literal["auto", "classification", "regression"]


def _import_sklearn() -> tuple[Any, Any, Any, Any]:
    base = import_optional("sklearn.base", "permutation_importance")
    inspection = import_optional("sklearn.inspection", "permutation_importance")
    return (
        base.BaseEstimator,
        base.ClassifierMixin,
        base.RegressorMixin,
        inspection.permutation_importance,
    )


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _as_probabilities(out: np.ndarray) -> np.ndarray:
    """Model outputs as class probabilities `(n, n_classes)`.

    Outputs that already are a probability table (a softmax or sigmoid layer,
    as in Keras models) are kept; anything else is taken as logits (a torch
    classifier) and passed through softmax (sigmoid for a single output).
    """
    out = np.asarray(out, dtype=np.float64)
    if out.ndim == 1:
        out = out[:, None]
    if out.shape[1] == 1:
        p = out[:, 0]
        if not ((p >= 0).all() and (p <= 1).all()):
            p = 1.0 / (1.0 + np.exp(-p))
        return np.column_stack([1.0 - p, p])
    if (out >= 0).all() and np.allclose(out.sum(axis=1), 1.0, atol=1e-4):
        return out
    return _softmax(out)


def _make_wrapper(task: str) -> type:
    BaseEstimator, ClassifierMixin, RegressorMixin, _ = _import_sklearn()
    # Imported when called, so the bases are values (Any) to the type checker.
    mixin: Any = ClassifierMixin if task == "classification" else RegressorMixin
    base: Any = BaseEstimator

    class _ModelEstimator(mixin, base):
        """A trained model seen as a fitted scikit-learn estimator (never refitted)."""

        def __init__(
            self,
            predict_fn: Any = None,
            loss_fn: Any = None,
            n_classes: int | None = None,
        ) -> None:
            self.predict_fn = predict_fn
            self.loss_fn = loss_fn
            self.n_classes = n_classes

        def fit(self, X: Any, y: Any = None) -> _ModelEstimator:
            return self

        @property
        def classes_(self) -> np.ndarray:
            assert self.n_classes is not None  # classifiers are made with n_classes
            return np.arange(self.n_classes)

        def predict(self, X: Any) -> np.ndarray:
            out = self.predict_fn(X)
            if task == "classification":
                return _as_probabilities(out).argmax(axis=1)
            return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out

        def predict_proba(self, X: Any) -> np.ndarray:
            return _as_probabilities(self.predict_fn(X))

        def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
            if self.loss_fn is None:
                return super().score(X, y, sample_weight=sample_weight)
            return -self.loss_fn(X, y)

    _ModelEstimator.__name__ = f"ModelAs{'Classifier' if task == 'classification' else 'Regressor'}"
    return _ModelEstimator


def permutation_importance(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_repeats: int = 5,
    scoring: Any = None,
    random_state: int | np.random.RandomState | None = None,
    loss: Any = None,
    task: TaskArg = "auto",
    batch_size: int | None = None,
    n_jobs: int | None = None,
    max_samples: float | int = 1.0,
) -> Any:
    """Permutation importance of every feature, mean and spread over repeats.

    Parameters
    ----------
    model : Keras model, torch.nn.Module, scikit-learn estimator or callable
        A trained model; a callable maps `X` to outputs.
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    y : ndarray
        Targets. With `scoring=None` in the form the loss expects; with a
        `scoring` such as `"accuracy"` a one-hot matrix is turned into
        labels for you.
    n_repeats : int, default=5
        Shuffles per feature.
    scoring : None, str or callable, default=None
        `None`: minus the model's loss (see `loss`). Otherwise any
        scikit-learn scoring (`"accuracy"`, `"neg_log_loss"`, `"r2"`,
        `"neg_mean_squared_error"`, a scorer). Class predictions are the
        argmax of the outputs; probabilities are the outputs when they already
        are probabilities (a softmax layer), else their softmax (logits).
    random_state : int, RandomState or None
        Seed of the shuffles.
    loss : None, callable or torch loss module
        Used when `scoring=None`; see
        [`loss_function()`][loss_function]
        (`None` = a compiled Keras model's `evaluate` loss).
    task : {"auto", "classification", "regression"}, default="auto"
        Decides whether the wrapper is a classifier (needed for `"accuracy"`
        or `"neg_log_loss"`); `"auto"` infers it from `y`.
    batch_size : int, optional
        Rows per forward pass.
    n_jobs, max_samples
        Passed to `sklearn.inspection.permutation_importance()`.

    Returns
    -------
    sklearn.utils.Bunch
        `importances_mean` and `importances_std` of shape `(n_features,)`,
        `importances` of shape `(n_features, n_repeats)`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> f = lambda A: 3 * A[:, 0] + A[:, 1]
    >>> mse = lambda t, p: float(np.mean((t - p) ** 2))
    >>> r = permutation_importance(f, X, f(X), loss=mse, n_repeats=3, random_state=0)
    >>> [round(float(v)) for v in r.importances_mean]
    [18, 2, 0]
    """
    *_, sk_permutation_importance = _import_sklearn()
    if not isinstance(n_repeats, (int, np.integer)) or n_repeats < 1:
        raise ValueError(f"n_repeats must be a positive integer, got {n_repeats!r}")
    X = np.asarray(X)
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    common = {
        "scoring": scoring,
        "n_repeats": int(n_repeats),
        "random_state": random_state,
        "n_jobs": n_jobs,
        "max_samples": max_samples,
    }
    framework = framework_of(model)
    if framework == "sklearn" and loss is None:
        return sk_permutation_importance(model, X, y, **common)
    if framework == "weights":
        raise TypeError("permutation importance needs a model that predicts, not its weights.")
    if task == "auto":
        task = infer_task(y)
    if task not in ("classification", "regression"):
        raise ValueError(
            f"task={task!r} is not supported; use 'auto', 'classification' or 'regression'."
        )
    predict = predict_function(model, batch_size)
    loss_fn = None
    if scoring is None:
        loss_fn = loss_function(model, loss, batch_size)
    elif task == "classification" and y.ndim == 2:
        y = y.argmax(axis=1)
    n_classes = None
    if task == "classification":
        n_classes = int(predict(X[:1]).reshape(1, -1).shape[1])
        n_classes = max(n_classes, 2)
    estimator = _make_wrapper(task)(predict_fn=predict, loss_fn=loss_fn, n_classes=n_classes)
    return sk_permutation_importance(estimator, X, y, **common)
