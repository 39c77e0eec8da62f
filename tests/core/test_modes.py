"""Scoring modes: each equals a hand computation from recorded snapshots/gradients."""

import logging

import numpy as np
import pytest

from neural_feature_importance.core import (
    ConvVarianceImportanceBase,
    EmbeddingVarianceImportanceBase,
    NonFiniteWeightsError,
    NotFittedError,
    StateDictError,
    VarianceImportanceBase,
)
from neural_feature_importance.core.arrays import NUMPY_OPS
from neural_feature_importance.core.modes import (
    RECOMMENDED_MODE,
    RECOMMENDED_SNAPSHOT_MODE,
    SCORING_MODES,
    get_mode,
)

GRADIENT_MODES = [name for name, mode in SCORING_MODES.items() if mode.needs_gradients]
SNAPSHOT_MODES = [name for name, mode in SCORING_MODES.items() if not mode.needs_gradients]


# The bare core with gradients fed by hand (as the adapters do).
GradientTracker = VarianceImportanceBase
GradientConvTracker = ConvVarianceImportanceBase
GradientEmbeddingTracker = EmbeddingVarianceImportanceBase


def _trajectory(shape, n=6, seed=0):
    """Initial weights, per-epoch snapshots, and per-step (gradient, weight-after) pairs."""
    rng = np.random.default_rng(seed)
    start = rng.normal(size=shape)
    snapshots, steps = [], []
    weights = start.copy()
    for _ in range(n):
        for _ in range(3):
            grad = rng.normal(size=shape) * np.linspace(0.2, 2.0, shape[0]).reshape(
                (-1,) + (1,) * (len(shape) - 1)
            )
            weights = weights - 0.05 * grad + rng.normal(scale=0.01, size=shape)
            steps.append((grad, weights.copy()))
        snapshots.append(weights.copy())
    return start, snapshots, steps


def _feed(tracker, start, snapshots, steps, per_epoch=3):
    tracker.start(start, layer_name="dense")
    for epoch, snapshot in enumerate(snapshots):
        for grad, weights in steps[epoch * per_epoch : (epoch + 1) * per_epoch]:
            # Every step fed: descent_taylor reads each step's weight before from the last.
            tracker.update_gradients(grad, weights)
        tracker.update(snapshot)
    return tracker


def _raw(scoring, shape=(5, 3), cls=GradientTracker, **kwargs):
    start, snaps, steps = _trajectory(shape)
    tracker = _feed(cls(normalize=None, scoring=scoring, **kwargs), start, snaps, steps)
    return tracker, start, snaps, steps


# --------------------------------------------------------------- hand computations
def test_growth_is_squared_norm_growth_since_init_clipped_at_zero():
    tracker, start, snaps, _ = _raw("growth")
    expected = np.maximum((snaps[-1] ** 2 - start**2).sum(axis=1), 0.0)
    np.testing.assert_allclose(tracker.raw_importances_, expected, rtol=1e-12)
    assert (expected > 0).any() and (expected == 0).any()  # the data exercise the clip


def test_taylor_is_mean_absolute_group_gradient_times_weight():
    tracker, _, _, steps = _raw("taylor")
    per_step = [np.abs((g * w).sum(axis=1)) for g, w in steps]
    np.testing.assert_allclose(tracker.raw_importances_, np.mean(per_step, axis=0), rtol=1e-12)
    # The last rows get the largest gradients in _trajectory: the ranking follows.
    assert tracker.feature_importances_.argmax() == 4


def test_taylor_equals_batch_gradient_times_input_of_a_linear_layer():
    # For y = x W (Keras layout) and loss L, dL/dW = x^T dL/dy, so
    # sum_j g_ij W_ij = sum_n x_ni (dL/dy_n . W_i) = sum_n x_ni dL/dx_ni.
    rng = np.random.default_rng(3)
    x, weight = rng.normal(size=(8, 4)), rng.normal(size=(4, 3))
    dl_dy = rng.normal(size=(8, 3))
    grad_w = x.T @ dl_dy
    grad_x = dl_dy @ weight.T
    tracker = GradientTracker(normalize=None, scoring="taylor")
    tracker.start(weight)
    tracker.update_gradients(grad_w, weight)
    np.testing.assert_allclose(tracker.raw_importances_, np.abs((x * grad_x).sum(axis=0)))


