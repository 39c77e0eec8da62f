"""MetricThreshold stops when a loss falls to the threshold and an accuracy rises to it."""

import logging
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from keras_helpers import iris_mlp

from neural_feature_importance import MetricThreshold
from neural_feature_importance.keras.monitors import infer_mode


def _run(callback, values, key=None):
    """Feed epoch logs to the callback; return the epochs run before it stopped training."""
    model = SimpleNamespace(stop_training=False)
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {key or callback.monitor: value})
        if model.stop_training:
            return epoch + 1
    return len(values)


def test_loss_monitor_stops_when_the_loss_falls_below_the_threshold():
    stop = MetricThreshold(monitor="loss", threshold=0.5, min_epochs=1)
    # the original stopped at epoch 0, because 1.2 >= 0.5
    assert _run(stop, [1.2, 0.9, 0.7, 0.45, 0.3, 0.2]) == 4
    assert stop.stopped_epoch == 3
    assert stop.mode_ == "min"


def test_accuracy_monitor_stops_when_it_rises_above_the_threshold():
    stop = MetricThreshold(monitor="val_accuracy", threshold=0.95, min_epochs=1)
    assert _run(stop, [0.3, 0.8, 0.94, 0.95, 0.99]) == 4
    assert stop.stopped_epoch == 3
    assert stop.mode_ == "max"


def test_never_stops_before_min_epochs():
    stop = MetricThreshold(monitor="accuracy", threshold=0.9, min_epochs=5)
    assert _run(stop, [0.99] * 8) == 5
    assert stop.stopped_epoch == 4


def test_explicit_mode_overrides_the_name():
    assert (
        _run(MetricThreshold("my_score", threshold=0.2, min_epochs=0, mode="min"), [0.5, 0.1]) == 2
    )
    assert _run(MetricThreshold("val_loss", threshold=2.0, min_epochs=0, mode="max"), [1, 3]) == 2


def test_not_stopping_leaves_stopped_epoch_none_and_each_fit_resets_it():
    stop = MetricThreshold(monitor="loss", threshold=0.1, min_epochs=1)
    assert _run(stop, [0.05]) == 1 and stop.stopped_epoch == 0
    assert _run(stop, [0.5, 0.4, np.nan]) == 3
    assert stop.stopped_epoch is None


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("loss", "min"),
        ("val_loss", "min"),
        ("mse", "min"),
        ("val_mean_absolute_error", "min"),
        ("sparse_categorical_crossentropy", "min"),
        ("kl_divergence", "min"),
        ("accuracy", "max"),
        ("val_sparse_categorical_accuracy", "max"),
        ("auc", "max"),
        ("val_precision", "max"),
        ("r2_score", "max"),
    ],
)
def test_auto_mode_from_the_metric_name(name, mode):
    assert infer_mode(name) == mode


def test_missing_metric_warns_once_per_fit(caplog):
    stop = MetricThreshold(monitor="val_accuracy", threshold=0.5, min_epochs=0)
    with caplog.at_level(logging.WARNING, logger="neural_feature_importance"):
        assert _run(stop, [0.9, 0.9, 0.9], key="accuracy") == 3
    assert len(caplog.records) == 1
    assert "'val_accuracy' is not in the epoch logs (available: ['accuracy'])" in caplog.text
    assert "validation data" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="neural_feature_importance"):
        _run(stop, [0.9], key="accuracy")
    assert len(caplog.records) == 1  # warned again in the next fit


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "up"}, r"mode='up' is not supported; use 'auto'"),
        ({"min_epochs": -1}, r"min_epochs=-1; pass a non-negative int"),
        ({"min_epochs": 2.5}, r"min_epochs=2.5"),
        ({"threshold": "high"}, r"threshold='high'; pass a number"),
        ({"monitor": ""}, r"monitor=''; pass the name of a logged metric"),
    ],
)
def test_bad_parameters_are_explained(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _run(MetricThreshold(**kwargs), [0.5])


def test_real_fit_with_a_loss_monitor_stops_once_the_loss_is_low(iris):
    X, y = iris
    model = iris_mlp()
    stop = MetricThreshold(monitor="loss", threshold=0.6, min_epochs=1)
    history = model.fit(X, y, batch_size=32, epochs=60, verbose=0, callbacks=[stop])
    losses = history.history["loss"]
    assert losses[0] > 0.6  # the original would have stopped right here
    assert all(loss > 0.6 for loss in losses[:-1])
    assert losses[-1] <= 0.6
    assert stop.stopped_epoch == len(losses) - 1 < 59


def test_real_fit_with_an_accuracy_monitor_stops_once_it_is_high(iris):
    X, y = iris
    model = iris_mlp()
    stop = MetricThreshold(monitor="accuracy", threshold=0.9, min_epochs=2)
    history = model.fit(X, y, batch_size=32, epochs=60, verbose=0, callbacks=[stop])
    accuracies = history.history["accuracy"]
    assert all(accuracy < 0.9 for accuracy in accuracies[1:-1])
    assert accuracies[-1] >= 0.9
    assert stop.stopped_epoch == len(accuracies) - 1 < 59
    assert isinstance(stop, keras.callbacks.Callback)
