"""torch.distributed glue: FSDP2 shards, their collectives, and the first process.

Under FSDP2 (`torch.distributed.fsdp.fully_shard`) a parameter is a
`DTensor` sharded along one dimension: `to_local()` is this process's
slice, without communication. The trackers keep their statistics of that
slice only ([`neural_feature_importance.core.sharding`][] says how the
per-feature scores are put together); this module supplies the pieces that
need torch.distributed:

- `weight_shard()` finds where this process's slice lies;
- `ProcessGroupReducer` sums an `O(features)` vector over the
  processes that hold the slices;
- `ShardedTorchArrayOps` makes the two step operations that must
  agree across processes collective: a sum over the sharded axis (`taylor`
  takes the absolute value of each step's per-feature sum) and the NaN/Inf
  test (every process skips the same steps and raises the same error);
- `check_not_flat_sharded()` rejects FSDP1, whose flat 1-D shards cannot
  be mapped back to input features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from neural_feature_importance.core.errors import LayerSelectionError
from neural_feature_importance.core.sharding import WeightShard
from neural_feature_importance.core.views import Kind, WeightView
from neural_feature_importance.torch.arrays import TorchArrayOps

FSDP2_HINT = (
    "Shard the model with FSDP2 (torch.distributed.fsdp.fully_shard; in Lightning, "
    "ModelParallelStrategy with fully_shard in configure_model), whose parameters are "
    "DTensors that the trackers track shard by shard."
)


def is_sharded(tensor: Any) -> bool:
    """Whether `tensor` is a `DTensor` (an FSDP2 or tensor-parallel parameter)."""
    if not torch.distributed.is_available():
        return False
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The local slice of a `DTensor` (no communication), or the tensor itself."""
    if type(tensor) is torch.Tensor:
        return tensor  # the step path's common case, without an import
    if torch.distributed.is_available():
        from torch.distributed.tensor import DTensor

        if isinstance(tensor, DTensor):
            return tensor.to_local()
    return tensor


def uses_fsdp2(model: nn.Module) -> bool:
    """Whether `fully_shard` manages any module of `model`."""
    if not torch.distributed.is_available():
        return False
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(module, FSDPModule) for module in model.modules())


def check_not_flat_sharded(model: nn.Module, name: str, weight: Any) -> None:
    """Raise a clear error if `model` is wrapped by FSDP1 (`FullyShardedDataParallel`).

    FSDP1 flattens the parameters of each wrapped module into one 1-D
    `FlatParameter` and shards that (with `use_orig_params=True` a
    layer's weight becomes a 1-D view of its part of this process's shard,
    possibly empty), so a process holds no axis of the weight to map to input
    features.

    Raises
    ------
    LayerSelectionError
        Naming the layer and pointing to FSDP2.
    """
    if not torch.distributed.is_available():
        return
    from torch.distributed.fsdp import FlatParameter, FullyShardedDataParallel

    wrapped = any(isinstance(module, FullyShardedDataParallel) for module in model.modules())
    flat = isinstance(weight, FlatParameter) or (
        isinstance(weight, torch.Tensor)
        and not isinstance(weight, nn.parameter.UninitializedParameter)
        and weight.ndim < 2
    )
    if wrapped or flat:
        raise LayerSelectionError(
            f"layer {name!r} is sharded by FSDP1 (FullyShardedDataParallel), which flattens "
            "a layer's weight into 1-D pieces of a flat parameter, so no process holds the "
            f"weights of an input feature. {FSDP2_HINT}"
        )


class ProcessGroupReducer:
    """[`Reducer`][neural_feature_importance.core.sharding.Reducer] over a process group.

    Parameters
    ----------
    group : ProcessGroup
        The processes that hold the slices of one weight (the shard mesh
        dimension's group).
    device : torch.device
        Where the collective's tensor lives (a CUDA device for NCCL).
    """

    def __init__(self, group: Any, device: torch.device) -> None:
        self.group = group
        self.device = device

    def all_reduce_sum(self, values: np.ndarray) -> np.ndarray:
        tensor = torch.as_tensor(np.ascontiguousarray(values, dtype=np.float64)).to(self.device)
        torch.distributed.all_reduce(tensor, group=self.group)
        return tensor.cpu().numpy()