def _steady(terms):
    """m * m / sd over the rows of ``terms`` (one row per read step), by numpy."""
    terms = np.asarray(terms)
    mean = terms.mean(axis=0)
    return mean * mean / terms.std(axis=0, ddof=1)


def test_steady_taylor_is_taylor_times_its_signal_to_noise_ratio():
    tracker, _, _, steps = _raw("steady_taylor")
    per_step = [np.abs((g * w).sum(axis=1)) for g, w in steps]
    np.testing.assert_allclose(tracker.raw_importances_, _steady(per_step), rtol=1e-10)
    taylor, _, _, _ = _raw("taylor")
    ratio = np.mean(per_step, axis=0) / np.std(per_step, axis=0, ddof=1)
    np.testing.assert_allclose(
        tracker.raw_importances_, taylor.raw_importances_ * ratio, rtol=1e-10
    )


def _steady_tracker(grads, weights):
    tracker = GradientTracker(normalize=None, scoring="steady_taylor")
    tracker.start(weights)
    for grad in grads:
        tracker.update_gradients(grad, weights)
    return tracker


def test_steady_taylor_prefers_a_steady_feature_to_a_bursty_one_of_equal_mean():
    # Feature 0 contributes 1 at every step; feature 1 contributes 4 on one
    # step in 4 and 0 otherwise: the same taylor score, a far smaller ratio.
    grads = [np.array([[1.0], [4.0 if step % 4 == 0 else 0.0]]) for step in range(40)]
    tracker = _steady_tracker(grads, np.ones((2, 1)))
    bursty = np.tile([4.0, 0.0, 0.0, 0.0], 10)
    assert tracker.raw_importances_[1] == pytest.approx(1.0 / bursty.std(ddof=1))
    # The steady feature's terms never vary: its spread is floored, not divided by 0.
    assert np.isfinite(tracker.raw_importances_[0])
    assert tracker.raw_importances_[0] > 1e6 * tracker.raw_importances_[1]


def test_steady_taylor_scores_a_feature_that_never_contributed_zero():
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(3, 2)) * [[1], [1], [0]] for _ in range(5)]
    tracker = _steady_tracker(grads, np.ones((3, 2)))
    assert tracker.raw_importances_[2] == 0.0
    assert (tracker.raw_importances_[:2] > 0).all()


def test_steady_taylor_needs_two_read_steps():
    weights = np.ones((3, 2))
    tracker = GradientTracker(scoring="steady_taylor")
    tracker.start(weights)
    tracker.update_gradients(np.ones((3, 2)), weights)
    with pytest.raises(NotFittedError, match="several steps"):
        _ = tracker.feature_importances_
    tracker.update_gradients(2 * np.ones((3, 2)), weights)
    assert tracker.feature_importances_.shape == (3,)


def test_conv_steady_taylor_heatmap_and_filters_by_hand():
    shape = (3, 3, 2, 4)  # Keras Conv2D (kh, kw, in, filters)
    tracker, _, _, steps = _raw("steady_taylor", shape=shape, cls=GradientConvTracker)
    heat = _steady([np.abs((g * w).sum(axis=-1)) for g, w in steps])
    filters = _steady([np.abs((g * w).sum(axis=(0, 1, 2))) for g, w in steps])
    np.testing.assert_allclose(tracker.heatmap_, heat, rtol=1e-10)
    np.testing.assert_allclose(tracker.raw_filter_importances_, filters, rtol=1e-10)


