"""Olden's connection-weights importance: the weights multiplied through the network.

Olden and Jackson (2002), Olden, Joy and Death (2004): the importance of input
`i` for output `k` is the sum over every path from `i` to `k` of the
product of the weights along it, which is the `(i, k)` entry of the product
of the kernels:

```python
CW = W_1 @ W_2 @ ... @ W_L          (n_features, n_outputs), signed
```

For a network without hidden non-linearities this is exactly the linear map it
computes, so it recovers the coefficients of a linear model. Unlike Garson's
score it keeps the sign (the direction of the effect) and uses every layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neural_feature_importance.baselines._models import check_chain, dense_weight_chain
from neural_feature_importance.core.scoring import Normalize, normalize_scores


def connection_weights(model_or_weights: Any) -> np.ndarray:
    """The signed product of all dense kernels, `(n_features, n_outputs)`.

    Examples
    --------
    >>> connection_weights([np.array([[1.0, 2.0]]), np.array([[3.0], [-1.0]])]).tolist()
    [[1.0]]
    """
    chain = dense_weight_chain(model_or_weights)
    check_chain(chain)
    product = chain[0]
    for kernel in chain[1:]:
        product = product @ kernel
    return product


def olden_importance(
    model_or_weights: Any, *, output: int | None = None, normalize: Normalize = None
) -> np.ndarray:
    """Olden's connection-weights importance of every input feature.

    Parameters
    ----------
    model_or_weights : Keras model, torch.nn.Module or sequence of arrays
        A stack of dense layers, or its kernels in `(in, out)` layout.
    output : int, optional
        `None` (default): the magnitude `sum_k |CW[:, k]|` over all outputs
        (non-negative). An output index: the *signed* `CW[:, output]`, whose
        sign says whether the feature pushes that output up or down.
    normalize : {None, "sum", "minmax"}, default=None
        Optional scaling of the result (see
        [`normalize_scores()`][normalize_scores]); only
        meaningful for the non-negative `output=None`.

    Returns
    -------
    ndarray of shape (n_features,)

    Examples
    --------
    >>> W1 = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    >>> W2 = np.array([[2.0], [-3.0]])
    >>> olden_importance([W1, W2], output=0).tolist()
    [2.0, -3.0, -0.5]
    >>> olden_importance([W1, W2]).tolist()
    [2.0, 3.0, 0.5]
    """
    cw = connection_weights(model_or_weights)
    if output is None:
        scores = np.abs(cw).sum(axis=1)
    else:
        if not isinstance(output, (int, np.integer)) or not -cw.shape[1] <= output < cw.shape[1]:
            raise ValueError(
                f"output={output!r} is not an output index; the network has "
                f"{cw.shape[1]} output(s) (use None for all of them)."
            )
        scores = cw[:, int(output)].copy()
    return normalize_scores(scores, normalize)
