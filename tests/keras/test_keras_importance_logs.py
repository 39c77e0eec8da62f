"""Keras: importances in the epoch logs (History, CSVLogger, TensorBoard) and EarlyStopping.

With ``log_importances`` the callback adds ``importance/<column>`` to every epoch's
``logs``; with an ``EarlyStopping(restore_best_weights=True)`` in the same ``fit()`` its
statistics go back to the restored epoch, equal to those of a run stopped there.
"""

import csv

import keras
import numpy as np
import pytest
from keras_helpers import regression_data, regression_model, twin

from neural_feature_importance import VarianceImportanceKeras

FIT = {"batch_size": 16, "shuffle": False, "verbose": 0}  # 80 rows: 5 batches per epoch
KEYS = [f"importance/x{i}" for i in range(5)]


class Scripted(keras.callbacks.Callback):
    """Puts a prescribed value under ``"scripted"`` in each epoch's logs (for EarlyStopping)."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["scripted"] = self.values[epoch]


def _csv_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("scoring", ["viann", "steady_taylor"])
def test_history_and_csv_logger_hold_every_epochs_importances(tmp_path, scoring):
    x, y = regression_data(n=80)
    tracker = VarianceImportanceKeras(scoring=scoring, gradient_every=1, log_importances=True)
    logger = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    history = regression_model().fit(x, y, epochs=4, callbacks=[tracker, logger], **FIT)
    expected = tracker.epoch_importances_
    assert expected.shape == (4, 5)
    assert np.isnan(expected[0]).all() == (scoring == "viann")  # a variance needs 2 snapshots
    logged = np.array([history.history[key] for key in KEYS]).T
    np.testing.assert_array_equal(logged, expected)
    rows = _csv_rows(tmp_path / "log.csv")
    written = np.array([[float(row[key]) for key in KEYS] for row in rows])
    np.testing.assert_array_equal(written, expected)
    np.testing.assert_array_equal(expected[-1], tracker.feature_importances_)
    assert np.argmax(tracker.feature_importances_) == 0  # y = 3 x0 - 2 x1
    assert tracker.feature_importances_[-1] == 0.0  # the all-zero input


def test_a_logger_listed_before_the_tracker_is_refused_when_fit_starts(tmp_path):
    x, y = regression_data(n=80)
    model = regression_model()
    logger = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    tracker = VarianceImportanceKeras(log_importances=True)
    with pytest.raises(ValueError, match=r"listed after CSVLogger.*callbacks=\[tracker, csvlogger"):
        model.fit(x, y, epochs=2, callbacks=[logger, tracker], **FIT)
    # Without log_importances the order does not matter.
    model.fit(x, y, epochs=2, callbacks=[logger, VarianceImportanceKeras()], **FIT)


def test_top_k_logs_the_same_columns_every_epoch(tmp_path):
    x, y = regression_data(n=80)
    tracker = VarianceImportanceKeras(scoring="steady_taylor", gradient_every=1, log_importances=2)
    logger = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    history = regression_model().fit(x, y, epochs=3, callbacks=[tracker, logger], **FIT)
    chosen = np.sort(np.argsort(-tracker.epoch_importances_[0])[:2])
    keys = [f"importance/x{i}" for i in chosen]
    assert sorted(key for key in history.history if key.startswith("importance/")) == keys
    rows = _csv_rows(tmp_path / "log.csv")
    assert sorted(key for key in rows[0] if key.startswith("importance/")) == keys
    for key, column in zip(keys, chosen, strict=True):
        np.testing.assert_array_equal(
            [float(row[key]) for row in rows], tracker.epoch_importances_[:, column]
        )


def test_tensorboard_event_file_holds_the_importances(tmp_path):
    tf = pytest.importorskip("tensorflow")
    pytest.importorskip("tensorboard")  # tf.summary writes through it
    x, y = regression_data(n=80)
    tracker = VarianceImportanceKeras(
        scoring="steady_taylor", gradient_every=1, log_importances=True
    )
    board = keras.callbacks.TensorBoard(str(tmp_path / "board"), write_graph=False)
    regression_model().fit(x, y, epochs=3, callbacks=[tracker, board], **FIT)
    values = {}
    for path in (tmp_path / "board" / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag.startswith("epoch_importance/"):
                    values[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
    for column, key in enumerate(KEYS):
        written = [values[(f"epoch_{key}", epoch)] for epoch in range(3)]
        np.testing.assert_allclose(written, tracker.epoch_importances_[:, column], rtol=1e-6)


# ------------------------------------------------------------------ EarlyStopping
# The scripted metric is best at epoch 2 (0-based); patience 2 stops training at epoch 4.
SCRIPT = [3.0, 2.0, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0]


@pytest.mark.parametrize("scoring", ["viann", "steady_taylor"])
@pytest.mark.parametrize("tracker_first", [True, False])
def test_restored_weights_come_with_the_importances_of_their_epoch(scoring, tracker_first):
    x, y = regression_data(n=80)
    model = regression_model()
    stopped_model = twin(model)  # the same initial weights; SGD keeps no state
    tracker = VarianceImportanceKeras(scoring=scoring, log_importances=True)
    stopper = keras.callbacks.EarlyStopping(
        monitor="scripted", mode="min", patience=2, restore_best_weights=True
    )
    rest = [Scripted(SCRIPT), stopper]
    callbacks = [tracker, *rest] if tracker_first else [*rest, tracker]
    history = model.fit(x, y, epochs=len(SCRIPT), callbacks=callbacks, **FIT)
    assert stopper.best_epoch == 2 and stopper.stopped_epoch == 4
    assert len(history.history["importance/x0"]) == 5  # every epoch trained was logged
    assert tracker.restored_epoch_ == 2

    stopped = VarianceImportanceKeras(scoring=scoring)
    stopped_model.fit(x, y, epochs=3, callbacks=[stopped], **FIT)
    np.testing.assert_allclose(tracker.raw_importances_, stopped.raw_importances_, rtol=1e-9)
    np.testing.assert_allclose(
        tracker.feature_importances_, stopped.feature_importances_, atol=1e-9
    )
    assert tracker.n_updates_ == 3 and tracker.n_gradient_steps_ == stopped.n_gradient_steps_
    assert tracker.epoch_importances_.shape == (3, 5)  # the statistics of epochs 0-2
    np.testing.assert_array_equal(
        history.history["importance/x1"][:3], tracker.epoch_importances_[:, 1]
    )


@pytest.mark.parametrize("scoring", ["viann", "steady_taylor"])
def test_without_following_early_stopping_every_epoch_is_kept_and_readable(scoring):
    x, y = regression_data(n=80)
    model = regression_model()
    stopped_model = twin(model)
    tracker = VarianceImportanceKeras(
        scoring=scoring, record_history=True, follow_early_stopping=False
    )
    stopper = keras.callbacks.EarlyStopping(
        monitor="scripted", mode="min", patience=2, restore_best_weights=True
    )
    model.fit(x, y, epochs=len(SCRIPT), callbacks=[tracker, Scripted(SCRIPT), stopper], **FIT)
    assert tracker.restored_epoch_ is None and tracker.n_updates_ == 5
    stopped = VarianceImportanceKeras(scoring=scoring)
    stopped_model.fit(x, y, epochs=3, callbacks=[stopped], **FIT)
    at = tracker.importances_at(stopper.best_epoch)
    np.testing.assert_allclose(at.raw_importances, stopped.raw_importances_, rtol=1e-9)
    assert not np.allclose(tracker.raw_importances_, stopped.raw_importances_, rtol=1e-3)


def test_a_resumed_fit_records_the_epochs_of_an_uninterrupted_one(tmp_path):
    x, y = regression_data(n=80)
    model = regression_model()
    whole_model = twin(model)
    options = {"scoring": "steady_taylor", "gradient_every": 2, "log_importances": 3}
    whole = VarianceImportanceKeras(**options)
    whole_history = whole_model.fit(x, y, epochs=5, callbacks=[whole], **FIT)

    first = VarianceImportanceKeras(**options)
    first_history = model.fit(x, y, epochs=2, callbacks=[first], **FIT)
    first.save_state(tmp_path / "state.safetensors")
    resumed = VarianceImportanceKeras(**options)
    resumed.load_state(tmp_path / "state.safetensors")
    resumed_history = twin(model).fit(x, y, epochs=5, initial_epoch=2, callbacks=[resumed], **FIT)
    np.testing.assert_allclose(resumed.epoch_importances_, whole.epoch_importances_, rtol=1e-9)
    keys = sorted(key for key in whole_history.history if key.startswith("importance/"))
    assert len(keys) == 3
    for key in keys:
        got = first_history.history[key] + resumed_history.history[key]
        np.testing.assert_allclose(got, whole_history.history[key], rtol=1e-9)


def test_a_custom_loop_gets_the_importances_in_the_logs_it_passes():
    x, y = regression_data(n=80)
    model = regression_model()
    tracker = VarianceImportanceKeras(log_importances=True)
    tracker.set_model(model)
    tracker.on_train_begin()  # called by hand: no CallbackList to look at
    epoch_logs = []
    for epoch in range(3):
        model.fit(x, y, epochs=1, **FIT)
        logs = {"loss": 0.0}
        tracker.on_epoch_end(epoch, logs)
        epoch_logs.append(logs)
    tracker.on_train_end()
    assert list(epoch_logs[-1]) == ["loss", *KEYS]
    np.testing.assert_array_equal(
        [epoch_logs[-1][key] for key in KEYS], tracker.feature_importances_
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"log_importances": -1}, r"log_importances=-1 is not supported; use False"),
        ({"follow_early_stopping": "yes"}, r"follow_early_stopping='yes' is not supported"),
    ],
)
def test_the_options_are_checked_in_the_constructor(options, message):
    with pytest.raises(ValueError, match=message):
        VarianceImportanceKeras(**options)


def test_the_options_round_trip_through_the_config():
    tracker = VarianceImportanceKeras(log_importances=4, follow_early_stopping=False)
    copy = VarianceImportanceKeras(**tracker.get_config())
    assert copy.log_importances == 4 and copy.follow_early_stopping is False
