"""The Keras callbacks compute exactly the core's VIANN, on whichever backend runs."""

import logging
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras_helpers import (
    KernelRecorder,
    iris_mlp,
    minmax,
    regression_data,
    regression_model,
    twin,
    variance,
    viann_by_hand,
)

import neural_feature_importance as nfi
from neural_feature_importance import (
    ConvVarianceImportanceKeras,
    EmbeddingVarianceImportanceKeras,
    MetricThreshold,
    NonFiniteWeightsError,
    NoSignalError,
    NotFittedError,
    VarianceImportanceKeras,
)


def test_importances_equal_hand_computation_from_recorded_kernels():
    x, y = regression_data()
    model = regression_model()
    viann = VarianceImportanceKeras(scoring="viann", record_history=True)
    recorder = KernelRecorder("hidden")
    model.fit(x, y, batch_size=16, epochs=6, shuffle=False, verbose=0, callbacks=[viann, recorder])

    assert viann.tracked_layer_ is model.get_layer("hidden")
    assert viann.n_updates_ == 6 == len(recorder.weights)
    raw = viann_by_hand(recorder.weights)
    np.testing.assert_allclose(viann.raw_importances_, raw, rtol=1e-10)
    np.testing.assert_allclose(viann.feature_importances_, minmax(raw), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(viann.var_scores, viann.feature_importances_)
    np.testing.assert_allclose(viann.variance_, variance(recorder.weights), rtol=1e-10)
    # history: raw scores after snapshots 2..6, the last one equal to the final scores
    history = viann.history_
    assert history.shape == (5, 5)
    np.testing.assert_allclose(history[0], viann_by_hand(recorder.weights[:2]), rtol=1e-10)
    np.testing.assert_allclose(history[-1], raw, rtol=1e-10)
    # planted truth: the all-zero input never moves its weights; y = 3 x0 - 2 x1
    assert viann.raw_importances_[4] == 0.0
    assert np.argmax(viann.raw_importances_) == 0


def test_normalize_options_match_core():
    x, y = regression_data()
    viann = VarianceImportanceKeras()
    regression_model().fit(x, y, epochs=3, verbose=0, callbacks=[viann])
    raw = viann.raw_importances_
    for normalize, expected in [("minmax", minmax(raw)), ("sum", raw / raw.sum()), (None, raw)]:
        viann.normalize = normalize  # applied when the scores are read
        np.testing.assert_allclose(viann.feature_importances_, expected, rtol=1e-12)
    viann.normalize = "max"
    with pytest.raises(ValueError, match="normalize='max' is not supported"):
        _ = viann.feature_importances_


def test_include_initial_counts_the_initial_weights():
    x, y = regression_data()
    model = regression_model()
    initial = np.asarray(keras.ops.convert_to_numpy(model.get_layer("hidden").kernel), "float64")
    viann = VarianceImportanceKeras(scoring="viann", include_initial=True)
    recorder = KernelRecorder("hidden")
    model.fit(x, y, epochs=3, shuffle=False, verbose=0, callbacks=[viann, recorder])
    assert viann.n_updates_ == 4
    np.testing.assert_allclose(
        viann.raw_importances_, viann_by_hand([initial, *recorder.weights]), rtol=1e-10
    )


def test_per_batch_snapshots_equal_step_by_step_training():
    """update_every=1 inside fit() sees the weights after every step, on every backend.

    On JAX the weights live outside the model during an epoch; without a state
    sync the tracker would read purged variables. The reference run trains the
    same model with train_on_batch, which syncs after every call.
    """
    x, y = regression_data(n=64)
    model = regression_model()
    reference = twin(model)
    viann = VarianceImportanceKeras(scoring="viann", update_every=1)
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[viann])

    kernels = []
    for _epoch in range(2):
        for start in range(0, 64, 16):
            reference.train_on_batch(x[start : start + 16], y[start : start + 16])
            kernels.append(keras.ops.convert_to_numpy(reference.get_layer("hidden").kernel))
    kernels = [np.asarray(k, dtype=np.float64) for k in kernels]
    assert viann.n_updates_ == 8
    assert not np.allclose(kernels[0], kernels[1])  # the weights do move every step
    np.testing.assert_allclose(viann.raw_importances_, viann_by_hand(kernels), rtol=1e-10)
    np.testing.assert_allclose(viann.variance_, variance(kernels), rtol=1e-10, atol=1e-20)