@pytest.mark.parametrize("scoring", [m for m in SCORING_MODES if m != "viann"])
def test_torch_layout_gives_the_same_scores(scoring):
    start, snaps, steps = _trajectory((5, 3))
    keras = _feed(GradientTracker(normalize=None, scoring=scoring), start, snaps, steps)
    torch_layout = _feed(
        GradientTracker(normalize=None, scoring=scoring, layout="torch"),
        start.T,
        [s.T for s in snaps],
        [(g.T, w.T) for g, w in steps],
    )
    np.testing.assert_allclose(torch_layout.raw_importances_, keras.raw_importances_, rtol=1e-12)


def test_conv_taylor_heatmap_and_filters_by_hand():
    shape = (3, 3, 2, 4)  # Keras Conv2D (kh, kw, in, filters)
    tracker, _, _, steps = _raw("taylor", shape=shape, cls=GradientConvTracker)
    heat = np.mean([np.abs((g * w).sum(axis=-1)) for g, w in steps], axis=0)
    filters = np.mean([np.abs((g * w).sum(axis=(0, 1, 2))) for g, w in steps], axis=0)
    np.testing.assert_allclose(tracker.heatmap_, heat, rtol=1e-12)
    np.testing.assert_allclose(tracker.raw_filter_importances_, filters, rtol=1e-12)
    # PyTorch layout (out, in, kh, kw): same heatmap in Keras order, same filters.
    start, snaps, steps = _trajectory(shape)
    to_torch = (3, 2, 0, 1)
    torch_tracker = _feed(
        GradientConvTracker(normalize=None, scoring="taylor", layout="torch"),
        start.transpose(to_torch),
        [s.transpose(to_torch) for s in snaps],
        [(g.transpose(to_torch), w.transpose(to_torch)) for g, w in steps],
    )
    np.testing.assert_allclose(torch_tracker.heatmap_, heat, rtol=1e-12)
    np.testing.assert_allclose(torch_tracker.raw_filter_importances_, filters, rtol=1e-12)


def test_conv_growth_filters_sum_over_features():
    tracker, start, snaps, _ = _raw("growth", shape=(3, 2, 4), cls=GradientConvTracker)
    growth = snaps[-1] ** 2 - start**2
    np.testing.assert_allclose(
        tracker.raw_filter_importances_, np.maximum(growth.sum(axis=(0, 1)), 0), rtol=1e-12
    )


def test_embedding_taylor_scores_tokens():
    tracker, _, _, steps = _raw("taylor", shape=(6, 3), cls=GradientEmbeddingTracker)
    expected = np.mean([np.abs((g * w).sum(axis=1)) for g, w in steps], axis=0)
    np.testing.assert_allclose(tracker.raw_importances_, expected, rtol=1e-12)


# ------------------------------- the default is the recommended mode; VIANN one keyword away
def test_the_default_is_the_recommended_mode_and_viann_keeps_its_1_0_state():
    start, snaps, steps = _trajectory((5, 3))
    default = _feed(VarianceImportanceBase(), start, snaps, steps)
    recommended = _feed(GradientTracker(scoring=RECOMMENDED_MODE), start, snaps, steps)
    assert default.scoring == RECOMMENDED_MODE
    np.testing.assert_array_equal(default.feature_importances_, recommended.feature_importances_)
    viann = _feed(GradientTracker(scoring="viann"), start, snaps, steps)
    assert "scoring" not in viann.state_dict() and "mode" not in viann.state_dict()


# -------------------------------------------------------------------- validation
def test_unknown_scoring_names_the_modes_at_construction():
    with pytest.raises(ValueError, match=rf"'{RECOMMENDED_MODE}' is recommended") as info:
        VarianceImportanceBase(scoring="variance")
    for name in SCORING_MODES:
        assert repr(name) in str(info.value)
    assert get_mode(RECOMMENDED_MODE).needs_gradients
    assert not get_mode(RECOMMENDED_SNAPSHOT_MODE).needs_gradients


