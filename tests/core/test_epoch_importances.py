"""Per-epoch importances: a row per epoch equal to a run stopped there, the logs, the state."""

import logging

import numpy as np
import pytest

from neural_feature_importance.core import (
    NoSignalError,
    NotFittedError,
    StateDictError,
    VarianceImportanceBase,
)
from neural_feature_importance.core.logs import check_log_importances, importance_key

N_EPOCHS, SHAPE = 6, (4, 3)  # Keras layout: 4 input features, 3 units


def _epochs(seed=0, n=N_EPOCHS, steps=3):
    """Per epoch: the weights at its end and its steps' gradients; feature 0 moves most."""
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 0.3, 0.1, 0.02])[:, None]
    weights = rng.normal(size=SHAPE)
    start, epochs = weights.copy(), []
    for _ in range(n):
        gradients = []
        for _ in range(steps):
            gradient = scale * rng.normal(size=SHAPE)
            weights = weights - 0.1 * gradient
            gradients.append((gradient, weights.copy()))
        epochs.append((weights.copy(), gradients))
    return start, epochs


def _train(tracker, start, epochs):
    """What an adapter does: gradients at each step, a snapshot and end_epoch() per epoch."""
    tracker.start(start, layer_name="dense")
    logs = []
    for weights, gradients in epochs:
        for gradient, after in gradients:
            tracker.update_gradients(gradient, after)
        tracker.update(weights)
        tracker.end_epoch()
        logs.append(tracker.epoch_logs())
    return logs


@pytest.mark.parametrize("scoring", ["viann", "steady_taylor"])
def test_each_epoch_equals_a_tracker_stopped_at_that_epoch(scoring):
    start, epochs = _epochs()
    tracker = VarianceImportanceBase(scoring=scoring, log_importances=True)
    _train(tracker, start, epochs)
    assert tracker.epoch_importances_.shape == (N_EPOCHS, 4)
    first_scored = 1 if scoring == "viann" else 0  # a variance needs two snapshots
    for epoch in range(first_scored, N_EPOCHS):
        stopped = VarianceImportanceBase(scoring=scoring)
        _train(stopped, start, epochs[: epoch + 1])
        at = tracker.importances_at(epoch)
        np.testing.assert_allclose(at.raw_importances, stopped.raw_importances_, rtol=1e-12)
        np.testing.assert_allclose(at.importances, stopped.feature_importances_, atol=1e-12)
        np.testing.assert_allclose(tracker.epoch_importances_[epoch], at.importances, atol=1e-15)
        assert at.feature_names.tolist() == ["x0", "x1", "x2", "x3"]
    np.testing.assert_allclose(tracker.epoch_importances_[-1], tracker.feature_importances_)
    assert np.argmax(tracker.feature_importances_) == 0  # the planted feature
    if scoring == "viann":
        assert np.isnan(tracker.epoch_importances_[0]).all()
        with pytest.raises(NotFittedError, match="no importances at the end of epoch 0"):
            tracker.importances_at(0)
    with pytest.raises(IndexError, match="epochs 0 to 5"):
        tracker.importances_at(N_EPOCHS)


def test_logs_of_every_column_hold_nan_until_the_statistics_score():
    start, epochs = _epochs()
    tracker = VarianceImportanceBase(
        scoring="viann", log_importances=True, feature_names=["a", "b", "c", "d"]
    )
    logs = _train(tracker, start, epochs)
    keys = ["importance/a", "importance/b", "importance/c", "importance/d"]
    assert all(list(epoch_logs) == keys for epoch_logs in logs)  # the same keys every epoch
    assert all(np.isnan(value) for value in logs[0].values())  # VIANN's first epoch
    for epoch in range(1, N_EPOCHS):
        np.testing.assert_array_equal(list(logs[epoch].values()), tracker.epoch_importances_[epoch])
    assert logs[-1]["importance/a"] == 1.0 and logs[-1]["importance/d"] == 0.0  # minmax


def test_top_k_columns_are_chosen_at_the_first_scored_epoch_and_kept(caplog):
    start, epochs = _epochs()
    # From epoch 3 on, feature 3 moves most: a per-epoch top 2 would change its keys.
    late = [
        (weights + np.array([0, 0, 0, 5.0 * max(e - 2, 0)])[:, None], gradients)
        for e, (weights, gradients) in enumerate(epochs)
    ]
    tracker = VarianceImportanceBase(scoring="viann", log_importances=2)
    with caplog.at_level(logging.WARNING, logger="neural_feature_importance.core.logs"):
        logs = _train(tracker, start, late)
    assert logs[0] == {}  # VIANN's first epoch: no ranking to choose from
    assert "log_importances=2: the end of the first epoch has no importances" in caplog.text
    chosen = np.argsort(-tracker.epoch_importances_[1])[:2]
    expected_keys = [importance_key(f"x{i}") for i in sorted(chosen)]
    assert expected_keys == ["importance/x0", "importance/x1"]
    assert all(list(epoch_logs) == expected_keys for epoch_logs in logs[1:])
    assert np.argmax(tracker.epoch_importances_[-1]) == 3  # not logged: the keys stay fixed
    for epoch in range(1, N_EPOCHS):
        row = tracker.epoch_importances_[epoch]
        assert [logs[epoch][key] for key in expected_keys] == [row[0], row[1]]