def test_update_every_counts_batches_across_epochs():
    x, y = regression_data(n=80)  # 5 batches of 16 per epoch
    viann = VarianceImportanceKeras(scoring="viann", update_every=3)
    recorder = KernelRecorder("hidden", per_batch=True)
    regression_model().fit(
        x, y, batch_size=16, epochs=3, shuffle=False, verbose=0, callbacks=[viann, recorder]
    )
    assert viann.n_updates_ == 15 // 3
    every_third = recorder.weights[2::3]
    np.testing.assert_allclose(viann.raw_importances_, viann_by_hand(every_third), rtol=1e-10)


def test_epoch_mode_leaves_keras_batch_hook_untouched():
    """Without update_every Keras sees its own no-op batch hook (async dispatch stays on)."""
    assert getattr(VarianceImportanceKeras().on_train_batch_end, "_is_default", False)
    assert not getattr(
        VarianceImportanceKeras(update_every=2).on_train_batch_end, "_is_default", False
    )
    plain = keras.callbacks.CallbackList([keras.callbacks.Callback()])._async_train
    assert keras.callbacks.CallbackList([VarianceImportanceKeras()])._async_train == plain
    per_batch = keras.callbacks.CallbackList([VarianceImportanceKeras(update_every=2)])
    assert per_batch._async_train is False


@pytest.mark.parametrize("update_every", [0, -1, 2.5, True, "2"])
def test_bad_update_every_is_rejected_at_construction(update_every):
    with pytest.raises(ValueError, match=r"update_every=.*positive int N"):
        VarianceImportanceKeras(update_every=update_every)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scoring": "tayler"}, r"scoring='tayler' is not a scoring mode"),
        ({"gradient_every": 0}, r"gradient_every=0 is not supported"),
        ({"normalize": "max"}, r"normalize='max' is not supported"),
        ({"dtype": "float16"}, r"dtype='float16' is not supported"),
        ({"finite_check": "always"}, r"finite_check='always' is not supported"),
        ({"layer": 2.5}, r"layer=2.5 is not supported; pass a layer name"),
    ],
)
def test_options_are_checked_at_construction(options, message):
    with pytest.raises(ValueError, match=message):
        VarianceImportanceKeras(**options)


def test_layer_name_is_checked_when_fit_knows_the_model():
    with pytest.raises(ValueError, match="has no layer named 'does_not_exist'"):
        regression_model().fit(
            np.ones((8, 5)),
            np.ones((8, 1)),
            epochs=1,
            verbose=0,
            callbacks=[VarianceImportanceKeras(layer="does_not_exist")],
        )


def test_frozen_weights_warn_at_fit_end_and_raise_on_reading(caplog):
    model = regression_model(lr=0.0)
    viann = VarianceImportanceKeras(scoring="viann")
    with caplog.at_level("WARNING", logger="neural_feature_importance"):
        model.fit(np.ones((8, 5)), np.ones((8, 1)), epochs=3, verbose=0, callbacks=[viann])
    assert "every raw feature score" in caplog.text and "learning rate is 0" in caplog.text
    with pytest.raises(NoSignalError, match="the weights did not change over the 3 snapshots"):
        _ = viann.feature_importances_


def test_one_epoch_warns_and_importances_raise(caplog):
    x, y = regression_data()
    viann = VarianceImportanceKeras(scoring="viann")
    with caplog.at_level(logging.WARNING, logger="neural_feature_importance"):
        regression_model().fit(x, y, epochs=1, verbose=0, callbacks=[viann])
    assert "recorded 1 weight snapshot(s)" in caplog.text
    assert "update_every=N" in caplog.text
    with pytest.raises(NotFittedError, match="at least 2"):
        _ = viann.feature_importances_
    assert not hasattr(viann, "feature_importances_")


