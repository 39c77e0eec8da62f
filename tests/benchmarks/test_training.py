import numpy as np
import pytest

from benchmarks.training import holdout_score, time_hooks


class _Counter:
    def __init__(self):
        self.calls = []

    def hook(self, value, *, scale=1):
        self.calls.append(value * scale)
        return value * scale


def test_time_hooks_wraps_on_the_instance_and_passes_results_through():
    obj = _Counter()
    other = _Counter()
    timer = time_hooks(obj, ["hook", "missing_hook"])
    assert obj.hook(2, scale=3) == 6
    obj.hook(1)
    other.hook(5)  # another instance is not timed
    assert obj.calls == [6, 1]
    assert timer.calls == 2
    assert timer.seconds >= 0.0 and set(timer.per_hook) == {"hook"}
    assert obj.hook.__name__ == "hook"


def test_time_hooks_counts_a_hook_that_raises():
    class Boom:
        def hook(self):
            raise RuntimeError("x")

    obj = Boom()
    timer = time_hooks(obj, ["hook"])
    try:
        obj.hook()
    except RuntimeError:
        pass
    assert timer.calls == 1


def test_holdout_score_accuracy_and_r2():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert holdout_score("classification", logits, np.array([0, 1, 0, 0])) == 0.75
    y = np.array([1.0, 2.0, 3.0])
    assert holdout_score("regression", y[:, None], y) == 1.0
    assert holdout_score("regression", np.full((3, 1), 2.0), y) == 0.0


def test_reshuffled_batches_draw_a_new_seeded_order_every_epoch():
    """The Keras runs' batches: every row once per epoch, a new order each epoch, seeded.

    Keras's TensorFlow ``fit(shuffle=True)`` repeats the first epoch's order after
    ``keras.utils.set_random_seed()``; these batches must not.
    """
    pytest.importorskip("keras")
    from benchmarks.training import reshuffled_batches

    X = np.arange(10, dtype=np.float32).reshape(-1, 1)
    y = np.arange(10) * 10

    def epochs(seed, n=3):
        batches = reshuffled_batches(X, y, 4, seed)
        assert len(batches) == 3  # 4 + 4 + 2 rows
        orders = []
        for _ in range(n):
            parts = [batches[i] for i in range(len(batches))]
            rows = np.concatenate([xb[:, 0] for xb, _ in parts]).astype(int)
            for xb, yb in parts:  # rows and targets stay paired
                np.testing.assert_array_equal(yb, xb[:, 0].astype(int) * 10)
            assert sorted(rows) == list(range(10))  # every row once
            orders.append(rows.tolist())
            batches.on_epoch_end()
        return orders

    orders = epochs(seed=0)
    assert len({tuple(o) for o in orders}) == 3  # a new order every epoch
    assert epochs(seed=0) == orders  # seeded
    assert epochs(seed=1) != orders
