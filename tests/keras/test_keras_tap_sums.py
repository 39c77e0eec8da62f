"""The gradient tap's sums and counts, checked against numpy, and what it reads on the host.

The tap adds each read step's terms on the device (Kahan-compensated
float32 in a compiled step, float64 in place on the eager PyTorch backend)
and counts the reads it adds; the skipped reads are the steps read, from
the step count, less those added. These tests feed a bare tap known
gradients and compare its drained sums with numpy's float64 sums of the
same per-step terms.
"""

import sys

import keras
import numpy as np
import pytest

from neural_feature_importance import VarianceImportanceKeras
from neural_feature_importance.core.arrays import NUMPY_OPS
from neural_feature_importance.core.modes import DescentTaylorMode, SteadyTaylorMode, TaylorMode
from neural_feature_importance.core.views import WeightView
from neural_feature_importance.keras.gradients import GradientTapOptimizer, find_taps

BACKEND = keras.backend.backend()
SHAPE = (6, 4)


def _tap(mode_class, every, learning_rate=0.1, optimizer=None):
    """A tap of `mode_class` on a (6, 4) kernel updated by `optimizer` (plain SGD)."""
    rng = np.random.default_rng(1)
    kernel = keras.Variable(rng.normal(size=SHAPE).astype("float32"))
    mode = mode_class(WeightView("dense", "keras", SHAPE), NUMPY_OPS, "float64")
    optimizer = optimizer or keras.optimizers.SGD(learning_rate)
    tap = GradientTapOptimizer(optimizer, [("kernel", kernel, mode)], gradient_every=every)
    tap.build([kernel])
    return kernel, tap


def _numpy_terms(gradient, kernel_after):
    """steady_taylor's terms of one step in float64: |sum_j g w| and its square."""
    features = np.abs((gradient.astype(np.float64) * kernel_after).sum(axis=1))
    return {"features": features, "feature_squares": features**2}


def _step(tap, kernel, gradient):
    tap.apply([keras.ops.convert_to_tensor(gradient)], [kernel])
    return np.asarray(keras.ops.convert_to_numpy(kernel), dtype=np.float64)


@pytest.fixture(params=["select", "cond"])
def read_by(request, monkeypatch):
    """Both ways a compiled step leaves out the steps not read: a select and a `cond`.

    The select is the small layers' (every test kernel here); a limit of 0
    values sends the same kernel through the large layers' `cond`.
    """
    if request.param == "cond":
        monkeypatch.setattr("neural_feature_importance.keras._tap_state.SELECT_READ_MAX", 0)
    return request.param


