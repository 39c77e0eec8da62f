"""Figures of importances: bar charts, convolution filters, tokens, trajectories.

Needs matplotlib (``pip install 'neural-feature-importance[plot]'``), which is
imported when a function is first called, never by the package root.

Every function takes plain numpy arrays (the trackers' attributes), returns the
:class:`matplotlib.figure.Figure` it drew, and never calls ``plt.show()``:
save it with ``fig.savefig(...)``, or let a notebook display it.

>>> from neural_feature_importance.plotting import plot_importances  # doctest: +SKIP
>>> fig = plot_importances(tracker.feature_importances_, feature_names, top_k=10)  # doctest: +SKIP
>>> fig.savefig("importances.png")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from neural_feature_importance._optional import import_optional

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

IMPORTANCE_COLOR = "#3b6ea8"
HIGHLIGHT_COLOR = "#d1495b"
MUTED_COLOR = "#9aa5b1"

__all__ = [
    "plot_conv_filters",
    "plot_conv_heatmap",
    "plot_document_tokens",
    "plot_filter_ablation",
    "plot_importance_history",
    "plot_importances",
    "plot_recall_at_k",
    "plot_top_tokens",
]


def _pyplot() -> Any:
    return import_optional("matplotlib.pyplot", "plotting")


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        # Typed Figure | SubFigure: axes inside a subfigure give the SubFigure (same drawing API).
        return cast("Figure", ax.figure), ax
    fig, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _names(feature_names: Sequence[str] | None, n: int) -> list[str]:
    if feature_names is None:
        return [f"feature {i}" for i in range(n)]
    names = [str(name) for name in feature_names]
    if len(names) != n:
        raise ValueError(
            f"feature_names has {len(names)} entries but there are {n} importances; "
            "pass one name per feature."
        )
    return names


def _check_top_k(top_k: int | None, n: int) -> int:
    if top_k is None:
        return n
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k={top_k!r}; use a positive number of features, or None for all.")
    return min(int(top_k), n)


def plot_importances(
    importances: np.ndarray | Sequence[float],
    feature_names: Sequence[str] | None = None,
    *,
    top_k: int | None = None,
    sort: bool = True,
    highlight: Sequence[int] | None = None,
    highlight_labels: tuple[str, str] = ("highlighted", "other"),
    title: str | None = None,
    xlabel: str = "importance",
    ax: Axes | None = None,
) -> Figure:
    """Horizontal bar chart of importances, most important on top.

    Parameters
    ----------
    importances : array of shape (n_features,) or (n_runs, n_features)
        One score per feature; with several runs the bars show the mean and
        error bars the standard deviation across runs.
    feature_names : sequence of str, optional
        Name of each feature (default ``"feature i"``).
    top_k : int, optional
        Show only the ``top_k`` highest (mean) scores.
    sort : bool, default=True
        Order bars by score; ``False`` keeps the input order (then ``top_k``
        takes the first ``top_k`` features).
    highlight : sequence of int, optional
        Feature indices drawn in a contrasting colour (e.g. the known truth).
    highlight_labels : (str, str), default=("highlighted", "other")
        Legend entries of the highlighted and the other bars.
    title : str, optional
        Axes title.
    xlabel : str, default="importance"
        Label of the score axis.
    ax : matplotlib Axes, optional
        Draw into this axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_importances([0.2, 1.0, 0.0], ["a", "b", "c"])
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['b', 'a', 'c']
    """
    scores = np.asarray(importances, dtype=np.float64)
    if scores.ndim not in (1, 2) or scores.shape[-1] == 0:
        raise ValueError(
            f"importances has shape {scores.shape}; pass (n_features,) or "
            "(n_runs, n_features) scores."
        )
    runs = scores if scores.ndim == 2 else scores[None]
    mean = runs.mean(axis=0)
    std = runs.std(axis=0) if runs.shape[0] > 1 else None
    names = _names(feature_names, mean.size)
    k = _check_top_k(top_k, mean.size)
    order = np.argsort(-mean, kind="stable")[:k] if sort else np.arange(k)
    marked = set() if highlight is None else {int(i) for i in highlight}
    fig, ax = _new_axes(ax, (6.4, 0.9 + 0.28 * k))
    y = np.arange(k)[::-1]
    colors = [HIGHLIGHT_COLOR if i in marked else IMPORTANCE_COLOR for i in order]
    ax.barh(
        y,
        mean[order],
        xerr=None if std is None else std[order],
        color=colors,
        ecolor="#333333",
        capsize=2 if std is not None else 0,
    )
    ax.set_yticks(y, [names[i] for i in order])
    ax.set_xlabel(xlabel if std is None else f"{xlabel} (mean ± std of {runs.shape[0]} runs)")
    ax.set_ylim(-0.6, k - 0.4)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    shown = f"top {k} of {mean.size}" if k < mean.size else f"{mean.size} features"
    ax.set_title(title or f"Feature importance ({shown})")
    if marked:
        from matplotlib.patches import Patch

        ax.legend(
            handles=[
                Patch(color=HIGHLIGHT_COLOR, label=highlight_labels[0]),
                Patch(color=IMPORTANCE_COLOR, label=highlight_labels[1]),
            ],
            loc="lower right",
            frameon=False,
        )
    return fig


def plot_conv_heatmap(
    heatmap: np.ndarray,
    *,
    title: str = "Kernel-position importance",
    ax: Axes | None = None,
) -> Figure:
    """Importance of every kernel position (a tracker's ``heatmap_``), summed over input channels.

    Parameters
    ----------
    heatmap : ndarray of shape (kh, kw) or (kh, kw, in_channels)
        Scores per kernel position (and input channel).
    title : str, default="Kernel-position importance"
        Axes title.
    ax : matplotlib Axes, optional
        Draw into this axes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    values = _kernel_2d(np.asarray(heatmap, dtype=np.float64), "heatmap", reduce="sum")
    fig, ax = _new_axes(ax, (3.6, 3.2))
    image = ax.imshow(values, cmap="magma", vmin=0.0)
    _annotate_kernel(ax, values)
    ax.set_title(title)
    ax.set_xlabel("kernel column")
    ax.set_ylabel("kernel row")
    fig.colorbar(image, ax=ax, label="importance", shrink=0.85)
    return fig


def _kernel_2d(values: np.ndarray, name: str, *, reduce: str) -> np.ndarray:
    if values.ndim == 3:
        return values.sum(axis=-1) if reduce == "sum" else values.mean(axis=-1)
    if values.ndim != 2:
        raise ValueError(
            f"{name} has shape {values.shape}; pass a 2-D kernel (kh, kw) or (kh, kw, in)."
        )
    return values


def _annotate_kernel(ax: Axes, values: np.ndarray) -> None:
    if values.size > 25:
        ax.set_xticks([])
        ax.set_yticks([])
        return
    high = float(values.max()) or 1.0
    for (row, col), value in np.ndenumerate(values):
        color = "black" if value > 0.6 * high else "white"
        ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(values.shape[1]))
    ax.set_yticks(range(values.shape[0]))


