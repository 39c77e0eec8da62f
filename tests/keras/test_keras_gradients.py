"""Gradient scoring modes in Keras: the optimizer tap, on every backend.

The tap (:mod:`neural_feature_importance.keras.gradients`) sums the scoring
mode's per-step terms inside the compiled train step. A single linear Dense
layer under the mean squared error has the gradient
``2 / (n * units) * X^T (X W + b - y)``, so recording the weights after every
batch (``shuffle=False``) gives every gradient the optimizer applied: the
scores are checked against that hand computation, and against the PyTorch
tracker fed the same gradients and weights.
"""

import keras
import numpy as np
import pytest

from neural_feature_importance import (
    ConvVarianceImportanceKeras,
    EmbeddingVarianceImportanceKeras,
    VarianceImportanceKeras,
)
from neural_feature_importance.core.arrays import NUMPY_OPS
from neural_feature_importance.core.modes import TaylorMode
from neural_feature_importance.core.views import WeightView
from neural_feature_importance.keras.gradients import GradientTapOptimizer, find_taps

BACKEND = keras.backend.backend()
N, FEATURES, UNITS, BATCH = 64, 5, 3, 16


class WeightRecorder(keras.callbacks.Callback):
    """Records the Dense layer's kernel and bias before training and after every batch."""

    def __init__(self, layer_name="hidden"):
        super().__init__()
        self.layer_name = layer_name
        self.kernels, self.biases = [], []

    def _record(self):
        layer = self.model.get_layer(self.layer_name)  # self.model syncs the JAX state
        self.kernels.append(np.asarray(keras.ops.convert_to_numpy(layer.kernel), np.float64))
        self.biases.append(np.asarray(keras.ops.convert_to_numpy(layer.bias), np.float64))

    def on_train_begin(self, logs=None):
        self.kernels, self.biases = [], []
        self._record()

    def on_train_batch_end(self, batch, logs=None):
        self._record()


def linear_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, FEATURES)).astype("float32")
    w = np.zeros((FEATURES, UNITS))
    w[0], w[1] = 2.0, -1.0  # features 0 and 1 carry the target
    y = (x @ w + 0.1 * rng.normal(size=(N, UNITS))).astype("float32")
    return x, y


def linear_model(optimizer=None, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(UNITS, name="hidden")])
    model.compile(optimizer or keras.optimizers.Adam(0.05), "mse")
    return model


def applied_gradients(x, y, recorder, accumulation=1):
    """(gradient, kernel after) of every applied update, from the recorded weights.

    With gradient accumulation over ``k`` batches the applied gradient is the
    mean of the ``k`` micro-batch gradients, all taken at the same weights.
    """
    steps = []
    micro = []
    for t in range(len(recorder.kernels) - 1):
        kernel, bias = recorder.kernels[t], recorder.biases[t]
        batch = slice((t * BATCH) % N, (t * BATCH) % N + BATCH)
        xb, yb = x[batch].astype(np.float64), y[batch].astype(np.float64)
        residual = xb @ kernel + bias - yb
        micro.append(2.0 / (len(xb) * UNITS) * xb.T @ residual)
        if len(micro) == accumulation:
            steps.append((np.mean(micro, axis=0), recorder.kernels[t + 1]))
            micro = []
    return steps


def taylor_by_hand(steps, every):
    read = [abs((g * w).sum(axis=1)) for i, (g, w) in enumerate(steps) if i % every == 0]
    return np.mean(read, axis=0), len(read)


