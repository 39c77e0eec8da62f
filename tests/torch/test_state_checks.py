"""Loading a state checks it against the tracked layer before anything is returned."""

import numpy as np
import pytest
import torch
from torch import nn
from training_loops import train

from neural_feature_importance import StateDictError, VarianceImportanceTorch


def _trained(n_inputs, scoring="viann"):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(n_inputs, 4), nn.Tanh(), nn.Linear(4, 1))
    tracker = VarianceImportanceTorch(model, scoring=scoring)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(32, n_inputs)
    # One step of the whole batch per epoch.
    train(
        model,
        tracker,
        x,
        None,
        optimizer=optimizer,
        epochs=3,
        loss=lambda output, _: output.pow(2).mean(),
    )
    return model, tracker


def test_state_of_another_shape_is_rejected_before_on_train_begin():
    _, eight = _trained(8)
    sixteen_model = nn.Sequential(nn.Linear(16, 4), nn.Tanh(), nn.Linear(4, 1))
    fresh = VarianceImportanceTorch(sixteen_model, scoring="viann")
    with pytest.raises(StateDictError) as info:
        fresh.load_state_dict(eight.state_dict())
    message = str(info.value)
    assert "(4, 8)" in message and "(4, 16)" in message
    assert "layer '0'" in message
    assert "pass layer= naming the same layer" in message  # says what to do
    with pytest.raises(AttributeError):  # nothing of the old model is returned
        _ = fresh.feature_importances_


def test_state_of_another_shape_is_rejected_after_on_train_begin():
    _, eight = _trained(8)
    _, sixteen = _trained(16)
    before = sixteen.raw_importances_
    with pytest.raises(StateDictError, match=r"shape \(4, 8\).*shape \(4, 16\)"):
        sixteen.load_state_dict(eight.state_dict())
    np.testing.assert_array_equal(sixteen.raw_importances_, before)  # left as it was


def test_state_of_another_scoring_or_kind_is_rejected():
    model, taylor = _trained(8, scoring="taylor")
    with pytest.raises(StateDictError, match="construct the tracker with scoring='taylor'"):
        VarianceImportanceTorch(model, scoring="steady_taylor").load_state_dict(taylor.state_dict())
    embedding = nn.Sequential(nn.Embedding(10, 4))
    from neural_feature_importance import EmbeddingVarianceImportanceTorch

    with pytest.raises(StateDictError, match="kind='dense'"):
        EmbeddingVarianceImportanceTorch(embedding).load_state_dict(taylor.state_dict())


def test_reset_lets_a_tracker_start_afresh_on_another_model():
    _, eight = _trained(8)
    eight.reset()
    assert eight.n_updates_ == 0
    with pytest.raises(AttributeError):
        _ = eight.feature_importances_
