"""The few array operations the running statistics need, per array library.

The running statistics ([`neural_feature_importance.core.moments`][]) are
written once, with arithmetic operators only, so the same code updates numpy
arrays on the host and torch tensors on a GPU. The handful of operations that
operators cannot express (allocate, copy into a dtype, test finiteness, move
to numpy) are gathered here behind a small protocol. The core ships the numpy
implementation; the torch adapter ships its own
([`neural_feature_importance.torch.arrays.TorchArrayOps`][]). Nothing in
this module imports a deep-learning framework.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

Array = Any
"""An array of the library an [`ArrayOps`][] serves (numpy array, tensor)."""

SUPPORTED_DTYPES = ("float64", "float32")


def check_dtype(dtype: str) -> str:
    """Return `dtype` if the statistics can be kept in it, else raise.

    Parameters
    ----------
    dtype : str
        `"float64"` (default everywhere: exact enough for thousands of
        updates) or `"float32"` (half the memory, for very large layers).
    """
    if dtype not in SUPPORTED_DTYPES:
        raise ValueError(
            f"dtype={dtype!r} is not supported; use one of {SUPPORTED_DTYPES} "
            "('float64' is the default and recommended)."
        )
    return dtype


@runtime_checkable
class StepOps(Protocol):
    """The reductions a gradient mode's per-step formula needs.

    The formula ([`step_terms()`][modes.ScoringMode.step_terms]) is written once with
    operators, `sum` and `dot`, so it runs on host arrays (numpy), on
    torch tensors on the parameter's device, and inside a compiled Keras train
    step (`keras.ops`, see `neural_feature_importance.keras.gradients`).
    """

    def sum(self, array: Array, axis: int | tuple[int, ...]) -> Array:
        """Return `array` summed over `axis`."""

    def dot(self, a: Array, b: Array, axis: int) -> Array:
        """Return `(a * b)` summed over `axis` (a library may avoid the product's temporary)."""

    def dot_difference(self, a: Array, b: Array, c: Array, axis: int) -> Array:
        """Return `(a * (b - c))` summed over `axis`, the difference formed first.

        `b - c` is a step's change of a weight: small against the weight, so
        `dot(a, b) - dot(a, c)` would lose it to rounding (in float32 at a small
        learning rate, in half precision always). A sparse `a` needs only its
        rows of `b` and `c`. `c` is a scratch copy that the library may overwrite
        (the PyTorch trackers form the difference in it, in place: no temporary
        the size of the weight).
        """


@runtime_checkable
class ArrayOps(StepOps, Protocol):
    """Operations on one array library that operators alone cannot express."""

    def copy_as(self, array: Array, dtype: str) -> Array:
        """Return a new array holding `array`'s values in `dtype`.

        The result must never alias `array` (a live parameter keeps changing).
        """

    def zeros_like(self, array: Array) -> Array:
        """Return zeros of `array`'s shape, dtype and device."""

    def copy_into(self, destination: Array, source: Array) -> None:
        """Overwrite `destination` with `source`'s values (cast to its dtype)."""

    def add_scaled(self, destination: Array, source: Array, scale: float) -> None:
        """`destination += scale * source`, in place (without a temporary if possible)."""

    def add_scaled_product(self, destination: Array, a: Array, b: Array, scale: float) -> None:
        """`destination += scale * a * b`, in place (without a temporary if possible)."""

    def all_finite(self, array: Array) -> bool:
        """Return whether every element is finite (may synchronise a device)."""

    def stack(self, arrays: list[Array]) -> Array:
        """Return the same-shaped `arrays` stacked along a new first axis."""

    def finite_rows(self, block: Array) -> Array:
        """Return, per row (first-axis slice) of `block`, whether its sum is finite.

        A sum is finite when every value is, unless finite values overflow it
        (a diverged read, dropped too). Computed where `block` lives, with no
        host sync.
        """

    def masked_row_sum(self, block: Array, mask: Array) -> Array:
        """Return the sum over the rows of `block` where `mask` is true (NaN rows left out)."""

    def count(self, mask: Array) -> Array:
        """Return the number of true values of `mask`, as an array (no host sync)."""

    def to_numpy(self, array: Array) -> np.ndarray:
        """Return the values as a float64 numpy array on the host."""

    def from_numpy(self, array: np.ndarray, like: Array | None = None) -> Array:
        """Return `array` as this library's array, on `like`'s device."""


class NumpyArrayOps:
    """[`ArrayOps`][] for numpy arrays (and anything `np.asarray` takes)."""

    def copy_as(self, array: Array, dtype: str) -> np.ndarray:
        # asarray first: objects whose __array__ takes no copy= (torch tensors, read
        # into a core tracker by from_state()) get a DeprecationWarning from np.array(copy=True).
        return np.array(np.asarray(array), dtype=dtype, copy=True)

    def zeros_like(self, array: np.ndarray) -> np.ndarray:
        return np.zeros_like(array)

    def copy_into(self, destination: np.ndarray, source: Array) -> None:
        np.copyto(destination, source, casting="unsafe")

    def add_scaled(self, destination: np.ndarray, source: np.ndarray, scale: float) -> None:
        destination += scale * source

    def add_scaled_product(
        self, destination: np.ndarray, a: np.ndarray, b: np.ndarray, scale: float
    ) -> None:
        destination += scale * a * b

    def sum(self, array: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
        return np.sum(array, axis=axis)

    def dot(self, a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
        return self.sum(a * b, axis)

    def dot_difference(self, a: np.ndarray, b: np.ndarray, c: np.ndarray, axis: int) -> np.ndarray:
        return self.sum(a * (b - c), axis)

    def all_finite(self, array: np.ndarray) -> bool:
        # One reduction, no boolean temporary: a float64 sum is NaN/Inf exactly when
        # an element is (finite float32 weights cannot overflow it).
        return bool(np.isfinite(np.sum(array, dtype=np.float64)))

    def stack(self, arrays: list[Array]) -> np.ndarray:
        return np.stack(arrays)

    def finite_rows(self, block: np.ndarray) -> np.ndarray:
        return np.isfinite(block.reshape(len(block), -1).sum(axis=1))

    def masked_row_sum(self, block: np.ndarray, mask: np.ndarray) -> np.ndarray:
        weights = mask.astype(block.dtype)
        return np.tensordot(weights, np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0), axes=1)

    def count(self, mask: np.ndarray) -> np.ndarray:
        return np.count_nonzero(mask, keepdims=True)[0]

    def to_numpy(self, array: Array) -> np.ndarray:
        return np.asarray(array, dtype=np.float64)

    def from_numpy(self, array: np.ndarray, like: Array | None = None) -> np.ndarray:
        dtype = like.dtype if like is not None else None
        return np.array(array, dtype=dtype, copy=True)


NUMPY_OPS = NumpyArrayOps()
"""The shared numpy [`ArrayOps`][] (stateless)."""