def test_instance_is_reset_on_every_fit_and_can_accumulate():
    x, y = regression_data()
    model = regression_model()
    viann = VarianceImportanceKeras(scoring="viann")
    model.fit(x, y, epochs=3, verbose=0, callbacks=[viann])
    model.fit(x, y, epochs=2, verbose=0, callbacks=[viann])
    assert viann.n_updates_ == 2

    # reused on another model with another shape: a fresh run, no error
    other = iris_mlp(hidden=5)
    other.fit(np.zeros((8, 4)), np.zeros(8), epochs=2, verbose=0, callbacks=[viann])
    assert viann.tracked_layer_ is other.get_layer("hidden")
    assert viann.variance_.shape == (4, 5)

    accumulating = VarianceImportanceKeras(scoring="viann", reset_on_train_begin=False)
    recorder = KernelRecorder("hidden")
    model.fit(x, y, epochs=3, verbose=0, callbacks=[accumulating, recorder])
    model.fit(x, y, epochs=2, verbose=0, callbacks=[accumulating, recorder])
    assert accumulating.n_updates_ == 5
    np.testing.assert_allclose(
        accumulating.raw_importances_, viann_by_hand(recorder.weights), rtol=1e-10
    )


@pytest.mark.parametrize("finite_check", ["update", "deferred"])
def test_diverged_weights_raise_naming_layer_and_update(finite_check):
    x, y = regression_data()
    model = regression_model()

    class PoisonAtThirdEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                kernel = self.model.get_layer("hidden").kernel
                kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))

    viann = VarianceImportanceKeras(finite_check=finite_check)
    with pytest.raises(NonFiniteWeightsError, match=r"layer 'hidden'.*update 3 ") as error:
        model.fit(x, y, epochs=5, verbose=0, callbacks=[PoisonAtThirdEpoch(), viann])
    assert "Lower the learning rate" in str(error.value)


def test_get_config_returns_the_constructor_parameters():
    layer = keras.layers.Dense(2, name="chosen")
    viann = VarianceImportanceKeras(
        layer=layer, update_every=4, normalize="sum", dtype="float32", scoring="growth"
    )
    assert viann.get_config() == {
        "layer": "chosen",
        "update_every": 4,
        "normalize": "sum",
        "include_initial": False,
        "record_history": False,
        "dtype": "float32",
        "finite_check": "deferred",  # the default with update_every, as in PyTorch
        "reset_on_train_begin": True,
        "scoring": "growth",
        "feature_names": None,
        "groups": None,
        "gradient_every": None,
        "log_importances": False,
        "follow_early_stopping": True,
    }
    assert VarianceImportanceKeras(**viann.get_config()).get_config() == viann.get_config()
    assert MetricThreshold(monitor="loss", threshold=0.2).get_config() == {
        "monitor": "loss",
        "threshold": 0.2,
        "min_epochs": 5,
        "mode": "auto",
    }


def test_conv2d_heatmap_and_filters_with_a_silent_channel():
    """Channel 1 of the images is all zeros: its kernel weights never move (score 0)."""
    rng = np.random.default_rng(1)
    images = rng.normal(size=(48, 6, 6, 2)).astype("float32")
    images[..., 1] = 0.0
    target = images[:, 1:4, 1:4, 0].mean(axis=(1, 2))[:, None]
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Rescaling(1.0),
            keras.layers.Conv2D(4, 3, activation="tanh", name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.SGD(0.1), "mse")
    viann = ConvVarianceImportanceKeras(scoring="viann")
    recorder = KernelRecorder("conv")
    model.fit(images, target, batch_size=16, epochs=4, verbose=0, callbacks=[viann, recorder])

    assert viann.tracked_layer_.name == "conv"
    raw = viann_by_hand(recorder.weights)  # features (3, 3, 2) flattened in Keras order
    np.testing.assert_allclose(viann.raw_importances_, raw, rtol=1e-10)
    assert viann.heatmap_.shape == (3, 3, 2)
    np.testing.assert_allclose(viann.heatmap_, minmax(raw).reshape(3, 3, 2), rtol=1e-10, atol=1e-12)
    assert np.all(viann.heatmap_[..., 1] == 0.0)
    assert np.all(viann.raw_importances_.reshape(3, 3, 2)[..., 0] > 0.0)
    var, last = variance(recorder.weights), recorder.weights[-1]
    filters = np.sum(var * np.abs(last), axis=(0, 1, 2))
    np.testing.assert_allclose(viann.raw_filter_importances_, filters, rtol=1e-10)
    np.testing.assert_array_equal(viann.filter_ranking_, np.argsort(filters)[::-1])