@pytest.mark.parametrize("scoring", ["taylor", "steady_taylor"])
@pytest.mark.parametrize("tracker_class", [GradientTracker, GradientConvTracker])
def test_sums_of_step_terms_equal_the_steps_one_by_one(scoring, tracker_class):
    # What the Keras optimizer tap does: sum step_terms elsewhere, hand over the sums.
    shape = (3, 2) if tracker_class is GradientTracker else (2, 2, 3, 4)
    rng = np.random.default_rng(5)
    steps = [(rng.normal(size=shape), rng.normal(size=shape)) for _ in range(7)]
    one_by_one, summed = tracker_class(scoring=scoring), tracker_class(scoring=scoring)
    for tracker in (one_by_one, summed):
        tracker.start(steps[0][1])
    for gradient, weights in steps:
        one_by_one.update_gradients(gradient, weights)
    terms = [summed.statistics.mode.step_terms(g, w, None, NUMPY_OPS) for g, w in steps]
    sums = {key: np.sum([t[key] for t in terms], axis=0) for key in terms[0]}
    summed.update_gradient_sums(sums, n_steps=7, n_skipped=2)
    assert summed.n_gradient_steps_ == one_by_one.n_gradient_steps_ == 7
    assert summed.skipped_gradient_steps_ == 2
    mine, theirs = summed.state_dict()["mode"], one_by_one.state_dict()["mode"]
    for key in sums:
        np.testing.assert_allclose(mine[key], theirs[key], rtol=1e-12)
    with pytest.raises(ValueError, match=r"keeps no gradient sums named \['omega'\]"):
        summed.update_gradient_sums({"omega": sums[next(iter(sums))]}, n_steps=1)


def test_gradient_sums_need_a_started_gradient_mode():
    with pytest.raises(ValueError, match=r"scoring='growth'"):
        VarianceImportanceBase(scoring="growth").update_gradient_sums({}, n_steps=1)
    with pytest.raises(ValueError, match=r"call start\(\) first"):
        VarianceImportanceBase(scoring="taylor").update_gradient_sums({}, n_steps=1)


@pytest.mark.parametrize(
    ("layout", "advice", "other"),
    [
        ("torch", r"on_step_end\(\) after optimizer.step\(\) and before", "wrap_optimizer"),
        ("keras", r"fit\(\) of a compiled model.*wrap_optimizer\(\) returns", "on_step_end"),
    ],
)
def test_gradient_mode_without_steps_gives_its_frameworks_advice(layout, advice, other):
    tracker = GradientTracker(scoring="taylor", layout=layout)
    tracker.start(np.zeros((3, 2)))
    tracker.update(np.ones((3, 2)))
    tracker.update(np.ones((3, 2)))
    with pytest.raises(NotFittedError, match=advice) as raised:
        _ = tracker.feature_importances_
    assert other not in str(raised.value)
    assert "update_gradients(grad, weights)" in str(raised.value)  # the bare core's way
    assert not hasattr(tracker, "feature_importances_")


def test_snapshot_mode_with_one_snapshot():
    growth = GradientTracker(scoring="growth", normalize=None)
    growth.start(np.zeros((3, 2)))
    growth.update(np.array([[1.0, 1.0], [0.0, 2.0], [0.0, 0.0]]))
    np.testing.assert_allclose(growth.raw_importances_, [2.0, 4.0, 0.0])


def test_gradient_of_the_wrong_shape_is_rejected():
    tracker = GradientTracker(scoring="taylor")
    tracker.start(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"gradient of shape \(2, 3\)"):
        tracker.update_gradients(np.zeros((2, 3)), np.zeros((3, 2)))


