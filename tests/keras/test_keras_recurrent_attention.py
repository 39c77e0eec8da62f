"""Recurrent and attention layers that read the inputs are tracked; no layer is silently wrong.

An `LSTM`, `GRU`, `SimpleRNN`, `Bidirectional` or `MultiHeadAttention` layer
that reads the model's inputs is tracked as one Dense kernel
`(in_features, units)`: a recurrent layer's input kernel, a Bidirectional
layer's two input kernels concatenated, an attention layer's query, key and
value kernels reshaped and concatenated. A subclassed model is searched in call
order, and a chosen layer whose width is not the input's is refused.
"""

import logging

import keras
import numpy as np
import pytest

pytest.importorskip("sklearn")
from keras_helpers import viann_by_hand
from sklearn.metrics import roc_auc_score

from neural_feature_importance.core import FeatureAxis
from neural_feature_importance.core.errors import LayerSelectionError
from neural_feature_importance.keras import VarianceImportanceKeras

LOGGER = "neural_feature_importance.keras.callbacks"
N_FEATURES = 6
STEPS = 4


def _data(n=384, seed=0):
    """Sequences `(n, STEPS, N_FEATURES)`; the target reads features 0 and 1 only."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, STEPS, N_FEATURES)).astype("float32")
    y = (x[:, :, 0].mean(axis=1) - 0.8 * x[:, :, 1].mean(axis=1))[:, None]
    return x, y.astype("float32")


def _functional(reader):
    """Input -> reader -> Dense(1); an attention reader is called as self-attention."""
    inputs = keras.Input((STEPS, N_FEATURES), name="x")
    if isinstance(reader, keras.layers.MultiHeadAttention):
        hidden = keras.layers.GlobalAveragePooling1D()(reader(inputs, inputs))
    else:
        hidden = reader(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(hidden))


class HeadFirst(keras.Model):
    """Assigns its head before its body: `model.layers` order is not the call order."""

    def __init__(self):
        super().__init__()
        self.head = keras.layers.Dense(1, name="head")
        self.body = keras.layers.Dense(24, activation="tanh", name="body")
        self.norm = keras.layers.LayerNormalization(name="norm")
        self.pool = keras.layers.GlobalAveragePooling1D(name="pool")

    def call(self, x, training=False):
        return self.head(self.body(self.pool(self.norm(x))))


BUILDERS = {
    "lstm": lambda: _functional(keras.layers.LSTM(8, name="reader")),
    "gru": lambda: keras.Sequential(
        [
            keras.Input((STEPS, N_FEATURES)),
            keras.layers.GRU(8, name="reader"),
            keras.layers.Dense(1),
        ]
    ),
    "bidirectional": lambda: _functional(
        keras.layers.Bidirectional(keras.layers.LSTM(4), name="reader")
    ),
    "attention": lambda: _functional(keras.layers.MultiHeadAttention(2, 4, name="reader")),
    "subclassed_head_first": HeadFirst,
}
UNITS = {"lstm": 32, "gru": 24, "bidirectional": 32, "attention": 24, "subclassed_head_first": 24}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_planted_features_are_found_through_the_layer_that_reads_them(name, caplog):
    x, y = _data()
    keras.utils.set_random_seed(0)
    model = BUILDERS[name]()
    model.compile(keras.optimizers.Adam(0.01), "mse")
    tracker = VarianceImportanceKeras(scoring="steady_taylor", gradient_every=1)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model.fit(x, y, epochs=6, batch_size=32, verbose=0, callbacks=[tracker])
    expected = "body" if name == "subclassed_head_first" else "reader"
    assert tracker.tracked_layer_.name == expected
    assert tracker.core.view.weight_shape == (N_FEATURES, UNITS[name])
    # Only INFO notes: a LayerNormalization before the body is harmless.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    informative = np.zeros(N_FEATURES, dtype=int)
    informative[:2] = 1
    auc = roc_auc_score(informative, tracker.feature_importances_)
    print(f"{keras.backend.backend()} {name}: AUC {auc:.3f}")
    assert auc >= 0.95


def _cell_kernel(layer):
    return np.asarray(keras.ops.convert_to_numpy(layer.cell.kernel), dtype=np.float64)


class _Recorder(keras.callbacks.Callback):
    """Records a function of the model at every epoch's end."""

    def __init__(self, read):
        super().__init__()
        self.read = read
        self.values = []

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(self.read(self.model))


