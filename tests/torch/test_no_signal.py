"""Runs that measured nothing raise NoSignalError instead of equal importances."""

import numpy as np
import pytest
import torch
from torch import nn

from neural_feature_importance import NoSignalError, VarianceImportanceTorch


def _train(scoring, lr=0.1, clear_before_read=False):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
    tracker = VarianceImportanceTorch(model, scoring=scoring, gradient_every=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    x = torch.randn(64, 5)
    y = x[:, :1]
    tracker.on_train_begin()
    for _ in range(3):
        for rows in torch.arange(64).split(16):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x[rows]), y[rows]).backward()
            optimizer.step()
            if clear_before_read:
                optimizer.zero_grad(set_to_none=False)  # zeros, not None
            tracker.on_step_end()
        tracker.on_epoch_end()
    return tracker


def test_gradient_cleared_to_zeros_before_on_step_end_raises_with_the_causes():
    tracker = _train("taylor", clear_before_read=True)
    with pytest.raises(NoSignalError, match=r"every gradient x weight product") as info:
        _ = tracker.feature_importances_
    assert "zero_grad(set_to_none=False)" in str(info.value)
    with pytest.raises(NoSignalError):
        tracker.on_train_end()


@pytest.mark.parametrize("scoring", ["viann", "taylor", "growth"])
def test_learning_rate_zero_raises_instead_of_all_ones(scoring):
    tracker = _train(scoring, lr=0.0)
    if scoring == "taylor":
        # Gradients are non-zero at lr=0, so taylor still measures gradient x input.
        assert np.all(np.isfinite(tracker.feature_importances_))
        return
    with pytest.raises(NoSignalError, match="learning rate is 0"):
        _ = tracker.feature_importances_


def test_lightning_logs_no_signal_at_train_end_and_raises_on_reading(tmp_path, caplog):
    pytest.importorskip("lightning")
    from lightning_helpers import Regressor
    from quiet_trainers import quiet_trainer

    from neural_feature_importance import VarianceImportanceLightning

    x = torch.randn(64, 8)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x[:, :1]), batch_size=16)
    viann = VarianceImportanceLightning(scoring="viann")
    with caplog.at_level("WARNING", logger="neural_feature_importance"):
        quiet_trainer(tmp_path, 3, [viann]).fit(Regressor(lr=0.0), loader)
    assert "every raw feature score of layer 'net.0' is 0" in caplog.text
    with pytest.raises(NoSignalError):
        _ = viann.feature_importances_
