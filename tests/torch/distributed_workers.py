"""One training run per setup, the same in one process and on 2 gloo processes.

The distributed tests start :func:`worker` on two processes
(``torch.multiprocessing.spawn``) under DDP or FSDP2 and compare what every
rank's trackers report with :func:`train` run in one process on the same
global batches: each optimizer step's global batch of :data:`GLOBAL_BATCH`
rows is split into one contiguous part per rank, and the ranks' gradients
are averaged (DDP's all-reduce, FSDP2's reduce-scatter), which is the
gradient of the one-process loss on the whole batch.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from neural_feature_importance import (
    ConvVarianceImportanceTorch,
    EmbeddingVarianceImportanceTorch,
    StateDictError,
    VarianceImportanceTorch,
)

ROWS = 64
GLOBAL_BATCH = 16
EPOCHS = 4
VOCAB = 11
N_FEATURES = {"dense": 6, "conv": 4, "embedding": VOCAB}
"""Input features of each kind's tracked layer (conv: 2 kernel positions x 2 channels)."""
TRACKED = {
    # model kind -> (tracker class, layer name inside the model)
    "dense": (VarianceImportanceTorch, "0"),
    "conv": (ConvVarianceImportanceTorch, "0"),
    "embedding": (EmbeddingVarianceImportanceTorch, "embedding"),
}
SETUPS = [
    *((scoring, cadence) for scoring in ("viann", "taylor") for cadence in ("epoch", "step")),
    ("steady_taylor", "epoch"),  # a product of a complete and a partial per-feature sum
]
"""(scoring, snapshot cadence) of the trackers that follow every run."""


class TokenModel(nn.Module):
    """Embedding -> mean over the sequence -> Linear: the label is whether token 3 occurs."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 4)
        self.head = nn.Linear(4, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(tokens).mean(dim=1))


def dataset(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of ``kind``'s model; the signal is planted in input 0 (and 1)."""
    generator = torch.Generator().manual_seed(3)
    if kind == "embedding":
        tokens = torch.randint(0, VOCAB, (ROWS, 5), generator=generator)
        return tokens, (tokens == 3).any(dim=1, keepdim=True).float()
    x = torch.randn(ROWS, 6, generator=generator)
    y = (2.0 * x[:, :1] - x[:, 1:2]).tanh()
    if kind == "conv":
        return x.reshape(ROWS, 2, 3), y
    return x, y


def make_model(kind: str) -> nn.Module:
    """The same initial model in every process."""
    torch.manual_seed(0)
    if kind == "embedding":
        return TokenModel()
    if kind == "conv":
        return nn.Sequential(nn.Conv1d(2, 5, 2), nn.Tanh(), nn.Flatten(), nn.Linear(10, 1))
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))


def wrap(model: nn.Module, kind: str, strategy: str) -> nn.Module:
    """The model as ``strategy`` trains it (the tracked layer sharded under FSDP2)."""
    if strategy == "ddp":
        return nn.parallel.DistributedDataParallel(model)
    if strategy == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        fully_shard(model.embedding if kind == "embedding" else model[0])
        fully_shard(model)
    return model


def train(kind: str, strategy: str, rank: int, world: int, state_dir: Path) -> dict[str, object]:
    """Train ``kind``'s model under ``strategy``; return every tracker's raw importances.

    Besides one tracker per :data:`SETUPS` entry over the whole run, a tracker
    follows the first half, saves its state with ``torch.save``, and a new
    tracker loaded from that file follows the second half (``resumed_*``).
    """
    tracker_class, layer = TRACKED[kind]
    model = wrap(make_model(kind), kind, strategy)
    layer_name = f"module.{layer}" if strategy == "ddp" else layer
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def tracker(scoring: str, cadence: str = "epoch", layer: str | None = layer_name):
        return tracker_class(
            model,
            layer,
            scoring=scoring,
            update_every=1 if cadence == "step" else None,
            gradient_every=1 if scoring in ("taylor", "steady_taylor") else None,
        )

    trackers = {f"{scoring}_{cadence}": tracker(scoring, cadence) for scoring, cadence in SETUPS}
    first_half = {f"resumed_{scoring}": tracker(scoring) for scoring in ("viann", "taylor")}
    # The default layer is found at the first forward pass, when FSDP2 has
    # swapped in the unsharded weights; tracking must still use the shards.
    default_layer = {"default_layer_taylor": tracker("taylor", layer=None)}
    following = {**trackers, **first_half, **default_layer}
    for followed in following.values():
        followed.on_train_begin()
    x, y = dataset(kind)
    part = GLOBAL_BATCH // world
    for epoch in range(EPOCHS):
        if epoch == EPOCHS // 2:
            for name, half in first_half.items():
                path = state_dir / f"{kind}_{name}_rank{rank}.pt"
                torch.save(half.state_dict(), path)
                resumed = tracker(half.scoring)
                resumed.load_state_dict(torch.load(path, weights_only=True))
                resumed.on_train_begin()
                following[name] = resumed
        for start in range(0, ROWS, GLOBAL_BATCH):
            rows = slice(start + rank * part, start + (rank + 1) * part)
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x[rows]), y[rows]).backward()
            optimizer.step()
            for followed in following.values():
                followed.on_step_end()
        for followed in following.values():
            followed.on_epoch_end()
    results: dict[str, object] = {}
    for name, followed in following.items():
        followed.on_train_end()  # every rank: the scores of the slices are reduced
        results[name] = followed.raw_importances_
        results[f"{name}_n_updates"] = followed.n_updates_
    if kind == "conv":
        # Filter scores: each rank holds some of the filters under FSDP2.
        for name in ("viann_epoch", "taylor_epoch", "steady_taylor_epoch"):
            results[f"{name}_filters"] = following[name].raw_filter_importances_
    return results


def worker(rank: int, world: int, port: int, strategy: str, out: str) -> None:
    """One rank: every model kind under ``strategy``; results in ``out/rank{rank}.npz``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    results: dict[str, object] = {}
    try:
        for kind in TRACKED:
            for name, value in train(kind, strategy, rank, world, Path(out)).items():
                results[f"{kind}/{name}"] = value
        if strategy == "fsdp2":
            results["error/other_rank_state"] = _load_other_rank_state(rank, world, Path(out))
    except Exception:  # reported to the test, which shows the traceback
        results = {"error/traceback": traceback.format_exc()}
        raise
    finally:
        np.savez(Path(out) / f"rank{rank}.npz", **results)
        dist.destroy_process_group()


def _load_other_rank_state(rank: int, world: int, state_dir: Path) -> str:
    """The error of loading another rank's sharded state into this rank's tracker."""
    model = wrap(make_model("dense"), "dense", "fsdp2")
    tracker = VarianceImportanceTorch(model, "0", scoring="viann")
    other = state_dir / f"dense_resumed_viann_rank{(rank + 1) % world}.pt"
    try:
        tracker.load_state_dict(torch.load(other, weights_only=True))
    except StateDictError as error:
        return str(error)
    return ""
