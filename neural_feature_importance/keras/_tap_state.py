"""The gradient tap's sums: how one read step adds its terms, and how they are drained.

[`GradientTapOptimizer`][neural_feature_importance.keras.gradients.GradientTapOptimizer]
keeps one vector per tracked weight: the sums of every term of the scoring
mode, flattened one after the other, then the count of the reads added. A
read appends a 1 to its flattened terms and adds that vector, masked to
zero once (`where(finite, terms, 0)`) when the check term is not finite (an
overflowed mixed-precision step, a diverged run): one masked add, fused by
the compilers, whatever the number of terms, and one variable (two with its
compensation) to drain. The skipped reads are not counted on the device:
the host knows how many steps were read since the last drain (from the step
count, [`reads_between()`][reads_between]), and the skipped ones are those
not added.

Two ways to keep the sums, chosen once per backend:

- compiled steps (TensorFlow graphs, JAX's `jit`): a float32 vector with
  Kahan's compensation, so that an epoch of many thousands of steps keeps
  the precision of a float64 sum (JAX has no float64 without
  `jax_enable_x64`); a masked read of 0 is still a valid Kahan step. Only on
  read steps (behind the step's `cond`).
- the eager PyTorch backend: every operation is dispatched from Python
  there, so the vector is float64 and a read is five torch operations, the
  last an in-place `add_`, as exact as the compensated sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from neural_feature_importance.core.arrays import Array, StepOps
from neural_feature_importance.keras._sparse import SparseGradient, row_gradient
from neural_feature_importance.keras._tap_weights import _Weight

__all__ = [
    "EAGER_SUM_DTYPE",
    "KERAS_STEP_OPS",
    "KerasStepOps",
    "accumulated_copy",
    "add_terms_compiled",
    "add_terms_eager",
    "applied_gradient",
    "drain_weight",
    "eager_step_ops",
    "reads_between",
]

EAGER_SUM_DTYPE = "float64"
"""The dtype of the sums on the eager PyTorch backend (one `add_` per term, no compensation)."""


class KerasStepOps:
    """The modes' per-step reduction in `keras.ops` (compiles into the train step)."""

    def sum(self, array: Array, axis: int | tuple[int, ...]) -> Array:
        return keras.ops.sum(array, axis=axis)

    def dot(self, a: Array, b: Array, axis: int) -> Array:
        # The compilers (XLA, Grappler) fuse the product into the reduction.
        return keras.ops.sum(a * b, axis=axis)


KERAS_STEP_OPS = KerasStepOps()


def eager_step_ops() -> StepOps:
    """The PyTorch adapter's tensor reductions, for the eager PyTorch backend's read steps.

    The same reductions as [`KerasStepOps`][], without `keras.ops`'s per-call
    conversions (a read step is dispatched op by op from Python): those the
    PyTorch trackers use (`TorchArrayOps`), imported on that backend only.
    """
    from neural_feature_importance.torch.arrays import TorchArrayOps

    return TorchArrayOps()


