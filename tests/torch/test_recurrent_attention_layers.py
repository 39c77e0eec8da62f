"""Recurrent, attention and tokenizer layers that read the inputs are tracked, by default.

Planted truth: the target depends on input features 0 and 1 only, and every
model registers its head *first*, so registration order alone would track
the head (whose width matches the number of features in the LSTM case, as in
the models users reported). The hand computations compare the scores with
numpy of the recorded weights and gradients.
"""

import logging

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("sklearn")

from sklearn.metrics import roc_auc_score
from training_loops import train

from neural_feature_importance import FeatureAxis, VarianceImportanceTorch
from neural_feature_importance.core.errors import LayerSelectionError

N_FEATURES = 6
PLANTED = [0, 1]


def _sequences(n=512, steps=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, steps, N_FEATURES, generator=generator)
    y = (x[:, :, 0].mean(1) - 0.8 * x[:, :, 1].mean(1)) * 3.0
    return x, y[:, None]


def _tabular(n=512, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, N_FEATURES, generator=generator)
    y = 1.5 * x[:, 0] - x[:, 1] + 0.5 * x[:, 0] * x[:, 1]
    return x, y[:, None]


def _auc(scores):
    truth = np.isin(np.arange(len(scores)), PLANTED)
    return roc_auc_score(truth, scores)


class Recurrent(nn.Module):
    """A recurrent body and a head registered before it (width = N_FEATURES)."""

    def __init__(self, cell, **options):
        super().__init__()
        hidden = N_FEATURES
        directions = 2 if options.get("bidirectional") else 1
        self.head = nn.Linear(hidden * directions, 1)
        self.rnn = cell(N_FEATURES, hidden, batch_first=True, **options)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class AttentionFirst(nn.Module):
    """Self-attention reads the sequence; mean pooling and a head."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(N_FEATURES, 1)
        self.attention = nn.MultiheadAttention(N_FEATURES, num_heads=2, batch_first=True)

    def forward(self, x):
        out, _ = self.attention(x, x, x)
        return self.head((out + x).mean(1))


class NumericTokenizer(nn.Module):
    """The FT-Transformer's numeric tokenizer: `x_i * weight[i] + bias[i]` per feature."""

    def __init__(self, n_features, d):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_features, d) / d**0.5)
        self.bias = nn.Parameter(torch.randn(n_features, d) / d**0.5)

    def forward(self, x):
        return x[..., None] * self.weight + self.bias


class FTTransformerStyle(nn.Module):
    """Tokenizer, CLS token, one transformer block, head on the CLS token."""

    def __init__(self, d=16):
        super().__init__()
        self.head = nn.Sequential(nn.LayerNorm(d), nn.ReLU(), nn.Linear(d, 1))
        self.cont_embeddings = NumericTokenizer(N_FEATURES, d)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.1)
        self.block = nn.TransformerEncoderLayer(
            d, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True
        )

    def forward(self, x):
        tokens = self.cont_embeddings(x)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1)
        return self.head(self.block(tokens)[:, 0])


def _fit(model, x, y, epochs, scoring="steady_taylor", **options):
    torch.manual_seed(0)
    tracker = VarianceImportanceTorch(model, scoring=scoring, **options)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    train(model, tracker, x, y, optimizer=optimizer, epochs=epochs, batch_size=32, shuffle=0)
    tracker.on_train_end()
    return tracker


@pytest.mark.parametrize(
    ("cell", "options", "parameters"),
    [
        (nn.LSTM, {}, ["weight_ih_l0"]),
        (nn.GRU, {}, ["weight_ih_l0"]),
        (nn.RNN, {}, ["weight_ih_l0"]),
        (
            nn.LSTM,
            {"bidirectional": True, "num_layers": 2},
            ["weight_ih_l0", "weight_ih_l0_reverse"],
        ),
    ],
    ids=["lstm", "gru", "rnn", "bidirectional-stacked-lstm"],
)
def test_recurrent_layers_rank_the_planted_features_first(cell, options, parameters):
    torch.manual_seed(0)
    model = Recurrent(cell, **options)
    x, y = _sequences()
    tracker = _fit(model, x, y, epochs=6)
    assert tracker.tracked_layer_name_ == "rnn"
    assert [part.name for part in tracker._reader.parts or []] == (
        parameters if len(parameters) > 1 else []
    )
    assert tracker.feature_importances_.shape == (N_FEATURES,)
    assert _auc(tracker.feature_importances_) >= 0.95


