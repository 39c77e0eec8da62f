"""A training program for ``test_crash_resume.py``: it checkpoints, can SIGKILL itself, resumes.

Each run trains a small 8-16-1 tanh MLP with Adam on generated data (256 x 8
standard normal inputs; the target depends on inputs 0 and 1 only) while a
VIANN tracker watches its first layer, either from a plain PyTorch loop
(``--framework torch``) or as a Lightning callback (``--framework lightning``).
At the end of every epoch it writes a checkpoint of the model, the optimizer
and the tracker into ``--checkpoint-dir``. With ``--kill-at-epoch E
--kill-at-batch B`` it kills itself with SIGKILL after batch ``B`` (0-based)
of epoch ``E``, i.e. in the middle of the epoch and before that epoch's
checkpoint: nothing gets a chance to clean up, as when a job is preempted or
runs out of memory. With ``--resume CKPT`` it continues from a checkpoint. A
run that finishes writes the importances, the number of snapshots, the first
epoch it trained and the final first-layer weight to ``--out`` (``np.savez``).

Everything is seeded (initialisation, data, a per-epoch data order) and runs
on one CPU thread, so two runs that do the same steps agree bit for bit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import numpy as np
import torch
from torch import nn

from neural_feature_importance import VarianceImportanceTorch

N_SAMPLES = 256
N_FEATURES = 8
# 40 does not divide 256: 7 steps per epoch, so taylor's gradient reads (one
# step in 4) fall on different batches in different epochs, and a resume that
# lost the tracker's step counter would read other steps.
BATCH_SIZE = 40
DATA_SEED = 0
INIT_SEED = 3
ORDER_SEED = 100
LR = 0.01


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Standard normal inputs; the target uses inputs 0 and 1 only."""
    generator = torch.Generator().manual_seed(DATA_SEED)
    x = torch.randn(N_SAMPLES, N_FEATURES, generator=generator)
    y = (3 * x[:, 0] - 2 * x[:, 1]).unsqueeze(1)
    return x, y


def make_net() -> nn.Sequential:
    """The 8-16-1 tanh MLP, always with the same initial weights."""
    torch.manual_seed(INIT_SEED)
    return nn.Sequential(nn.Linear(N_FEATURES, 16), nn.Tanh(), nn.Linear(16, 1))


def epoch_order(epoch: int) -> torch.Tensor:
    """The data order of one epoch: seeded by the epoch, so a resumed run sees the same."""
    return torch.randperm(N_SAMPLES, generator=torch.Generator().manual_seed(ORDER_SEED + epoch))


def maybe_kill(args: argparse.Namespace, epoch: int, batch_idx: int) -> None:
    """SIGKILL this process after batch ``--kill-at-batch`` of epoch ``--kill-at-epoch``."""
    if epoch == args.kill_at_epoch and batch_idx == args.kill_at_batch:
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def write_result(
    args: argparse.Namespace, tracker, n_updates: int, first_epoch: int, weight
) -> None:
    """Save what the test compares; ``tracker`` is a torch tracker or the callback."""
    np.savez(
        args.out,
        feature_importances=np.asarray(tracker.feature_importances_),
        raw_importances=np.asarray(tracker.raw_importances_),
        n_updates=n_updates,
        first_epoch=first_epoch,
        weight=weight.detach().cpu().numpy(),
    )


# ---------------------------------------------------------------- plain torch
def torch_checkpoint_path(directory: str, epoch: int) -> str:
    return os.path.join(directory, f"epoch={epoch}.pt")


def run_torch(args: argparse.Namespace) -> None:
    x, y = make_data()
    model = make_net()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    first_epoch = 0
    if args.resume:
        checkpoint = torch.load(args.resume, weights_only=True)  # no pickle
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        tracker = VarianceImportanceTorch(model, scoring=args.scoring)
        tracker.load_state_dict(checkpoint["tracker"])
        first_epoch = int(checkpoint["epoch"]) + 1
    else:
        tracker = VarianceImportanceTorch(model, scoring=args.scoring)
    tracker.on_train_begin()  # resumes a loaded state instead of resetting

    for epoch in range(first_epoch, args.epochs):
        for batch_idx, batch in enumerate(epoch_order(epoch).split(BATCH_SIZE)):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x[batch]), y[batch]).backward()
            optimizer.step()
            tracker.on_step_end()  # after step(), before the next zero_grad()
            maybe_kill(args, epoch, batch_idx)
        tracker.on_epoch_end()
        # Write a temporary file and rename it, so a kill during the write
        # never leaves a truncated checkpoint under the real name.
        path = torch_checkpoint_path(args.checkpoint_dir, epoch)
        temporary = path + ".tmp"
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "tracker": tracker.state_dict(),
                "epoch": epoch,
            },
            temporary,
        )
        os.replace(temporary, path)
    tracker.on_train_end()
    write_result(args, tracker, tracker.n_updates_, first_epoch, model[0].weight)


# ------------------------------------------------------------------ lightning
def run_lightning(args: argparse.Namespace) -> None:
    import logging
    import warnings

    from lightning.pytorch import Callback, LightningModule, Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint

    from neural_feature_importance import VarianceImportanceLightning

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")

    class Regressor(LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = make_net()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.mse_loss(self(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=LR)

    class EpochSeededSampler(torch.utils.data.Sampler):
        """The plain loop's order; Lightning calls ``set_epoch`` before every epoch."""

        def __init__(self) -> None:
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            return iter(epoch_order(self.epoch).tolist())

        def __len__(self) -> int:
            return N_SAMPLES

    class KillMidEpoch(Callback):
        def __init__(self) -> None:
            self.first_epoch: int | None = None

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if self.first_epoch is None:
                self.first_epoch = trainer.current_epoch

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            maybe_kill(args, trainer.current_epoch, batch_idx)

    x, y = make_data()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y),
        batch_size=BATCH_SIZE,
        sampler=EpochSeededSampler(),
    )
    module = Regressor()
    viann = VarianceImportanceLightning(scoring=args.scoring)
    kill = KillMidEpoch()
    checkpoints = ModelCheckpoint(
        dirpath=args.checkpoint_dir,
        filename="{epoch}-{step}",
        save_last=True,
        every_n_epochs=1,
        save_top_k=-1,  # keep every epoch's checkpoint, so the test can look at them
    )
    trainer = Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[viann, kill, checkpoints],
        default_root_dir=args.checkpoint_dir,
    )
    trainer.fit(module, loader, ckpt_path=args.resume)
    # The snapshot count lives on the callback's tracker.
    write_result(args, viann, viann.tracker.n_updates_, kill.first_epoch, module.net[0].weight)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=("torch", "lightning"), required=True)
    parser.add_argument("--scoring", choices=("viann", "taylor"), required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--kill-at-epoch", type=int, default=None)
    parser.add_argument("--kill-at-batch", type=int, default=None)
    parser.add_argument("--checkpoint-dir", required=True)
    parser.add_argument("--resume", default=None, help="checkpoint to continue from")
    parser.add_argument("--out", required=True, help="where to write the results (.npz)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    os.makedirs(args.checkpoint_dir, exist_ok=True)
    if args.framework == "torch":
        run_torch(args)
    else:
        run_lightning(args)


if __name__ == "__main__":
    main()
