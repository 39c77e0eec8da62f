"""Figures of convolution filters: kernel-position heatmaps, filters by rank, ablation."""

from __future__ import annotations

from collections.abc import Sequence
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

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def plot_conv_heatmap(
    heatmap: np.ndarray,
    *,
    title: str = "Kernel-position importance",
    ax: Axes | None = None,
) -> Figure:
    """Importance of every kernel position (a tracker's `heatmap_`), summed over input channels.

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
        Filter indices from most to least important (`filter_ranking_`);
        default: the input order.
    filter_scores : sequence of float, optional
        Score of every filter (`filter_importances_`), shown in the titles.
    total_heatmap : ndarray, optional
        The tracker's `heatmap_` (all filters together).
    max_filters : int, optional
        Show only the first `max_filters` filters of the ranking.
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
    """Accuracy keeping only `k` filters: top-ranked vs bottom-ranked vs random.

    Parameters
    ----------
    ks : sequence of int
        Numbers of filters kept.
    top, bottom : sequence of float
        Accuracy keeping the `k` highest / lowest ranked filters.
    random_mean, random_std : sequence of float
        Mean (and standard deviation) over random `k`-subsets.
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
