"""Which layer the Keras callbacks track, and the errors when none fits."""

import logging

import keras
import numpy as np
import pytest
from keras_helpers import KernelRecorder, iris_mlp, minmax, viann_by_hand

from neural_feature_importance import (
    ConvVarianceImportanceKeras,
    EmbeddingVarianceImportanceKeras,
    LayerSelectionError,
    StateDictError,
    VarianceImportanceKeras,
)


def _fit(model, X, y, callback, epochs=3):
    model.fit(X, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[callback])
    return callback


def _begin(model, callback):
    """Run only the layer choice (what fit() does before the first batch)."""
    callback.set_model(model)
    callback.on_train_begin()
    return callback


def _normalization(X):
    layer = keras.layers.Normalization()
    layer.adapt(X)
    return layer


@pytest.mark.parametrize(
    ("first", "skipped"),
    [
        (lambda X: [], None),
        (lambda X: [_normalization(X)], "Normalization: normalization"),
        (lambda X: [keras.layers.BatchNormalization()], "BatchNormalization: normalization"),
        (lambda X: [keras.layers.Dropout(0.2)], "Dropout: dropout"),
        (lambda X: [keras.layers.Rescaling(0.5)], "Rescaling: rescaling"),
        (
            lambda X: [keras.layers.GaussianNoise(0.1), keras.layers.Activation("linear")],
            "Activation: no weights",
        ),
    ],
    ids=["plain", "normalization", "batchnorm", "dropout", "rescaling", "noise+activation"],
)
def test_iris_first_dense_is_tracked_behind_preprocessing(iris, first, skipped, caplog):
    X, y = iris
    model = iris_mlp(first=first(X))
    with caplog.at_level(logging.INFO, logger="neural_feature_importance"):
        viann = _fit(model, X, y, VarianceImportanceKeras())
    assert viann.tracked_layer_ is model.get_layer("hidden")
    assert viann.feature_importances_.shape == (4,)
    assert viann.feature_importances_.min() == 0.0 and viann.feature_importances_.max() == 1.0
    assert "VarianceImportanceKeras tracks 'hidden' (Dense)" in caplog.text
    if skipped:
        assert skipped in caplog.text


def test_frozen_first_dense_is_skipped(iris, caplog):
    X, y = iris
    frozen = keras.layers.Dense(6, activation="relu", name="frozen", trainable=False)
    model = iris_mlp(first=[frozen])
    before = np.array(keras.ops.convert_to_numpy(frozen.kernel))
    with caplog.at_level(logging.INFO, logger="neural_feature_importance"):
        viann = _fit(model, X, y, VarianceImportanceKeras())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(frozen.kernel), before)
    assert viann.tracked_layer_ is model.get_layer("hidden")
    assert viann.feature_importances_.shape == (6,)  # the frozen layer's 6 outputs
    assert np.ptp(viann.raw_importances_) > 0  # not the original's all-zero scores
    assert "'frozen' (Dense: frozen)" in caplog.text


def test_functional_model_with_a_branch(iris):
    X, y = iris
    inputs = keras.Input((4,), name="features")
    normed = keras.layers.BatchNormalization()(inputs)
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(normed)
    side = keras.layers.Dense(4, activation="relu", name="side")(hidden)
    outputs = keras.layers.Dense(3, activation="softmax")(
        keras.layers.Concatenate()([hidden, side])
    )
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    viann = _fit(model, X, y, VarianceImportanceKeras())
    assert viann.tracked_layer_.name == "hidden"
    assert viann.feature_importances_.shape == (4,)


class SubclassedMLP(keras.Model):
    """Layers are built at the first batch: no input shape is given anywhere."""

    def __init__(self):
        super().__init__()
        self.norm = keras.layers.BatchNormalization()
        self.hidden = keras.layers.Dense(8, activation="relu", name="hidden")
        self.out = keras.layers.Dense(3, activation="softmax")

    def call(self, x, training=False):
        return self.out(self.hidden(self.norm(x, training=training)))


def test_subclassed_model_built_at_the_first_batch(iris):
    X, y = iris
    model = SubclassedMLP()
    assert not model.built
    model.compile("adam", "sparse_categorical_crossentropy")
    viann = VarianceImportanceKeras(scoring="viann")
    recorder = KernelRecorder("hidden")
    model.fit(X, y, batch_size=32, epochs=3, verbose=0, callbacks=[viann, recorder])
    assert viann.tracked_layer_ is model.hidden
    np.testing.assert_allclose(viann.raw_importances_, viann_by_hand(recorder.weights), rtol=1e-10)


@pytest.mark.parametrize("include_initial", [False, True])
def test_custom_loop_with_an_unbuilt_model_starts_at_the_first_snapshot(include_initial):
    model = SubclassedMLP()
    viann = _begin(model, VarianceImportanceKeras(scoring="viann", include_initial=include_initial))
    assert viann.tracked_layer_ is None and viann.n_updates_ == 0
    model(np.zeros((2, 4), dtype="float32"))  # the first batch builds the layers
    rng = np.random.default_rng(0)
    kernels = []
    for epoch in range(4):
        kernel = rng.normal(size=(4, 8)).astype("float32")
        model.hidden.kernel.assign(kernel)
        kernels.append(kernel.astype("float64"))
        viann.on_epoch_end(epoch)
    assert viann.tracked_layer_ is model.hidden
    assert viann.n_updates_ == 4
    np.testing.assert_allclose(
        viann.feature_importances_, minmax(viann_by_hand(kernels)), rtol=1e-10
    )


