"""Several input layers are all tracked and give one combined result.

Two planted problems: two Linear branches fed by two inputs (x[:, 0], x[:, 1]
and extra[:, 0] decide the target), and an Embedding for a categorical input
beside a Linear for the numeric ones (the city and income decide the
target). The layers are found at the first forward pass, or named with
``layer=[...]``.
"""

import logging

import numpy as np
import pytest
import torch
from torch import nn
from training_loops import train

from neural_feature_importance import (
    StateDictError,
    VarianceImportanceBase,
    VarianceImportanceTorch,
)

N = 768


def _branch_data():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(N, 6, generator=generator)
    extra = torch.randn(N, 3, generator=generator)
    y = 2 * x[:, 0] - 1.5 * x[:, 1] + 2 * extra[:, 0]
    return (x, extra), y.unsqueeze(1)


def _embedded_data():
    rng = np.random.default_rng(0)
    city = rng.integers(0, 5, N)
    numeric = rng.normal(size=(N, 3))  # income, age, tenure: only income matters
    y = np.array([2.0, -1.5, 1.0, -0.5, 0.0])[city] + 1.5 * numeric[:, 0]
    return (
        (torch.tensor(city), torch.tensor(numeric, dtype=torch.float32)),
        torch.tensor(y, dtype=torch.float32).unsqueeze(1),
    )


class TwoBranches(nn.Module):
    def __init__(self):
        super().__init__()
        self.left = nn.Linear(6, 16)
        self.right = nn.Linear(3, 16)
        self.head = nn.Linear(32, 1)

    def forward(self, x, extra):
        return self.head(torch.tanh(torch.cat([self.left(x), self.right(extra)], dim=1)))


class EmbeddedAndNumeric(nn.Module):
    def __init__(self):
        super().__init__()
        self.city = nn.Embedding(5, 4)
        self.numeric = nn.Linear(3, 12)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(16, 1))

    def forward(self, codes, numeric):
        return self.head(torch.cat([self.city(codes), self.numeric(numeric)], dim=1))


def _fit(model, tracker, data, epochs=12, start=0, begin=True, optimizer=None):
    inputs, y = data
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=0.01)
    train(
        model,
        tracker,
        inputs,
        y,
        optimizer=optimizer,
        epochs=epochs,
        batch_size=64,
        shuffle=lambda epoch: epoch,
        initial_epoch=start,
        begin=begin,
    )
    return tracker


def _top(tracker, k):
    names, scores = tracker.feature_names_in_, tracker.feature_importances_
    return {str(names[i]) for i in np.argsort(scores)[::-1][:k]}


@pytest.mark.parametrize("scoring", ["viann", "taylor", "steady_taylor"])
def test_two_branches_are_both_tracked_as_one_result(scoring, caplog):
    torch.manual_seed(0)
    model = TwoBranches()
    tracker = VarianceImportanceTorch(model, scoring=scoring)
    with caplog.at_level(logging.INFO, logger="neural_feature_importance"):
        _fit(model, tracker, _branch_data())
    assert "tracks the 2 layers that read the model's inputs" in caplog.text
    assert list(tracker.layers_) == ["left", "right"]
    expected = [f"left[{i}]" for i in range(6)] + [f"right[{i}]" for i in range(3)]
    assert tracker.feature_names_in_.tolist() == expected
    assert _top(tracker, 3) == {"left[0]", "left[1]", "right[0]"}
    # The combined raw scores are the two layers' own, side by side.
    np.testing.assert_array_equal(
        tracker.raw_importances_,
        np.concatenate([m.raw_importances_ for m in tracker.layers_.values()]),
    )


@pytest.mark.parametrize("scoring", ["taylor", "steady_taylor"])
def test_embedding_counts_as_one_column_beside_numeric_inputs(scoring):
    torch.manual_seed(0)
    model = EmbeddedAndNumeric()
    names = ["city", "income", "age", "tenure"]
    with pytest.raises(ValueError, match=r"feature_names has 3 names, but layer 'city, numeric'"):
        VarianceImportanceTorch(model, layer=["city", "numeric"], feature_names=names[:3])
    tracker = VarianceImportanceTorch(
        model, layer=["city", "numeric"], scoring=scoring, feature_names=names
    )
    _fit(model, tracker, _embedded_data())
    assert list(tracker.layers_) == ["city", "numeric"]
    assert tracker.feature_names_in_.tolist() == ["city", "income", "age", "tenure"]
    assert _top(tracker, 2) == {"city", "income"}
    city = tracker.layers_["city"]
    assert tracker.raw_importances_[0] == pytest.approx(city.raw_importances_.sum(), rel=1e-12)
    frame = tracker.importances_.to_frame()
    assert set(frame["feature"][:2]) == {"city", "income"}