def test_attention_first_ranks_the_planted_features_first():
    torch.manual_seed(0)
    model = AttentionFirst()
    x, y = _sequences()
    tracker = _fit(model, x, y, epochs=6)
    assert tracker.tracked_layer_name_ == "attention"
    assert tracker.core.view.weight_shape == (3 * N_FEATURES, N_FEATURES)  # in_proj_weight
    assert _auc(tracker.feature_importances_) >= 0.95


def test_ft_transformer_style_tokenizer_is_tracked_per_feature(caplog):
    torch.manual_seed(0)
    model = FTTransformerStyle()
    x, y = _tabular()
    with caplog.at_level(logging.INFO, logger="neural_feature_importance"):
        tracker = _fit(model, x, y, epochs=8)
    assert tracker.tracked_layer_name_ == "cont_embeddings"
    assert list(tracker.feature_names_in_) == [f"x{i}" for i in range(N_FEATURES)]
    assert _auc(tracker.feature_importances_) >= 0.95
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # Named explicitly, the tokenizer is tracked the same way (its weight has a row per feature).
    torch.manual_seed(0)
    named = _fit(FTTransformerStyle(), x, y, epochs=8, layer="cont_embeddings")
    np.testing.assert_allclose(named.raw_importances_, tracker.raw_importances_, rtol=1e-6)


def _recorded_taylor_run(model, parts, x, y, steps=5):
    """Train with gradient_every=1, recording each step's gradient and weight of `parts`."""
    tracker = VarianceImportanceTorch(model, layer="rnn", scoring="taylor", gradient_every=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    tracker.on_train_begin()
    terms, forward_only = [], []
    for step in range(steps):
        rows = slice(32 * step, 32 * (step + 1))
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x[rows]), y[rows]).backward()
        optimizer.step()
        tracker.on_step_end()
        grads = np.concatenate([p.grad.numpy() for p in parts], axis=0)
        weights = np.concatenate([p.detach().numpy() for p in parts], axis=0)
        terms.append(np.abs((grads.astype(np.float64) * weights).sum(axis=0)))
        forward = parts[0].grad.numpy().astype(np.float64) * parts[0].detach().numpy()
        forward_only.append(np.abs(forward.sum(axis=0)))
    tracker.on_epoch_end()
    return tracker, np.mean(terms, axis=0), np.mean(forward_only, axis=0)


def test_bidirectional_taylor_equals_numpy_of_both_directions():
    torch.manual_seed(0)
    model = Recurrent(nn.LSTM, bidirectional=True)
    x, y = _sequences(n=160)
    parts = [model.rnn.weight_ih_l0, model.rnn.weight_ih_l0_reverse]
    tracker, expected, forward_only = _recorded_taylor_run(model, parts, x, y)
    np.testing.assert_allclose(tracker.raw_importances_, expected, rtol=1e-5)
    # The forward direction alone scores otherwise: both are read, as one weight.
    assert np.abs(forward_only - expected).max() > 0.05 * np.abs(expected).max()


def test_viann_of_an_lstm_equals_numpy_of_its_input_weight_snapshots():
    torch.manual_seed(0)
    model = Recurrent(nn.LSTM)
    x, y = _sequences(n=96)
    tracker = VarianceImportanceTorch(model, layer="rnn", scoring="viann")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    snapshots = []
    tracker.on_train_begin()
    for _ in range(4):
        train(model, [], x, y, optimizer=optimizer, epochs=1, batch_size=32, begin=False)
        tracker.on_epoch_end()
        snapshots.append(model.rnn.weight_ih_l0.detach().numpy().astype(np.float64).copy())
    stacked = np.stack(snapshots)  # (epochs, 4 * hidden, features)
    expected = (stacked.var(axis=0, ddof=1) * np.abs(stacked[-1])).sum(axis=0)
    np.testing.assert_allclose(tracker.raw_importances_, expected, rtol=1e-6)


