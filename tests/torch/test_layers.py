import pytest
import torch
from torch import nn

from neural_feature_importance import (
    EmbeddingVarianceImportanceTorch,
    LayerSelectionError,
    VarianceImportanceTorch,
)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm1d(5)
        self.dropout = nn.Dropout(0.1)
        self.frozen = nn.Linear(5, 5)
        self.frozen.requires_grad_(False)
        self.hidden = nn.Linear(5, 8)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(torch.relu(self.hidden(self.frozen(self.dropout(self.norm(x))))))


def test_default_skips_normalisation_dropout_and_frozen_layers():
    tracker = VarianceImportanceTorch(TwoInputs())
    tracker.on_train_begin()
    assert tracker.tracked_layer_name_ == "hidden"


def test_layer_by_name_and_by_module():
    model = TwoInputs()
    by_name = VarianceImportanceTorch(model, layer="head")
    by_name.on_train_begin()
    assert by_name.tracked_layer_name_ == "head"
    by_module = VarianceImportanceTorch(model, layer=model.head)
    by_module.on_train_begin()
    assert by_module.tracked_layer_name_ == "head"


def test_unknown_name_lists_candidates():
    with pytest.raises(LayerSelectionError, match=r"layer='fc1' is not a submodule name") as info:
        VarianceImportanceTorch(TwoInputs(), layer="fc1").on_train_begin()
    assert "hidden (Linear: dense, trainable)" in str(info.value)
    assert "frozen (Linear: dense, frozen)" in str(info.value)


def test_batchnorm_choice_is_refused_with_reason():
    with pytest.raises(
        LayerSelectionError, match="'norm' is a BatchNorm1d, which has no per-input weight"
    ):
        VarianceImportanceTorch(TwoInputs(), layer="norm").on_train_begin()


def test_frozen_choice_is_refused():
    with pytest.raises(LayerSelectionError, match="'frozen' is frozen"):
        VarianceImportanceTorch(TwoInputs(), layer="frozen").on_train_begin()


def test_no_trainable_layer():
    model = nn.Sequential(nn.BatchNorm1d(3), nn.ReLU())
    with pytest.raises(
        LayerSelectionError,
        match=r"no trainable nn\.Linear, nn\.Conv1d/2d/3d, nn\.Embedding, recurrent or attention",
    ):
        VarianceImportanceTorch(model).on_train_begin()


def test_kind_mismatch_names_the_right_tracker():
    model = nn.Sequential(nn.Embedding(20, 4), nn.Flatten(), nn.Linear(8, 1))
    with pytest.raises(LayerSelectionError, match="track it with EmbeddingVarianceImportanceTorch"):
        VarianceImportanceTorch(model).on_train_begin()
    EmbeddingVarianceImportanceTorch(model).on_train_begin()
    dense = VarianceImportanceTorch(model, layer="2")
    dense.on_train_begin()
    assert dense.tracked_layer_name_ == "2"


def test_an_explicit_layer_is_tracked_as_its_kind():
    # VarianceImportanceTorch(layer=<a Conv1d>) tracks the convolution as the conv tracker does.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Flatten(), nn.Linear(18, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    tracker = VarianceImportanceTorch(model, layer="0", scoring="taylor", gradient_every=1)
    assert tracker.layer_kind == "conv" and tracker.core.kind == "conv"
    tracker.on_train_begin()
    for _ in range(6):
        x = torch.randn(16, 2, 8)
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), x[:, 0, :3].sum(1, keepdim=True)).backward()
        optimizer.step()
        tracker.on_step_end()
    tracker.on_epoch_end()
    scores = tracker.finalize(log=False)  # the original's name, on the core it holds
    assert tracker.tracked_layer_ is model[0] and tracker.tracked_layer_name_ == "0"
    assert tracker.heatmap_.shape == (3, 2)  # (kernel, in_channels)
    assert (tracker.heatmap_.ravel() == scores).all()
    # Channel 0 at the first three positions drives the target: its column ranks first.
    assert tracker.heatmap_[:, 0].sum() > tracker.heatmap_[:, 1].sum()
    dense = VarianceImportanceTorch(model, layer="2")
    with pytest.raises(AttributeError, match="heatmap_ exists for convolutions"):
        _ = dense.heatmap_
