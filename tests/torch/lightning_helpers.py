"""A small LightningModule and a quiet CPU Trainer shared by the Lightning tests.

Import it only after ``pytest.importorskip("lightning")``.
"""

import logging

import torch
from lightning.pytorch import LightningModule, Trainer
from torch import nn


class Regressor(LightningModule):
    """An 8-16-1 tanh MLP trained with SGD on a mean-squared error."""

    def __init__(self, lr: float = 0.1):
        super().__init__()
        torch.manual_seed(7)
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def quiet_trainer(root, epochs, callbacks):
    """A CPU Trainer with no logger, progress bar, summary or checkpoints."""
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    return Trainer(
        max_epochs=epochs,
        callbacks=callbacks,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        enable_checkpointing=False,
    )
