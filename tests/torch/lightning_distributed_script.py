"""Lightning fits on 2 CPU processes, and the same fit in one process.

Run as a script for the strategies whose launcher re-runs the script in every
process (``ddp``, ``model_parallel``)::

    python lightning_distributed_script.py ddp OUT_DIR

Every rank writes its callbacks' raw importances to ``OUT_DIR/rank{r}.npz``.
Lightning would give every rank a shuffling ``DistributedSampler``; the fits
here use :class:`GlobalBatchSplit` instead, so that each step's per-rank
batches of :data:`BATCH` rows make up the one-process batch of
:data:`GLOBAL_BATCH` consecutive rows.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import torch
from lightning_helpers import Regressor
from quiet_trainers import quiet_trainer

from neural_feature_importance import VarianceImportanceLightning

ROWS = 64
GLOBAL_BATCH = 16
BATCH = GLOBAL_BATCH // 2
EPOCHS = 3
SCORINGS = ("viann", "taylor")


class ShardedRegressor(Regressor):
    """The helpers' regressor, with its first layer and itself sharded by FSDP2."""

    def configure_model(self) -> None:
        from torch.distributed.fsdp import fully_shard

        mesh = self.device_mesh["data_parallel"]
        fully_shard(self.net[0], mesh=mesh)
        fully_shard(self, mesh=mesh)


class GlobalBatchSplit(torch.utils.data.Sampler[int]):
    """This rank's contiguous part of every global batch (the rank is read when iterating)."""

    def __iter__(self):
        distributed = torch.distributed.is_initialized()
        rank = torch.distributed.get_rank() if distributed else 0
        world = torch.distributed.get_world_size() if distributed else 1
        part = GLOBAL_BATCH // world
        for start in range(0, ROWS, GLOBAL_BATCH):
            yield from range(start + rank * part, start + (rank + 1) * part)

    def __len__(self) -> int:
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        return ROWS // world


def loader(batch_size: int) -> torch.utils.data.DataLoader:
    """Inputs 0 and 1 carry the signal."""
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(ROWS, 8, generator=generator)
    y = (1.5 * x[:, :1] - x[:, 1:2]).tanh()
    dataset = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=GlobalBatchSplit())


def callbacks() -> list[VarianceImportanceLightning]:
    """One callback per scoring mode; taylor reads every step."""
    return [
        VarianceImportanceLightning(
            scoring=scoring, **({"gradient_every": 1} if scoring == "taylor" else {})
        )
        for scoring in SCORINGS
    ]


def fit(
    strategy: str | object,
    devices: int,
    batch_size: int,
    root: Path,
    epochs: int = EPOCHS,
    ckpt_path: Path | None = None,
) -> list:
    """Fit a fresh regressor under ``strategy``; return its callbacks.

    With ``ckpt_path`` the fit resumes from that checkpoint; every fit saves its last
    epoch's checkpoint in ``root / "checkpoints"``.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    tracked = callbacks()
    module = ShardedRegressor() if strategy == "model_parallel" else Regressor()
    if strategy == "model_parallel":
        from lightning.pytorch.strategies import ModelParallelStrategy

        strategy = ModelParallelStrategy(data_parallel_size=devices, tensor_parallel_size=1)
    trainer = quiet_trainer(
        root,
        epochs,
        [*tracked, ModelCheckpoint(dirpath=root / "checkpoints", save_last=True)],
        devices=devices,
        strategy=strategy,
        use_distributed_sampler=False,
        enable_checkpointing=True,
    )
    trainer.fit(module, loader(batch_size), ckpt_path=ckpt_path)
    return tracked


def main(strategy: str, out: Path) -> None:
    """Fit under ``strategy`` on 2 processes: once through, and stopped and resumed."""
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    tracked = fit(strategy, 2, BATCH, out / "whole")
    fit(strategy, 2, BATCH, out / "resumed", epochs=EPOCHS - 1)
    last = out / "resumed" / "checkpoints" / "last.ckpt"
    resumed = fit(strategy, 2, BATCH, out / "resumed", ckpt_path=last)
    rank = torch.distributed.get_rank()
    np.savez(
        out / f"rank{rank}.npz",
        **{scoring: c.raw_importances_ for scoring, c in zip(SCORINGS, tracked, strict=True)},
        **{
            f"resumed_{scoring}": c.raw_importances_
            for scoring, c in zip(SCORINGS, resumed, strict=True)
        },
    )


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
