"""Gradient reads held on the device and folded in blocks: the sums and counts are exact.

A gradient mode keeps each read's linear part (`gradient * weights` summed
over each feature's units) and forms the absolute values, squares and the
NaN/Inf mask once per block of reads (`HeldReads`). Checked against numpy
of the recorded per-step terms, across fold boundaries, with non-finite
reads, a state saved between folds, and merged streams.
"""

from __future__ import annotations

import numpy as np
import pytest

from neural_feature_importance import VarianceImportanceBase
from neural_feature_importance.core.arrays import NUMPY_OPS
from neural_feature_importance.core.modes import FOLD_EVERY, HeldReads
from neural_feature_importance.core.modes._held_reads import MAX_HELD_VALUES


def _reads(n: int, shape: tuple[int, int] = (7, 5), seed: int = 0):
    rng = np.random.default_rng(seed)
    grads = rng.normal(size=(n, *shape)).astype(np.float32)
    weights = rng.normal(size=(n, *shape)).astype(np.float32)
    return grads, weights


def _taylor_terms(grads: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-step |sum over units of g * w|, per feature, in float64 (numpy layout: units last)."""
    return np.abs((grads.astype(np.float64) * weights).sum(axis=2))


@pytest.mark.parametrize("n_reads", [1, FOLD_EVERY - 1, FOLD_EVERY, 2 * FOLD_EVERY + 7])
def test_steady_taylor_sums_equal_numpy_of_the_per_step_terms(n_reads):
    grads, weights = _reads(n_reads)
    core = VarianceImportanceBase(scoring="steady_taylor", normalize=None)
    core.start(weights[0])
    for grad, weight in zip(grads, weights, strict=True):
        core.update_gradients(grad, weight)
    mode = core.statistics.mode
    terms = _taylor_terms(grads, weights)
    assert mode.n_steps == n_reads
    assert mode.n_skipped == 0
    np.testing.assert_allclose(mode.arrays["features"], terms.sum(axis=0), rtol=1e-6)
    np.testing.assert_allclose(mode.arrays["feature_squares"], (terms**2).sum(axis=0), rtol=1e-6)
    assert mode.arrays["features"].dtype == np.float64


def test_a_non_finite_read_is_left_out_and_counted_exactly():
    grads, weights = _reads(FOLD_EVERY + 10, seed=1)
    bad = {3, FOLD_EVERY + 2}  # one read in each fold
    grads[3, 2, 1] = np.nan
    grads[FOLD_EVERY + 2, 0, 4] = np.inf
    core = VarianceImportanceBase(scoring="steady_taylor", normalize=None)
    core.start(weights[0])
    for grad, weight in zip(grads, weights, strict=True):
        core.update_gradients(grad, weight)
    keep = np.array([i not in bad for i in range(len(grads))])
    terms = _taylor_terms(grads[keep], weights[keep])
    assert core.skipped_gradient_steps_ == 2
    assert core.n_gradient_steps_ == len(grads) - 2
    mode = core.statistics.mode
    np.testing.assert_allclose(mode.arrays["features"], terms.sum(axis=0), rtol=1e-6)
    np.testing.assert_allclose(mode.arrays["feature_squares"], (terms**2).sum(axis=0), rtol=1e-6)
    mean = terms.mean(axis=0)
    spread = terms.std(axis=0, ddof=1)
    np.testing.assert_allclose(core.raw_importances_, mean * mean / spread, rtol=1e-5)


def test_reads_are_folded_every_fold_every_reads_and_settled_once():
    sums: dict[str, np.ndarray] = {}

    def add(key: str, value: np.ndarray) -> None:
        sums[key] = sums.get(key, 0.0) + value

    held = HeldReads(NUMPY_OPS, "x", lambda raw: {k: np.abs(v) for k, v in raw.items()}, add)
    for i in range(FOLD_EVERY - 1):
        held.hold({"x": np.full(3, -float(i), dtype=np.float32)})
    assert sums == {}  # nothing folded yet: every read is still held
    held.hold({"x": np.full(3, -float(FOLD_EVERY - 1), dtype=np.float32)})
    expected = sum(range(FOLD_EVERY))
    np.testing.assert_array_equal(sums["x"], np.full(3, float(expected)))
    held.hold({"x": np.array([1.0, np.nan, 1.0], dtype=np.float32)})
    assert held.reads == FOLD_EVERY + 1
    assert held.settle() == (FOLD_EVERY, 1)
    assert held.reads == 0
    np.testing.assert_array_equal(sums["x"], np.full(3, float(expected)))  # the NaN read left out
    assert held.settle() == (0, 0)


def test_a_wide_term_holds_fewer_reads_before_a_fold():
    folds = []
    held = HeldReads(NUMPY_OPS, "x", dict, lambda key, value: folds.append(value))
    wide = MAX_HELD_VALUES // 4
    for _ in range(4):
        held.hold({"x": np.ones(wide, dtype=np.float32)})
    assert len(folds) == 1  # 4 reads of a quarter of the limit each
    np.testing.assert_array_equal(folds[0][:3], [4.0, 4.0, 4.0])


def test_half_precision_reads_are_summed_in_float32():
    # The squares of finite float16 terms overflow float16 (65504 is its largest value).
    core = VarianceImportanceBase(scoring="steady_taylor", normalize=None)
    weights = np.full((4, 2), 1.0, dtype=np.float16)
    core.start(weights)
    for value in (300.0, 500.0):
        core.update_gradients(np.full((4, 2), value, dtype=np.float16), weights)
    assert core.skipped_gradient_steps_ == 0
    np.testing.assert_allclose(
        core.statistics.mode.arrays["feature_squares"], [600.0**2 + 1000.0**2] * 4
    )


def test_a_state_saved_between_folds_resumes_to_the_same_sums():
    grads, weights = _reads(3 * FOLD_EVERY, seed=2)
    whole = VarianceImportanceBase(scoring="steady_taylor", normalize=None)
    whole.start(weights[0])
    for grad, weight in zip(grads, weights, strict=True):
        whole.update_gradients(grad, weight)
    first = VarianceImportanceBase(scoring="steady_taylor", normalize=None)
    first.start(weights[0])
    cut = FOLD_EVERY + 5  # in the middle of a fold
    for grad, weight in zip(grads[:cut], weights[:cut], strict=True):
        first.update_gradients(grad, weight)
    resumed = VarianceImportanceBase.from_state(first.state_dict())
    for grad, weight in zip(grads[cut:], weights[cut:], strict=True):
        resumed.update_gradients(grad, weight)
    assert resumed.n_gradient_steps_ == whole.n_gradient_steps_ == 3 * FOLD_EVERY
    # Reads are summed in float32 within a fold: the cut moves fold boundaries only.
    np.testing.assert_allclose(resumed.raw_importances_, whole.raw_importances_, rtol=1e-6)