def test_viann_on_an_lstm_and_a_bidirectional_layer_is_that_of_the_recorded_kernels():
    x, y = _data(n=96)
    keras.utils.set_random_seed(1)
    lstm = _functional(keras.layers.LSTM(3, name="reader"))
    bidirectional = _functional(keras.layers.Bidirectional(keras.layers.GRU(2), name="reader"))
    reads = {
        "lstm": (lstm, lambda m: _cell_kernel(m.get_layer("reader"))),
        "bidirectional": (
            bidirectional,
            lambda m: np.concatenate(
                [
                    _cell_kernel(m.get_layer("reader").forward_layer),
                    _cell_kernel(m.get_layer("reader").backward_layer),
                ],
                axis=1,
            ),
        ),
    }
    for model, read in reads.values():
        model.compile(keras.optimizers.Adam(0.05), "mse")
        tracker, recorder = (
            VarianceImportanceKeras(scoring="viann", normalize=None),
            _Recorder(read),
        )
        model.fit(x, y, epochs=4, batch_size=32, verbose=0, callbacks=[tracker, recorder])
        assert tracker.n_updates_ == 4
        assert tracker.core.view.weight_shape == recorder.values[0].shape
        np.testing.assert_allclose(
            tracker.raw_importances_, viann_by_hand(recorder.values), rtol=1e-6
        )


def _grouped_kernels(model, layer_name):
    """The query, key and value kernels of an attention layer, as numpy."""
    layer = model.get_layer(layer_name)
    return [
        np.asarray(keras.ops.convert_to_numpy(dense.kernel), dtype=np.float64)
        for dense in (layer.query_dense, layer.key_dense, layer.value_dense)
    ]


def test_the_tap_term_of_a_grouped_weight_is_that_of_the_concatenated_kernels():
    # Two SGD steps with known gradients through the tap of a self-attention layer:
    # the drained sums are |sum_j g_ij w_ij| over the three kernels reshaped to
    # (in, heads * head_dim) and concatenated, with w the weights after each step.
    keras.utils.set_random_seed(2)
    model = _functional(keras.layers.MultiHeadAttention(2, 3, name="reader"))
    tracker = VarianceImportanceKeras(scoring="taylor", gradient_every=1)
    tracker.set_model(model)
    tracker.on_train_begin()
    lr = 0.1
    tap = tracker.wrap_optimizer(keras.optimizers.SGD(lr))
    variables = list(model.trainable_variables)
    assert tracker.core.view.weight_shape == (N_FEATURES, 18)
    rng = np.random.default_rng(0)
    expected = np.zeros(N_FEATURES)
    for _ in range(2):
        grads = [rng.normal(size=tuple(v.shape)).astype("float32") for v in variables]
        before = _grouped_kernels(model, "reader")
        tap.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
        by_id = {id(v): g for v, g in zip(variables, grads, strict=True)}
        layer = model.get_layer("reader")
        grad_parts = [
            by_id[id(dense.kernel)].astype(np.float64)
            for dense in (layer.query_dense, layer.key_dense, layer.value_dense)
        ]
        after = [w - lr * g for w, g in zip(before, grad_parts, strict=True)]
        np.testing.assert_allclose(after[0], _grouped_kernels(model, "reader")[0], atol=1e-6)
        g_cat = np.concatenate([g.reshape(N_FEATURES, -1) for g in grad_parts], axis=1)
        w_cat = np.concatenate([w.reshape(N_FEATURES, -1) for w in after], axis=1)
        expected += np.abs((g_cat * w_cat).sum(axis=1))
    ((sums, n_read, n_skipped),) = tap.drain().values()
    assert (n_read, n_skipped) == (2, 0)
    np.testing.assert_allclose(sums["features"], expected, rtol=1e-5)


def test_a_single_two_dimensional_kernel_is_read_without_reshaping():
    model = _functional(keras.layers.LSTM(2, name="reader"))
    tracker = VarianceImportanceKeras(layer="reader", scoring="taylor")
    tracker.set_model(model)
    tracker.on_train_begin()
    ((_, target, _),) = tracker._tap_targets()
    assert target is model.get_layer("reader").cell.kernel  # the variable itself: no ops