def test_nested_sequential_is_searched():
    inner = keras.Sequential([keras.layers.Dropout(0.1), keras.layers.Dense(5, name="inner_dense")])
    model = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(1)])
    viann = _begin(model, VarianceImportanceKeras())
    assert viann.tracked_layer_.name == "inner_dense"
    assert _begin(model, VarianceImportanceKeras(layer="inner_dense")).tracked_layer_.name == (
        "inner_dense"
    )
    with pytest.raises(LayerSelectionError, match="nested model"):
        _begin(model, VarianceImportanceKeras(layer=0))


def test_layer_by_name_index_and_object():
    model = iris_mlp()
    out = model.get_layer("out")
    assert _begin(model, VarianceImportanceKeras(layer="out")).tracked_layer_ is out
    assert _begin(model, VarianceImportanceKeras(layer=1)).tracked_layer_ is out
    assert _begin(model, VarianceImportanceKeras(layer=-1)).tracked_layer_ is out
    assert _begin(model, VarianceImportanceKeras(layer=out)).tracked_layer_ is out
    assert _begin(model, VarianceImportanceKeras(layer=out)).view.weight_shape == (8, 3)


def test_explicit_frozen_layer_is_tracked_with_a_warning(caplog):
    model = iris_mlp()
    model.get_layer("out").trainable = False
    with caplog.at_level(logging.WARNING, logger="neural_feature_importance"):
        viann = _begin(model, VarianceImportanceKeras(scoring="viann", layer="out"))
    assert viann.tracked_layer_.name == "out"
    assert "'out' is frozen" in caplog.text


def test_no_trainable_layer_error_lists_the_layers(iris):
    X, y = iris
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dropout(0.1, name="drop"),
            keras.layers.Dense(3, activation="softmax", name="frozen_out", trainable=False),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(LayerSelectionError) as error:
        model.fit(X, y, epochs=1, verbose=0, callbacks=[VarianceImportanceKeras()])
    message = str(error.value)
    assert "found no layer to track" in message
    assert "'drop' (Dropout: dropout), 'frozen_out' (Dense: frozen)" in message
    assert "layer.trainable = True" in message and "layer=" in message


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("nope", r"no layer named 'nope'; its layers are \['hidden', 'out'\]"),
        (5, r"layer=5 is out of range; model .* has 2 layers \(indices 0 to 1\)"),
        (2.0, r"layer=2.0 is not supported; pass a layer name"),
        (True, r"layer=True is not supported"),
    ],
)
def test_bad_layer_spec_errors(spec, match):
    with pytest.raises(LayerSelectionError, match=match):
        _begin(iris_mlp(), VarianceImportanceKeras(layer=spec))


def test_layer_object_from_another_model_is_rejected():
    stranger = iris_mlp().get_layer("hidden")
    with pytest.raises(LayerSelectionError, match="is not part of model"):
        _begin(iris_mlp(), VarianceImportanceKeras(layer=stranger))


def _conv_model():
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(2, 3, name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(1, name="head"),
        ]
    )


def test_tracker_kind_must_match_the_first_trainable_layer():
    with pytest.raises(
        LayerSelectionError, match=r"'conv' \(Conv2D\); use ConvVarianceImportanceKeras"
    ):
        _begin(_conv_model(), VarianceImportanceKeras())
    with pytest.raises(LayerSelectionError, match=r"use VarianceImportanceKeras"):
        _begin(iris_mlp(), ConvVarianceImportanceKeras())
    with pytest.raises(
        LayerSelectionError, match=r"'hidden' \(Dense\); use VarianceImportanceKeras"
    ):
        _begin(iris_mlp(), EmbeddingVarianceImportanceKeras())
    # an explicit Dense behind the convolution is allowed, and an explicit layer's kind
    # is inferred: layer="conv" tracks the convolution (its heatmap is per kernel position)
    assert _begin(_conv_model(), VarianceImportanceKeras(layer="head")).view.weight_shape == (72, 1)
    conv = _begin(_conv_model(), VarianceImportanceKeras(layer="conv"))
    assert conv.core.kind == "conv" and conv.tracked_layer_.name == "conv"


def test_unreadable_first_layer_stops_the_search():
    # (An LSTM first is tracked now: tests/keras/test_keras_recurrent_attention.py.)
    model = keras.Sequential(
        [
            keras.Input((5, 2)),
            keras.layers.Conv1DTranspose(3, 2, name="deconv"),
            keras.layers.Flatten(),
            keras.layers.Dense(1, name="head"),
        ]
    )
    with pytest.raises(
        LayerSelectionError,
        match=r"'deconv' \(Conv1DTranspose\), whose weights VIANN cannot read",
    ):
        _begin(model, VarianceImportanceKeras())
    assert _begin(model, VarianceImportanceKeras(layer="head")).tracked_layer_.name == "head"


def test_resumed_state_must_fit_the_tracked_layer(tmp_path, iris):
    X, y = iris
    first = _fit(iris_mlp(hidden=8), X, y, VarianceImportanceKeras(), epochs=2)
    first.save_state(tmp_path / "state.safetensors")
    resumed = VarianceImportanceKeras()
    resumed.load_state(tmp_path / "state.safetensors")
    with pytest.raises(StateDictError, match=r"\(4, 8\) weight.*has a \(4, 5\) weight"):
        _fit(iris_mlp(hidden=5), X, y, resumed, epochs=1)