def plot_conv_filters(
    weights: np.ndarray,
    heatmaps: np.ndarray,
    feature_maps: np.ndarray,
    *,
    image: np.ndarray | None = None,
    ranking: Sequence[int] | None = None,
    filter_scores: Sequence[float] | None = None,
    total_heatmap: np.ndarray | None = None,
    max_filters: int | None = None,
    title: str | None = None,
) -> Figure:
    """Every filter's weights, importance heatmap and output, ordered by rank.

    One column per filter, most important on the left; three rows: the final
    kernel weights (blue negative, red positive, one symmetric scale), the
    filter's VIANN score of every kernel position, and the filter's (ReLU)
    output on one example image. A first column shows the image itself and
    the tracker's overall heatmap.

    Parameters
    ----------
    weights : ndarray of shape (n_filters, kh, kw) or (n_filters, kh, kw, in)
        Final kernels; several input channels are averaged.
    heatmaps : ndarray of shape (n_filters, kh, kw) or (n_filters, kh, kw, in)
        Per-filter importance of each kernel position; channels are summed.
    feature_maps : ndarray of shape (n_filters, h, w)
        Each filter's output on the example image.
    image : ndarray of shape (H, W) or (H, W, 1), optional
        The example image.
    ranking : sequence of int, optional
        Filter indices from most to least important (``filter_ranking_``);
        default: the input order.
    filter_scores : sequence of float, optional
        Score of every filter (``filter_importances_``), shown in the titles.
    total_heatmap : ndarray, optional
        The tracker's ``heatmap_`` (all filters together).
    max_filters : int, optional
        Show only the first ``max_filters`` filters of the ranking.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    weights = np.asarray(weights, dtype=np.float64)
    heatmaps = np.asarray(heatmaps, dtype=np.float64)
    feature_maps = np.asarray(feature_maps, dtype=np.float64)
    n_filters = weights.shape[0]
    if heatmaps.shape[0] != n_filters or feature_maps.shape[0] != n_filters:
        raise ValueError(
            f"weights, heatmaps and feature_maps must have one entry per filter; got "
            f"{weights.shape[0]}, {heatmaps.shape[0]} and {feature_maps.shape[0]}."
        )
    if feature_maps.ndim != 3:
        raise ValueError(
            f"feature_maps has shape {feature_maps.shape}; pass (n_filters, height, width)."
        )
    order = np.arange(n_filters) if ranking is None else np.asarray(ranking, dtype=np.int64)
    if sorted(order.tolist()) != list(range(n_filters)):
        raise ValueError("ranking must be a permutation of the filter indices.")
    order = order[: _check_top_k(max_filters, n_filters)]
    kernels = np.stack([_kernel_2d(w, "weights", reduce="mean") for w in weights])
    scores_map = np.stack([_kernel_2d(h, "heatmaps", reduce="sum") for h in heatmaps])

    plt = _pyplot()
    n_cols = order.size + 1
    fig, axes = plt.subplots(
        3,
        n_cols,
        figsize=(1.15 * n_cols + 1.4, 4.6),
        layout="constrained",
        squeeze=False,
    )
    limit = float(np.abs(kernels[order]).max()) or 1.0
    heat_max = float(scores_map[order].max()) or 1.0
    out_max = float(feature_maps[order].max()) or 1.0
    images = []
    for column, f in enumerate(order, start=1):
        label = f"#{column}: filter {f}"
        if filter_scores is not None:
            label += f"\nscore {float(filter_scores[f]):.2f}"
        axes[0, column].set_title(label, fontsize=8)
        images.append(axes[0, column].imshow(kernels[f], cmap="RdBu_r", vmin=-limit, vmax=limit))
        images.append(axes[1, column].imshow(scores_map[f], cmap="magma", vmin=0, vmax=heat_max))
        images.append(axes[2, column].imshow(feature_maps[f], cmap="viridis", vmin=0, vmax=out_max))
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for row, text in enumerate(("weights", "importance\nper position", "output on\nthe example")):
        axes[row, 1].set_ylabel(text, fontsize=9)
    axes[0, 0].axis("off")
    axes[0, 0].text(
        0.5,
        0.5,
        "filters by\nVIANN rank\n(left = most\nimportant)",
        ha="center",
        va="center",
        fontsize=8,
        transform=axes[0, 0].transAxes,
    )
    if total_heatmap is not None:
        axes[1, 0].imshow(
            _kernel_2d(np.asarray(total_heatmap, dtype=np.float64), "total_heatmap", reduce="sum"),
            cmap="magma",
        )
        axes[1, 0].set_title("all filters", fontsize=8)
    else:
        axes[1, 0].axis("off")
    if image is not None:
        picture = np.asarray(image, dtype=np.float64)
        axes[2, 0].imshow(picture.reshape(picture.shape[:2]), cmap="gray_r")
        axes[2, 0].set_title("example", fontsize=8)
    else:
        axes[2, 0].axis("off")
    for row, (mappable, label) in enumerate(
        zip(images[:3], ("weight", "importance", "activation"), strict=True)
    ):
        fig.colorbar(mappable, ax=axes[row, :].tolist(), label=label, shrink=0.9, pad=0.01)
    fig.suptitle(title or "Convolution filters ordered by VIANN importance")
    return fig


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
    """The ``top_k`` most important tokens overall (an embedding tracker's scores).

    Parameters
    ----------
    scores : ndarray of shape (vocab_size,)
        One score per token (``feature_importances_``).
    vocabulary : sequence of str
        ``vocabulary[i]`` is the word of token ``i``.
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
    """For each document, its ``top_k`` most important distinct tokens.

    Parameters
    ----------
    documents : sequence of int arrays
        Token sequences (padding is dropped through ``exclude``).
    scores : ndarray of shape (vocab_size,)
        One score per token (``feature_importances_``).
    vocabulary : sequence of str
        ``vocabulary[i]`` is the word of token ``i``.
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


def plot_importance_history(
    history: np.ndarray,
    feature_names: Sequence[str] | None = None,
    *,
    top_k: int = 8,
    exclude: Sequence[int] = (),
    highlight: Sequence[int] | None = None,
    normalize: bool = True,
    xlabel: str = "update",
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """How the importances evolved during training (a tracker's ``history_``).

    Draws a line for each of the ``top_k`` features with the highest final
    score, a dotted line for the best of all the other features and (with ten
    or more others) a grey band for their 5th to 95th percentile, so one sees
    when the leaders separated from the rest.

    Parameters
    ----------
    history : ndarray of shape (n_updates, n_features)
        Raw scores after each update (``tracker.history_``).
    feature_names : sequence of str, optional
        Name of each feature.
    top_k : int, default=8
        Features drawn as lines.
    exclude : sequence of int, default=()
        Features left out entirely (e.g. padding tokens).
    highlight : sequence of int, optional
        Features drawn as solid red-ish lines (others dashed blue-ish).
    normalize : bool, default=True
        Divide each update's scores by their maximum (over the features shown),
        so the curves show *relative* importance; raw scores otherwise.
    xlabel : str, default="update"
        Label of the time axis (``"epoch"`` for per-epoch snapshots).
    title : str, optional
        Axes title.
    ax : matplotlib Axes, optional
        Draw into this axes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    history = np.asarray(history, dtype=np.float64)
    if history.ndim != 2 or history.shape[0] < 1:
        raise ValueError(
            f"history has shape {history.shape}; pass (n_updates, n_features), "
            "e.g. tracker.history_ of a tracker built with record_history=True."
        )
    names = _names(feature_names, history.shape[1])
    keep = np.setdiff1d(np.arange(history.shape[1]), np.asarray(list(exclude), dtype=np.int64))
    values = history[:, keep]
    if normalize:
        peak = values.max(axis=1, keepdims=True)
        values = np.divide(values, peak, out=np.zeros_like(values), where=peak > 0)
    k = _check_top_k(top_k, keep.size)
    leaders = np.argsort(-values[-1], kind="stable")[:k]
    rest = np.setdiff1d(np.arange(keep.size), leaders)
    steps = np.arange(2, history.shape[0] + 2)  # the first score exists after 2 updates
    fig, ax = _new_axes(ax, (7.0, 4.2))
    if rest.size:
        others = values[:, rest]
        if rest.size >= 10:
            low, high = np.percentile(others, [5, 95], axis=1)
            ax.fill_between(
                steps, low, high, color=MUTED_COLOR, alpha=0.35, label="other features, 5-95%"
            )
        ax.plot(
            steps,
            others.max(axis=1),
            ":",
            color="#555555",
            label=f"best of the other {rest.size}",
        )
    marked = set() if highlight is None else {int(i) for i in highlight}
    cmap = _pyplot().get_cmap("tab10")
    for rank, column in enumerate(leaders):
        feature = int(keep[column])
        style = "-" if (not marked or feature in marked) else "--"
        ax.plot(
            steps,
            values[:, column],
            style,
            color=cmap(rank % 10),
            marker="o" if steps.size <= 30 else None,
            markersize=3,
            label=names[feature],
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("importance / max at that update" if normalize else "raw importance")
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8)
    ax.set_title(title or f"Importance during training (top {k} at the end)")
    return fig


def plot_filter_ablation(
    ks: Sequence[int],
    top: Sequence[float],
    bottom: Sequence[float],
    random_mean: Sequence[float],
    random_std: Sequence[float] | None = None,
    *,
    full: float | None = None,
    chance: float | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Accuracy keeping only ``k`` filters: top-ranked vs bottom-ranked vs random.

    Parameters
    ----------
    ks : sequence of int
        Numbers of filters kept.
    top, bottom : sequence of float
        Accuracy keeping the ``k`` highest / lowest ranked filters.
    random_mean, random_std : sequence of float
        Mean (and standard deviation) over random ``k``-subsets.
    full : float, optional
        Accuracy with every filter (a dotted line).
    chance : float, optional
        Accuracy of guessing (a dotted grey line).
    title : str, optional
        Axes title.
    ax : matplotlib Axes, optional
        Draw into this axes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    kept = np.asarray(ks)
    fig, ax = _new_axes(ax, (5.6, 3.8))
    ax.plot(kept, top, "o-", color=IMPORTANCE_COLOR, label="top-k (VIANN rank)", linewidth=2)
    ax.plot(kept, bottom, "s--", color=HIGHLIGHT_COLOR, label="bottom-k")
    ax.plot(kept, random_mean, "^-", color=MUTED_COLOR, label="random k (mean)")
    if random_std is not None:
        mean, std = np.asarray(random_mean), np.asarray(random_std)
        ax.fill_between(kept, mean - std, mean + std, color=MUTED_COLOR, alpha=0.3, label="± 1 std")
    if full is not None:
        ax.axhline(full, color="black", linestyle=":", label=f"all filters ({full:.3f})")
    if chance is not None:
        ax.axhline(chance, color=MUTED_COLOR, linestyle=":", label=f"chance ({chance:.2f})")
    ax.set_xticks(kept)
    ax.set_xlabel("filters kept (k)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_title(title or "Keeping only k filters")
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
        Name of each ranking (e.g. ``"VIANN"``, ``"frequency"``) and its recall
        at every cut-off.
    n_relevant : int, optional
        Size of the relevant set; a dotted line marks ``k = n_relevant``.
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
