"""A read is counted once per optimizer update of the tracked layer; sparse gradients are read.

skorch calls `on_batch_end` after validation batches too, and a model with
two optimizers may call `on_step_end()` after each: those calls come with no
new update of the tracked layer and must not count the same gradient again.
The reference is always the run that calls `on_step_end()` once per update.
"""

import numpy as np
import pytest
import torch
from torch import nn

from neural_feature_importance import (
    EmbeddingVarianceImportanceTorch,
    NotFittedError,
    VarianceImportanceTorch,
)

N_FEATURES = 5


def _data(n=256, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, N_FEATURES, generator=generator)
    return x, (2 * x[:, :1] - x[:, 1:2]).tanh()


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(N_FEATURES, 16), nn.ReLU(), nn.Linear(16, 1))


def _run(scoring, *, validation_reads=0, optimizer_kwargs=None, epochs=3):
    """Train; after each step call on_step_end() once, plus after `validation_reads` batches."""
    x, y = _data()
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, **(optimizer_kwargs or {}))
    tracker = VarianceImportanceTorch(model, scoring=scoring, normalize=None)
    tracker.on_train_begin()
    for _ in range(epochs):
        for batch in range(8):
            rows = slice(32 * batch, 32 * (batch + 1))
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x[rows]), y[rows]).backward()
            optimizer.step()
            tracker.on_step_end()
            for _ in range(validation_reads):  # a validation batch: forward, no step
                with torch.no_grad():
                    model(x[:32])
                tracker.on_step_end()
        tracker.on_epoch_end()
    return tracker


@pytest.mark.parametrize("scoring", ["taylor", "steady_taylor"])
def test_validation_batches_are_not_read_again(scoring, caplog):
    reference = _run(scoring)
    with caplog.at_level("INFO", logger="neural_feature_importance"):
        repeated = _run(scoring, validation_reads=2)
    # 24 updates, read at steps 1, 5, 9...: 6 reads, whatever the calls in between.
    assert repeated.n_gradient_steps_ == reference.n_gradient_steps_ == 6
    np.testing.assert_array_equal(repeated.raw_importances_, reference.raw_importances_)
    assert "16 call(s) of on_step_end() this epoch came with no optimizer update" in caplog.text


def test_update_every_snapshots_count_updates_not_calls():
    x, y = _data()
    results = []
    for extra in (0, 3):
        model = _model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        tracker = VarianceImportanceTorch(model, update_every=2, normalize=None)
        tracker.on_train_begin()
        for batch in range(8):
            rows = slice(32 * batch, 32 * (batch + 1))
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x[rows]), y[rows]).backward()
            optimizer.step()
            for _ in range(1 + extra):
                tracker.on_step_end()
        tracker.on_epoch_end()
        results.append(tracker)
    assert results[0].n_updates_ == results[1].n_updates_ == 4
    np.testing.assert_array_equal(results[0].raw_importances_, results[1].raw_importances_)


def test_a_fused_optimizer_is_seen_although_it_bumps_no_version_counter():
    # Fused Adam writes the parameters without bumping their version counter;
    # the global optimizer hook still sees each step.
    fused = _run("taylor", validation_reads=1, optimizer_kwargs={"fused": True})
    plain = _run("taylor", optimizer_kwargs={"fused": True})
    assert fused.n_gradient_steps_ == plain.n_gradient_steps_ == 6
    np.testing.assert_array_equal(fused.raw_importances_, plain.raw_importances_)


def test_a_second_optimizer_that_does_not_hold_the_layer_is_not_an_update():
    x, y = _data()
    results = []
    for calls_after_both in (False, True):
        model = _model()
        body = torch.optim.SGD(model[0].parameters(), lr=0.05)
        head = torch.optim.SGD(model[2].parameters(), lr=0.05)
        tracker = VarianceImportanceTorch(model, scoring="taylor", gradient_every=1, normalize=None)
        tracker.on_train_begin()
        for _ in range(2):
            for batch in range(8):
                rows = slice(32 * batch, 32 * (batch + 1))
                body.zero_grad()
                head.zero_grad()
                nn.functional.mse_loss(model(x[rows]), y[rows]).backward()
                body.step()
                tracker.on_step_end()
                head.step()
                if calls_after_both:
                    tracker.on_step_end()
            tracker.on_epoch_end()
        results.append(tracker)
    single, double = results
    assert single.n_gradient_steps_ == double.n_gradient_steps_ == 16
    np.testing.assert_array_equal(double.raw_importances_, single.raw_importances_)


