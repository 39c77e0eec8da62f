"""Garson's algorithm: importance from the magnitudes of the weights.

Garson (1991), in the form of Goh (1995) that the VIANN paper used: for a
network with input-to-hidden weights `A` `(n_features, n_hidden)` and
hidden-to-output weights `b` `(n_hidden,)` for one output,

```text
c[i, j] = |A[i, j] * b[j]|                     contribution of i through j
r[i, j] = c[i, j] / sum_i c[i, j]              share of i in hidden unit j
s[i]    = sum_j r[i, j]
garson  = s / sum_i s                          sums to 1
```

For several outputs the paper sums the per-output scores. Note that `|b[j]|`
cancels in `r` (unless it is exactly zero), so Garson's score depends on the
input-to-hidden weights only; this is a property of the algorithm, not of this
implementation.

The algorithm is defined for one hidden layer. For deeper networks the paper
applied it to the *first* and *last* dense layers (the notebook's
`VarImpGarson`), which needs the first layer's units to equal the last
layer's inputs (true for its NN1, NN2 and DeepNN); we do the same.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from neural_feature_importance.baselines._models import dense_weight_chain
from neural_feature_importance.core.scoring import Normalize, normalize_scores

logger = logging.getLogger(__name__)


def garson_scores(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Garson's score per input feature, summed over outputs (the paper's raw score).

    Parameters
    ----------
    first : ndarray of shape (n_features, n_hidden)
        Input-to-hidden kernel, `(in, out)`.
    last : ndarray of shape (n_hidden, n_outputs) or (n_hidden,)
        Hidden-to-output kernel.

    Returns
    -------
    ndarray of shape (n_features,)
        Sum over outputs of each output's Garson score (each sums to 1, so the
        total is `n_outputs` when no hidden unit is dead).

    Examples
    --------
    >>> garson_scores(np.array([[3.0, 1.0], [1.0, 1.0]]), np.array([1.0, -2.0]))
    array([0.625, 0.375])
    """
    first = np.asarray(first, dtype=np.float64)
    last = np.asarray(last, dtype=np.float64)
    if last.ndim == 1:
        last = last[:, None]
    if first.ndim != 2 or last.ndim != 2:
        raise ValueError(
            f"first must be (n_features, n_hidden) and last (n_hidden, n_outputs); got "
            f"{first.shape} and {last.shape}"
        )
    if first.shape[1] != last.shape[0]:
        raise ValueError(
            f"Garson's algorithm needs the first layer's units ({first.shape[1]}) to equal "
            f"the last layer's inputs ({last.shape[0]}). It is defined for one hidden "
            "layer; for a deeper network use olden_importance (weights multiplied "
            "through every layer)."
        )
    total = np.zeros(first.shape[0])
    for k in range(last.shape[1]):
        contrib = np.abs(first * last[:, k][None, :])  # (features, hidden)
        per_hidden = contrib.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(per_hidden > 0, contrib / per_hidden, 0.0)
        summed = share.sum(axis=1)
        denom = summed.sum()
        if denom > 0:
            total += summed / denom
    return total


def garson_importance(model_or_weights: Any, *, normalize: Normalize = "sum") -> np.ndarray:
    """Garson's importance of every input feature of a dense network.

    Parameters
    ----------
    model_or_weights : Keras model, torch.nn.Module or sequence of arrays
        A stack of dense layers, or its kernels in `(in, out)` layout
        (see [`dense_weight_chain()`][dense_weight_chain]).
        Only the first and the last kernels are used, as in the paper.
    normalize : {"sum", "minmax", None}, default="sum"
        `"sum"`: scores sum to 1 (Garson's relative importance); `"minmax"`:
        scaled to [0, 1]; `None`: the paper's raw sum over outputs.

    Returns
    -------
    ndarray of shape (n_features,)

    Examples
    --------
    >>> A = np.array([[2.0, 2.0], [1.0, 1.0], [1.0, 1.0]])   # 3 inputs, 2 hidden
    >>> b = np.array([[1.0], [1.0]])                          # 1 output
    >>> garson_importance([A, b]).tolist()
    [0.5, 0.25, 0.25]
    """
    chain = dense_weight_chain(model_or_weights)
    if len(chain) < 2:
        raise ValueError(
            "Garson's algorithm needs at least two dense layers (input-to-hidden and "
            f"hidden-to-output); the model has {len(chain)}."
        )
    return normalize_scores(garson_scores(chain[0], chain[-1]), normalize)
