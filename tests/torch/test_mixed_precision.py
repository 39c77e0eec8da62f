"""Gradient modes under fp16 mixed precision: overflowed steps are skipped, not absorbed.

``torch.amp.GradScaler`` starts with a large loss scale and lowers it after
every step whose gradients overflowed, skipping that optimizer step. The
tracker reads ``param.grad`` after ``scaler.step()`` (unscaled) and skips every
read whose gradient holds Inf or NaN, so that taylor equals a hand computation
over the finite reads. (The scaler may also skip a step because *another*
layer overflowed; the tracked layer's finite gradient at the unchanged weights
is then still read.)
"""

import numpy as np
import pytest
import torch
from torch import nn

from neural_feature_importance import VarianceImportanceTorch

N_FEATURES = 8
INFORMATIVE = {0, 1}


def _data():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, N_FEATURES, generator=generator)
    y = (3 * x[:, 0] - 2 * x[:, 1]).unsqueeze(1)
    return x, y


def _model():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(N_FEATURES, 16), nn.Tanh(), nn.Linear(16, 1))


def test_grad_scaler_overflow_steps_are_not_read_and_taylor_equals_hand_computation(caplog):
    x, y = _data()
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    # A large initial scale overflows the first fp16 steps, as real AMP runs often do.
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**20)
    tracker = VarianceImportanceTorch(model, scoring="taylor", gradient_every=1, normalize=None)
    tracker.on_train_begin()
    hand_sum, hand_steps, skipped_by_scaler = np.zeros(N_FEATURES), 0, 0
    with caplog.at_level("INFO", logger="neural_feature_importance"):
        for _ in range(12):
            for batch in range(8):
                rows = slice(32 * batch, 32 * (batch + 1))
                optimizer.zero_grad()
                with torch.autocast("cpu", dtype=torch.float16):
                    loss = nn.functional.mse_loss(model(x[rows]), y[rows])
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                tracker.on_step_end()
                scale = scaler.get_scale()
                scaler.update()
                if scaler.get_scale() < scale:
                    # The scaler found Inf/NaN in some gradient and skipped the step:
                    # the layer was not updated, so the read is not counted.
                    skipped_by_scaler += 1
                    continue
                grad = model[0].weight.grad.double()
                weight = model[0].weight.detach().double()
                hand_sum += (grad * weight).sum(dim=0).abs().numpy()
                hand_steps += 1
            tracker.on_epoch_end()
    assert skipped_by_scaler >= 3
    assert tracker.n_gradient_steps_ == hand_steps == 96 - skipped_by_scaler
    assert tracker.skipped_gradient_steps_ == 0
    np.testing.assert_allclose(tracker.raw_importances_, hand_sum / hand_steps, rtol=1e-5)
    scores = tracker.feature_importances_
    assert np.all(np.isfinite(scores))
    assert set(np.argsort(scores)[::-1][:2]) == INFORMATIVE
    assert "a step the loss scaler skipped" in caplog.text


def test_lightning_16_mixed_with_a_grad_scaler_does_not_read_overflowed_steps(tmp_path):
    pytest.importorskip("lightning")
    from lightning.pytorch import LightningModule, Trainer
    from lightning.pytorch.plugins import MixedPrecision

    from neural_feature_importance import VarianceImportanceLightning

    class Regressor(LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _model()

        def training_step(self, batch, batch_idx):
            inputs, targets = batch
            return nn.functional.mse_loss(self.net(inputs), targets)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.01)

    x, y = _data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    # Trainer(precision="16-mixed") on a CPU falls back to bf16 (no scaler); the plugin
    # is what "16-mixed" is on a GPU: fp16 autocast with a GradScaler.
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**20)
    taylor = VarianceImportanceLightning(scoring="taylor", gradient_every=1)
    trainer = Trainer(
        max_epochs=12,
        accelerator="cpu",
        plugins=[MixedPrecision("16-mixed", device="cpu", scaler=scaler)],
        callbacks=[taylor],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Regressor(), loader)
    # The scale halves once per skipped step from 2**20; what is left says how many.
    halvings = round(np.log2(2.0**20 / scaler.get_scale()))
    # A skipped step updates no weight, so its read is not counted (nor reported as NaN).
    assert halvings >= 3
    assert taylor.tracker.n_gradient_steps_ == 12 * 8 - halvings
    assert taylor.tracker.skipped_gradient_steps_ == 0
    scores = taylor.feature_importances_
    assert np.all(np.isfinite(scores))
    assert set(np.argsort(scores)[::-1][:2]) == INFORMATIVE