def reads_between(start: int, stop: int, every: int) -> int:
    """How many of the steps `start, ..., stop - 1` are read (those divisible by `every`)."""
    return -(-stop // every) - -(-start // every)


def accumulated_copy(inner: Any, variable: Any) -> Any:
    """A copy of `inner`'s accumulated gradient of `variable` (None without accumulation)."""
    if not inner.gradient_accumulation_steps:
        return None
    accumulated = inner._accumulated_gradients[inner._get_variable_index(variable)]
    # A copy: the update resets the accumulator in place (torch), or after this read.
    return keras.ops.copy(accumulated.value)


def applied_gradient(inner: Any, gradient: Any, accumulated: Any, eager: bool) -> Any:
    """The gradient `inner` applies (unscaled, averaged if accumulated), in float32.

    A `SparseGradient` becomes the summed gradient of the batch's rows
    (`RowGradient`); any other `tf.IndexedSlices` is densified.
    """
    if isinstance(gradient, SparseGradient):
        return row_gradient(gradient, inner.loss_scale_factor)
    if eager:
        gradient = gradient.float()  # a torch tensor; itself when already float32
    else:
        gradient = keras.ops.convert_to_tensor(gradient)  # densifies TF IndexedSlices
        gradient = keras.ops.cast(gradient, "float32")
    if inner.loss_scale_factor is not None:
        gradient = gradient / inner.loss_scale_factor
    if accumulated is not None:
        steps = inner.gradient_accumulation_steps
        gradient = (gradient + keras.ops.cast(accumulated, "float32")) / steps
    return gradient


def add_terms_compiled(weight: _Weight, terms: dict[str, Any]) -> list[Any]:
    """The new values of `weight`'s sum and compensation after one read (`keras.ops`).

    The read branch of the compiled step, in the order of
    [`compiled_variables()`][compiled_variables]. The terms, flattened, and a
    1 for the count form one vector, masked to 0 if the check term is not
    finite (a Kahan step of 0 keeps the compensated sum) and Kahan-added: one
    element-wise pass that the compilers fuse, whatever the number of terms.
    """
    finite = keras.ops.isfinite(keras.ops.sum(terms[weight.mode.check_key]))
    pieces = [keras.ops.reshape(terms[key], (-1,)) for key, _ in weight.layout]
    # (A constant of the step: a tensor made at build could belong to another graph.)
    flat = keras.ops.concatenate([*pieces, keras.ops.ones((1,), dtype="float32")])
    total, compensation = weight.total.value, weight.compensation.value
    corrected = keras.ops.where(finite, flat, 0.0) - compensation
    new_total = total + corrected
    return [new_total, (new_total - total) - corrected]


def compiled_variables(weights: Sequence[_Weight]) -> list[Any]:
    """The variables one compiled read updates, in the order of `add_terms_compiled()`."""
    return [variable for weight in weights for variable in (weight.total, weight.compensation)]


def add_terms_eager(weight: _Weight, terms: dict[str, Any]) -> None:
    """Add one read's terms to `weight`'s float64 sum in place (PyTorch backend).

    Five torch operations whatever the number of terms (the check, the
    flattened terms and the count, the mask, the add); nothing is read on
    the host (the finite check stays a tensor).
    """
    import torch  # only on the PyTorch backend

    finite = torch.isfinite(terms[weight.mode.check_key].sum())
    flat = torch.cat([*(terms[key].reshape(-1) for key, _ in weight.layout), weight.one])
    weight.total.value.add_(torch.where(finite, flat, 0.0))


def drain_weight(weight: _Weight) -> tuple[dict[str, np.ndarray], int]:
    """`weight`'s sums in float64 and its read count, read on the host; then zero them.

    Called once per epoch. On JAX the variables are read in one transfer and
    zeroed from one batched `device_put`: a transfer per variable costs
    about 0.1 ms there, a measurable share of a short fit's epoch.
    """
    variables = [v for v in (weight.total, weight.compensation) if v is not None]
    zeros = [np.zeros(variable.shape, dtype=variable.dtype) for variable in variables]
    if keras.backend.backend() == "jax":
        import jax  # only on the JAX backend

        values = jax.device_get([variable.value for variable in variables])
        zeros = jax.device_put(zeros)
    else:
        values = [keras.ops.convert_to_numpy(variable) for variable in variables]
    for variable, zero in zip(variables, zeros, strict=True):
        variable.assign(zero)
    flat = np.asarray(values[0], dtype=np.float64)
    if len(values) > 1:
        flat = flat - np.asarray(values[1], dtype=np.float64)
    sums, start = {}, 0
    for key, shape in weight.layout:
        size = int(np.prod(shape))
        sums[key] = flat[start : start + size].reshape(shape)
        start += size
    return sums, round(float(flat[start]))