@pytest.mark.parametrize("every", [1, 3])
def test_taylor_equals_the_hand_computation_and_the_torch_tracker(every):
    x, y = linear_data()
    model = linear_model()
    taylor = VarianceImportanceKeras(scoring="taylor", gradient_every=every)
    recorder = WeightRecorder()
    model.fit(
        x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, callbacks=[taylor, recorder]
    )

    steps = applied_gradients(x, y, recorder)
    assert len(steps) == 12
    expected, n_read = taylor_by_hand(steps, every)
    assert taylor.n_gradient_steps_ == n_read == len(range(0, 12, every))
    # The tap computes in float32; the hand computation in float64.
    np.testing.assert_allclose(taylor.raw_importances_, expected, rtol=1e-5)

    # The PyTorch tracker fed the same gradients and weights, through its own hooks.
    torch = pytest.importorskip("torch")
    from neural_feature_importance import VarianceImportanceTorch

    linear = torch.nn.Linear(FEATURES, UNITS, dtype=torch.float32)
    tracker = VarianceImportanceTorch(linear, scoring="taylor", gradient_every=every)
    tracker.on_train_begin()
    for gradient, kernel in steps:
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(kernel.T.astype(np.float32)))
        linear.weight.grad = torch.from_numpy(gradient.T.astype(np.float32))
        tracker.on_step_end()
    tracker.on_epoch_end()
    assert tracker.n_gradient_steps_ == taylor.n_gradient_steps_
    np.testing.assert_allclose(tracker.raw_importances_, taylor.raw_importances_, rtol=1e-6)


@pytest.mark.parametrize(
    "compile_options",
    [{"run_eagerly": True}, {"jit_compile": False}, {"jit_compile": True}],
    ids=["eager", "graph", "xla"],
)
def test_taylor_is_the_same_eager_and_compiled(compile_options):
    if BACKEND == "torch" and compile_options.get("jit_compile"):
        pytest.skip("jit_compile=True on Keras's torch backend is torch.compile (not tested here)")
    x, y = linear_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(UNITS, name="hidden")])
    model.compile(keras.optimizers.Adam(0.05), "mse", **compile_options)
    taylor = VarianceImportanceKeras(scoring="taylor", gradient_every=2)
    recorder = WeightRecorder()
    model.fit(
        x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, callbacks=[taylor, recorder]
    )
    expected, n_read = taylor_by_hand(applied_gradients(x, y, recorder), 2)
    assert taylor.n_gradient_steps_ == n_read == 6
    np.testing.assert_allclose(taylor.raw_importances_, expected, rtol=1e-5)


def test_a_callback_reused_after_a_failed_fit_takes_its_old_tap_out():
    x, y = linear_data()
    optimizer = keras.optimizers.Adam(0.05)
    model = linear_model(optimizer)
    taylor = VarianceImportanceKeras(scoring="taylor")

    class Fail(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[taylor, Fail()])
    assert len(find_taps(model.optimizer)) == 1  # on_train_end never ran
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[taylor])
    assert model.optimizer is optimizer
    assert taylor.n_gradient_steps_ == 2  # the second fit's 8 updates, one in 4 read


def test_the_users_optimizer_is_given_back_and_the_next_fit_runs_without_the_tap():
    x, y = linear_data()
    optimizer = keras.optimizers.Adam(0.05)
    model = linear_model(optimizer)
    taylor = VarianceImportanceKeras(scoring="taylor")
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[taylor])
    assert model.optimizer is optimizer
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 8
    assert model.train_function is None  # rebuilt without the tap at the next fit()
    before = taylor.raw_importances_.copy()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 12
    np.testing.assert_array_equal(taylor.raw_importances_, before)


def test_two_gradient_callbacks_share_one_fit_and_both_give_the_optimizer_back(
    research_modes_registered,
):
    x, y = linear_data()
    optimizer = keras.optimizers.Adam(0.05)
    model = linear_model(optimizer)
    taylor = VarianceImportanceKeras(scoring="taylor", gradient_every=1)
    movement = VarianceImportanceKeras(scoring="movement", gradient_every=1)
    recorder = WeightRecorder()
    model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[taylor, movement, recorder],
    )
    assert model.optimizer is optimizer and not find_taps(model.optimizer)
    steps = applied_gradients(x, y, recorder)
    np.testing.assert_allclose(taylor.raw_importances_, taylor_by_hand(steps, 1)[0], rtol=1e-5)
    score = -np.mean([g * w for g, w in steps], axis=0).sum(axis=1)
    np.testing.assert_allclose(
        movement.raw_importances_, np.maximum(score, 0), rtol=1e-4, atol=1e-9
    )


