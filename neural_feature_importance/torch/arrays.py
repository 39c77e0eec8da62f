"""The core's array operations for torch tensors, on the tensor's own device.

With these, [`RunningMoments`][neural_feature_importance.core.moments.RunningMoments]
updates its accumulators in place on the GPU that holds the parameter: no
weight ever crosses to the host during training. The only host transfers are
reading importances (once), the count of the gradient reads kept (once per
epoch) and, with `finite_check="update"`, one boolean per snapshot.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

FUSED_DOT_MIN = 1 << 22
"""Values from which `TorchArrayOps.dot()` sums a product over the last axis with einsum."""


class TorchArrayOps:
    """[`ArrayOps`][neural_feature_importance.core.arrays.ArrayOps] for torch tensors.

    Parameters
    ----------
    device : torch.device, optional
        Where the accumulators live. `None` keeps each copy on its source's
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
        destination.copy_(source.detach() if source.requires_grad else source)

    def add_scaled(self, destination: torch.Tensor, source: torch.Tensor, scale: float) -> None:
        destination.add_(source, alpha=scale)

    def add_scaled_product(
        self, destination: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scale: float
    ) -> None:
        destination.addcmul_(a, b, value=scale)

    def sum(self, array: torch.Tensor, axis: int | tuple[int, ...]) -> torch.Tensor:
        return self._reduced(array.sum(axis), axis)

    def dot(self, a: torch.Tensor, b: torch.Tensor, axis: int) -> torch.Tensor:
        if a.is_sparse:
            if b.is_sparse:  # the gradient's own squares (`descent_taylor`)
                return self._reduced(_sparse_row_squares(a, axis), axis)
            return self._reduced(_sparse_row_dot(a, b, axis), axis)
        if axis != 0 and a.ndim == 2 and a.numel() >= FUSED_DOT_MIN:
            # einsum forms no product array: on a 50,000 x 256 float32 table 14
            # instead of 38 ms on a CPU core (memory-bound). It is slower below a
            # few million values, and for a reduction over the first axis at any size.
            return self._reduced(torch.einsum("ij,ij->i", a, b), axis)
        # One call for the product and its sum (a read step's main operation).
        return self._reduced(torch.linalg.vecdot(a, b, dim=axis), axis)

    def dot_difference(
        self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, axis: int
    ) -> torch.Tensor:
        if a.is_sparse:
            return self._reduced(_sparse_row_dot(a, b, axis, minus=c), axis)
        # In place in the scratch copy (float32, or wider): c - b, the step's change
        # negated; no temporary the size of the weight.
        negated = c.sub_(b)
        return -self.dot(a.to(negated.dtype), negated, axis)

    def _reduced(self, result: torch.Tensor, axis: int | tuple[int, ...]) -> torch.Tensor:
        """`result` of a reduction over `axis` (sharded ops reduce it over the processes)."""
        return result

    def all_finite(self, array: torch.Tensor) -> bool:
        # One reduction in the array's own dtype, no boolean temporary: a sum is
        # finite when every element is, except that a sum of finite values may
        # overflow, which the exact test then settles. One value crosses to the
        # host. Measured on a CPU core for 12.8 million float32 values: 2.6 ms,
        # against 70 ms for a float64 sum and 83 ms for torch.isfinite().all().
        if math.isfinite(array.sum().item()):
            return True
        return bool(torch.isfinite(array).all())

    def stack(self, arrays: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(arrays)

    def finite_rows(self, block: torch.Tensor) -> torch.Tensor:
        # A row's sum is finite exactly when its values are, or they overflow the
        # sum (terms near 1e38: a diverged read, dropped too). 10 times faster than
        # isfinite() of the whole block on a CPU.
        return torch.isfinite(block.flatten(1).sum(dim=1))

    def masked_row_sum(self, block: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # The rows kept have no NaN/Inf, so nan_to_num changes only the rows dropped,
        # which the 0 weights then drop (NaN * 0 would be NaN). A broadcast
        # torch.where costs twice as much on a CPU.
        weights = mask.to(block.dtype)
        if block.ndim == 2:
            return weights @ block.nan_to_num(0.0, 0.0, 0.0)
        return torch.tensordot(weights, block.nan_to_num(0.0, 0.0, 0.0), dims=1)

    def count(self, mask: torch.Tensor) -> torch.Tensor:
        return mask.sum()

    def to_numpy(self, array: Any) -> np.ndarray:
        if isinstance(array, torch.Tensor):
            return array.detach().to(device="cpu", dtype=torch.float64).numpy()
        return np.asarray(array, dtype=np.float64)

    def from_numpy(self, array: np.ndarray, like: torch.Tensor | None = None) -> torch.Tensor:
        tensor = torch.as_tensor(np.asarray(array))
        if like is None:
            return tensor.clone()
        return tensor.to(device=like.device, dtype=like.dtype, copy=True)


def _sparse_row_dot(
    sparse: torch.Tensor, dense: torch.Tensor, axis: int, minus: torch.Tensor | None = None
) -> torch.Tensor:
    """`sum(sparse * dense, axis)` of a sparse 2-D gradient, touching only its rows.

    With `minus`: `sum(sparse * (dense - minus), axis)`, the difference formed for
    those rows only.

    `nn.Embedding(sparse=True)` gives a sparse COO gradient with one entry per
    looked-up row (a row looked up twice appears twice until coalesced). The
    product with the weight is summed over the units of the rows present, and
    the other rows are 0: no `(vocab, dim)` array is formed, and nothing waits
    for the device.

    Raises
    ------
    ValueError
        Unless the gradient is 2-D with its rows sparse and `axis` its last axis
        (an embedding table's layout).
    """
    _check_table_layout(sparse, axis)
    # Not coalesced: on a GPU, coalescing waits for the device to count the rows.
    # A row present twice adds its two products, as coalescing would its two values.
    rows = sparse._indices()[0]
    values = sparse._values()
    selected = dense.index_select(0, rows)
    if minus is not None:
        selected = selected - minus.index_select(0, rows)
    return _per_row_sums(sparse, rows, (values * selected.to(values.dtype)).sum(1))


def _sparse_row_squares(sparse: torch.Tensor, axis: int) -> torch.Tensor:
    """`sum(sparse * sparse, axis)` of a sparse 2-D gradient, touching only its rows.

    The squares of each row's *summed* gradient: a row looked up twice appears
    twice until coalesced, and the square of a sum is not the sum of squares, so
    the gradient is coalesced first (on a GPU, that waits for the device to count
    the rows; it is done on read steps only).

    Raises
    ------
    ValueError
        As [`_sparse_row_dot()`][_sparse_row_dot], for a gradient not in an
        embedding table's layout.
    """
    _check_table_layout(sparse, axis)
    summed = sparse.coalesce()
    values = summed._values()
    return _per_row_sums(sparse, summed._indices()[0], (values * values).sum(1))


def _check_table_layout(sparse: torch.Tensor, axis: int) -> None:
    """Raise unless `sparse` is 2-D, sparse along its rows, and summed over its last axis."""
    if sparse.ndim != 2 or axis not in (1, -1) or sparse.sparse_dim() != 1:
        raise ValueError(
            "a sparse gradient is read as an embedding table's: 2-D, sparse along its rows, "
            f"summed over its last axis; got {sparse.ndim}-D, summed over axis {axis}."
        )


def _per_row_sums(sparse: torch.Tensor, rows: torch.Tensor, per_row: torch.Tensor) -> torch.Tensor:
    """One value per row of the table: `per_row` added at `rows`, 0 at the rows absent."""
    result = torch.zeros(sparse.shape[0], dtype=per_row.dtype, device=per_row.device)
    return result.index_add_(0, rows, per_row)