def test_a_hand_written_update_without_an_optimizer_counts():
    model = _model()
    x, y = _data()
    tracker = VarianceImportanceTorch(model, scoring="taylor", gradient_every=1)
    tracker.on_train_begin()
    for batch in range(4):
        rows = slice(32 * batch, 32 * (batch + 1))
        model.zero_grad()
        nn.functional.mse_loss(model(x[rows]), y[rows]).backward()
        with torch.no_grad():
            for parameter in model.parameters():
                parameter -= 0.05 * parameter.grad
        tracker.on_step_end()
    assert tracker.n_gradient_steps_ == 4


@pytest.mark.parametrize("scoring", ["descent_taylor", "taylor", "steady_taylor", "viann"])
def test_sparse_embedding_gradients_equal_the_dense_run(scoring):
    vocab, dim = 50, 8
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, vocab, (256, 6), generator=generator)
    tokens[:, 0] = tokens[:, 1]  # a token looked up twice in a row: duplicate sparse entries
    y = (tokens < 10).float().sum(1, keepdim=True)
    results = []
    for sparse in (False, True):
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.EmbeddingBag(vocab, dim, mode="sum", sparse=sparse), nn.Linear(dim, 1)
        )
        # Plain SGD applies a sparse and a dense gradient identically.
        optimizer = torch.optim.SGD(model.parameters(), lr=0.02)
        tracker = EmbeddingVarianceImportanceTorch(model, scoring=scoring, normalize=None)
        tracker.on_train_begin()
        for _ in range(3):
            for batch in range(8):
                rows = slice(32 * batch, 32 * (batch + 1))
                optimizer.zero_grad()
                nn.functional.mse_loss(model(tokens[rows]), y[rows]).backward()
                assert model[0].weight.grad.is_sparse == sparse
                optimizer.step()
                tracker.on_step_end()
            tracker.on_epoch_end()
        results.append(tracker.raw_importances_)
    dense, sparse_scores = results
    assert np.count_nonzero(dense) > vocab // 2
    # VIANN reads weight snapshots, whose variance over 3 epochs is small against the
    # weights: it shows the float32 rounding of sparse against dense SGD (4e-4 relative);
    # so does descent_taylor's step, the difference of two weights (3e-4).
    rtol = 1e-3 if scoring in ("viann", "descent_taylor") else 1e-5
    np.testing.assert_allclose(sparse_scores, dense, rtol=rtol, atol=1e-12)


def test_sparse_adam_trains_to_the_end_with_steady_taylor():
    # The reported failure: nn.Embedding(sparse=True) with SparseAdam ran the whole
    # training, then failed in on_train_end converting the sparse gradient.
    vocab, dim = 40, 4
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, vocab - 10, (256, 5), generator=generator)  # ids 30-39 unused
    y = (tokens < 5).float().sum(1, keepdim=True)
    torch.manual_seed(0)
    embedding = nn.Embedding(vocab, dim, sparse=True)
    head = nn.Linear(dim, 1)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding, self.head = embedding, head

        def forward(self, ids):
            return self.head(self.embedding(ids).mean(1))

    model = Model()
    sparse = torch.optim.SparseAdam(list(embedding.parameters()), lr=0.05)
    dense = torch.optim.Adam(head.parameters(), lr=0.05)
    tracker = EmbeddingVarianceImportanceTorch(model, scoring="steady_taylor")
    tracker.on_train_begin()
    for _ in range(6):
        for batch in range(8):
            rows = slice(32 * batch, 32 * (batch + 1))
            sparse.zero_grad()
            dense.zero_grad()
            nn.functional.mse_loss(model(tokens[rows]), y[rows]).backward()
            sparse.step()
            dense.step()
            tracker.on_step_end()
        tracker.on_epoch_end()
    tracker.on_train_end()
    scores = tracker.feature_importances_
    assert scores.shape == (vocab,) and np.all(np.isfinite(scores))
    np.testing.assert_array_equal(scores[30:], 0.0)  # never looked up: no gradient, no score
    # The tokens that decide the target (ids 0-4) rank above the others that were used.
    assert scores[:5].min() > np.median(scores[5:30])


def test_a_tracker_dropped_without_on_train_end_leaves_no_optimizer_hook_behind():
    import gc

    from torch.optim.optimizer import _global_optimizer_post_hooks

    model = _model()
    baseline = len(_global_optimizer_post_hooks)
    first = VarianceImportanceTorch(model, scoring="taylor")
    first.on_train_begin()
    model(_data()[0][:4])  # the first forward pass: the layer is chosen, the probe is gone
    assert len(_global_optimizer_post_hooks) == baseline + 1
    del first
    gc.collect()
    second = VarianceImportanceTorch(model, scoring="taylor")
    second.on_train_begin()  # attaching removes the dropped reader's hook
    assert len(_global_optimizer_post_hooks) == baseline + 1
    with pytest.raises(NotFittedError):  # nothing trained; the hooks are removed first
        second.on_train_end()
    assert len(_global_optimizer_post_hooks) == baseline
