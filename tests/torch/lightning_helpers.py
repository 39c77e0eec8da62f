"""A small LightningModule shared by the Lightning tests (the quiet Trainer: ``quiet_trainers``).

Import it only after ``pytest.importorskip("lightning")``.
"""

import torch
from lightning.pytorch import LightningModule
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