def test_cross_attention_tracks_only_the_projection_that_reads_the_input():
    inputs = keras.Input((STEPS, N_FEATURES), name="x")
    memory = keras.layers.Dense(5, name="memory")(inputs)
    attention = keras.layers.MultiHeadAttention(2, 3, name="reader")
    hidden = keras.layers.GlobalAveragePooling1D()(attention(inputs, memory))
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    tracker = VarianceImportanceKeras(layer="reader")
    tracker.set_model(model)
    tracker.on_train_begin()
    assert tracker._tracked_weight.what == "query kernels"
    assert tracker.core.view.weight_shape == (N_FEATURES, 6)


class _Projection(keras.layers.Layer):
    """A layer no tracker knows, with a 2-D weight that mixes the features."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 4), name="w")

    def call(self, x):
        return keras.ops.matmul(x, self.w)


class _UnknownFirst(keras.Model):
    def __init__(self):
        super().__init__()
        self.head = keras.layers.Dense(1, name="head")
        self.proj = _Projection(name="proj")

    def call(self, x):
        return self.head(self.proj(x))


class _RawWeightFirst(keras.Model):
    """Reads its input through a weight of its own: its only Dense reads hidden units."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 7), name="w")
        self.head = keras.layers.Dense(1, name="head")

    def call(self, x):
        return self.head(keras.ops.tanh(keras.ops.matmul(x, self.w)))


def _begun(model, tracker):
    model(np.zeros((2, N_FEATURES), dtype="float32"))
    tracker.set_model(model)
    tracker.on_train_begin()
    return tracker


def test_an_unknown_weighted_layer_reading_the_input_is_refused_and_can_be_named():
    with pytest.raises(
        LayerSelectionError,
        match=r"'proj' \(_Projection\), whose weights VIANN cannot read.*"
        r"layer=FeatureAxis\('proj.<attribute>', axis=<feature axis>\)",
    ):
        _begun(_UnknownFirst(), VarianceImportanceKeras())
    model = _UnknownFirst()
    tracker = _begun(model, VarianceImportanceKeras(layer=FeatureAxis("proj.w", axis=0)))
    assert tracker.get_config()["layer"] == FeatureAxis("proj.w", axis=0)
    with pytest.raises(LayerSelectionError, match=r"names no variable of model"):
        _begun(_UnknownFirst(), VarianceImportanceKeras(layer=FeatureAxis("nothing.w")))
    assert tracker.tracked_layer_ is model.proj
    assert tracker.core.view.weight_shape == (N_FEATURES, 4)
    np.testing.assert_array_equal(
        tracker._tracked_weight.numpy(),
        keras.ops.convert_to_numpy(model.proj.w),
    )


def test_a_subclassed_models_layer_of_the_wrong_width_is_refused():
    with pytest.raises(
        LayerSelectionError,
        match=r"'head' \(Dense\), which has 7 inputs, but the model's input has 6 features"
        r".*Pass layer= to VarianceImportanceKeras naming the layer that reads the inputs",
    ):
        _begun(_RawWeightFirst(), VarianceImportanceKeras())
    # Named explicitly, the layer is tracked as asked.
    tracker = _begun(_RawWeightFirst(), VarianceImportanceKeras(layer="head"))
    assert tracker.core.view.weight_shape == (7, 1)


class _Scale(keras.layers.Layer):
    """A learned per-feature scale: 1-D weights mix no features."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, x):
        return x * self.scale


def test_a_per_feature_scale_before_the_first_dense_is_passed_with_an_info_note(caplog):
    model = keras.Sequential(
        [
            keras.Input((N_FEATURES,)),
            _Scale(name="scale"),
            keras.layers.Dense(3, name="hidden"),
            keras.layers.Dense(1),
        ]
    )
    with caplog.at_level(logging.INFO, logger=LOGGER):
        tracker = _begun(model, VarianceImportanceKeras())
    assert tracker.tracked_layer_.name == "hidden"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "skipped 'scale' (_Scale: elementwise weights)" in caplog.text
