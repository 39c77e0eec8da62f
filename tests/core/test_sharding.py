"""Sharded weights: the slices' trackers, reduced, score as one tracker of the whole weight.

Two "processes" are two threads here, each tracking its slice of the same
weight stream; :class:`ThreadReducer` sums their vectors as an all-reduce
would. For every layout and every sharded axis, each slice's reduced scores
must equal those of one tracker of the whole weight.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from neural_feature_importance.core import StateDictError
from neural_feature_importance.core.arrays import NumpyArrayOps
from neural_feature_importance.core.sharding import WeightShard
from neural_feature_importance.core.tracker import CORE_TRACKERS, VarianceImportanceBase
from neural_feature_importance.core.views import WeightView

WORLD = 2
STEPS = 6


class ThreadReducer:
    """An all-reduce over :data:`WORLD` threads (every thread must call it, in the same order)."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(WORLD)
        self.values: dict[int, np.ndarray] = {}
        self.lock = threading.Lock()

    def all_reduce_sum(self, values, rank):
        with self.lock:
            self.values[rank] = np.array(values, dtype=np.float64)
        self.barrier.wait()
        total = sum(self.values[r] for r in range(WORLD))
        self.barrier.wait()
        return total


class RankReducer:
    def __init__(self, shared: ThreadReducer, rank: int) -> None:
        self.shared, self.rank = shared, rank

    def all_reduce_sum(self, values: np.ndarray) -> np.ndarray:
        return self.shared.all_reduce_sum(values, self.rank)


class ShardedNumpyOps(NumpyArrayOps):
    """A slice's step operations: a sum over the sharded axis is reduced (what adapters do)."""

    def __init__(self, dim: int, reducer: RankReducer) -> None:
        self.dim, self.reducer = dim, reducer

    def sum(self, array, axis):
        result = np.sum(array, axis=axis)
        if self.dim in ((axis,) if isinstance(axis, int) else axis):
            result = self.reducer.all_reduce_sum(result)
        return result

    def all_finite(self, array):
        finite = float(np.isfinite(np.sum(array, dtype=np.float64)))
        return bool(self.reducer.all_reduce_sum(np.array([finite]))[0] == WORLD)


CASES = [
    # kind, layout, shape, sharded axis
    ("dense", "torch", (6, 5), 0),  # FSDP2's default: the units
    ("dense", "torch", (6, 5), 1),  # the features
    ("dense", "keras", (5, 6), 0),
    ("dense", "keras", (5, 6), 1),
    ("conv", "torch", (4, 3, 2, 2), 0),
    ("conv", "torch", (4, 3, 2, 2), 1),
    ("conv", "torch", (4, 3, 2, 2), 3),
    ("conv", "keras", (2, 2, 3, 4), 1),
    ("embedding", "torch", (7, 3), 0),  # tokens
    ("embedding", "torch", (7, 3), 1),
]


def _streams(shape, seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=shape)]
    for _ in range(STEPS):
        weights.append(weights[-1] + rng.normal(scale=0.1, size=shape))
    gradients = [rng.normal(size=shape) for _ in range(STEPS)]
    return weights, gradients


def _feed(tracker, weights, gradients, cut=lambda a: a):
    tracker.start(cut(weights[0]), shard=getattr(tracker, "test_shard", None))
    for step in range(STEPS):
        tracker.update_gradients(cut(gradients[step]), cut(weights[step + 1]))
        tracker.update(cut(weights[step + 1]))


def _sharded_results(kind, layout, shape, dim, scoring, read):
    weights, gradients = _streams(shape)
    view = WeightView(kind, layout, shape)
    shared = ThreadReducer()
    bounds = np.array_split(np.arange(shape[dim]), WORLD)
    results: list = [None] * WORLD
    errors: list = []

    def run(rank):
        try:
            index = bounds[rank]
            reducer = RankReducer(shared, rank)
            shard = WeightShard(view, dim, int(index[0]), len(index), reducer)
            tracker = CORE_TRACKERS[kind](
                layout=layout, scoring=scoring, ops=ShardedNumpyOps(dim, reducer)
            )
            tracker.test_shard = shard

            def cut(array):
                return np.take(array, index, axis=dim)

            _feed(tracker, weights, gradients, cut)
            results[rank] = read(tracker)
        except BaseException as error:  # surfaced below, with the other thread released
            shared.barrier.abort()
            errors.append(error)

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(WORLD)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    whole = CORE_TRACKERS[kind](layout=layout, scoring=scoring)
    _feed(whole, weights, gradients)
    return results, read(whole)


@pytest.mark.parametrize(("kind", "layout", "shape", "dim"), CASES)
@pytest.mark.parametrize("scoring", ["viann", "taylor", "steady_taylor", "growth"])
def test_reduced_slices_score_as_the_whole_weight(kind, layout, shape, dim, scoring):
    slices, whole = _sharded_results(
        kind, layout, shape, dim, scoring, lambda tracker: tracker.raw_importances_
    )
    assert np.ptp(whole) > 0
    for scores in slices:
        np.testing.assert_allclose(scores, whole, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("kind", "layout", "shape", "dim"), [c for c in CASES if c[0] == "conv"])
@pytest.mark.parametrize("scoring", ["viann", "taylor", "steady_taylor"])
def test_filter_scores_of_slices_equal_the_whole_kernel(kind, layout, shape, dim, scoring):
    slices, whole = _sharded_results(
        kind, layout, shape, dim, scoring, lambda tracker: tracker.raw_filter_importances_
    )
    for scores in slices:
        np.testing.assert_allclose(scores, whole, rtol=1e-12, atol=1e-15)


def test_a_slice_state_names_its_slice_and_loads_only_into_it():
    reducer = RankReducer(ThreadReducer(), 0)
    view = WeightView("dense", "torch", (6, 4))
    first = WeightShard(view, 0, 0, 3, reducer)
    second = WeightShard(view, 0, 3, 3, reducer)
    tracker = VarianceImportanceBase(scoring="viann", layout="torch")
    rng = np.random.default_rng(1)
    tracker.start(rng.normal(size=(3, 4)), shard=first)
    tracker.update(rng.normal(size=(3, 4)))
    state = tracker.state_dict()
    assert state["shard"] == {"weight_shape": [6, 4], "dim": 0, "offset": 0, "length": 3}

    other = VarianceImportanceBase(scoring="viann", layout="torch")
    other.start(rng.normal(size=(3, 4)), shard=second)
    with pytest.raises(StateDictError, match="same number of processes"):
        other.load_state_dict(state)
    whole = VarianceImportanceBase(scoring="viann", layout="torch")
    with pytest.raises(StateDictError, match="one process's slice"):
        whole.load_state_dict(state)


def test_a_slice_that_does_not_fit_the_weight_is_refused():
    view = WeightView("dense", "torch", (6, 4))
    with pytest.raises(ValueError, match="does not fit"):
        WeightShard(view, 0, 4, 3, RankReducer(ThreadReducer(), 0))
    tracker = VarianceImportanceBase(scoring="viann", layout="torch")
    with pytest.raises(ValueError, match="shard is"):
        tracker.start(np.zeros((2, 4)), shard=WeightShard(view, 0, 0, 3, None))