def test_synaptic_sums_each_steps_loss_decrease(research_modes_registered):
    x, y = linear_data()
    model = linear_model()
    synaptic = VarianceImportanceKeras(scoring="synaptic")
    recorder = WeightRecorder()
    model.fit(
        x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0, callbacks=[synaptic, recorder]
    )
    steps = applied_gradients(x, y, recorder)
    # Every step is read; the update of step t runs from the kernel before it.
    omega = -sum(g * (w - before) for (g, w), before in zip(steps, recorder.kernels, strict=False))
    assert synaptic.n_gradient_steps_ == 8
    expected = np.maximum(omega.sum(axis=1) / 8, 0)
    np.testing.assert_allclose(synaptic.raw_importances_, expected, rtol=1e-4, atol=1e-9)
    assert np.count_nonzero(expected) >= 2


def test_gradient_accumulation_reads_each_applied_update_once():
    x, y = linear_data()
    model = linear_model(keras.optimizers.SGD(0.05, gradient_accumulation_steps=2))
    taylor = VarianceImportanceKeras(scoring="taylor", gradient_every=1)
    recorder = WeightRecorder()
    model.fit(
        x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, callbacks=[taylor, recorder]
    )
    steps = applied_gradients(x, y, recorder, accumulation=2)
    assert len(steps) == 6 == taylor.n_gradient_steps_
    np.testing.assert_allclose(taylor.raw_importances_, taylor_by_hand(steps, 1)[0], rtol=1e-5)


@pytest.mark.skipif(BACKEND == "torch", reason="Keras's torch backend has no steps_per_execution")
def test_steps_per_execution_gives_the_same_scores():
    x, y = linear_data()
    results = []
    for steps_per_execution in (1, 4):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((FEATURES,)), keras.layers.Dense(UNITS, name="hidden")]
        )
        model.compile(keras.optimizers.Adam(0.05), "mse", steps_per_execution=steps_per_execution)
        taylor = VarianceImportanceKeras(scoring="taylor", gradient_every=3)
        model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, callbacks=[taylor])
        results.append((taylor.n_gradient_steps_, taylor.raw_importances_))
    assert results[0][0] == results[1][0] == 4
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-6)


def test_mixed_float16_reads_unscaled_gradients_of_applied_steps_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, FEATURES)).astype("float32")
    y = (2 * x[:, :1] - 1.5 * x[:, 1:2] + 0.3 * rng.normal(size=(256, 1))).astype("float32")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((FEATURES,)),
                keras.layers.Dense(16, activation="relu", name="hidden"),
                keras.layers.Dense(1),
            ]
        )
        # A scale far too high: the first steps overflow in float16 and are skipped
        # while the scaler halves its scale.
        inner = keras.optimizers.Adam(0.01)
        scaler = keras.optimizers.LossScaleOptimizer(inner, initial_scale=2.0**30)
        model.compile(scaler, "mse")
        taylor = VarianceImportanceKeras(scoring="taylor", gradient_every=1)
        model.fit(x, y, batch_size=32, epochs=10, verbose=0, callbacks=[taylor])
    finally:
        keras.config.set_dtype_policy(previous)
    applied = int(keras.ops.convert_to_numpy(inner.iterations))
    assert model.optimizer is scaler and scaler.inner_optimizer is inner
    assert 0 < applied < 80  # some steps were skipped for overflow
    assert taylor.n_gradient_steps_ == applied  # one read per applied step, none skipped ones
    scores = taylor.raw_importances_
    assert np.all(np.isfinite(scores))
    assert set(np.argsort(scores)[-2:]) == {0, 1}


def test_resume_from_a_saved_model_and_state_equals_an_uninterrupted_run(tmp_path):
    x, y = linear_data()
    whole = VarianceImportanceKeras(scoring="taylor", gradient_every=3)
    model = linear_model()
    model.fit(x, y, batch_size=BATCH, epochs=6, shuffle=False, verbose=0, callbacks=[whole])

    first = VarianceImportanceKeras(scoring="taylor", gradient_every=3)
    model = linear_model()
    model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, callbacks=[first])
    model.save(tmp_path / "model.keras")
    first.save_state(tmp_path / "taylor.safetensors")

    restored = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(restored.optimizer, keras.optimizers.Adam)
    resumed = VarianceImportanceKeras(scoring="taylor", gradient_every=3)
    resumed.load_state(tmp_path / "taylor.safetensors")
    restored.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=6,
        initial_epoch=3,
        shuffle=False,
        verbose=0,
        callbacks=[resumed],
    )
    assert resumed.n_gradient_steps_ == whole.n_gradient_steps_ == 8
    np.testing.assert_allclose(resumed.raw_importances_, whole.raw_importances_, rtol=1e-6)