class CrossAttention(nn.Module):
    """Learned queries attend over the input: only the key and value read it."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(N_FEATURES, 1)
        self.queries = nn.Parameter(torch.randn(1, 2, N_FEATURES))
        self.attention = nn.MultiheadAttention(N_FEATURES, num_heads=2, batch_first=True)

    def forward(self, x):
        out, _ = self.attention(self.queries.expand(len(x), -1, -1), x, x)
        return self.head(out.mean(1))


def test_cross_attention_tracks_the_key_and_value_rows_only():
    torch.manual_seed(0)
    model = CrossAttention()
    x, y = _sequences(n=64)
    tracker = _fit(model, x, y, epochs=2, scoring="taylor")
    assert tracker.tracked_layer_name_ == "attention"
    assert [part.rows for part in tracker._reader.parts] == [
        (N_FEATURES, N_FEATURES),
        (2 * N_FEATURES, N_FEATURES),
    ]
    assert tracker.core.view.weight_shape == (2 * N_FEATURES, N_FEATURES)


class MatrixFirst(nn.Module):
    """A custom module multiplies the inputs by a parameter the trackers cannot map."""

    def __init__(self, shape, transpose):
        super().__init__()
        self.head = nn.Linear(8, 1)
        self.mix = Mix(shape, transpose)

    def forward(self, x):
        return self.head(torch.relu(self.mix(x)))


class Mix(nn.Module):
    def __init__(self, shape, transpose):
        super().__init__()
        self.transpose = transpose
        self.w = nn.Parameter(torch.randn(*shape) * 0.3)

    def forward(self, x):
        return x @ (self.w.T if self.transpose else self.w)


def test_an_input_read_by_an_unmappable_weight_raises_before_training():
    model = MatrixFirst((8, N_FEATURES), transpose=True)  # (out, in): first axis is not the input
    tracker = VarianceImportanceTorch(model, scoring="steady_taylor")
    tracker.on_train_begin()
    with pytest.raises(LayerSelectionError) as raised:
        model(torch.randn(4, N_FEATURES))
    message = str(raised.value)
    assert "is first read by 'mix' (Mix, weights w (8, 6))" in message
    assert "layer=FeatureAxis('mix.<parameter>', axis=<feature axis>)" in message


def test_feature_axis_tracks_any_parameter():
    torch.manual_seed(0)
    model = MatrixFirst((8, N_FEATURES), transpose=True)
    x, y = _tabular()
    tracker = _fit(model, x, y, epochs=6, layer=FeatureAxis("mix.w", axis=1))
    assert tracker.tracked_layer_name_ == "mix.w"
    assert tracker.core.view.weight_shape == (8, N_FEATURES)
    assert _auc(tracker.feature_importances_) >= 0.95


def test_explicit_layer_with_two_matrices_names_the_remedy():
    model = MatrixFirst((N_FEATURES, 8), transpose=False)
    model.mix.register_parameter("v", nn.Parameter(torch.zeros(3, 3)))
    with pytest.raises(LayerSelectionError) as raised:
        VarianceImportanceTorch(model, layer="mix")
    message = str(raised.value)
    assert (
        "whose weights (w (6, 8), v (3, 3)) do not say which axis is the input feature" in message
    )
    assert "layer=FeatureAxis('mix.<parameter>', axis=<feature axis>)" in message


def test_a_weight_named_as_a_tokenizer_with_another_width_raises_at_its_first_call():
    # An (out, in) weight used as x @ w.T: its first axis (8) is not the input's 6 features.
    model = MatrixFirst((8, N_FEATURES), transpose=True)
    tracker = VarianceImportanceTorch(model, layer="mix", scoring="taylor")
    tracker.on_train_begin()
    with pytest.raises(LayerSelectionError) as raised:
        model(torch.randn(4, N_FEATURES))
    assert "'mix' (Mix) is tracked as a per-feature weight with 8 features" in str(raised.value)
    assert "but its input has shape (4, 6)" in str(raised.value)
    # Declared with its feature axis, the same weight is tracked (no first-call check).
    declared = VarianceImportanceTorch(model, layer=FeatureAxis("mix.w", axis=1))
    declared.on_train_begin()
    model(torch.randn(4, N_FEATURES))
    assert declared.core.view.weight_shape == (8, N_FEATURES)


def test_normalisation_first_is_a_note_and_a_target_key_no_alarm(caplog):
    class DictModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(8, 1)
            self.norm = nn.BatchNorm1d(N_FEATURES)
            self.body = nn.Linear(N_FEATURES, 8)

        def forward(self, batch):
            return self.head(torch.relu(self.body(self.norm(batch["x"]))))

    model = DictModel()
    tracker = VarianceImportanceTorch(model, scoring="taylor")
    tracker.on_train_begin()
    with caplog.at_level(logging.INFO, logger="neural_feature_importance"):
        model({"x": torch.randn(8, N_FEATURES), "y": torch.randn(8)})
    assert tracker.tracked_layer_name_ == "body"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    text = caplog.text
    assert "reaches 'body' after 'norm'" in text
    assert "input 1 (args[0]['y'], shape (8,)) is read by no layer (a target)" in text


def test_lightning_tracks_an_lstm_first_model():
    pytest.importorskip("lightning")
    from lightning.pytorch import LightningModule, Trainer

    from neural_feature_importance import VarianceImportanceLightning

    class Regressor(LightningModule):
        def __init__(self):
            super().__init__()
            self.net = Recurrent(nn.LSTM)

        def training_step(self, batch, batch_idx):
            inputs, targets = batch
            return nn.functional.mse_loss(self.net(inputs), targets)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=3e-3)

    torch.manual_seed(0)
    x, y = _sequences()
    dataset = torch.utils.data.TensorDataset(x, y)
    order = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=True, generator=order)
    callback = VarianceImportanceLightning(scoring="steady_taylor")
    trainer = Trainer(
        max_epochs=6,
        accelerator="cpu",
        callbacks=[callback],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(Regressor(), loader)
    assert callback.tracker.tracked_layer_name_ == "net.rnn"
    assert _auc(callback.feature_importances_) >= 0.95


class SeparateProjections(nn.Module):
    """Attention whose keys and values come from a second input of another width."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(N_FEATURES, 1)
        self.attention = nn.MultiheadAttention(N_FEATURES, num_heads=2, kdim=3, vdim=3)

    def forward(self, x, context):
        out, _ = self.attention(x, context, context)
        return self.head(out.mean(0))


def test_separate_projections_track_the_argument_that_is_the_input(caplog):
    model = SeparateProjections()
    tracker = VarianceImportanceTorch(model, scoring="taylor")
    tracker.on_train_begin()
    with caplog.at_level(logging.WARNING, logger="neural_feature_importance"):
        model(torch.randn(4, 2, N_FEATURES), torch.randn(5, 2, 3))
    # The second input's projections are not tracked: the warning says so, and how to.
    assert (
        "input 1 (args[1], shape (5, 2, 3)) is read by 'attention' as its key/value, whose "
        "projections are not tracked (the tracked ones read input 0" in caplog.text
    )
    assert "layer=FeatureAxis('attention.<projection weight>', axis=1)" in caplog.text
    assert "concatenated" not in caplog.text
    # The two inputs reach one layer through different projections: the query's is tracked.
    assert tracker.tracked_layer_name_ == "attention"
    assert [part.name for part in tracker._reader.parts or []] == []
    assert tracker._reader.param is model.attention.q_proj_weight
    # Named as a whole, its projections read inputs of different widths: refused at once.
    with pytest.raises(LayerSelectionError, match=r"reads inputs of different widths through"):
        VarianceImportanceTorch(model, layer="attention")