class ShardedTorchArrayOps(TorchArrayOps):
    """[`TorchArrayOps`][] of one process's slice of a sharded weight.

    Every operation is local except two, which every process runs at the same
    points of training and which must give every process the same answer:

    - a `sum()` (or `dot()`) over the sharded axis all-reduces its (small) result, so a
      gradient mode's per-step sum over a feature's units is complete;
    - `all_finite()` all-reduces its verdict, so every process skips the
      same gradient reads and raises the same NaN/Inf error.

    Parameters
    ----------
    device : torch.device
        The slice's device.
    dim : int
        The sharded axis of the weight-shaped arrays passed to `sum()`.
    group : ProcessGroup
        The processes that hold the slices.
    """

    def __init__(self, device: torch.device, dim: int, group: Any) -> None:
        super().__init__(device)
        self.dim = dim
        self.group = group

    def _reduced(self, result: torch.Tensor, axis: int | tuple[int, ...]) -> torch.Tensor:
        axes = (axis,) if isinstance(axis, int) else axis
        if self.dim in axes:
            torch.distributed.all_reduce(result, group=self.group)
        return result

    def all_finite(self, array: torch.Tensor) -> bool:
        flag = torch.zeros(1, dtype=torch.float64, device=array.device)
        flag += 0.0 if super().all_finite(array) else 1.0
        torch.distributed.all_reduce(flag, group=self.group)
        return flag.item() == 0.0


def weight_shard(weight: Any, kind: Kind, name: str) -> tuple[WeightShard, Any] | None:
    """Where this process's slice of `weight` lies, and the slices' process group.

    Parameters
    ----------
    weight : Tensor
        The tracked layer's weight; `None` is returned unless it is a
        `DTensor`.
    kind : {"dense", "conv", "embedding"}
        The layer's kind (for the weight's view).
    name : str
        The layer's name, for messages.

    Raises
    ------
    LayerSelectionError
        If the weight is sharded along more than one dimension (tensor
        parallelism with FSDP) or is a partial sum, which the trackers do not
        support.
    """
    if not is_sharded(weight):
        return None
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    placements = tuple(weight.placements)
    sharded = [(i, p) for i, p in enumerate(placements) if isinstance(p, Shard)]
    others = [p for p in placements if not isinstance(p, Shard | Replicate)]
    if len(sharded) != 1 or others:
        raise LayerSelectionError(
            f"layer {name!r} has a DTensor weight with placements {placements}; the trackers "
            "support a weight sharded along one dimension over one mesh dimension (FSDP2, "
            "HSDP), with any other mesh dimensions replicated. Track a layer that tensor "
            "parallelism leaves whole, or shard it with fully_shard only."
        )
    mesh_dim, placement = sharded[0]
    global_shape = tuple(int(s) for s in weight.shape)
    local_shape, offsets = compute_local_shape_and_global_offset(
        global_shape, weight.device_mesh, placements
    )
    dim = int(placement.dim) % len(global_shape)
    view = WeightView(kind, "torch", global_shape)
    reducer = ProcessGroupReducer(
        weight.device_mesh.get_group(mesh_dim), local_tensor(weight).device
    )
    shard = WeightShard(view, dim, int(offsets[dim]), int(local_shape[dim]), reducer)
    return shard, reducer.group


def is_first_process() -> bool:
    """Whether this is the first process of the default group, or no group exists."""
    distributed = torch.distributed
    return (
        not distributed.is_available()
        or not distributed.is_initialized()
        or distributed.get_rank() == 0
    )
