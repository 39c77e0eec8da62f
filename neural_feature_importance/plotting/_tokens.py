"""Figures of token scores: top tokens overall and per document, recall@k of rankings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from neural_feature_importance.plotting._common import (
    HIGHLIGHT_COLOR,
    IMPORTANCE_COLOR,
    MUTED_COLOR,
    _check_top_k,
    _new_axes,
    _pyplot,
)
from neural_feature_importance.plotting._importances import plot_importances

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _token_order(
    scores: np.ndarray, exclude: Sequence[int], tokens: np.ndarray | None = None
) -> np.ndarray:
    candidates = np.arange(scores.size) if tokens is None else np.unique(tokens)
    banned = np.asarray(list(exclude), dtype=np.int64)
    candidates = candidates[~np.isin(candidates, banned)]
    return candidates[np.argsort(-scores[candidates], kind="stable")]


def plot_top_tokens(
    scores: np.ndarray,
    vocabulary: Sequence[str],
    *,
    top_k: int = 20,
    exclude: Sequence[int] = (),
    highlight: Sequence[int] | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """The `top_k` most important tokens overall (an embedding tracker's scores).

    Parameters
    ----------
    scores : ndarray of shape (vocab_size,)
        One score per token (`feature_importances_`).
    vocabulary : sequence of str
        `vocabulary[i]` is the word of token `i`.
    top_k : int, default=20
        Number of tokens shown.
    exclude : sequence of int, default=()
        Tokens never shown (padding, start and unknown-word markers).
    highlight : sequence of int, optional
        Tokens drawn in a contrasting colour (e.g. the planted sentiment words).
    title : str, optional
        Axes title.
    ax : matplotlib Axes, optional
        Draw into this axes.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if len(vocabulary) != scores.size:
        raise ValueError(
            f"vocabulary has {len(vocabulary)} words but there are {scores.size} scores; "
            "pass the vocabulary of the tracked embedding."
        )
    order = _token_order(scores, exclude)[: _check_top_k(top_k, scores.size)]
    marked = set() if highlight is None else {int(t) for t in highlight}
    return plot_importances(
        scores[order],
        [vocabulary[t] for t in order],
        sort=False,
        highlight=[i for i, t in enumerate(order) if int(t) in marked],
        highlight_labels=("planted token", "other token"),
        title=title or f"Top {order.size} tokens by VIANN importance",
        ax=ax,
    )


def plot_document_tokens(
    documents: Sequence[np.ndarray],
    scores: np.ndarray,
    vocabulary: Sequence[str],
    *,
    top_k: int = 8,
    exclude: Sequence[int] = (),
    labels: Sequence[str] | None = None,
    highlight: Sequence[int] | None = None,
    n_cols: int = 2,
    title: str | None = None,
) -> Figure:
    """For each document, its `top_k` most important distinct tokens.

    Parameters
    ----------
    documents : sequence of int arrays
        Token sequences (padding is dropped through `exclude`).
    scores : ndarray of shape (vocab_size,)
        One score per token (`feature_importances_`).
    vocabulary : sequence of str
        `vocabulary[i]` is the word of token `i`.
    top_k : int, default=8
        Tokens shown per document.
    exclude : sequence of int, default=()
        Tokens never shown.
    labels : sequence of str, optional
        A caption per document (e.g. its label and the prediction).
    highlight : sequence of int, optional
        Tokens drawn in a contrasting colour.
    n_cols : int, default=2
        Panels per row.
    title : str, optional
        Figure title.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if len(documents) == 0:
        raise ValueError("documents is empty; pass at least one token sequence.")
    if labels is not None and len(labels) != len(documents):
        raise ValueError(f"labels has {len(labels)} entries for {len(documents)} documents.")
    k = _check_top_k(top_k, scores.size)
    n_cols = max(1, min(int(n_cols), len(documents)))
    n_rows = -(-len(documents) // n_cols)
    fig, axes = _pyplot().subplots(
        n_rows,
        n_cols,
        figsize=(4.2 * n_cols, (0.8 + 0.26 * k) * n_rows + 0.4),
        layout="constrained",
        squeeze=False,
    )
    marked = set() if highlight is None else {int(t) for t in highlight}
    high = float(scores.max()) or 1.0
    for index, ax in enumerate(axes.ravel()):
        if index >= len(documents):
            ax.axis("off")
            continue
        order = _token_order(scores, exclude, np.asarray(documents[index]))[:k]
        y = np.arange(order.size)[::-1]
        ax.barh(
            y,
            scores[order],
            color=[HIGHLIGHT_COLOR if t in marked else IMPORTANCE_COLOR for t in order],
        )
        ax.set_yticks(y, [vocabulary[t] for t in order])
        ax.set_xlim(0, high * 1.05)
        ax.set_ylim(-0.6, k - 0.4)
        ax.spines[["top", "right"]].set_visible(False)
        caption = f"document {index + 1}"
        if labels is not None:
            caption += f": {labels[index]}"
        ax.set_title(caption, fontsize=9)
        if index // n_cols == n_rows - 1:
            ax.set_xlabel("importance")
    fig.suptitle(title or f"Top {k} tokens of each document")
    return fig


def plot_recall_at_k(
    ks: Sequence[int],
    recalls: Mapping[str, Sequence[float]],
    *,
    n_relevant: int | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Recall@k curves of several rankings against a known set of relevant features.

    Parameters
    ----------
    ks : sequence of int
        Cut-offs.
    recalls : mapping of str to sequence of float
        Name of each ranking (e.g. `"VIANN"`, `"frequency"`) and its recall
        at every cut-off.
    n_relevant : int, optional
        Size of the relevant set; a dotted line marks `k = n_relevant`.
    title : str, optional
        Axes title.
    ax : matplotlib Axes, optional
        Draw into this axes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    cutoffs = np.asarray(ks)
    fig, ax = _new_axes(ax, (5.6, 3.8))
    styles = ["o-", "s--", "^:", "d-."] if cutoffs.size <= 12 else ["-", "--", ":", "-."]
    colors = [IMPORTANCE_COLOR, HIGHLIGHT_COLOR, MUTED_COLOR, "#2a9d8f"]
    for index, (name, recall) in enumerate(recalls.items()):
        values = np.asarray(recall, dtype=np.float64)
        if values.shape != cutoffs.shape:
            raise ValueError(
                f"recalls[{name!r}] has {values.size} values for {cutoffs.size} cut-offs."
            )
        ax.plot(
            cutoffs,
            values,
            styles[index % 4],
            color=colors[index % 4],
            label=name,
            markersize=4,
            linewidth=2 if index == 0 else 1.5,
        )
    if n_relevant is not None:
        ax.axvline(n_relevant, color="black", linestyle=":", linewidth=1)
        ax.text(n_relevant, 1.03, f" k = {n_relevant}", fontsize=8, va="bottom")
    ax.set_xlabel("k (top-k tokens)")
    ax.set_ylabel("recall@k of the planted tokens")
    ax.set_ylim(0, 1.1)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8, loc="center right")
    ax.set_title(title or "How many planted tokens the ranking finds")
    return fig