def test_a_model_saved_during_a_tracked_fit_loads_with_the_plain_optimizer(tmp_path):
    x, y = linear_data()
    model = linear_model()
    path = tmp_path / "checkpoint.keras"
    checkpoint = keras.callbacks.ModelCheckpoint(path, save_weights_only=False)
    taylor = VarianceImportanceKeras(scoring="taylor")
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[taylor, checkpoint])
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.optimizer, keras.optimizers.Adam)
    assert not find_taps(loaded.optimizer)
    saved = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
    restored = [keras.ops.convert_to_numpy(v) for v in loaded.optimizer.variables]
    assert len(saved) == len(restored)
    for a, b in zip(saved, restored, strict=True):
        np.testing.assert_array_equal(a, b)


def test_conv_taylor_ranks_the_informative_channel_and_scores_filters():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(128, 6, 6, 3)).astype("float32")
    target = images[:, :, :, 1].mean(axis=(1, 2))[:, None] * 3.0
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            keras.layers.Conv2D(4, 3, name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(0.02), "mse")
    taylor = ConvVarianceImportanceKeras(scoring="taylor")
    model.fit(images, target, batch_size=16, epochs=8, verbose=0, callbacks=[taylor])
    assert taylor.n_gradient_steps_ == 16  # 64 steps, one in 4 read
    channels = taylor.heatmap_.sum(axis=(0, 1))
    assert int(np.argmax(channels)) == 1
    assert taylor.filter_importances_.shape == (4,)
    assert np.all(np.isfinite(taylor.raw_filter_importances_))


def test_embedding_taylor_ranks_the_tokens_that_decide_the_label():
    rng = np.random.default_rng(2)
    tokens = rng.integers(3, 30, size=(256, 6)).astype("int32")
    label = np.zeros(256, dtype="float32")
    decisive = rng.random(256) < 0.5
    tokens[decisive, 0] = 1  # token 1 means positive
    tokens[~decisive, 0] = 2  # token 2 means negative
    label[decisive] = 1.0
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,), dtype="int32"),
            keras.layers.Embedding(30, 8, name="embedding"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.02), "binary_crossentropy")
    taylor = EmbeddingVarianceImportanceKeras(scoring="taylor")
    model.fit(tokens, label, batch_size=32, epochs=6, verbose=0, callbacks=[taylor])
    assert set(np.argsort(taylor.feature_importances_)[-2:]) == {1, 2}


def test_several_input_layers_are_read_by_one_tap():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(256, 3)).astype("float32")
    b = rng.normal(size=(256, 2)).astype("float32")
    y = (2 * a[:, :1] - 1.5 * b[:, 1:] + 0.3 * rng.normal(size=(256, 1))).astype("float32")
    keras.utils.set_random_seed(0)
    in_a, in_b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    hidden = keras.layers.Concatenate()(
        [
            keras.layers.Dense(8, activation="relu", name="dense_a")(in_a),
            keras.layers.Dense(8, activation="relu", name="dense_b")(in_b),
        ]
    )
    model = keras.Model([in_a, in_b], keras.layers.Dense(1)(hidden))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    taylor = VarianceImportanceKeras(scoring="taylor", gradient_every=1)
    model.fit([a, b], y, batch_size=32, epochs=10, verbose=0, callbacks=[taylor])
    assert list(taylor.layers_) == ["dense_a", "dense_b"]
    assert all(t.n_gradient_steps_ == 80 for t in taylor.layers_.values())
    # Measured: a[0] 1.0 and b[1] 0.54-0.78 on the three backends; noise at most 0.25.
    names = list(taylor.feature_names_in_)
    top = sorted(names[i] for i in np.argsort(taylor.feature_importances_)[-2:])
    assert top == ["dense_a[0]", "dense_b[1]"]


