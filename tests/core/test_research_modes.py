"""The research variants (``research/research_modes.py``) through the registry.

They left the package; registered with ``register_mode`` they run in every
tracker like the shipped modes, and each still equals its hand computation.
"""

import numpy as np
import pytest
from test_modes import _feed, _raw, _trajectory

from neural_feature_importance.core import NotFittedError, VarianceImportanceBase
from neural_feature_importance.core.modes import SCORING_MODES, ScoringMode, register_mode

GradientTracker = VarianceImportanceBase


def test_unregistered_research_modes_are_not_scoring_modes():
    for name in ("path", "ema_variance", "update_variance", "movement", "synaptic"):
        assert name not in SCORING_MODES
        with pytest.raises(ValueError, match="is not a scoring mode"):
            VarianceImportanceBase(scoring=name)


def test_register_mode_refuses_a_taken_or_empty_name():
    class Impostor(ScoringMode):
        name = "taylor"

    with pytest.raises(ValueError, match="'taylor': empty or taken"):
        register_mode(Impostor)
    with pytest.raises(ValueError, match="'': empty or taken"):
        register_mode(ScoringMode)


def test_path_sums_absolute_steps_from_the_initial_weights(research_modes_registered):
    tracker, start, snaps, _ = _raw("path")
    stacked = np.stack([start, *snaps])
    expected = np.abs(np.diff(stacked, axis=0)).sum(axis=(0, 2))
    np.testing.assert_allclose(tracker.raw_importances_, expected, rtol=1e-12)


def test_ema_variance_equals_the_exponentially_weighted_variance(research_modes_registered):
    tracker, _, snaps, _ = _raw("ema_variance")
    x = np.stack(snaps)
    n, alpha = len(x), 1 - 0.5 ** (1 / research_modes_registered.EMA_HALFLIFE)
    # Closed form of West's recurrence: weight (1-a)^(n-1) on the first snapshot,
    # a (1-a)^(n-k) on snapshot k >= 2; they sum to one.
    weights = np.array(
        [(1 - alpha) ** (n - 1)] + [alpha * (1 - alpha) ** (n - k) for k in range(2, n + 1)]
    )
    assert weights.sum() == pytest.approx(1.0)
    mean = np.tensordot(weights, x, axes=1)
    variance = np.tensordot(weights, (x - mean) ** 2, axes=1)
    expected = (variance * np.abs(snaps[-1])).sum(axis=1)
    np.testing.assert_allclose(tracker.raw_importances_, expected, rtol=1e-10)


def test_update_variance_is_viann_on_the_steps(research_modes_registered):
    tracker, start, snaps, _ = _raw("update_variance")
    updates = np.diff(np.stack([start, *snaps]), axis=0)
    expected = (np.var(updates, axis=0, ddof=1) * np.abs(snaps[-1])).sum(axis=1)
    np.testing.assert_allclose(tracker.raw_importances_, expected, rtol=1e-12)


def test_movement_is_minus_summed_gradient_times_weight(research_modes_registered):
    tracker, _, _, steps = _raw("movement")
    total = -sum((g * w).sum(axis=1) for g, w in steps) / len(steps)
    np.testing.assert_allclose(tracker.raw_importances_, np.maximum(total, 0), rtol=1e-12)


def test_synaptic_is_the_path_integral_of_minus_gradient_times_update(research_modes_registered):
    tracker, start, _, steps = _raw("synaptic")
    previous, omega = start, 0.0
    for g, w in steps:
        omega = omega - (g * (w - previous)).sum(axis=1)
        previous = w
    np.testing.assert_allclose(
        tracker.raw_importances_, np.maximum(omega / len(steps), 0), rtol=1e-12
    )


def test_ema_and_mismatched_modes_cannot_merge(research_modes_registered):
    start, snaps, steps = _trajectory((5, 3))
    ema = _feed(GradientTracker(scoring="ema_variance"), start, snaps, steps)
    with pytest.raises(ValueError, match="cannot be merged"):
        ema.merge(_feed(GradientTracker(scoring="ema_variance"), start, snaps, steps))
    with pytest.raises(ValueError, match="scoring='growth'"):
        ema.merge(_feed(GradientTracker(scoring="growth"), start, snaps, steps))


def test_snapshot_mode_with_too_few_snapshots(research_modes_registered):
    tracker = GradientTracker(scoring="update_variance")
    tracker.start(np.zeros((3, 2)))
    tracker.update(np.ones((3, 2)))
    with pytest.raises(NotFittedError, match="at least 2 weight snapshot"):
        _ = tracker.raw_importances_