def test_conv1d_is_tracked_with_its_kernel_layout():
    x = np.random.default_rng(2).normal(size=(32, 10, 3)).astype("float32")
    y = x[:, :, 0].sum(axis=1, keepdims=True)
    model = keras.Sequential(
        [
            keras.Input((10, 3)),
            keras.layers.Conv1D(2, 5, name="conv"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.SGD(0.01), "mse")
    viann = ConvVarianceImportanceKeras(scoring="viann")
    recorder = KernelRecorder("conv")
    model.fit(x, y, epochs=3, verbose=0, callbacks=[viann, recorder])
    assert viann.heatmap_.shape == (5, 3)
    np.testing.assert_allclose(viann.raw_importances_, viann_by_hand(recorder.weights), rtol=1e-10)


def test_embedding_scores_tokens_and_unseen_tokens_score_zero():
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, 10, size=(64, 6))  # tokens 10..19 never occur
    target = (tokens == 3).mean(axis=1, keepdims=True).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((6,), dtype="int32"),
            keras.layers.Embedding(20, 4, name="embedding"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.SGD(0.5), "mse")
    viann = EmbeddingVarianceImportanceKeras(scoring="viann")
    recorder = KernelRecorder("embedding", attribute="embeddings")
    model.fit(tokens, target, batch_size=16, epochs=4, verbose=0, callbacks=[viann, recorder])

    raw = variance(recorder.weights).sum(axis=1)
    assert viann.feature_importances_.shape == (20,)
    np.testing.assert_allclose(viann.raw_importances_, raw, rtol=1e-10)
    assert np.all(viann.raw_importances_[10:] == 0.0)
    assert np.all(viann.raw_importances_[:10] > 0.0)


def test_names_load_from_the_package_root_and_the_original_modules():
    from neural_feature_importance import callbacks, conv_callbacks, embedding_callbacks, utils
    from neural_feature_importance import keras as nfi_keras

    assert callbacks.VarianceImportanceKeras is nfi.VarianceImportanceKeras
    assert callbacks.VarianceImportanceKeras is nfi_keras.VarianceImportanceKeras
    assert conv_callbacks.ConvVarianceImportanceKeras is nfi.ConvVarianceImportanceKeras
    assert embedding_callbacks.EmbeddingVarianceImportanceKeras is (
        nfi.EmbeddingVarianceImportanceKeras
    )
    assert utils.MetricThreshold is nfi.MetricThreshold
    assert isinstance(VarianceImportanceKeras(), keras.callbacks.Callback)
    # The callbacks hold a core tracker of their kind; they do not inherit it.
    assert not isinstance(VarianceImportanceKeras(), nfi.VarianceImportanceBase)
    assert isinstance(VarianceImportanceKeras().core, nfi.VarianceImportanceBase)
    assert isinstance(ConvVarianceImportanceKeras().core, nfi.ConvVarianceImportanceBase)
    assert isinstance(EmbeddingVarianceImportanceKeras().core, nfi.EmbeddingVarianceImportanceBase)


def test_readme_quick_start_runs_on_iris(iris):
    X, y = iris
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])

    # ---- the original README's Keras quick start, as written ----
    from neural_feature_importance import VarianceImportanceKeras
    from neural_feature_importance.utils import MetricThreshold

    viann = VarianceImportanceKeras()
    monitor = MetricThreshold(monitor="val_accuracy", threshold=0.95)
    model.fit(X, y, validation_split=0.05, epochs=30, callbacks=[viann, monitor])
    print(viann.feature_importances_)
    # ----

    scores = viann.feature_importances_
    assert scores.shape == (4,)
    assert scores.min() == 0.0 and scores.max() == 1.0
    assert viann.n_updates_ == len(model.history.history["loss"])
    assert monitor.stopped_epoch is None or monitor.stopped_epoch >= 4


@pytest.mark.skipif(keras.backend.backend() == "tensorflow", reason="TensorFlow is the backend")
def test_callbacks_never_import_tensorflow():
    code = textwrap.dedent(
        """
        import sys
        import keras
        import numpy as np
        from neural_feature_importance import MetricThreshold, VarianceImportanceKeras

        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile("sgd", "mse")
        viann = VarianceImportanceKeras(update_every=1)
        callbacks = [viann, MetricThreshold("loss", threshold=0.0)]
        model.fit(np.ones((8, 3)), np.ones((8, 2)), epochs=2, verbose=0, callbacks=callbacks)
        print(viann.n_updates_, "tensorflow" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["2", "False"]