@pytest.mark.parametrize("every", [1, 3])
def test_steady_taylor_sums_equal_numpy_sums_of_the_recorded_terms(every, read_by):
    kernel, tap = _tap(SteadyTaylorMode, every)
    rng = np.random.default_rng(2)
    expected = {"features": np.zeros(SHAPE[0]), "feature_squares": np.zeros(SHAPE[0])}
    n_steps, n_read = 40, 0
    for step in range(n_steps):
        gradient = rng.normal(scale=0.5, size=SHAPE).astype("float32")
        after = _step(tap, kernel, gradient)
        if step % every == 0:
            n_read += 1
            for key, term in _numpy_terms(gradient, after).items():
                expected[key] += term
    sums, read, skipped = tap.drain()["kernel"]
    assert (read, skipped) == (n_read, 0) == (len(range(0, n_steps, every)), 0)
    assert tap.steps == n_steps
    for key in expected:
        # Each term is a float32 dot product (its rounding, not the sum's, sets the tolerance).
        np.testing.assert_allclose(sums[key], expected[key], rtol=1e-5, atol=1e-6)
    # Drained: the next drain holds only the steps since.
    after = _step(tap, kernel, np.ones(SHAPE, "float32"))
    sums, read, skipped = tap.drain()["kernel"]
    read_now = n_steps % every == 0
    assert (read, skipped) == (int(read_now), 0)
    expected_now = _numpy_terms(np.ones(SHAPE), after)["features"] if read_now else 0.0
    np.testing.assert_allclose(sums["features"], expected_now, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("every", [1, 3])
def test_descent_taylor_sums_equal_numpy_sums_of_the_recorded_steps(every, read_by):
    # Adam: its steps are not the gradient's direction, so the descent is not |g|^2 * lr.
    kernel, tap = _tap(DescentTaylorMode, every, optimizer=keras.optimizers.Adam(0.05))
    rng = np.random.default_rng(6)
    expected = {key: np.zeros(SHAPE[0]) for key in ("features", "descents", "gradient_norms")}
    before = np.asarray(keras.ops.convert_to_numpy(kernel), dtype=np.float64)
    n_steps = 30
    for step in range(n_steps):
        gradient = rng.normal(scale=0.5, size=SHAPE).astype("float32")
        after = _step(tap, kernel, gradient)
        if step % every == 0:
            g = gradient.astype(np.float64)
            expected["features"] += np.abs((g * after).sum(axis=1))
            expected["descents"] += np.abs((g * (after - before)).sum(axis=1))
            expected["gradient_norms"] += np.sqrt((g * g).sum(axis=1))
        before = after
    sums, read, skipped = tap.drain()["kernel"]
    assert (read, skipped) == (len(range(0, n_steps, every)), 0)
    for key in expected:
        # The descent is the difference of two float32 dot products (of g . w, which
        # the step changes by a few percent): its rounding sets the tolerance.
        np.testing.assert_allclose(sums[key], expected[key], rtol=2e-5, atol=1e-6)


def test_a_nan_gradient_read_is_skipped_and_counted_exactly(read_by):
    # Reads at steps 0, 2, 4, 6, 8; NaN at steps 2 and 6 (read) and 3 (not read).
    kernel, tap = _tap(TaylorMode, every=2, learning_rate=0.0)
    start = np.asarray(keras.ops.convert_to_numpy(kernel))
    rng = np.random.default_rng(3)
    expected = np.zeros(SHAPE[0])
    for step in range(10):
        gradient = rng.normal(size=SHAPE).astype("float32")
        if step in (2, 3, 6):
            gradient[1, 2] = np.nan
        _step(tap, kernel, gradient)
        kernel.assign(start)  # SGD applies 0 * NaN = NaN: put the kernel back
        if step % 2 == 0 and step not in (2, 6):
            expected += _numpy_terms(gradient, start.astype(np.float64))["features"]
    sums, n_read, n_skipped = tap.drain()["kernel"]
    assert (n_read, n_skipped) == (3, 2)
    np.testing.assert_allclose(sums["features"], expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(sums["features"]))


def test_the_compensated_sum_keeps_float64_precision_over_an_epoch_of_many_reads():
    # 20,000 reads of terms spread over six orders of magnitude, largest first:
    # a plain float32 sum drifts by about 1e-4 here; the tap's sums stay within 1e-6.
    kernel, tap = _tap(TaylorMode, every=1, learning_rate=0.0)
    weights = np.asarray(keras.ops.convert_to_numpy(kernel), dtype=np.float64)
    rng = np.random.default_rng(4)
    scales = np.logspace(0, -6, 20_000).astype("float32")
    expected = np.zeros(SHAPE[0])
    plain = np.zeros(SHAPE[0], dtype=np.float32)
    for scale in scales:
        gradient = (scale * rng.uniform(0.5, 1.0, size=SHAPE)).astype("float32")
        tap.apply([keras.ops.convert_to_tensor(gradient)], [kernel])
        term = np.abs((gradient.astype(np.float64) * weights).sum(axis=1))
        expected += term
        plain += term.astype(np.float32)
    sums, n_read, _ = tap.drain()["kernel"]
    assert n_read == len(scales)
    error = np.max(np.abs(sums["features"] - expected) / expected)
    assert error < 1e-6, error
    assert np.max(np.abs(plain - expected) / expected) > 10 * error


def test_the_torch_tap_reads_nothing_on_the_host_in_read_and_other_steps():
    if BACKEND != "torch":
        pytest.skip("the eager PyTorch backend decides the read steps on the host")
    import torch
    from torch.overrides import TorchFunctionMode

    host_reads = {"item", "__bool__", "__int__", "__float__", "__index__", "cpu", "numpy"}
    host_reads |= {"tolist"}

    class HostReads(TorchFunctionMode):
        """Records the torch calls that read a tensor on the host, unless paused."""

        def __init__(self):
            super().__init__()
            self.calls, self.paused = [], False

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if not self.paused and getattr(func, "__name__", "") in host_reads:
                self.calls.append(func.__name__)
            return func(*args, **(kwargs or {}))

    x = np.random.default_rng(0).normal(size=(32, 5)).astype("float32")
    y = x[:, :1] - x[:, 1:2]
    for accumulation in (None, 2):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3), keras.layers.Dense(1)])
        model.compile(keras.optimizers.Adam(0.01, gradient_accumulation_steps=accumulation), "mse")
        tracker = VarianceImportanceKeras(scoring="steady_taylor", gradient_every=2)
        tracker.set_model(model)
        tracker.on_train_begin()
        (tap,) = find_taps(model.optimizer)
        mode = HostReads()
        inner_apply = tap.inner_optimizer.apply

        def keras_update(*args, _inner=inner_apply, _mode=mode, **kwargs):
            _mode.paused = True  # Keras's own update may read on the host: not the tap's work
            try:
                return _inner(*args, **kwargs)
            finally:
                _mode.paused = False

        tap.inner_optimizer.apply = keras_update
        variables = model.trainable_variables
        with mode:
            bool(torch.tensor(True))  # the mode sees host reads: a positive control
            assert mode.calls == ["__bool__"]
            mode.calls.clear()
            for start in range(0, 32, 4):
                mode.paused = True
                model.zero_grad()
                xb, yb = (torch.as_tensor(a[start : start + 4]) for a in (x, y))
                loss = keras.ops.mean((model(xb, training=True) - yb) ** 2)
                loss.backward()
                grads = [v.value.grad.clone() for v in variables]
                mode.paused = False
                tap.apply(grads, variables)
        assert mode.calls == []
        updates = 8 // (accumulation or 1)
        assert tap.steps == updates
        ((sums, n_read, n_skipped),) = tap.drain().values()
        assert (n_read, n_skipped) == (len(range(0, updates, 2)), 0)
        assert np.all(sums["features"] > 0)
        tracker.on_train_end()