@pytest.mark.parametrize("scoring", GRADIENT_MODES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_gradient_steps_are_skipped_and_counted(scoring, bad):
    """An overflowed step (as GradScaler leaves it) is skipped, not absorbed as NaN."""
    start, snaps, steps = _trajectory((5, 3))
    clean = _feed(GradientTracker(normalize=None, scoring=scoring), start, snaps, steps)
    poisoned = GradientTracker(normalize=None, scoring=scoring)
    poisoned.start(start, layer_name="dense")
    for epoch, snapshot in enumerate(snaps):
        for index in range(epoch * 3, epoch * 3 + 3):
            if index in (0, 7):  # the very first read (fp16's first steps) and a later one
                overflowed = steps[index][0].copy()
                overflowed[index % 5, 1] = bad
                # The scaler skipped that optimizer step: the weights stayed as they were.
                before = steps[index - 1][1] if index else start
                poisoned.update_gradients(overflowed, before)
            poisoned.update_gradients(*steps[index])
        poisoned.update(snapshot)
    assert poisoned.skipped_gradient_steps_ == 2
    assert clean.skipped_gradient_steps_ == 0
    np.testing.assert_array_equal(poisoned.raw_importances_, clean.raw_importances_)


def test_only_non_finite_gradients_say_so_instead_of_nan_scores():
    tracker = GradientTracker(scoring="taylor")
    tracker.start(np.zeros((3, 2)))
    tracker.update_gradients(np.full((3, 2), np.nan), np.ones((3, 2)))
    with pytest.raises(NotFittedError, match=r"read 1 gradient\(s\), and every one held NaN"):
        _ = tracker.feature_importances_


def test_diverged_weights_still_raise_in_gradient_modes():
    tracker = GradientTracker(scoring="taylor")
    tracker.start(np.zeros((3, 2)))
    tracker.update_gradients(np.ones((3, 2)), np.ones((3, 2)))
    tracker.update(np.ones((3, 2)))
    with pytest.raises(NonFiniteWeightsError, match="weight update 2 contains NaN"):
        tracker.update(np.full((3, 2), np.nan))


def test_skipped_reads_are_logged_once_per_epoch(caplog):
    tracker = GradientTracker(scoring="taylor", finite_check="deferred")
    tracker.start(np.zeros((3, 2)), layer_name="fc")
    with caplog.at_level(logging.INFO, logger="neural_feature_importance"):
        for _ in range(3):
            tracker.update_gradients(np.full((3, 2), np.inf), np.ones((3, 2)))
        tracker.update_gradients(np.ones((3, 2)), np.ones((3, 2)))
        tracker.update(np.ones((3, 2)))
        tracker.end_epoch()
        tracker.update_gradients(np.ones((3, 2)), np.ones((3, 2)))
        tracker.update(np.ones((3, 2)))
        tracker.end_epoch()  # nothing skipped in this epoch: nothing logged
    records = [r for r in caplog.records if "gradient reads" in r.getMessage()]
    assert len(records) == 1
    assert records[0].levelno == logging.INFO
    assert "skipped 3 of this epoch's 4 gradient reads of 'fc'" in records[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="neural_feature_importance"):
        tracker.update_gradients(np.full((3, 2), np.nan), np.ones((3, 2)))
        tracker.end_epoch()
    (record,) = [r for r in caplog.records if "gradient reads" in r.getMessage()]
    assert record.levelno == logging.WARNING  # every read of that epoch was skipped
    assert "4 skipped in all" in record.getMessage()


def test_skipped_count_survives_save_and_resume(tmp_path):
    tracker = GradientTracker(scoring="taylor")
    tracker.start(np.zeros((3, 2)))
    tracker.update_gradients(np.full((3, 2), np.inf), np.ones((3, 2)))
    tracker.update_gradients(np.ones((3, 2)), np.ones((3, 2)))
    tracker.save_state(tmp_path / "state.safetensors")
    resumed = GradientTracker(scoring="taylor")
    resumed.load_state(tmp_path / "state.safetensors")
    assert resumed.skipped_gradient_steps_ == 1
    np.testing.assert_array_equal(resumed.raw_importances_, tracker.raw_importances_)


def test_snapshot_modes_ignore_gradients():
    start, snaps, steps = _trajectory((5, 3))
    fed = _feed(GradientTracker(scoring="growth"), start, snaps, steps)
    plain = _feed(GradientTracker(scoring="growth"), start, snaps, [])
    np.testing.assert_array_equal(fed.feature_importances_, plain.feature_importances_)


# ------------------------------------------------------------- state, resume, merge
@pytest.mark.parametrize("scoring", [m for m in SCORING_MODES if m != "viann"])
def test_resume_from_saved_state_equals_uninterrupted(scoring, tmp_path):
    start, snaps, steps = _trajectory((5, 3))
    full = _feed(GradientTracker(normalize=None, scoring=scoring), start, snaps, steps)
    first = _feed(GradientTracker(normalize=None, scoring=scoring), start, snaps[:3], steps[:9])
    first.save_state(tmp_path / "state.safetensors")
    resumed = GradientTracker(normalize=None, scoring=scoring)
    resumed.load_state(tmp_path / "state.safetensors")
    for epoch in range(3, 6):
        for grad, weights in steps[epoch * 3 : (epoch + 1) * 3]:
            resumed.update_gradients(grad, weights)
        resumed.update(snaps[epoch])
    np.testing.assert_allclose(resumed.raw_importances_, full.raw_importances_, rtol=1e-12)


def test_state_of_another_mode_is_refused():
    start, snaps, steps = _trajectory((5, 3))
    state = _feed(GradientTracker(scoring="taylor"), start, snaps, steps).state_dict()
    assert state["scoring"] == "taylor"
    with pytest.raises(StateDictError, match="scoring='taylor'"):
        GradientTracker(scoring="growth").load_state_dict(state)
    with pytest.raises(StateDictError, match="scoring='taylor'"):
        VarianceImportanceBase(scoring="steady_taylor").load_state_dict(state)


@pytest.mark.parametrize("scoring", ["taylor", "steady_taylor", "growth", "viann"])
def test_merge_of_two_streams_equals_one_stream(scoring):
    start, snaps, steps = _trajectory((5, 3))
    full = _feed(GradientTracker(normalize=None, scoring=scoring), start, snaps, steps)
    first = _feed(GradientTracker(normalize=None, scoring=scoring), start, snaps[:3], steps[:9])
    # The second stream starts where the first ended (snaps[2] == weights after step 9).
    second = GradientTracker(normalize=None, scoring=scoring)
    second.start(snaps[2])
    for epoch in range(3, 6):
        for grad, weights in steps[epoch * 3 : (epoch + 1) * 3]:
            second.update_gradients(grad, weights)
        second.update(snaps[epoch])
    first.merge(second)
    np.testing.assert_allclose(first.raw_importances_, full.raw_importances_, rtol=1e-12)


def test_history_records_mode_scores():
    start, snaps, steps = _trajectory((5, 3))
    tracker = _feed(GradientTracker(scoring="taylor", record_history=True), start, snaps, steps)
    assert tracker.history_.shape == (6, 5)
    np.testing.assert_allclose(tracker.history_[-1], tracker.raw_importances_)


def test_taylor_sums_float32_gradients_accurately_over_many_steps():
    # Reads are summed in the gradient's precision for at most FOLD_EVERY steps,
    # then added to the float64 accumulator.
    rng = np.random.default_rng(5)
    weights = rng.normal(size=(6, 4)).astype(np.float32)
    grads = rng.normal(size=(1000, 6, 4)).astype(np.float32)
    tracker = GradientTracker(normalize=None, scoring="taylor")
    tracker.start(weights)
    for grad in grads:
        tracker.update_gradients(grad, weights)
    exact = np.abs((grads.astype(np.float64) * weights).sum(axis=2)).mean(axis=0)
    np.testing.assert_allclose(tracker.raw_importances_, exact, rtol=1e-5)
    assert tracker.raw_importances_.dtype == np.float64
