"""`descent_taylor`: equal to numpy of recorded steps, and what sets it apart from `taylor`."""

import numpy as np
import pytest

from neural_feature_importance.core import (
    ConvVarianceImportanceBase,
    StateDictError,
    VarianceImportanceBase,
)
from neural_feature_importance.core.arrays import NUMPY_OPS
from neural_feature_importance.core.modes import RECOMMENDED_MODE, DescentTaylorMode
from neural_feature_importance.core.views import WeightView


def _steps(shape=(5, 3), n=12, seed=0):
    """Initial weights and (gradient, weight before, weight after) of `n` Adam-like steps."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=shape)
    start, steps = weights.copy(), []
    for _ in range(n):
        grad = rng.normal(size=shape) * np.linspace(0.2, 2.0, shape[0])[:, None]
        before = weights.copy()
        weights = weights - 0.05 * np.sign(grad) + rng.normal(scale=0.01, size=shape)
        steps.append((grad, before, weights.copy()))
    return start, steps


def _numpy_scores(steps):
    """`mean |sum_j g w| * sum |sum_j g dw| / sum ||g||` over the steps, by numpy."""
    taylor = np.mean([np.abs((g * w).sum(1)) for g, _, w in steps], axis=0)
    descents = np.sum([np.abs((g * (w - b)).sum(1)) for g, b, w in steps], axis=0)
    norms = np.sum([np.sqrt((g * g).sum(1)) for g, _, _ in steps], axis=0)
    return taylor * descents / norms


def _fed(steps, start, tracker=None):
    tracker = tracker or VarianceImportanceBase(normalize=None, scoring="descent_taylor")
    tracker.start(start, layer_name="dense")
    for i, (grad, before, after) in enumerate(steps):
        if i:  # start() held the first step's weight before
            tracker.hold_weights_before(before)
        tracker.update_gradients(grad, after)
    return tracker


def test_it_is_the_recommended_mode_and_every_trackers_default():
    assert RECOMMENDED_MODE == "descent_taylor"
    assert VarianceImportanceBase().scoring == "descent_taylor"


def test_scores_equal_numpy_of_the_recorded_steps():
    start, steps = _steps()
    tracker = _fed(steps, start)
    np.testing.assert_allclose(tracker.raw_importances_, _numpy_scores(steps), rtol=1e-6)
    assert tracker.n_gradient_steps_ == len(steps)


def test_before_can_be_passed_with_each_gradient_instead_of_held():
    start, steps = _steps()
    tracker = VarianceImportanceBase(normalize=None, scoring="descent_taylor")
    tracker.start(start)
    for grad, before, after in steps:
        tracker.update_gradients(grad, after, before=before)
    np.testing.assert_allclose(tracker.raw_importances_, _numpy_scores(steps), rtol=1e-6)


def test_fed_every_step_each_read_keeps_its_weight_for_the_next():
    # The bare core's contract: update_gradients() after every optimizer step.
    start, steps = _steps()
    tracker = VarianceImportanceBase(normalize=None, scoring="descent_taylor")
    tracker.start(start)
    for grad, _, after in steps:
        tracker.update_gradients(grad, after)
    np.testing.assert_allclose(tracker.raw_importances_, _numpy_scores(steps), rtol=1e-6)


def test_once_held_by_hand_a_held_weight_serves_one_read_only():
    start, steps = _steps(n=3)
    tracker = VarianceImportanceBase(scoring="descent_taylor")
    tracker.start(start)
    tracker.update_gradients(steps[0][0], steps[0][2])  # start() held the weight before
    tracker.hold_weights_before(steps[1][1])
    tracker.update_gradients(steps[1][0], steps[1][2])
    with pytest.raises(ValueError, match=r"hold_weights_before\(weights\) before each"):
        tracker.update_gradients(steps[2][0], steps[2][2])


def test_a_steady_descent_outranks_a_wandering_one_of_equal_taylor():
    # Both features have the same |g . w| at every step; the optimizer's steps go
    # down feature 0's gradient and across feature 1's (as momentum averages a
    # gradient whose sign changes from batch to batch).
    rng = np.random.default_rng(4)
    steps = []
    for _ in range(20):
        w = np.array([[1.0, 0.0], [0.0, 1.0]])
        g = np.array([[1.0, 0.0], [0.0, rng.choice([-1.0, 1.0])]])
        dw = np.array([[-0.05, 0.0], [0.0, 0.0]]) + np.array([[0.0, 0.0], [0.05, 0.0]])
        steps.append((g, w - dw, w))
    tracker = _fed(steps, steps[0][1])
    scores = tracker.raw_importances_
    assert scores[0] > 0 and scores[1] == 0.0
    taylor = VarianceImportanceBase(normalize=None, scoring="taylor")
    taylor.start(steps[0][1])
    for g, _, w in steps:
        taylor.update_gradients(g, w)
    np.testing.assert_allclose(taylor.raw_importances_, [1.0, 1.0])


def test_a_feature_whose_gradient_is_always_zero_scores_zero():
    start, steps = _steps()
    for grad, _, _ in steps:
        grad[2] = 0.0
    scores = _fed(steps, start).raw_importances_
    assert scores[2] == 0.0 and np.all(np.isfinite(scores)) and np.all(scores[[0, 1, 3, 4]] > 0)


def test_a_state_saved_with_a_held_weight_resumes_equal_to_the_uninterrupted_run():
    start, steps = _steps()
    whole = _fed(steps, start)
    first = VarianceImportanceBase(normalize=None, scoring="descent_taylor")
    first.start(start, layer_name="dense")
    for i, (grad, before, after) in enumerate(steps[:5]):
        if i:
            first.hold_weights_before(before)
        first.update_gradients(grad, after)
    first.hold_weights_before(steps[5][1])  # saved between the hold and its read
    state = first.state_dict()
    assert state["mode"]["weights_before"] is not None
    resumed = VarianceImportanceBase(normalize=None, scoring="descent_taylor")
    resumed.load_state_dict(state)
    resumed.update_gradients(steps[5][0], steps[5][2])
    for grad, before, after in steps[6:]:
        resumed.hold_weights_before(before)
        resumed.update_gradients(grad, after)
    # Equal up to the order of the float64 sums (the saved state settles the held reads).
    np.testing.assert_allclose(resumed.raw_importances_, whole.raw_importances_, rtol=1e-14)


def test_a_state_with_a_weight_before_of_another_shape_is_refused():
    start, steps = _steps()
    state = _fed(steps[:1], start).state_dict()
    state["mode"]["weights_before"] = np.zeros((2, 2), dtype=np.float32)
    with pytest.raises(StateDictError, match="'weights_before' array has shape"):
        VarianceImportanceBase(scoring="descent_taylor").load_state_dict(state)


def test_conv_heatmap_by_position_and_filters_by_taylors_criterion():
    shape = (3, 3, 2, 4)  # Keras Conv2D: (kh, kw, channels, filters)
    rng = np.random.default_rng(5)
    tracker = ConvVarianceImportanceBase(normalize=None, scoring="descent_taylor")
    weights = rng.normal(size=shape)
    tracker.start(weights)
    steps = []
    for i in range(6):
        grad = rng.normal(size=shape)
        before, weights = weights, weights - 0.05 * np.sign(grad)
        if i:
            tracker.hold_weights_before(before)
        tracker.update_gradients(grad, weights)
        steps.append((grad, before, weights))
    # Per (kh, kw, channel) position: the reductions run over the filters.
    taylor = np.mean([np.abs((g * w).sum(-1)) for g, _, w in steps], axis=0)
    descents = np.sum([np.abs((g * (w - b)).sum(-1)) for g, b, w in steps], axis=0)
    norms = np.sum([np.sqrt((g * g).sum(-1)) for g, _, _ in steps], axis=0)
    np.testing.assert_allclose(tracker.heatmap_, taylor * descents / norms, rtol=1e-6)
    filters = np.mean([np.abs((g * w).sum((0, 1, 2))) for g, _, w in steps], axis=0)
    np.testing.assert_allclose(tracker.raw_filter_importances_, filters, rtol=1e-10)


def test_the_mode_alone_refuses_a_read_before_any_weight_is_held():
    mode = DescentTaylorMode(WeightView("dense", "torch", (3, 4)), NUMPY_OPS, "float64")
    with pytest.raises(ValueError, match="reads the weight before each read step"):
        mode.gradient(np.ones((3, 4)), np.ones((3, 4)))