def test_the_sparse_embedding_gradient_is_not_densified_on_the_read_path(monkeypatch):
    if BACKEND != "tensorflow":
        pytest.skip("only TensorFlow hands an Embedding's gradient to the optimizer as slices")
    import tensorflow as tf

    from neural_feature_importance import EmbeddingVarianceImportanceKeras
    from neural_feature_importance.keras import gradients

    densified = []

    def spy(convert):
        def converted(x, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if isinstance(x, tf.IndexedSlices) and "neural_feature_importance" in caller:
                densified.append(tuple(x.dense_shape.numpy()))
            return convert(x, *args, **kwargs)

        return converted

    # The library densifies with tf.convert_to_tensor (keras.ops' keeps the slices).
    monkeypatch.setattr(keras.ops, "convert_to_tensor", spy(keras.ops.convert_to_tensor))
    monkeypatch.setattr(tf, "convert_to_tensor", spy(tf.convert_to_tensor))
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, size=(16, 6)).astype("int32")
    y = rng.normal(size=(16, 1)).astype("float32")
    # By rows, then (the positive control) densely, as the tap read every table before.
    for by_rows in (True, False):
        if not by_rows:
            monkeypatch.setattr(gradients, "rows_are_features", lambda mode, shape: False)
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((6,), dtype="int32"),
                keras.layers.Embedding(50, 4, name="tokens"),
                keras.layers.GlobalAveragePooling1D(),
                keras.layers.Dense(1),
            ]
        )
        tracker = EmbeddingVarianceImportanceKeras(scoring="steady_taylor", gradient_every=1)
        tracker.set_model(model)
        tracker.on_train_begin()
        optimizer = tracker.wrap_optimizer(keras.optimizers.SGD(0.1))
        with tf.GradientTape() as tape:
            loss = keras.ops.mean((model(tokens) - y) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        assert isinstance(grads[0], tf.IndexedSlices)
        densified.clear()
        optimizer.apply(grads, model.trainable_variables)
        assert densified == ([] if by_rows else [(50, 4)])


@pytest.mark.skipif(BACKEND == "torch", reason="the eager PyTorch backend counts steps on the host")
def test_a_compiled_tap_carries_one_variable_of_its_own_in_the_train_step():
    # JAX's jit carries every optimizer variable in and out of the step: the
    # tap adds one (its sums, compensation, step count and read phase), not
    # the base optimizer's unused iteration count and learning rate.
    _, tap = _tap(SteadyTaylorMode, every=4)
    inner = {id(v) for v in tap.inner_optimizer.variables}
    own = [v for v in tap.variables if id(v) not in inner]
    assert len(own) == 1
    # Two terms per feature and the read count, then the step count and phase; and compensation.
    assert tuple(own[0].shape) == (2, 2 * SHAPE[0] + 1 + 2)


@pytest.mark.skipif(BACKEND == "torch", reason="the eager PyTorch backend counts steps on the host")
def test_the_step_count_and_read_phase_stay_exact_beyond_float32_integers():
    # 2**24 + 1 is not a float32: the count is kept as a Kahan pair, and
    # the read phase (count modulo gradient_every) as an exact small integer.
    kernel, tap = _tap(TaylorMode, every=3, learning_rate=0.0)
    start = 2**24 + 1
    tap.steps = start
    assert tap.steps == start
    rng = np.random.default_rng(5)
    for _ in range(7):
        _step(tap, kernel, rng.normal(size=SHAPE).astype("float32"))
    assert tap.steps == start + 7
    _, n_read, n_skipped = tap.drain()["kernel"]
    # Steps start ... start + 6 are read where divisible by 3.
    assert (n_read, n_skipped) == (sum((start + i) % 3 == 0 for i in range(7)), 0)
    assert tap.steps == start + 7  # a drain keeps the count


@pytest.mark.skipif(BACKEND == "torch", reason="the eager PyTorch backend reads on the host")
def test_a_compiled_fit_reads_the_same_terms_through_the_select_and_the_cond(monkeypatch):
    # A small layer's steps that are not read are masked out of the sums (a
    # select); a large layer's are branched around (a cond). Forced through
    # both, the same fit gives the same sums and read counts.
    rng = np.random.default_rng(5)
    X = rng.normal(size=(96, 5)).astype("float32")
    y = (X[:, 0] - 2 * X[:, 3]).astype("float32")

    def fit():
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((5,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
        )
        model.compile(keras.optimizers.Adam(1e-2), "mse")
        tracker = VarianceImportanceKeras(scoring="steady_taylor", gradient_every=3)
        model.fit(X, y, epochs=8, batch_size=16, shuffle=False, verbose=0, callbacks=[tracker])
        return tracker.feature_importances_, tracker.n_gradient_steps_

    selected, reads = fit()
    monkeypatch.setattr("neural_feature_importance.keras._tap_state.SELECT_READ_MAX", 0)
    branched, reads_branched = fit()
    assert reads == reads_branched == 16  # 48 steps: 1, 4, ..., 46
    np.testing.assert_allclose(selected, branched, rtol=1e-5)
    assert np.argmax(selected) == 3  # the largest coefficient


def test_a_compiled_step_masks_small_dense_layers_and_branches_around_large_or_sparse_ones():
    from neural_feature_importance.keras._sparse import SparseGradient
    from neural_feature_importance.keras._tap_state import SELECT_READ_MAX, selects_reads
    from neural_feature_importance.keras._tap_weights import _Weight

    mode = TaylorMode(WeightView("dense", "keras", SHAPE), NUMPY_OPS, "float64")
    small = _Weight("kernel", mode, (256, 256))  # exactly SELECT_READ_MAX values
    assert 256 * 256 == SELECT_READ_MAX
    dense = np.zeros((1,), "float32")
    assert selects_reads([small], [dense])
    # Together over the limit: a read is then worth skipping.
    assert not selects_reads([small, _Weight("other", mode, (1, 1))], [dense, dense])
    # A TensorFlow table's row gradient is read behind the cond, whatever its size.
    assert not selects_reads([_Weight("table", mode, (8, 4))], [SparseGradient(None, 8)])
