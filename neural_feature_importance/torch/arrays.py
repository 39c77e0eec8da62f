"""The core's array operations for torch tensors, on the tensor's own device.

With these, :class:`~neural_feature_importance.core.moments.RunningMoments`
updates its accumulators in place on the GPU that holds the parameter: no
weight ever crosses to the host during training. The only host transfers are
reading importances (once) and, with ``finite_check="update"``, one boolean
per update.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


class TorchArrayOps:
    """:class:`~neural_feature_importance.core.arrays.ArrayOps` for torch tensors.

    Parameters
    ----------
    device : torch.device, optional
        Where the accumulators live. ``None`` keeps each copy on its source's
        device; the trackers set it to the tracked parameter's device so that a
        state loaded from a CPU checkpoint moves to the GPU.
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = None if device is None else torch.device(device)

    def copy_as(self, array: Any, dtype: str) -> torch.Tensor:
        tensor = array if isinstance(array, torch.Tensor) else torch.as_tensor(np.asarray(array))
        device = self.device if self.device is not None else tensor.device
        return tensor.detach().to(device=device, dtype=getattr(torch, dtype), copy=True)

    def zeros_like(self, array: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(array)

    def copy_into(self, destination: torch.Tensor, source: Any) -> None:
        if not isinstance(source, torch.Tensor):
            source = torch.as_tensor(np.asarray(source))
        destination.copy_(source.detach())

    def add_scaled(self, destination: torch.Tensor, source: torch.Tensor, scale: float) -> None:
        destination.add_(source, alpha=scale)

    def add_scaled_product(
        self, destination: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scale: float
    ) -> None:
        destination.addcmul_(a, b, value=scale)

    def sum(self, array: torch.Tensor, axis: int | tuple[int, ...]) -> torch.Tensor:
        return array.sum(axis)

    def all_finite(self, array: torch.Tensor) -> bool:
        # One reduction, no boolean temporary: a float64 sum is NaN/Inf exactly when
        # an element is (finite float32 weights cannot overflow it). Testing the
        # Python float costs one kernel less than torch.isfinite on the scalar
        # (measured on a CPU: 4 instead of 10 us for 64 values, 0.2 instead of
        # 0.57 ms for 512,000); either way one value crosses to the host.
        return math.isfinite(array.sum(dtype=torch.float64).item())

    def to_numpy(self, array: Any) -> np.ndarray:
        if isinstance(array, torch.Tensor):
            return array.detach().to(device="cpu", dtype=torch.float64).numpy()
        return np.asarray(array, dtype=np.float64)

    def from_numpy(self, array: np.ndarray, like: torch.Tensor | None = None) -> torch.Tensor:
        tensor = torch.as_tensor(np.asarray(array))
        if like is None:
            return tensor.clone()
        return tensor.to(device=like.device, dtype=like.dtype, copy=True)
