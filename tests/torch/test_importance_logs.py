"""Importances per epoch in a PyTorch loop: the logs it hands back, importances at an epoch.

The Lightning and Hugging Face callbacks are checked in ``test_trainer_importance_logs.py``.
"""

import numpy as np
import pytest
import torch
from torch import nn
from training_loops import train

from neural_feature_importance import NotFittedError, VarianceImportanceTorch

EPOCHS = 6


def _data():
    x = torch.randn(96, 6, generator=torch.Generator().manual_seed(0))
    return x, (3 * x[:, :1] - 2 * torch.tanh(2 * x[:, 1:2]))


def _model():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))


class LogRecorder:
    """Drives a tracker like the loop does, keeping what `on_epoch_end()` returns."""

    def __init__(self, tracker):
        self.tracker, self.logs = tracker, []

    def on_train_begin(self):
        self.tracker.on_train_begin()

    def on_step_end(self):
        self.tracker.on_step_end()

    def on_epoch_end(self):
        self.logs.append(self.tracker.on_epoch_end())


def _train(model, tracker, epochs, initial_epoch=0, begin=True):
    x, y = _data()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    recorder = LogRecorder(tracker)
    train(
        model,
        recorder,
        x,
        y,
        optimizer=optimizer,
        epochs=epochs,
        batch_size=16,
        shuffle=lambda epoch: 100 + epoch,
        initial_epoch=initial_epoch,
        begin=begin,
    )
    return recorder.logs


@pytest.mark.parametrize("scoring", ["viann", "steady_taylor"])
def test_importances_at_an_epoch_equal_a_run_stopped_there(scoring):
    model = _model()
    tracker = VarianceImportanceTorch(model, scoring=scoring, log_importances=True)
    logs = _train(model, tracker, EPOCHS)
    names = [f"importance/x{i}" for i in range(6)]
    assert all(list(epoch_logs) == names for epoch_logs in logs)
    for epoch, epoch_logs in enumerate(logs):
        np.testing.assert_array_equal(list(epoch_logs.values()), tracker.epoch_importances_[epoch])
    for epoch in (2, 4):
        short_model = _model()
        short = VarianceImportanceTorch(short_model, scoring=scoring)
        _train(short_model, short, epoch + 1)
        at = tracker.importances_at(epoch)
        np.testing.assert_allclose(at.raw_importances, short.raw_importances_, rtol=1e-9)
        np.testing.assert_allclose(at.importances, short.feature_importances_, atol=1e-9)
    assert set(np.argsort(-tracker.feature_importances_)[:2].tolist()) == {0, 1}


def test_without_the_option_the_loop_gets_an_empty_dict():
    model = _model()
    tracker = VarianceImportanceTorch(model)
    assert _train(model, tracker, 2) == [{}, {}]
    with pytest.raises(NotFittedError, match="log_importances=True"):
        _ = tracker.epoch_importances_


def test_a_resumed_loop_logs_and_records_as_an_uninterrupted_one(tmp_path):
    whole_model = _model()
    whole = VarianceImportanceTorch(whole_model, scoring="steady_taylor", log_importances=3)
    whole_logs = _train(whole_model, whole, EPOCHS)

    model = _model()
    first = VarianceImportanceTorch(model, scoring="steady_taylor", log_importances=3)
    first_logs = _train(model, first, 3)
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": model.state_dict(), "tracker": first.state_dict()}, path)
    checkpoint = torch.load(path, weights_only=True)  # the per-epoch rows need no pickle
    resumed_model = _model()
    resumed_model.load_state_dict(checkpoint["model"])
    resumed = VarianceImportanceTorch(resumed_model, scoring="steady_taylor", log_importances=3)
    resumed.load_state_dict(checkpoint["tracker"])
    resumed.on_train_begin()
    resumed_logs = _train(resumed_model, resumed, EPOCHS, initial_epoch=3, begin=False)

    np.testing.assert_allclose(resumed.epoch_importances_, whole.epoch_importances_, rtol=1e-9)
    logs = first_logs + resumed_logs
    assert [list(epoch) for epoch in logs] == [list(epoch) for epoch in whole_logs]
    assert len(whole_logs[0]) == 3
    for got, expected in zip(logs, whole_logs, strict=True):
        np.testing.assert_allclose(list(got.values()), list(expected.values()), rtol=1e-9)


class TwoBranches(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.left = nn.Linear(3, 8)
        self.right = nn.Linear(2, 8)
        self.head = nn.Linear(16, 1)

    def forward(self, x, extra):
        return self.head(torch.tanh(torch.cat([self.left(x), self.right(extra)], dim=1)))


def test_several_input_layers_log_the_combined_columns():
    generator = torch.Generator().manual_seed(0)
    x, extra = torch.randn(64, 3, generator=generator), torch.randn(64, 2, generator=generator)
    y = (2 * x[:, :1] + extra[:, :1]).detach()
    model = TwoBranches()
    tracker = VarianceImportanceTorch(
        model, layer=["left", "right"], scoring="taylor", log_importances=True
    )
    recorder = LogRecorder(tracker)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    train(model, recorder, (x, extra), y, optimizer=optimizer, epochs=3, batch_size=16)
    expected = ["left[0]", "left[1]", "left[2]", "right[0]", "right[1]"]
    assert list(recorder.logs[-1]) == [f"importance/{name}" for name in expected]
    np.testing.assert_array_equal(list(recorder.logs[-1].values()), tracker.feature_importances_)
    assert tracker.epoch_importances_.shape == (3, 5)


def test_the_option_is_checked_in_the_constructor():
    with pytest.raises(ValueError, match=r"log_importances=0 is not supported; use False"):
        VarianceImportanceTorch(_model(), log_importances=0)
