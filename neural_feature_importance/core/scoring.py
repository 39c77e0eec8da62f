"""Scores from running statistics, and their normalisation.

All functions take `(features, units)` matrices (see
[`neural_feature_importance.core.views`][]) as numpy arrays and return one
raw score per feature (or per unit, for the filter ranking). Normalisation is
a separate, final step, so raw scores stay available.

VIANN (de Sá, 2019): a feature is important when the weights leaving it moved a
lot during training *and* ended large:

```text
score[i] = sum_j var[i, j] * |w_last[i, j]|
```

For embedding tables the paper's adaptation drops the magnitude term:

```text
score[token] = sum_j var[token, j]
```
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np

logger = logging.getLogger(__name__)

Normalize = Literal["minmax", "sum"] | None
NORMALIZE_OPTIONS: tuple[object, ...] = ("minmax", "sum", None)


def viann_scores(variance: np.ndarray, last_weights: np.ndarray) -> np.ndarray:
    """VIANN raw score per feature: `sum_j variance[i, j] * |last_weights[i, j]|`.

    Parameters
    ----------
    variance, last_weights : ndarray of shape (n_features, n_units)
        Running variance of every weight and the weights' last value.

    Returns
    -------
    ndarray of shape (n_features,)

    Examples
    --------
    >>> viann_scores(np.array([[1.0, 2.0], [0.0, 1.0]]), np.array([[1.0, -1.0], [5.0, 0.5]]))
    array([3. , 0.5])
    """
    return np.sum(variance * np.abs(last_weights), axis=1)


def variance_sum_scores(variance: np.ndarray) -> np.ndarray:
    """Embedding score per token: `sum_j variance[token, j]`."""
    return np.sum(variance, axis=1)


def unit_scores(variance: np.ndarray, last_weights: np.ndarray) -> np.ndarray:
    """VIANN summed over features instead of units: one score per unit.

    For a convolution this ranks the *filters* (units) by how much their
    kernels moved, weighted by their final magnitude.
    """
    return np.sum(variance * np.abs(last_weights), axis=0)


def check_normalize(normalize: Normalize) -> Normalize:
    """Return `normalize` if valid, else raise an error naming the options."""
    if normalize not in NORMALIZE_OPTIONS:
        raise ValueError(
            f"normalize={normalize!r} is not supported; use 'minmax' (the paper's, "
            "default), 'sum' (scores sum to 1) or None (raw scores)."
        )
    return normalize


def normalize_scores(scores: np.ndarray, normalize: Normalize = "minmax") -> np.ndarray:
    """Normalise raw scores.

    Parameters
    ----------
    scores : ndarray
        Raw, non-negative scores of any shape.
    normalize : {"minmax", "sum", None}, default="minmax"
        `"minmax"` maps the smallest score to 0 and the largest to 1, as in
        the paper; `"sum"` divides by the total so scores sum to 1, like
        scikit-learn's `feature_importances_`; `None` returns a copy.

    Notes
    -----
    Equal scores stay equal and never divide by zero: `"minmax"` then returns
    ones (every feature is the most important) and `"sum"` returns `1/n`.
    A warning is logged, because equal scores usually mean the weights never
    changed (a frozen layer, or too few updates).
    """
    check_normalize(normalize)
    scores = np.asarray(scores, dtype=np.float64)
    if normalize is None:
        return scores.copy()
    if scores.size == 0:
        return scores.copy()
    low, high = float(np.min(scores)), float(np.max(scores))
    if high == low:
        logger.warning(
            "all %d features have the same raw score (%g); did the tracked weights "
            "change during training?",
            scores.size,
            high,
        )
        fill = 1.0 if normalize == "minmax" else 1.0 / scores.size
        return np.full_like(scores, fill)
    if normalize == "minmax":
        return (scores - low) / (high - low)
    return scores / float(np.sum(scores))


def top_features(scores: np.ndarray, k: int = 10) -> np.ndarray:
    """Indices of the `k` highest scores, highest first (flat indices)."""
    flat = np.asarray(scores).ravel()
    k = min(int(k), flat.size)
    return np.argsort(flat, kind="stable")[::-1][:k]
