"""Weights sharded across processes: track the local shard, reduce per feature.

Under fully sharded data parallelism (PyTorch FSDP2's `fully_shard`) each
process holds one slice of the tracked weight along one axis. Every
statistic the trackers keep is elementwise, so each process keeps the
statistics of its own slice only (no weight is ever gathered), and the scores
are put together when they are read, from vectors of one value per feature or
per unit. Which reduction applies depends on the axis the slice cuts
([`unit_axis`][views.WeightView.unit_axis]):

- the **unit** axis (a PyTorch `Linear` or `ConvNd` weight sharded on
  dim 0, the FSDP2 default): every process sees every feature, over its own
  units, so a feature's score is the **sum** of the processes' partial sums;
- a **feature** axis (an embedding table sharded on its rows): each process
  has the complete scores of its own features, so the scores are
  **gathered**, each process's slice in its place.

Either way the traffic is one vector per read, `O(features)` (or
`O(units)` for filter scores), never `O(weights)`. A gradient mode whose
per-step formula sums over the sharded axis (`taylor` sums the units of
each feature before taking the absolute value) reduces that one vector per
read step instead (the adapter's step operations do it), so its accumulated
sums are already complete.

The collective itself is the adapter's: a [`Reducer`][] (the torch
adapter's sums over the shard's process group). Reading scores is a
collective, so every process must read them, as every process must call
`DTensor.full_tensor()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from neural_feature_importance.core.errors import StateDictError
from neural_feature_importance.core.views import WeightView


class Reducer(Protocol):
    """The collective a sharded tracker needs: a sum over the processes holding shards."""

    def all_reduce_sum(self, values: np.ndarray) -> np.ndarray:
        """Return the elementwise sum of `values` over every process (each must call it)."""


@dataclass(frozen=True)
class WeightShard:
    """One process's slice of a weight that is sharded along one axis.

    Parameters
    ----------
    view : WeightView
        The whole weight's view (its global shape, kind and layout).
    dim : int
        The axis of the raw weight (in its framework layout) that is sliced.
    offset : int
        Index along `dim` where this process's slice starts.
    length : int
        Length of the slice along `dim` (0 for a process that holds none
        of a short axis).
    reducer : Reducer
        The sum over the processes that hold the other slices.

    Examples
    --------
    >>> class TwoEqualRanks:                          # stands in for torch.distributed
    ...     def all_reduce_sum(self, values):
    ...         return 2 * values
    >>> shard = WeightShard(WeightView("dense", "torch", (8, 3)), 0, 4, 4, TwoEqualRanks())
    >>> shard.local_view.weight_shape, shard.splits_units
    ((4, 3), True)
    >>> shard.features(np.array([1.0, 2.0, 3.0]), partial=True).tolist()
    [2.0, 4.0, 6.0]
    """

    view: WeightView
    dim: int
    offset: int
    length: int
    reducer: Reducer

    def __post_init__(self) -> None:
        shape = self.view.weight_shape
        if not 0 <= self.dim < len(shape):
            raise ValueError(f"shard axis {self.dim} is not an axis of the weight {shape}")
        if self.length < 0 or not 0 <= self.offset <= shape[self.dim] - self.length:
            raise ValueError(
                f"a slice of length {self.length} at offset {self.offset} does not fit axis "
                f"{self.dim} of the weight {shape}"
            )

    @property
    def local_shape(self) -> tuple[int, ...]:
        """Shape of this process's slice."""
        shape = list(self.view.weight_shape)
        shape[self.dim] = self.length
        return tuple(shape)

    @property
    def local_view(self) -> WeightView:
        """The view of this process's slice (what the statistics are kept in)."""
        return WeightView(self.view.kind, self.view.layout, self.local_shape)

    @property
    def splits_units(self) -> bool:
        """Whether the slice cuts the unit axis (every process sees every feature)."""
        return self.dim == self.view.unit_axis

    def features(self, local: np.ndarray, partial: bool) -> np.ndarray:
        """The whole weight's per-feature vector from this process's.

        Parameters
        ----------
        local : ndarray of shape (n_local_features,)
            This process's values, in its local view's feature order.
        partial : bool
            Whether `local` sums over this process's units only (the
            snapshot modes, VIANN) rather than over every unit (a gradient
            mode that reduced each step's sum, see the module docstring).
            Ignored when the slice cuts a feature axis.
        """
        if self.splits_units:
            return self.reducer.all_reduce_sum(local) if partial else np.asarray(local)
        placed = np.zeros(self.view.feature_shape)
        axis = self._feature_axis()
        index: list[slice] = [slice(None)] * placed.ndim
        index[axis] = slice(self.offset, self.offset + self.length)
        placed[tuple(index)] = np.reshape(local, self.local_view.feature_shape)
        return self.reducer.all_reduce_sum(placed).reshape(-1)

    def units(self, local: np.ndarray, partial: bool) -> np.ndarray:
        """The whole weight's per-unit vector (filter scores) from this process's.

        `partial` says whether `local` sums over this process's features
        only; it is ignored when the slice cuts the unit axis (each process
        then has the complete scores of its own units, which are gathered).
        """
        if not self.splits_units:
            return self.reducer.all_reduce_sum(local) if partial else np.asarray(local)
        placed = np.zeros(self.view.n_units)
        placed[self.offset : self.offset + self.length] = local
        return self.reducer.all_reduce_sum(placed)

    def _feature_axis(self) -> int:
        """The axis of [`WeightView.feature_shape`][] that `dim` slices."""
        ndim = len(self.view.weight_shape)
        if self.view.layout == "keras" or self.view.kind == "embedding":
            return self.dim  # (*features, units)
        if self.view.kind == "dense":
            return 0  # torch (out, in): the only feature axis is ``in``
        # torch conv (out, in, *kernel) -> features (*kernel, in)
        return ndim - 2 if self.dim == 1 else self.dim - 2

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Where the slice lies, for a saved state (the reducer is the process's own)."""
        return {
            "weight_shape": list(self.view.weight_shape),
            "dim": self.dim,
            "offset": self.offset,
            "length": self.length,
        }

    def check_state(self, state: dict[str, Any] | None, layer_name: str | None) -> None:
        """Raise [`StateDictError`][] unless `state` describes this same slice.

        A sharded tracker's state is this process's slice, so it resumes only
        in a process that holds the same slice: the same number of processes
        and the same sharding.
        """
        if state is None:
            raise StateDictError(
                f"the state of layer {layer_name!r} is of a whole weight, but this process "
                f"holds a shard of it ({self.describe()}). Load each process's own state, "
                "saved while training sharded the same way."
            )
        saved = {key: state[key] for key in ("weight_shape", "dim", "offset", "length")}
        saved["weight_shape"] = [int(s) for s in saved["weight_shape"]]
        mine = self.state_dict()
        if {k: (int(v) if k != "weight_shape" else v) for k, v in saved.items()} != mine:
            raise StateDictError(
                f"the state of layer {layer_name!r} was saved by a process holding "
                f"{_describe(saved)}, but this process holds {self.describe()}. A sharded "
                "state is one process's slice: resume with the same number of processes and "
                "the same sharding, each process loading the state it saved."
            )

    def describe(self) -> str:
        """The slice in words, for messages."""
        return _describe(self.state_dict())


def _describe(state: dict[str, Any]) -> str:
    start, length = int(state["offset"]), int(state["length"])
    return (
        f"indices {start}-{start + length - 1} of axis {int(state['dim'])} of the "
        f"{tuple(int(s) for s in state['weight_shape'])} weight"
    )
