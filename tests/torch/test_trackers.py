import numpy as np
import pytest
import torch
from torch import nn
from training_loops import train

from neural_feature_importance import (
    ConvVarianceImportanceTorch,
    EmbeddingVarianceImportanceTorch,
    NonFiniteWeightsError,
    NotFittedError,
    VarianceImportanceTorch,
)


def _record(tracker, param, steps=5, scale=0.1):
    """Drive a tracker with known parameter changes; return the recorded snapshots."""
    generator = torch.Generator().manual_seed(1)
    tracker.on_train_begin()
    snapshots = []
    for _ in range(steps):
        with torch.no_grad():
            param.add_(scale * torch.randn(param.shape, generator=generator))
        tracker.on_epoch_end()
        snapshots.append(param.detach().double().numpy().copy())
    return np.stack(snapshots)


def test_linear_scores_one_per_input_feature_by_hand():
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    tracker = VarianceImportanceTorch(model, scoring="viann", normalize=None)
    snaps = _record(tracker, model[0].weight)
    variance = np.var(snaps, axis=0, ddof=1)  # (out=16, in=4)
    expected = (variance * np.abs(snaps[-1])).sum(axis=0)
    assert tracker.feature_importances_.shape == (4,)
    np.testing.assert_allclose(tracker.raw_importances_, expected, rtol=1e-12)
    np.testing.assert_allclose(tracker.variance_, variance, rtol=1e-12)


def test_conv_heatmap_by_hand():
    model = nn.Sequential(nn.Conv2d(2, 5, kernel_size=3), nn.ReLU(), nn.Flatten())
    tracker = ConvVarianceImportanceTorch(model, scoring="viann", normalize=None)
    snaps = _record(tracker, model[0].weight)  # (out=5, in=2, 3, 3)
    weighted = np.var(snaps, axis=0, ddof=1) * np.abs(snaps[-1])
    expected_heatmap = weighted.sum(axis=0).transpose(1, 2, 0)  # (kh, kw, in)
    np.testing.assert_allclose(tracker.heatmap_, expected_heatmap, rtol=1e-12)
    np.testing.assert_allclose(
        tracker.raw_filter_importances_, weighted.sum(axis=(1, 2, 3)), rtol=1e-12
    )
    assert tracker.feature_importances_.shape == (18,)


def test_embedding_scores_by_hand():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 2))
    tracker = EmbeddingVarianceImportanceTorch(model, scoring="viann", normalize=None)
    snaps = _record(tracker, model[0].weight)
    np.testing.assert_allclose(
        tracker.raw_importances_, np.var(snaps, axis=0, ddof=1).sum(axis=1), rtol=1e-12
    )


def test_statistics_stay_on_parameter_device_and_last_is_a_copy():
    model = nn.Sequential(nn.Linear(3, 2))
    tracker = VarianceImportanceTorch(model, scoring="viann")
    _record(tracker, model[0].weight, steps=3)
    state = tracker.state_dict()
    assert state["last"].device == model[0].weight.device
    assert state["last"].dtype == torch.float64
    assert state["last"].data_ptr() != model[0].weight.data_ptr()
    before = tracker.raw_importances_
    with torch.no_grad():
        model[0].weight.mul_(100.0)  # training goes on after the last snapshot
    np.testing.assert_array_equal(tracker.raw_importances_, before)


def test_float32_statistics():
    model = nn.Sequential(nn.Linear(3, 2))
    tracker = VarianceImportanceTorch(model, scoring="viann", dtype=torch.float32, normalize=None)
    snaps = _record(tracker, model[0].weight)
    assert tracker.state_dict()["moments"]["m2"].dtype == torch.float32
    expected = (np.var(snaps, axis=0, ddof=1) * np.abs(snaps[-1])).sum(axis=0)
    np.testing.assert_allclose(tracker.raw_importances_, expected, rtol=1e-4)


def test_update_every_takes_snapshots_at_steps():
    model = nn.Sequential(nn.Linear(3, 2))
    tracker = VarianceImportanceTorch(model, scoring="viann", update_every=2, normalize=None)
    tracker.on_train_begin()
    snapshots = []
    for step in range(1, 9):
        with torch.no_grad():
            model[0].weight.add_(0.01 * step)
        tracker.on_step_end()
        if step % 2 == 0:
            snapshots.append(model[0].weight.detach().double().numpy().copy())
    tracker.on_epoch_end()  # per-step mode: the epoch end only checks
    assert tracker.n_updates_ == 4
    snaps = np.stack(snapshots)
    expected = (np.var(snaps, axis=0, ddof=1) * np.abs(snaps[-1])).sum(axis=0)
    np.testing.assert_allclose(tracker.raw_importances_, expected, rtol=1e-12)


