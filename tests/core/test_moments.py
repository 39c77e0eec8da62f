import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neural_feature_importance.core import NotFittedError, RunningMoments, StateDictError


def _feed(snapshots, dtype="float64"):
    moments = RunningMoments(dtype=dtype)
    for snapshot in snapshots:
        moments.update(snapshot)
    return moments


def test_variance_equals_numpy_var_ddof1():
    rng = np.random.default_rng(0)
    snapshots = rng.normal(size=(50, 4, 3))
    moments = _feed(snapshots)
    np.testing.assert_allclose(moments.variance(), np.var(snapshots, axis=0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(moments.mean, snapshots.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.variance(ddof=0), np.var(snapshots, axis=0), rtol=1e-12)
    assert moments.count == 50


def test_cancellation_case_10000_updates_near_1e4():
    # Large mean, tiny spread: plain Welford loses ~1e-9 here; shifted Welford keeps ~1e-14.
    rng = np.random.default_rng(1)
    snapshots = 1e4 + 1e-3 * rng.standard_normal((10_000, 20))
    moments = _feed(snapshots)
    expected = np.var(snapshots, axis=0, ddof=1)
    np.testing.assert_allclose(moments.variance(), expected, rtol=1e-12)


def test_update_copies_input():
    x = np.array([1.0, 2.0])
    moments = RunningMoments()
    moments.update(x)
    x += 100.0  # a live parameter keeps changing after the snapshot
    moments.update(np.array([3.0, 4.0]))
    np.testing.assert_allclose(moments.mean, [2.0, 3.0])


def test_merge_of_two_halves_equals_whole_stream():
    rng = np.random.default_rng(2)
    snapshots = 3.0 + rng.normal(size=(101, 5))
    first, second = _feed(snapshots[:37]), _feed(snapshots[37:])
    first.merge(second)
    whole = _feed(snapshots)
    assert first.count == whole.count == 101
    np.testing.assert_allclose(first.variance(), whole.variance(), rtol=1e-12)
    np.testing.assert_allclose(first.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(first.variance(), np.var(snapshots, axis=0, ddof=1), rtol=1e-12)


def test_merge_with_empty_sides():
    rng = np.random.default_rng(3)
    snapshots = rng.normal(size=(5, 2))
    empty = RunningMoments()
    full = _feed(snapshots)
    empty.merge(full)
    np.testing.assert_allclose(empty.variance(), np.var(snapshots, axis=0, ddof=1))
    full.merge(RunningMoments())
    assert full.count == 5


@settings(max_examples=60, deadline=None)
@given(
    data=arrays(
        np.float64,
        st.tuples(st.integers(2, 30), st.integers(1, 4)),
        elements=st.floats(-1e6, 1e6, allow_nan=False),
    ),
    split=st.integers(0, 30),
)
def test_merge_property_any_split(data, split):
    split = min(split, data.shape[0])
    left, right = _feed(data[:split]), _feed(data[split:])
    left.merge(right)
    expected = np.var(data, axis=0, ddof=1)
    scale = (1.0 + np.abs(data).max()) ** 2
    np.testing.assert_allclose(left.variance(), expected, rtol=1e-9, atol=1e-12 * scale)


def test_float32_on_request():
    rng = np.random.default_rng(4)
    snapshots = rng.normal(size=(20, 3)).astype(np.float32)
    moments = _feed(snapshots, dtype="float32")
    assert moments.variance().dtype == np.float32
    np.testing.assert_allclose(
        moments.variance(), np.var(snapshots.astype(np.float64), axis=0, ddof=1), rtol=1e-5
    )


def test_bad_dtype_and_shape_errors():
    with pytest.raises(ValueError, match="dtype='float16' is not supported"):
        RunningMoments(dtype="float16")
    moments = _feed([np.zeros(3)])
    with pytest.raises(
        ValueError, match=r"update of shape \(4,\) does not match the tracked shape \(3,\)"
    ):
        moments.update(np.zeros(4))


def test_variance_needs_two_updates():
    moments = _feed([np.ones(2)])
    with pytest.raises(NotFittedError, match="at least 2 update"):
        moments.variance()


def test_state_dict_roundtrip_resumes_exactly():
    rng = np.random.default_rng(5)
    snapshots = rng.normal(size=(10, 3))
    partial = _feed(snapshots[:4])
    restored = RunningMoments()
    restored.load_state_dict(partial.state_dict())
    for snapshot in snapshots[4:]:
        restored.update(snapshot)
    np.testing.assert_array_equal(restored.variance(), _feed(snapshots).variance())
    with pytest.raises(StateDictError, match="missing"):
        restored.load_state_dict({"count": 1})


def test_loading_a_state_of_another_shape_then_updating():
    moments = _feed([np.zeros(3), np.ones(3)])
    other = _feed([np.zeros((2, 2)), np.full((2, 2), 2.0)])
    moments.load_state_dict(other.state_dict())
    moments.update(np.full((2, 2), 4.0))
    np.testing.assert_allclose(
        moments.variance(), np.var([0.0, 2.0, 4.0], ddof=1) * np.ones((2, 2))
    )
