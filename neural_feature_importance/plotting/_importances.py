"""Figures of feature scores: a bar chart, and their trajectories during training.

`plot_importance_history` draws a tracker's raw scores after every snapshot
(`history_`); `plot_importance_trajectory` its importances at every epoch's end
(`epoch_importances_`), the values its loggers received.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from neural_feature_importance.plotting._common import (
    HIGHLIGHT_COLOR,
    IMPORTANCE_COLOR,
    MUTED_COLOR,
    _check_top_k,
    _names,
    _new_axes,
    _pyplot,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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
        Name of each feature (default `"feature i"`).
    top_k : int, optional
        Show only the `top_k` highest (mean) scores.
    sort : bool, default=True
        Order bars by score; `False` keeps the input order (then `top_k`
        takes the first `top_k` features).
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
    """How the importances evolved during training (a tracker's `history_`).

    Draws a line for each of the `top_k` features with the highest final
    score, a dotted line for the best of all the other features and (with ten
    or more others) a grey band for their 5th to 95th percentile, so one sees
    when the leaders separated from the rest.

    Parameters
    ----------
    history : ndarray of shape (n_updates, n_features)
        Raw scores after each update (`tracker.history_`).
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
        Label of the time axis (`"epoch"` for per-epoch snapshots).
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


def plot_importance_trajectory(
    source: Any,
    feature_names: Sequence[str] | None = None,
    *,
    top_k: int | None = 8,
    columns: Sequence[int | str] | None = None,
    mark_epoch: int | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Each column's importance at the end of every epoch: one line per column.

    The lines are the tracker's
    [`epoch_importances_`][neural_feature_importance.core.VarianceImportanceBase.epoch_importances_]
    (recorded with `log_importances=` or `record_history=True`), the values its
    loggers received: epoch `e` is what a run stopped after epoch `e` reports. An
    epoch without importances (VIANN's first) leaves a gap.

    Parameters
    ----------
    source : tracker or array of shape (n_epochs, n_columns)
        Any tracker or callback of this package (its `epoch_importances_` and
        `feature_names_in_` are read), or the per-epoch importances themselves.
    feature_names : sequence of str, optional
        Name of each column (default: the tracker's `feature_names_in_`, or
        `"feature i"` for an array).
    top_k : int or None, default=8
        Draw the `top_k` columns that rank highest at the last epoch with
        importances (`None`: every column).
    columns : sequence of int or str, optional
        Draw these columns (indices or names) instead of the top ones.
    mark_epoch : int, optional
        Draw a dashed vertical line at this epoch (e.g. `early_stopping.best_epoch`).
    title : str, optional
        Axes title.
    ax : matplotlib Axes, optional
        Draw into this axes.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> history = np.array([[np.nan, np.nan], [1.0, 0.0], [0.4, 1.0]])
    >>> fig = plot_importance_trajectory(history, ["a", "b"])
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['b', 'a']
    """
    if hasattr(type(source), "epoch_importances_"):  # a tracker (its property may raise)
        values = np.asarray(source.epoch_importances_, dtype=np.float64)
        if feature_names is None:
            feature_names = [str(name) for name in source.feature_names_in_]
    else:
        values = np.asarray(source, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < 1 or values.shape[1] < 1:
        raise ValueError(
            f"the per-epoch importances have shape {values.shape}; pass a tracker built with "
            "log_importances= or record_history=True, trained for an epoch or more, or an "
            "(n_epochs, n_columns) array."
        )
    names = _names(feature_names, values.shape[1])
    scored = np.flatnonzero(np.all(np.isfinite(values), axis=1))
    if columns is not None:
        shown = [names.index(c) if isinstance(c, str) and c in names else c for c in columns]
        unknown = [
            c for c in shown if not isinstance(c, int | np.integer) or not 0 <= c < len(names)
        ]
        if unknown:
            raise ValueError(f"columns={list(columns)!r}: {unknown} name no column of {names}.")
        order = np.asarray(shown, dtype=np.int64)
    elif scored.size:
        k = _check_top_k(top_k, values.shape[1])
        order = np.argsort(-values[scored[-1]], kind="stable")[:k]
    else:
        order = np.arange(_check_top_k(top_k, values.shape[1]))
    epochs = np.arange(values.shape[0])
    fig, ax = _new_axes(ax, (7.0, 4.2))
    cmap = _pyplot().get_cmap("tab10")
    for rank, column in enumerate(order):
        ax.plot(
            epochs,
            values[:, column],
            "-",
            color=cmap(rank % 10),
            marker="o" if epochs.size <= 30 else None,
            markersize=3,
            label=names[int(column)],
        )
    if mark_epoch is not None:
        ax.axvline(mark_epoch, color=MUTED_COLOR, linestyle="--", label=f"epoch {mark_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("importance")
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8)
    if title is None:
        last = f" at epoch {int(scored[-1])}" if scored.size and columns is None else ""
        shown_columns = f"top {order.size}{last}" if order.size < values.shape[1] else "all"
        title = f"Importance per epoch ({shown_columns} of {values.shape[1]} columns)"
    ax.set_title(title)
    return fig