def test_planted_truth_mlp_ranks_informative_features_first():
    generator = torch.Generator().manual_seed(0)
    n, d, k = 512, 10, 3
    x = torch.randn(n, d, generator=generator)
    y = (
        x[:, 0] * 2.0
        - 1.5 * x[:, 1]
        + torch.sin(2 * x[:, 2])
        + 0.05 * torch.randn(n, generator=generator)
    )
    model = nn.Sequential(nn.Linear(d, 32), nn.Tanh(), nn.Linear(32, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    tracker = VarianceImportanceTorch(model)
    train(
        model,
        tracker,
        x,
        y,
        optimizer=optimizer,
        epochs=15,
        batch_size=32,
        loss=lambda output, target: nn.functional.mse_loss(output.squeeze(1), target),
        shuffle=generator,  # the data's generator, drawn on
    )
    scores = tracker.on_train_end()
    assert set(np.argsort(scores)[::-1][:k]) == {0, 1, 2}
    assert scores[:k].min() > 2 * scores[k:].max()


def test_errors_are_clear():
    model = nn.Sequential(nn.Linear(3, 2))
    tracker = VarianceImportanceTorch(model, scoring="viann")
    with pytest.raises(NotFittedError, match="0 weight snapshot"):
        _ = tracker.feature_importances_
    tracker.on_train_begin()
    tracker.on_epoch_end()
    with pytest.raises(NotFittedError, match="a variance needs at least 2"):
        tracker.on_train_end()
    with pytest.raises(ValueError, match="update_every=0"):
        VarianceImportanceTorch(model, update_every=0).on_train_begin()


def test_nan_weights_name_layer_and_update():
    model = nn.Sequential()
    model.add_module("inputs", nn.Linear(3, 2))
    tracker = VarianceImportanceTorch(model, scoring="viann")
    tracker.on_train_begin()
    tracker.on_epoch_end()
    with torch.no_grad():
        model.inputs.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteWeightsError, match="layer 'inputs': weight update 2 contains NaN"):
        tracker.on_epoch_end()


def test_nan_in_per_step_mode_is_caught_at_epoch_end():
    model = nn.Sequential(nn.Linear(3, 2))
    tracker = VarianceImportanceTorch(model, scoring="viann", update_every=1)
    tracker.on_train_begin()
    for step in range(4):
        with torch.no_grad():  # a hand-written update at every step
            model[0].weight.add_(0.01)
            if step == 2:
                model[0].weight[1, 1] = float("inf")
        tracker.on_step_end()
    with pytest.raises(
        NonFiniteWeightsError, match="layer '0': one of updates 1-4 contained NaN or Inf"
    ):
        tracker.on_epoch_end()


def test_lazy_linear_is_tracked_after_first_forward():
    model = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.Linear(4, 1))
    tracker = VarianceImportanceTorch(model, scoring="viann", normalize=None)
    tracker.on_train_begin()
    model(torch.randn(2, 6))  # materialises (4, 6)
    for _ in range(3):
        with torch.no_grad():
            model[0].weight.add_(torch.randn(4, 6))
        tracker.on_epoch_end()
    assert tracker.raw_importances_.shape == (6,)
    assert tracker.layer_name == "0"


def test_reuse_resets_between_runs():
    model = nn.Sequential(nn.Linear(3, 2))
    tracker = VarianceImportanceTorch(model, scoring="viann")
    _record(tracker, model[0].weight, steps=4)
    _record(tracker, model[0].weight, steps=3)
    assert tracker.n_updates_ == 3


@pytest.mark.parametrize("every", [1, 4])
def test_descent_taylor_equals_numpy_of_the_read_steps_weights_before_and_after(every):
    # Adam's steps do not follow the gradient: the descent is not lr * |g|^2. The
    # tracker holds the weight after the step before each read and forms the
    # step's difference in that copy; numpy sees the weights before and after.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    tracker = VarianceImportanceTorch(model, normalize=None, gradient_every=every)
    assert tracker.scoring == "descent_taylor"
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(160, 6, generator=generator)
    y = (x[:, 0] - x[:, 1] > 0).long()
    tracker.on_train_begin()
    taylor, descents, norms = [], [], []
    for epoch in range(3):
        for step, rows in enumerate(torch.arange(160).split(16)):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[rows]), y[rows]).backward()
            before = model[0].weight.detach().double().clone()
            optimizer.step()
            tracker.on_step_end()
            if (10 * epoch + step) % every == 0:  # steps 1, 1 + every, ... are read
                g = model[0].weight.grad.double()
                after = model[0].weight.detach().double()
                taylor.append((g * after).sum(0).abs().numpy())
                descents.append((g * (after - before)).sum(0).abs().numpy())
                norms.append((g * g).sum(0).sqrt().numpy())
        tracker.on_epoch_end()
    tracker.on_train_end()
    expected = np.mean(taylor, 0) * np.sum(descents, 0) / np.sum(norms, 0)
    assert tracker.n_gradient_steps_ == len(taylor) == -(-30 // every)
    # The step is a difference of two float32 weights: its rounding sets the tolerance.
    np.testing.assert_allclose(tracker.raw_importances_, expected, rtol=1e-4)
