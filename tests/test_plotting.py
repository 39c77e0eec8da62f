"""Plotting: every function returns a Figure with the right content and never shows it."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from neural_feature_importance import NotFittedError, plotting  # noqa: E402
from neural_feature_importance.plotting import (  # noqa: E402
    HIGHLIGHT_COLOR,
    IMPORTANCE_COLOR,
    plot_conv_filters,
    plot_conv_heatmap,
    plot_document_tokens,
    plot_filter_ablation,
    plot_importance_history,
    plot_importances,
    plot_recall_at_k,
    plot_top_tokens,
)


@pytest.fixture(autouse=True)
def _no_show_and_close(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("plotting functions must not call plt.show()")

    monkeypatch.setattr(plt, "show", forbidden)
    yield
    plt.close("all")


def _labels(ax):
    return [t.get_text() for t in ax.get_yticklabels()]


def _bar_widths(ax):
    return [p.get_width() for p in ax.patches]


def test_importances_sorted_with_top_k():
    fig = plot_importances([0.2, 1.0, 0.0, 0.6], ["a", "b", "c", "d"], top_k=3)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert _labels(ax) == ["b", "d", "a"]  # top to bottom
    # Bars are drawn bottom-up: the largest is at the top (highest y).
    bars = sorted(ax.patches, key=lambda p: -p.get_y())
    assert [b.get_width() for b in bars] == [1.0, 0.6, 0.2]
    assert "top 3 of 4" in ax.get_title()


def test_importances_of_several_runs_have_mean_bars_and_std_error_bars():
    runs = np.array([[1.0, 0.0, 0.5], [0.6, 0.2, 0.5]])
    fig = plot_importances(runs, ["x", "y", "z"])
    ax = fig.axes[0]
    assert _labels(ax) == ["x", "z", "y"]
    np.testing.assert_allclose(sorted(_bar_widths(ax)), [0.1, 0.5, 0.8])
    (container,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    (errorbar,) = container.lines[2]
    # One error segment per bar, half-length = std across runs: 0.2, 0.0, 0.1.
    half = sorted(abs(seg[1, 0] - seg[0, 0]) / 2 for seg in errorbar.get_segments())
    np.testing.assert_allclose(half, [0.0, 0.1, 0.2])
    assert "mean ± std of 2 runs" in ax.get_xlabel()


def test_importances_highlight_and_unsorted():
    fig = plot_importances([0.3, 0.9, 0.1], sort=False, highlight=[1])
    ax = fig.axes[0]
    assert _labels(ax) == ["feature 0", "feature 1", "feature 2"]
    colors = {to_hex(p.get_facecolor()) for p in ax.patches if p.get_width() == 0.9}
    assert colors == {HIGHLIGHT_COLOR}
    assert to_hex(ax.patches[0].get_facecolor()) == IMPORTANCE_COLOR
    assert ax.get_legend() is not None


def test_importances_draw_into_a_given_axes():
    fig, ax = plt.subplots()
    assert plot_importances([1.0, 2.0], ax=ax) is fig


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"importances": np.zeros((2, 2, 2))}, "pass \\(n_features,\\)"),
        ({"importances": [1.0, 2.0], "feature_names": ["a"]}, "one name per feature"),
        ({"importances": [1.0, 2.0], "top_k": 0}, "positive number"),
    ],
)
def test_importances_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot_importances(**kwargs)


def _conv_inputs(n_filters=4):
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(n_filters, 3, 3, 1))
    heatmaps = rng.random((n_filters, 3, 3, 1))
    maps = rng.random((n_filters, 6, 6))
    return weights, heatmaps, maps


def test_conv_filters_in_rank_order_with_three_rows_and_colorbars():
    weights, heatmaps, maps = _conv_inputs()
    ranking = [2, 0, 3, 1]
    scores = np.array([0.5, 0.0, 1.0, 0.25])
    fig = plot_conv_filters(
        weights,
        heatmaps,
        maps,
        image=np.ones((8, 8, 1)),
        ranking=ranking,
        filter_scores=scores,
        total_heatmap=heatmaps.sum(axis=0),
    )
    grid = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(grid) == 3 * 5
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 3
    titles = [ax.get_title() for ax in grid[1:5]]
    assert titles == [
        "#1: filter 2\nscore 1.00",
        "#2: filter 0\nscore 0.50",
        "#3: filter 3\nscore 0.25",
        "#4: filter 1\nscore 0.00",
    ]
    # Column #1 shows filter 2's data in all three rows.
    np.testing.assert_allclose(grid[1].images[0].get_array(), weights[2, :, :, 0])
    np.testing.assert_allclose(grid[6].images[0].get_array(), heatmaps[2, :, :, 0])
    np.testing.assert_allclose(grid[11].images[0].get_array(), maps[2])
    # The weights share one symmetric colour scale.
    low, high = grid[1].images[0].get_clim()
    assert low == -high == -np.abs(weights).max()


def test_conv_filters_max_filters_and_bad_input():
    weights, heatmaps, maps = _conv_inputs(5)
    fig = plot_conv_filters(weights, heatmaps, maps, max_filters=2)
    assert len([ax for ax in fig.axes if ax.get_label() != "<colorbar>"]) == 3 * 3
    with pytest.raises(ValueError, match="one entry per filter"):
        plot_conv_filters(weights, heatmaps[:3], maps)
    with pytest.raises(ValueError, match="permutation"):
        plot_conv_filters(weights, heatmaps, maps, ranking=[0, 0, 1, 2, 3])


def test_conv_heatmap_sums_channels_and_annotates():
    heatmap = np.arange(18, dtype=float).reshape(3, 3, 2)
    fig = plot_conv_heatmap(heatmap)
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), heatmap.sum(axis=-1))
    assert "33.00" in [t.get_text() for t in fig.axes[0].texts]  # 16 + 17 at (2, 2)


VOCAB = ["<pad>", "<start>", "good", "bad", "the", "film", "plot"]
SCORES = np.array([5.0, 4.0, 1.0, 0.9, 0.1, 0.3, 0.2])


def test_top_tokens_exclude_special_tokens_and_mark_planted_ones():
    fig = plot_top_tokens(SCORES, VOCAB, top_k=3, exclude=[0, 1], highlight=[2, 3])
    ax = fig.axes[0]
    assert _labels(ax) == ["good", "bad", "film"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["planted token", "other token"]
    with pytest.raises(ValueError, match="vocabulary has 2 words"):
        plot_top_tokens(SCORES, ["a", "b"])


def test_document_tokens_one_panel_per_document():
    documents = [np.array([0, 1, 4, 5, 2]), np.array([1, 6, 3, 4])]
    fig = plot_document_tokens(
        documents, SCORES, VOCAB, top_k=2, exclude=[0, 1], labels=["pos", "neg"], n_cols=2
    )
    first, second = fig.axes
    assert _labels(first) == ["good", "film"] and _labels(second) == ["bad", "plot"]
    assert first.get_title() == "document 1: pos"
    with pytest.raises(ValueError, match="labels has 1 entries"):
        plot_document_tokens(documents, SCORES, VOCAB, labels=["x"])


def test_history_draws_the_leaders_and_the_rest():
    history = np.array([[1.0, 2.0, 0.5, 0.4], [3.0, 2.0, 0.5, 0.2], [4.0, 1.0, 0.5, 0.1]])
    fig = plot_importance_history(history, ["a", "b", "c", "d"], top_k=2, xlabel="epoch")
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    # Leaders by final score: a then b; normalised by the max at each update.
    np.testing.assert_allclose(lines["a"].get_ydata(), [0.5, 1.0, 1.0])
    np.testing.assert_allclose(lines["b"].get_ydata(), [1.0, 2 / 3, 0.25])
    np.testing.assert_allclose(lines["a"].get_xdata(), [2, 3, 4])  # first score after 2 updates
    np.testing.assert_allclose(lines["best of the other 2"].get_ydata(), [0.25, 1 / 6, 0.125])
    assert ax.get_xlabel() == "epoch"
    raw = plot_importance_history(history, top_k=1, normalize=False, exclude=[0])
    labels = [line.get_label() for line in raw.axes[0].get_lines()]
    assert "feature 1" in labels and "feature 0" not in labels
    with pytest.raises(ValueError, match="record_history=True"):
        plot_importance_history(np.ones(3))


def test_filter_ablation_and_recall_curves():
    fig = plot_filter_ablation(
        [2, 4, 6], [0.7, 0.8, 0.9], [0.2, 0.3, 0.5], [0.4, 0.6, 0.7], [0.1, 0.1, 0.05], full=0.95
    )
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["top-k (VIANN rank)"].get_ydata(), [0.7, 0.8, 0.9])
    np.testing.assert_allclose(lines["bottom-k"].get_ydata(), [0.2, 0.3, 0.5])
    assert "all filters (0.950)" in lines
    fig = plot_recall_at_k([10, 20], {"VIANN": [0.5, 1.0], "frequency": [0.0, 0.0]}, n_relevant=20)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    np.testing.assert_allclose(lines["VIANN"].get_ydata(), [0.5, 1.0])
    with pytest.raises(ValueError, match="3 values for 2 cut-offs"):
        plot_recall_at_k([10, 20], {"VIANN": [0.1, 0.2, 0.3]})


def test_importing_the_package_does_not_import_plotting():
    import subprocess
    import sys

    code = (
        "import sys, neural_feature_importance;"
        "assert 'neural_feature_importance.plotting' not in sys.modules;"
        "assert 'matplotlib' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert set(plotting.__all__) >= {"plot_importances", "plot_conv_filters", "plot_top_tokens"}


def _tracker_with_epochs():
    from neural_feature_importance.core import VarianceImportanceBase

    rng = np.random.default_rng(0)
    tracker = VarianceImportanceBase(
        scoring="viann", record_history=True, feature_names=["a", "b", "c", "d"]
    )
    weights = rng.normal(size=(4, 3))
    tracker.start(weights)
    for epoch in range(5):
        # "b" moves most at first, "c" overtakes it from epoch 2 on.
        weights = weights + np.array([0.05, 1.0, 0.3 * epoch**2, 0.0])[:, None]
        weights = weights + 0.01 * rng.normal(size=weights.shape)
        tracker.update(weights)
        tracker.end_epoch()
    return tracker


def test_trajectory_draws_each_columns_per_epoch_importances():
    tracker = _tracker_with_epochs()
    history = tracker.epoch_importances_
    fig = plotting.plot_importance_trajectory(tracker, top_k=2, mark_epoch=3)
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if line.get_label() in {"a", "b", "c", "d"}]
    # The two that rank highest at the last epoch, highest first.
    assert [line.get_label() for line in lines] == ["c", "b"]
    for line in lines:
        column = ["a", "b", "c", "d"].index(line.get_label())
        np.testing.assert_array_equal(line.get_xdata(), np.arange(5))
        np.testing.assert_array_equal(line.get_ydata(), history[:, column])  # NaN at epoch 0
    assert np.isnan(lines[0].get_ydata()[0])
    assert [line.get_label() for line in ax.get_lines()][-1] == "epoch 3"
    assert ax.get_title() == "Importance per epoch (top 2 at epoch 4 of 4 columns)"
    chosen = plotting.plot_importance_trajectory(history, ["a", "b", "c", "d"], columns=["a", 3])
    assert [line.get_label() for line in chosen.axes[0].get_lines()] == ["a", "d"]
    np.testing.assert_array_equal(chosen.axes[0].get_lines()[1].get_ydata(), history[:, 3])


def test_trajectory_needs_per_epoch_importances():
    from neural_feature_importance.core import VarianceImportanceBase

    with pytest.raises(ValueError, match=r"name no column"):
        plotting.plot_importance_trajectory(np.ones((3, 2)), columns=["z"])
    with pytest.raises(ValueError, match="log_importances= or record_history=True"):
        plotting.plot_importance_trajectory(np.ones(3))
    with pytest.raises(NotFittedError, match="record_history=True"):
        plotting.plot_importance_trajectory(VarianceImportanceBase())
