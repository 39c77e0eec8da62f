"""The default layer of a functional model is found from its graph, Input by Input.

A model with several Inputs is easily tracked at a layer that sees only some
of them, or sees them mixed by a concatenation; the default choice then logs
a WARNING naming what is tracked and what is not. When every Input reaches a
layer of its own, all of them are tracked as one result (see
``test_keras_several_input_layers.py``). Sequential and single-Input models
keep their INFO line only.
"""

import logging

import keras
import numpy as np
import pytest
from keras_helpers import iris_mlp

from neural_feature_importance import (
    EmbeddingVarianceImportanceKeras,
    LayerSelectionError,
    VarianceImportanceKeras,
)
from neural_feature_importance.keras.layers import find_input_layers

LOGGER = "neural_feature_importance"


def _begin(model, callback):
    """Run only the layer choice (what fit() does before the first batch)."""
    callback.set_model(model)
    callback.on_train_begin()
    return callback


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _infos(caplog):
    """The INFO lines of the layer choice (the core logs the weight's shape too)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.INFO and r.name == "neural_feature_importance.keras.callbacks"
    ]


def _two_branches():
    """Inputs a and b, each read by its own Dense branch; Concatenate -> Dense head."""
    a = keras.Input((3,), name="a")
    b = keras.Input((2,), name="b")
    branch_a = keras.layers.Dense(4, activation="relu", name="branch_a")(a)
    branch_b = keras.layers.Dense(4, activation="relu", name="branch_b")(b)
    merged = keras.layers.Concatenate(name="concat")([branch_a, branch_b])
    return keras.Model([a, b], keras.layers.Dense(1, name="head")(merged))


def _branch_and_late_input():
    """Input a -> Dense branch_a; Input b joins branch_a's output at a Concatenate -> head."""
    a = keras.Input((3,), name="a")
    b = keras.Input((2,), name="b")
    branch_a = keras.layers.Dense(4, activation="relu", name="branch_a")(a)
    merged = keras.layers.Concatenate(name="concat")([branch_a, b])
    return keras.Model([a, b], keras.layers.Dense(1, name="head")(merged))


def _tabular():
    """Input city -> Embedding -> Flatten, Input numeric; Concatenate -> Dense mixer -> Dense."""
    city = keras.Input((1,), dtype="int32", name="city")
    numeric = keras.Input((6,), name="numeric")
    embedded = keras.layers.Flatten(name="flatten")(
        keras.layers.Embedding(8, 4, name="city_embedding")(city)
    )
    merged = keras.layers.Concatenate(name="concat")([embedded, numeric])
    hidden = keras.layers.Dense(32, activation="relu", name="mixer")(merged)
    return keras.Model([city, numeric], keras.layers.Dense(1, name="out")(hidden))


def test_an_input_that_joins_later_is_named_as_not_tracked(caplog):
    model = _branch_and_late_input()
    model.compile("adam", "mse")
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(32, 3)), rng.normal(size=(32, 2))]
    tracker = VarianceImportanceKeras(scoring="viann")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model.fit(x, rng.normal(size=(32, 1)), epochs=2, verbose=0, callbacks=[tracker])
    assert tracker.tracked_layer_.name == "branch_a"
    assert tracker.feature_importances_.shape == (3,)  # the features of Input a only
    (warning,) = _warnings(caplog)
    assert "VarianceImportanceKeras tracks 'branch_a' (Dense)" in warning
    assert "Tracked: Input 'a' directly." in warning
    assert "Not tracked: Input 'b'" in warning and "'head' (Dense)" in warning
    assert "layer=" in warning and "groups=" in warning
    # The INFO line is still there, and says why the layer was chosen.
    assert any("in graph order from the Inputs" in m for m in _infos(caplog))


def test_tabular_inputs_reaching_the_mixer_through_a_concatenation_warn(caplog):
    model = _tabular()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        tracker = _begin(model, VarianceImportanceKeras())
    assert tracker.tracked_layer_.name == "mixer"
    (warning,) = _warnings(caplog)
    assert "tracks 'mixer' (Dense)" in warning
    assert (
        "Input 'city' through the outputs of 'city_embedding' (Embedding) and the merge "
        "'concat' (Concatenate)" in warning
    )
    assert "Input 'numeric' through the merge 'concat' (Concatenate)" in warning
    assert "Not tracked" not in warning  # both Inputs reach the mixer
    assert "one per input of 'mixer', not one per model Input" in warning
    assert "layer=" in warning and "groups=" in warning


