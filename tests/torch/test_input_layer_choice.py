"""The trackers track the layer the inputs reach, found at the first forward pass.

Registration order is not forward order for a model that registers its head
first, and a parametrized first layer (``weight_norm``, ``spectral_norm``) has
no plain ``weight`` Parameter. Both used to send the tracker, silently, to the
head's 32 hidden units. Planted truth: inputs 0 and 1 decide the target.
"""

import logging

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations
from training_loops import train

from neural_feature_importance import VarianceImportanceTorch

N_INPUTS = 8


def _data(n=512):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, N_INPUTS, generator=generator)
    return x, (2 * x[:, 0] - 3 * x[:, 1] + 0.5 * x[:, 0] * x[:, 1]).unsqueeze(1)


class HeadFirst(nn.Module):
    """Registers its head (32 -> 1) before the layer that reads the inputs (8 -> 32)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(32, 1)
        self.body = nn.Linear(N_INPUTS, 32)

    def forward(self, x):
        return self.head(torch.tanh(self.body(x)))


class TwoBranches(nn.Module):
    def __init__(self):
        super().__init__()
        self.left = nn.Linear(N_INPUTS, 16)
        self.right = nn.Linear(3, 16)
        self.head = nn.Linear(32, 1)

    def forward(self, x, extra):
        return self.head(torch.tanh(torch.cat([self.left(x), self.right(extra)], dim=1)))


def _parametrized(how):
    torch.manual_seed(0)
    first = nn.Linear(N_INPUTS, 32)
    if how == "weight_norm":
        first = parametrizations.weight_norm(first)
    elif how == "old_weight_norm":
        first = torch.nn.utils.weight_norm(first)
    elif how == "spectral_norm":
        first = parametrizations.spectral_norm(first)
    return nn.Sequential(first, nn.Tanh(), nn.Linear(32, 1))


def _fit(model, tracker, epochs=15, extra=None):
    x, y = _data()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    inputs = x if extra is None else (x, extra)
    train(
        model,
        tracker,
        inputs,
        y,
        optimizer=optimizer,
        epochs=epochs,
        batch_size=32,
        shuffle=lambda epoch: epoch,
    )
    return tracker


def _top2(scores):
    return set(np.argsort(scores)[::-1][:2].tolist())


@pytest.mark.parametrize("scoring", ["viann", "taylor"])
def test_head_registered_first_tracks_the_input_layer(scoring, caplog):
    torch.manual_seed(0)
    model = HeadFirst()
    tracker = VarianceImportanceTorch(model, scoring=scoring)
    with caplog.at_level(logging.INFO, logger="neural_feature_importance"):
        _fit(model, tracker)
    assert tracker.tracked_layer_name_ == "body"
    assert "tracks 'body', the layer the model's inputs reach first (not 'head'" in caplog.text
    scores = tracker.feature_importances_
    assert scores.shape == (N_INPUTS,)
    assert _top2(scores) == {0, 1}


def test_head_first_model_resumes_on_the_saved_layer():
    torch.manual_seed(0)
    model = HeadFirst()
    first = _fit(model, VarianceImportanceTorch(model), epochs=3)
    again = VarianceImportanceTorch(model)
    again.load_state_dict(first.state_dict())  # no StateDictError: the state names 'body'
    again.on_train_begin()
    assert again.tracked_layer_name_ == "body"
    np.testing.assert_array_equal(again.raw_importances_, first.raw_importances_)


@pytest.mark.parametrize("how", ["weight_norm", "old_weight_norm", "spectral_norm"])
@pytest.mark.parametrize("scoring", ["viann", "taylor"])
def test_parametrized_first_layer_is_tracked_through_its_effective_weight(how, scoring):
    model = _parametrized(how)
    tracker = VarianceImportanceTorch(model, scoring=scoring)
    _fit(model, tracker)
    assert tracker.tracked_layer_name_ == "0"
    scores = tracker.feature_importances_
    assert scores.shape == (N_INPUTS,)
    assert not np.allclose(scores, scores[0])
    assert _top2(scores) == {0, 1}


@pytest.mark.parametrize("how", ["weight_norm", "old_weight_norm", "spectral_norm"])
def test_parametrized_taylor_equals_gradient_times_input_by_hand(how):
    """taylor's per-step sum_j g_ij w_ij is the batch's gradient x input of feature i.

    With a learning rate of 0 the weight after each step is the one the forward
    pass used, so the identity is exact for the effective weight.
    """
    model = _parametrized(how)
    model.eval()  # spectral_norm: no power iteration, the same weight every call
    tracker = VarianceImportanceTorch(model, scoring="taylor", gradient_every=1, normalize=None)
    x, y = _data(64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    tracker.on_train_begin()
    by_hand = np.zeros(N_INPUTS)
    for rows in torch.arange(64).split(16):
        inputs = x[rows].clone().requires_grad_(True)
        optimizer.zero_grad()
        nn.functional.mse_loss(model(inputs), y[rows]).backward()
        optimizer.step()
        tracker.on_step_end()
        by_hand += (inputs.grad * inputs).sum(dim=0).abs().detach().double().numpy()
    tracker.on_epoch_end()
    np.testing.assert_allclose(tracker.raw_importances_, by_hand / 4, rtol=1e-5)


def test_sequential_models_choose_silently(caplog):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(N_INPUTS, 16), nn.Tanh(), nn.Linear(16, 1))
    with caplog.at_level(logging.WARNING, logger="neural_feature_importance"):
        tracker = _fit(model, VarianceImportanceTorch(model), epochs=2)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert tracker.tracked_layer_name_ == "0"
    assert not model[0]._forward_pre_hooks and not model._forward_hooks  # probe removed


def test_names_are_checked_against_the_layer_the_inputs_reach():
    torch.manual_seed(0)
    model = HeadFirst()
    names = [f"f{i}" for i in range(N_INPUTS)]
    tracker = _fit(model, VarianceImportanceTorch(model, feature_names=names), epochs=2)
    assert tracker.feature_names_in_.tolist() == names  # 8 names for 'body', not 'head's 32
    wrong = VarianceImportanceTorch(HeadFirst(), feature_names=names[:5])
    wrong.on_train_begin()
    with pytest.raises(ValueError, match="feature_names has 5 names, but layer 'body' has 8"):
        wrong.model(torch.randn(2, N_INPUTS))  # the first forward pass decides the layer


def test_lightning_tracks_a_list_of_input_layers(tmp_path):
    pytest.importorskip("lightning")
    from lightning.pytorch import LightningModule
    from quiet_trainers import quiet_trainer

    from neural_feature_importance import VarianceImportanceLightning

    class Branches(LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.left = nn.Linear(N_INPUTS, 8)
            self.right = nn.Linear(2, 8)
            self.head = nn.Linear(16, 1)

        def forward(self, x, extra):
            return self.head(torch.tanh(torch.cat([self.left(x), self.right(extra)], 1)))

        def training_step(self, batch, batch_idx):
            x, extra, y = batch
            return nn.functional.mse_loss(self(x, extra), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.01)

    x, y = _data()
    extra = torch.randn(len(y), 2, generator=torch.Generator().manual_seed(3))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, extra, y + 2 * extra[:, :1]), batch_size=32
    )
    callback = VarianceImportanceLightning(layer=["left", "right"], scoring="taylor")
    quiet_trainer(tmp_path, 8, [callback]).fit(Branches(), loader)
    assert callback.feature_names_in_.tolist()[-2:] == ["right[0]", "right[1]"]
    scores = dict(zip(callback.feature_names_in_, callback.feature_importances_, strict=True))
    top = sorted(scores, key=scores.get, reverse=True)[:3]
    assert set(top) == {"left[0]", "left[1]", "right[0]"}