def test_an_epoch_without_signal_logs_nan_and_raises_no_signal():
    tracker = VarianceImportanceBase(scoring="viann", log_importances=True)
    frozen = np.ones(SHAPE)
    tracker.start(frozen)
    for _ in range(3):
        tracker.update(frozen)
        tracker.end_epoch()
    assert all(np.isnan(value) for value in tracker.epoch_logs().values())
    assert np.isnan(tracker.epoch_importances_).all()
    with pytest.raises(NoSignalError, match="every raw score was 0 at the end of epoch 2"):
        tracker.importances_at(2)


def test_rows_are_kept_only_when_asked_for():
    start, epochs = _epochs()
    plain = VarianceImportanceBase(scoring="viann")
    assert _train(plain, start, epochs) == [{}] * N_EPOCHS
    with pytest.raises(NotFittedError, match=r"log_importances=True .* or record_history=True"):
        _ = plain.epoch_importances_
    history = VarianceImportanceBase(scoring="viann", record_history=True)
    assert _train(history, start, epochs) == [{}] * N_EPOCHS  # recorded, not logged
    assert history.epoch_importances_.shape == (N_EPOCHS, 4)


@pytest.mark.parametrize("value", [0, -2, 1.5, "top", None, [3]])
def test_the_option_is_checked_at_construction(value):
    message = r"log_importances=.* is not supported; use False .*, True .* or a positive int k"
    with pytest.raises(ValueError, match=message):
        VarianceImportanceBase(log_importances=value)
    assert check_log_importances(np.int64(3)) == 3 and check_log_importances(False) is False


@pytest.mark.parametrize("log_importances", [True, 2])
def test_a_resumed_tracker_equals_an_uninterrupted_one(tmp_path, log_importances):
    start, epochs = _epochs()
    whole = VarianceImportanceBase(scoring="steady_taylor", log_importances=log_importances)
    whole_logs = _train(whole, start, epochs)

    first = VarianceImportanceBase(scoring="steady_taylor", log_importances=log_importances)
    first_logs = _train(first, start, epochs[:3])
    first.save_state(tmp_path / "state.safetensors")
    resumed = VarianceImportanceBase(scoring="steady_taylor", log_importances=log_importances)
    resumed.load_state(tmp_path / "state.safetensors")
    resumed_logs = []
    for weights, gradients in epochs[3:]:
        for gradient, after in gradients:
            resumed.update_gradients(gradient, after)
        resumed.update(weights)
        resumed.end_epoch()
        resumed_logs.append(resumed.epoch_logs())
    np.testing.assert_allclose(resumed.epoch_importances_, whole.epoch_importances_, atol=1e-12)
    assert [list(logs) for logs in first_logs + resumed_logs] == [list(x) for x in whole_logs]
    for got, expected in zip(first_logs + resumed_logs, whole_logs, strict=True):
        np.testing.assert_allclose(list(got.values()), list(expected.values()), atol=1e-12)


def test_a_state_from_before_keeps_recording_so_rows_stay_aligned():
    start, epochs = _epochs()
    first = VarianceImportanceBase(scoring="viann", log_importances=True)
    _train(first, start, epochs[:3])
    inspected = VarianceImportanceBase.from_state(first.state_dict())  # no option given
    np.testing.assert_array_equal(inspected.epoch_importances_, first.epoch_importances_)
    weights, _ = epochs[3]
    inspected.update(weights)
    inspected.end_epoch()
    assert inspected.epoch_importances_.shape == (4, 4)


def test_a_corrupted_per_epoch_entry_is_refused_and_changes_nothing():
    start, epochs = _epochs()
    tracker = VarianceImportanceBase(scoring="viann", log_importances=2)
    _train(tracker, start, epochs[:3])
    state = tracker.state_dict()
    other = VarianceImportanceBase(scoring="viann", log_importances=2)
    _train(other, start, epochs)
    before = other.epoch_importances_
    for broken in ({"raw": np.ones(3), "logged": None}, {"raw": np.ones((2, 4)), "logged": [7]}):
        with pytest.raises(StateDictError, match="per-epoch importances have shape"):
            other.load_state_dict({**state, "epochs": broken})
        np.testing.assert_array_equal(other.epoch_importances_, before)
        assert other.n_updates_ == N_EPOCHS


def test_merge_drops_the_rows_of_one_stream():
    start, epochs = _epochs()
    left = VarianceImportanceBase(scoring="viann", log_importances=True)
    right = VarianceImportanceBase(scoring="viann", log_importances=True)
    _train(left, start, epochs[:3])
    _train(right, start, epochs[3:])
    left.merge(right)
    with pytest.raises(NotFittedError, match="no epoch has ended yet"):
        _ = left.epoch_importances_


def test_several_input_layers_log_the_combined_columns():
    rng = np.random.default_rng(0)
    tracker = VarianceImportanceBase(scoring="viann", log_importances=True)
    dense, table = rng.normal(size=(2, 3)), rng.normal(size=(5, 4))
    tracker.start_layers({"numeric": ("dense", dense), "city": ("embedding", table)})
    for _ in range(3):
        dense = dense + rng.normal(size=dense.shape)
        table = table + 0.1 * rng.normal(size=table.shape)
        for name, weight in (("numeric", dense), ("city", table)):
            tracker.combined.members[name].update(weight)
        tracker.end_epoch()
    assert list(tracker.epoch_logs()) == [
        "importance/numeric[0]",
        "importance/numeric[1]",
        "importance/city",
    ]
    np.testing.assert_array_equal(list(tracker.epoch_logs().values()), tracker.feature_importances_)
    restored = VarianceImportanceBase(scoring="viann", log_importances=True)
    restored.load_state_dict(tracker.state_dict())
    np.testing.assert_array_equal(restored.epoch_importances_, tracker.epoch_importances_)