def _bare_tap():
    """A tap on a (2, 1) kernel of ones that an SGD with learning rate 0 never changes."""
    kernel = keras.Variable(np.ones((2, 1), dtype="float32"))
    mode = TaylorMode(WeightView("dense", "keras", (2, 1)), NUMPY_OPS, "float64")
    tap = GradientTapOptimizer(keras.optimizers.SGD(0.0), [("kernel", kernel, mode)])
    tap.build([kernel])
    return kernel, tap


def test_the_tap_sums_with_compensation():
    # One large term, then many terms below float32's resolution of it: a plain
    # float32 sum keeps 1.0, the compensated sum keeps every term.
    kernel, tap = _bare_tap()
    large = keras.ops.convert_to_tensor(np.array([[1.0], [1.0]], "float32"))
    small = keras.ops.convert_to_tensor(np.array([[1e-8], [1e-8]], "float32"))
    for gradient in [large] + [small] * 1000:
        tap.apply([gradient], [kernel])
    sums, n_read, n_skipped = tap.drain()["kernel"]
    assert (n_read, n_skipped) == (1001, 0)
    np.testing.assert_allclose(sums["features"], 1.0 + 1000 * 1e-8, rtol=1e-12 * 1000)
    assert tap.steps == 1001


def test_a_non_finite_gradient_is_skipped_and_counted():
    kernel, tap = _bare_tap()
    # (SGD applies 0 * NaN = NaN to the kernel, so the non-finite step comes last.)
    for gradient in ([[1.0], [2.0]], [[3.0], [1.0]], [[np.nan], [1.0]]):
        tap.apply([keras.ops.convert_to_tensor(np.array(gradient, "float32"))], [kernel])
    sums, n_read, n_skipped = tap.drain()["kernel"]
    assert (n_read, n_skipped) == (2, 1)
    np.testing.assert_allclose(sums["features"], [4.0, 3.0])


def test_custom_training_loops_use_wrap_optimizer():
    x, y = linear_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(UNITS, name="hidden")])
    taylor = VarianceImportanceKeras(scoring="taylor", gradient_every=1)
    recorder = WeightRecorder()
    for callback in (taylor, recorder):
        callback.set_model(model)  # not compiled: nothing to wrap until wrap_optimizer()
        callback.on_train_begin()
    optimizer = taylor.wrap_optimizer(keras.optimizers.SGD(0.05))
    for epoch in range(2):
        for start in range(0, N, BATCH):
            grads = _gradients(model, x[start : start + BATCH], y[start : start + BATCH])
            optimizer.apply(grads, model.trainable_variables)
            recorder.on_train_batch_end(start)
        taylor.on_epoch_end(epoch)
    taylor.on_train_end()
    steps = applied_gradients(x, y, recorder)
    assert taylor.n_gradient_steps_ == len(steps) == 8
    np.testing.assert_allclose(taylor.raw_importances_, taylor_by_hand(steps, 1)[0], rtol=1e-5)


def test_wrap_optimizer_needs_a_gradient_mode():
    with pytest.raises(ValueError, match="needs no gradients"):
        VarianceImportanceKeras(scoring="growth").wrap_optimizer(keras.optimizers.SGD())


@pytest.mark.parametrize("gradient_every", [0, 1.5, "4"])
def test_bad_gradient_every_is_rejected_at_construction(gradient_every):
    with pytest.raises(ValueError, match="gradient_every="):
        VarianceImportanceKeras(scoring="taylor", gradient_every=gradient_every)


def _gradients(model, xb, yb):
    """One batch's gradients of the mean squared error, with the backend's autodiff."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = keras.losses.mean_squared_error(yb, model(xb, training=True))
            loss = keras.ops.mean(loss)
        return tape.gradient(loss, model.trainable_variables)
    if BACKEND == "torch":
        model.zero_grad()
        loss = keras.ops.mean(keras.losses.mean_squared_error(yb, model(xb, training=True)))
        loss.backward()
        return [v.value.grad for v in model.trainable_variables]
    import jax

    def loss_of(values):
        prediction, _ = model.stateless_call(values, [], xb, training=True)
        return keras.ops.mean(keras.losses.mean_squared_error(yb, prediction))

    values = [v.value for v in model.trainable_variables]
    return jax.grad(loss_of)(values)