def test_embedding_tracker_on_the_tabular_model_warns_that_numeric_is_not_tracked(caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        tracker = _begin(_tabular(), EmbeddingVarianceImportanceKeras())
    assert tracker.tracked_layer_.name == "city_embedding"
    (warning,) = _warnings(caplog)
    assert "Tracked: Input 'city' directly." in warning
    assert "Not tracked: Input 'numeric', read by 'mixer' (Dense)." in warning


def test_explicit_layer_after_a_concatenate_logs_no_warning(caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        tracker = _begin(_tabular(), VarianceImportanceKeras(layer="mixer"))
    assert tracker.tracked_layer_.name == "mixer"
    assert not _warnings(caplog)
    assert _infos(caplog) == ["VarianceImportanceKeras tracks 'mixer' (Dense) (layer='mixer')."]


def _single_input_with_a_branch():
    inputs = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(
        keras.layers.BatchNormalization(name="norm")(inputs)
    )
    side = keras.layers.Dense(4, activation="relu", name="side")(hidden)
    merged = keras.layers.Concatenate()([hidden, side])
    return keras.Model(inputs, keras.layers.Dense(3, name="out")(merged))


@pytest.mark.parametrize(
    "build", [iris_mlp, _single_input_with_a_branch], ids=["sequential", "single-input"]
)
def test_sequential_and_single_input_models_do_not_warn(build, caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        tracker = _begin(build(), VarianceImportanceKeras(scoring="viann"))
    assert tracker.tracked_layer_.name == "hidden"
    assert not _warnings(caplog)
    (info,) = _infos(caplog)
    assert info.startswith("VarianceImportanceKeras tracks 'hidden' (Dense) (first trainable layer")


def _deep_second_input():
    """Input features -> Dense encoder (shallow); Input context -> 3 Dense (deep); head."""
    features = keras.Input((5,), name="features")
    context = keras.Input((2,), name="context")
    encoded = keras.layers.Dense(8, activation="relu", name="encoder")(features)
    conditioned = context
    for i in range(3):
        conditioned = keras.layers.Dense(4, activation="relu", name=f"context_{i}")(conditioned)
    merged = keras.layers.Concatenate(name="concat")([encoded, conditioned])
    return keras.Model([features, context], keras.layers.Dense(1, name="head")(merged))


def test_default_follows_the_graph_from_the_first_input_not_model_layers_order(caplog):
    model = _deep_second_input()
    # model.layers is ordered by distance to the output: the deep branch comes first.
    dense = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert dense[0] == "context_0" and dense.index("encoder") > dense.index("context_1")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        tracker = _begin(model, VarianceImportanceKeras())
    # Each Input reaches a layer of its own: both are tracked, in model.inputs order.
    assert [layer.name for layer in tracker.tracked_layer_] == ["encoder", "context_0"]
    assert not _warnings(caplog)


def test_keras_ops_concatenate_counts_as_a_merge(caplog):
    a = keras.Input((3,), name="a")
    b = keras.Input((2,), name="b")
    merged = keras.ops.concatenate([a, keras.layers.Dropout(0.1, name="drop")(b)], axis=-1)
    model = keras.Model([a, b], keras.layers.Dense(1, name="head")(merged))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        tracker = _begin(model, VarianceImportanceKeras())
    assert tracker.tracked_layer_.name == "head"
    assert tracker.view.weight_shape == (5, 1)
    (warning,) = _warnings(caplog)
    assert "Input 'a' through the merge" in warning and "Input 'b' through the merge" in warning


def test_nested_model_in_a_branch_is_searched(caplog):
    a = keras.Input((3,), name="a")
    b = keras.Input((2,), name="b")
    inner = keras.Sequential(
        [keras.layers.Dropout(0.1), keras.layers.Dense(4, name="inner_dense")], name="inner"
    )
    merged = keras.layers.Concatenate()([inner(a), keras.layers.Dense(4, name="b_dense")(b)])
    model = keras.Model([a, b], keras.layers.Dense(1, name="head")(merged))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        tracker = _begin(model, VarianceImportanceKeras())
    assert [layer.name for layer in tracker.tracked_layer_] == ["inner_dense", "b_dense"]
    assert not _warnings(caplog)


def test_single_input_functional_model_still_refuses_a_first_layer_of_another_kind():
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(10, 3, name="emb")(tokens))
    model = keras.Model(tokens, keras.layers.Dense(1, name="head")(embedded))
    with pytest.raises(
        LayerSelectionError, match=r"'emb' \(Embedding\); use EmbeddingVarianceImportanceKeras"
    ):
        _begin(model, VarianceImportanceKeras())
    assert _begin(model, VarianceImportanceKeras(layer="head")).tracked_layer_.name == "head"


def test_a_branch_no_tracker_reads_is_named_in_the_warning(caplog):
    text = keras.Input((6, 2), name="text")
    numeric = keras.Input((3,), name="numeric")
    # An LSTM is tracked now; a transposed convolution is read by no tracker.
    recurrent = keras.layers.Flatten()(keras.layers.Conv1DTranspose(2, 3, name="deconv")(text))
    dense = keras.layers.Dense(4, name="numeric_dense")(numeric)
    merged = keras.layers.Concatenate()([recurrent, dense])
    model = keras.Model([text, numeric], keras.layers.Dense(1, name="head")(merged))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        tracker = _begin(model, VarianceImportanceKeras())
    assert tracker.tracked_layer_.name == "numeric_dense"
    (warning,) = _warnings(caplog)
    assert "Not tracked: Input 'text', read by 'deconv' (Conv1DTranspose)." in warning
    assert "Tracked: Input 'numeric' directly." in warning


def test_find_input_layers_reports_each_inputs_first_layers_and_merges():
    found = find_input_layers(_tabular())
    assert [entry.input_name for entry in found] == ["city", "numeric"]
    (city,), (numeric,) = (entry.readers for entry in found)
    assert (city.layer.name, city.level, city.direct, city.merges) == (
        "city_embedding",
        1,
        True,
        (),
    )
    assert (numeric.layer.name, numeric.level, numeric.direct) == ("mixer", 2, False)
    assert numeric.merges == ("'concat' (Concatenate)",)
    assert numeric.skipped == ("'concat' (Concatenate: no weights)",)
    # Sequential and subclassed models have no graph to walk.
    assert find_input_layers(iris_mlp()) is None

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    subclassed = Subclassed()
    subclassed(np.zeros((1, 3), dtype="float32"))
    assert find_input_layers(subclassed) is None
