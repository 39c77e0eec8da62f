"""Leave-one-feature-out (LOFO) importance, as the VIANN paper computed it.

The paper does not retrain: it takes the trained network, replaces one
standardised column by 0 (its mean), and records the loss of
`model.evaluate` on the whole data set. A feature the network relies on
raises the loss when it is blanked out. We return the *increase* over the loss
with every feature present; the paper's raw losses are these values plus one
constant, so every correlation with them is the same.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np

from neural_feature_importance.baselines._models import loss_function

logger = logging.getLogger(__name__)

Replace = Literal["zero", "mean"] | float


def _fill_values(X: np.ndarray, replace: Replace) -> np.ndarray:
    if isinstance(replace, str):
        if replace == "zero":
            return np.zeros(X.shape[1])
        if replace == "mean":
            return X.mean(axis=0)
    elif isinstance(replace, (int, float, np.number)) and not isinstance(replace, bool):
        return np.full(X.shape[1], float(replace))
    raise ValueError(
        f"replace={replace!r} is not supported; use 'zero' (the paper's, for standardised "
        "data), 'mean' (each column's mean, for unstandardised data) or a number."
    )


def lofo_importance(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    *,
    replace: Replace = "zero",
    loss: Any = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """Increase of the loss when one feature at a time is blanked out.

    Parameters
    ----------
    model : Keras model, torch.nn.Module, scikit-learn estimator or callable
        A trained model.
    X : ndarray of shape (n_samples, n_features)
        Inputs (standardised, in the paper).
    y : ndarray
        Targets in the form the loss expects (one-hot for a Keras
        `categorical_crossentropy` model, class indices for
        `torch.nn.CrossEntropyLoss`).
    replace : {"zero", "mean"} or float, default="zero"
        Value put in the left-out column: 0 as in the paper (the mean of a
        standardised column), each column's mean over `X`, or a constant.
    loss : None, callable or torch loss module
        How to score; see
        [`loss_function()`][loss_function].
        `None` uses a compiled Keras model's `evaluate` loss, as the paper did.
    batch_size : int, optional
        Rows per forward pass (default 4096).

    Returns
    -------
    ndarray of shape (n_features,)
        `loss(X with column i replaced) - loss(X)`; larger is more important,
        negative when blanking the feature helps.

    Examples
    --------
    >>> X = np.array([[1.0, 5.0], [-1.0, 5.0]])
    >>> y = 2 * X[:, 0]
    >>> mse = lambda t, p: float(np.mean((t - p) ** 2))
    >>> lofo_importance(lambda A: 2 * A[:, 0], X, y, loss=mse).tolist()
    [4.0, 0.0]
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    y = np.asarray(y)
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    fills = _fill_values(X, replace)
    evaluate = loss_function(model, loss, batch_size)
    baseline = evaluate(X, y)
    scores = np.empty(X.shape[1])
    blanked = X.copy()
    for i in range(X.shape[1]):
        blanked[:, i] = fills[i]
        scores[i] = evaluate(blanked, y) - baseline
        blanked[:, i] = X[:, i]
    logger.debug("LOFO: baseline loss %.6g, increases %s", baseline, scores)
    return scores
