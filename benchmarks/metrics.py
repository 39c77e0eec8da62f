"""How well a vector of importances recovers the planted informative features."""

from __future__ import annotations

import numpy as np


def _finite(scores: np.ndarray) -> np.ndarray:
    """Scores with NaN/Inf replaced by a value below every finite score (ranked last)."""
    scores = np.asarray(scores, dtype=np.float64).copy()
    bad = ~np.isfinite(scores)
    if bad.any():
        finite = scores[~bad]
        scores[bad] = (finite.min() - 1.0) if finite.size else 0.0
    return scores


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC-AUC of ``scores`` separating ``positive`` features from the rest.

    The probability that a random positive outscores a random negative (ties
    count one half): 1 is a perfect ranking, 0.5 is chance. NaN when one of the
    two groups is empty.

    Examples
    --------
    >>> roc_auc(np.array([0.9, 0.1, 0.5, 0.5]), np.array([True, False, True, False]))
    0.875
    """
    scores = _finite(scores)
    positive = np.asarray(positive, dtype=bool)
    if scores.shape != positive.shape:
        raise ValueError(f"scores {scores.shape} and mask {positive.shape} differ in shape")
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # Mann-Whitney U from average ranks (ties get the mean rank).
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):
        stop = start
        while stop + 1 < len(scores) and sorted_scores[stop + 1] == sorted_scores[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2.0 + 1.0
        start = stop + 1
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def precision_at_k(scores: np.ndarray, positive: np.ndarray, k: int | None = None) -> float:
    """Share of the ``k`` top-scored features that are positive (``k`` = number of positives).

    Ties at the cut are shared fractionally, so the result does not depend on
    the order of equal scores.

    Examples
    --------
    >>> precision_at_k(np.array([3.0, 2.0, 1.0, 0.0]), np.array([True, False, True, False]))
    0.5
    """
    scores = _finite(scores)
    positive = np.asarray(positive, dtype=bool)
    k = int(positive.sum()) if k is None else int(k)
    if k < 1 or k > len(scores):
        raise ValueError(f"k={k} must be between 1 and the number of features ({len(scores)})")
    threshold = np.sort(scores)[::-1][k - 1]
    above = scores > threshold
    tied = scores == threshold
    hits = positive[above].sum() + (k - above.sum()) * positive[tied].mean()
    return float(hits / k)


def ranking_metrics(
    scores: np.ndarray, informative: np.ndarray, decoys: np.ndarray | None = None
) -> dict[str, float]:
    """``auc``, ``precision_at_k`` and ``auc_vs_decoys`` (informative vs decoys only).

    ``auc_vs_decoys`` is NaN when the data set has no decoys.
    """
    informative = np.asarray(informative, dtype=bool)
    out = {
        "auc": roc_auc(scores, informative),
        "precision_at_k": precision_at_k(scores, informative),
        "auc_vs_decoys": float("nan"),
    }
    if decoys is not None and np.asarray(decoys).any():
        keep = informative | np.asarray(decoys, dtype=bool)
        out["auc_vs_decoys"] = roc_auc(np.asarray(scores)[keep], informative[keep])
    return out
