import logging

import numpy as np
import pytest
import torch
from torch import nn

lightning = pytest.importorskip("lightning")
from lightning.pytorch import LightningModule, Trainer  # noqa: E402

from neural_feature_importance import VarianceImportanceLightning, VarianceImportanceTorch  # noqa: E402


class Regressor(LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=generator)
    y = (3 * x[:, 0] - 2 * x[:, 1]).unsqueeze(1)
    dataset = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=False)


def _trainer(tmp_path, epochs, callbacks):
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    return Trainer(
        max_epochs=epochs,
        callbacks=callbacks,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        enable_checkpointing=False,
    )


def test_lightning_callback_tracks_input_features(tmp_path):
    viann = VarianceImportanceLightning()
    _trainer(tmp_path, 6, [viann]).fit(Regressor(), _loader())
    scores = viann.feature_importances_
    assert scores.shape == (8,)
    assert set(np.argsort(scores)[::-1][:2]) == {0, 1}
    assert viann.tracker.tracked_layer_name_ == "net.0"
    assert viann.tracker.n_updates_ == 6


def test_lightning_equals_manual_loop(tmp_path):
    viann = VarianceImportanceLightning(update_every=2)
    module = Regressor()
    _trainer(tmp_path, 3, [viann]).fit(module, _loader())

    manual_module = Regressor()
    tracker = VarianceImportanceTorch(manual_module, update_every=2)
    optimizer = manual_module.configure_optimizers()
    tracker.on_train_begin()
    for _ in range(3):
        for batch_idx, batch in enumerate(_loader()):
            optimizer.zero_grad()
            manual_module.training_step(batch, batch_idx).backward()
            optimizer.step()
            tracker.on_step_end()
        tracker.on_epoch_end()
    assert viann.tracker.n_updates_ == tracker.n_updates_ == 12
    np.testing.assert_allclose(viann.raw_importances_, tracker.raw_importances_, rtol=1e-6)


def test_checkpoint_resume_equals_uninterrupted(tmp_path):
    whole = VarianceImportanceLightning()
    _trainer(tmp_path / "a", 6, [whole]).fit(Regressor(), _loader())

    first = VarianceImportanceLightning()
    trainer = _trainer(tmp_path / "b", 3, [first])
    trainer.fit(Regressor(), _loader())
    ckpt = tmp_path / "half.ckpt"
    trainer.save_checkpoint(ckpt)
    checkpoint = torch.load(ckpt, weights_only=True)  # no pickle needed for our state
    assert first.state_key in checkpoint["callbacks"]

    resumed = VarianceImportanceLightning()
    _trainer(tmp_path / "c", 6, [resumed]).fit(Regressor(), _loader(), ckpt_path=ckpt)
    assert resumed.tracker.n_updates_ == 6
    np.testing.assert_allclose(resumed.feature_importances_, whole.feature_importances_, rtol=1e-10)


def test_unfitted_callback_raises():
    from neural_feature_importance import NotFittedError

    with pytest.raises(NotFittedError, match=r"call trainer\.fit"):
        _ = VarianceImportanceLightning().feature_importances_