def test_an_explicit_layer_list_with_groups():
    torch.manual_seed(0)
    model = TwoBranches()
    tracker = VarianceImportanceTorch(
        model, layer=["left", "right"], scoring="taylor", groups={"extra": [6, 7, 8]}
    )
    _fit(model, tracker, _branch_data(), epochs=4)
    names = tracker.feature_names_in_.tolist()
    assert names == [f"left[{i}]" for i in range(6)] + ["extra"]
    per_input = np.concatenate([m.raw_importances_ for m in tracker.layers_.values()])
    np.testing.assert_allclose(tracker.raw_importances_[-1], per_input[6:].sum(), rtol=1e-12)


def test_combined_state_resumes_exactly(tmp_path):
    data = _branch_data()
    torch.manual_seed(0)
    whole_model = TwoBranches()
    whole = _fit(whole_model, VarianceImportanceTorch(whole_model), data, epochs=6)

    torch.manual_seed(0)
    model = TwoBranches()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    _fit(model, VarianceImportanceTorch(model), data, epochs=3, optimizer=optimizer).save_state(
        tmp_path / "state.safetensors"
    )
    resumed = VarianceImportanceTorch(model)
    resumed.load_state(tmp_path / "state.safetensors")
    resumed.on_train_begin()
    _fit(model, resumed, data, epochs=6, start=3, begin=False, optimizer=optimizer)
    assert list(resumed.layers_) == ["left", "right"]
    assert resumed.n_updates_ == whole.n_updates_ == 6
    np.testing.assert_array_equal(resumed.raw_importances_, whole.raw_importances_)


@pytest.mark.parametrize("scoring", ["viann", "taylor"])
def test_a_core_tracker_restored_from_a_combined_state_reads_the_same_result(scoring):
    """What Lightning's ddp_spawn hands back: the scores read from the state alone, no model."""
    torch.manual_seed(0)
    model = EmbeddedAndNumeric()
    names = ["city", "income", "age", "tenure"]
    tracker = VarianceImportanceTorch(
        model, layer=["city", "numeric"], scoring=scoring, feature_names=names
    )
    _fit(model, tracker, _embedded_data(), epochs=4)
    restored = VarianceImportanceBase.from_state(tracker.state_dict(), feature_names=names)
    assert restored.scoring == scoring
    assert list(restored.layers_) == ["city", "numeric"]
    assert [layer.kind for layer in restored.layers_.values()] == ["embedding", "dense"]
    assert restored.feature_names_in_.tolist() == names
    np.testing.assert_allclose(restored.raw_importances_, tracker.raw_importances_, rtol=1e-12)
    with pytest.raises(StateDictError, match="takes a tracker state"):
        VarianceImportanceBase.from_state({"kind": "lstm"})


@pytest.mark.parametrize("scoring", ["viann", "taylor"])
def test_trackers_of_several_layers_merge_layer_by_layer(scoring):
    # A whole run against its first and second halves, each tracked by its own
    # tracker and merged (the later stream into the earlier one).
    inputs, y = _branch_data()
    torch.manual_seed(0)
    model = TwoBranches()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    whole, first, second = (VarianceImportanceTorch(model, scoring=scoring) for _ in range(3))
    for epoch in range(6):
        half = first if epoch < 3 else second
        if epoch in (0, 3):
            half.on_train_begin()
        if epoch == 0:
            whole.on_train_begin()
        for rows in torch.randperm(N, generator=torch.Generator().manual_seed(epoch)).split(64):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(*(t[rows] for t in inputs)), y[rows]).backward()
            optimizer.step()
            whole.on_step_end()
            half.on_step_end()
        whole.on_epoch_end()
        half.on_epoch_end()
    first.merge(second)
    assert list(first.layers_) == ["left", "right"]
    if scoring == "viann":
        assert first.n_updates_ == whole.n_updates_ == 6
    np.testing.assert_allclose(first.raw_importances_, whole.raw_importances_, rtol=1e-10)
    single = VarianceImportanceTorch(model, layer="left")
    single.on_train_begin()
    with pytest.raises(ValueError, match=r"cannot merge a tracker of one layer \('left'\)"):
        first.merge(single)
    with pytest.raises(ValueError, match=r"cannot merge a tracker of the layers"):
        single.merge(first)


def test_layer_list_errors_name_the_entry():
    model = TwoBranches()
    with pytest.raises(ValueError, match="names 'left' twice"):
        VarianceImportanceTorch(model, layer=["left", "left"])
    with pytest.raises(ValueError, match="layer='nope' is not a submodule name"):
        VarianceImportanceTorch(model, layer=["left", "nope"])
    state = {"format_version": 1, "layer_names": "left\nright", "layers": {}}
    with pytest.raises(StateDictError, match=r"tracks one layer \('left'\)"):
        VarianceImportanceTorch(model, layer="left").load_state_dict(state)
