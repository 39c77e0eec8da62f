"""The gradient tap's sums: how one read step adds its terms, and how they are drained.

[`GradientTapOptimizer`][neural_feature_importance.keras.gradients.GradientTapOptimizer]
keeps, for each tracked weight, the sums of every term of the scoring mode,
flattened one after the other, then the count of the reads added. A read
appends a 1 to its flattened terms and adds that vector, masked to zero once
(`where(finite, terms, 0)`) when the check term is not finite (an overflowed
mixed-precision step, a diverged run): one masked add, fused by the
compilers, whatever the number of terms. The skipped reads are not counted
on the device: the host knows how many steps were read since the last drain
(from the step count, [`reads_between()`][reads_between]), and the skipped
ones are those not added.

Two ways to keep the sums, chosen once per backend:

- compiled steps (TensorFlow graphs, JAX's `jit`): the whole tap is one
  `(2, width)` float32 variable, read and assigned once per step: every
  weight's sums, then the count of applied updates and the read phase (the
  count modulo `gradient_every`, which decides the next read), in row 0;
  their Kahan compensation in row 1, so that an epoch of many thousands of
  steps keeps the precision of a float64 sum (JAX has no float64 without
  `jax_enable_x64`; a masked read of 0 is still a valid Kahan step). One
  variable because JAX's `jit` carries each variable as a buffer in and out
  of the step, about 1.5 µs apiece on a CPU: the five of the earlier layout
  (sums, compensation, a step counter, and the base optimizer's unused
  iteration count and learning rate) cost a 100 x 64 MLP's step +21 µs, one
  costs +4 µs. A small layer's terms are computed at every step and a step
  that is not read is masked out; a large layer's only on read steps, behind
  a `cond` ([`SELECT_READ_MAX`][SELECT_READ_MAX]).
- the eager PyTorch backend: every operation is dispatched from Python
  there, so each weight has a float64 vector, the step count is a host
  integer, and a read is five torch operations, the last an in-place
  `add_`, as exact as the compensated sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from neural_feature_importance.core.arrays import Array, StepOps
from neural_feature_importance.keras._sparse import (
    SparseGradient,
    is_indexed_slices,
    row_gradient,
)
from neural_feature_importance.keras._tap_weights import _Weight

__all__ = [
    "EAGER_SUM_DTYPE",
    "KERAS_STEP_OPS",
    "KerasStepOps",
    "PHASE",
    "SELECT_READ_MAX",
    "STEPS",
    "accumulated_copy",
    "add_terms_eager",
    "applied_gradient",
    "compiled_steps",
    "count_step_only",
    "drain_compiled_state",
    "drain_eager",
    "eager_step_ops",
    "kahan_add",
    "layout_compiled_state",
    "read_increments",
    "reads_between",
    "selects_reads",
    "set_compiled_steps",
    "step_increments",
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

    def dot_difference(self, a: Array, b: Array, c: Array, axis: int) -> Array:
        return keras.ops.sum(a * (b - c), axis=axis)


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
        if is_indexed_slices(gradient):
            import tensorflow as tf  # only on the TensorFlow backend, where Keras has imported it

            # keras.ops.convert_to_tensor keeps IndexedSlices as they are.
            gradient = tf.convert_to_tensor(gradient)
        gradient = keras.ops.cast(gradient, "float32")
    if inner.loss_scale_factor is not None:
        gradient = gradient / inner.loss_scale_factor
    if accumulated is not None:
        steps = inner.gradient_accumulation_steps
        gradient = (gradient + keras.ops.cast(accumulated, "float32")) / steps
    return gradient


def layout_compiled_state(weights: Sequence[_Weight]) -> int:
    """Give each weight its columns of the compiled state; return the state's width.

    Each weight's terms, flattened, then its read count; after the last
    weight, the count of applied updates and the read phase (see
    [`STEPS`][STEPS], [`PHASE`][PHASE]).
    """
    start = 0
    for weight in weights:
        weight.offset = start
        start += weight.size
    return start + 2


SELECT_READ_MAX = 1 << 16
"""Most tracked weight values for which a compiled step computes the terms at every step.

Up to this size the terms of every step are computed and a step that is not
read is masked to 0 (a select), instead of branching around the read with a
`cond`. The branch is what costs on a small layer: on a CPU core, a
TensorFlow graph's `If` made a 100 x 64 MLP's tapped step about 40 µs (twice)
slower than the select, and it lengthens JAX's (XLA's) compile of the train
step by some 30 ms, which a short fit pays in full
(`benchmarks/RESULTS.md`, step cost). Above it, or for a TensorFlow
embedding table's sparse gradient, the read itself costs more than the
branch, and only read steps compute it.
"""


def selects_reads(weights: Sequence[_Weight], gradients: Sequence[Any]) -> bool:
    """Whether a compiled step masks out the steps not read, rather than branching.

    True for dense gradients of tracked weights of at most
    [`SELECT_READ_MAX`][SELECT_READ_MAX] values in all; a TensorFlow table's
    sparse gradient is read behind a `cond`.
    """
    size = sum(int(np.prod(weight.shape)) for weight in weights)
    dense = not any(isinstance(gradient, SparseGradient) for gradient in gradients)
    return dense and size <= SELECT_READ_MAX


STEPS = -2
"""The state column of the applied updates (Kahan-summed, exact far beyond float32's 2**24)."""
PHASE = -1
"""The state column of the read phase: applied updates modulo `gradient_every` (exact)."""


def read_increments(weight: _Weight, terms: dict[str, Any], is_read: Any = None) -> Any:
    """One read's increments of `weight`'s columns: its terms and a 1, or 0 if not finite.

    The terms, flattened, and a 1 for the count form one vector, masked to 0
    when the check term is not finite (an overflowed mixed-precision step, a
    diverged run): one element-wise pass that the compilers fuse. With
    `is_read` (a boolean tensor), a step that is not read is masked to 0 by
    the same select (see [`SELECT_READ_MAX`][SELECT_READ_MAX]).
    """
    keep = keras.ops.isfinite(keras.ops.sum(terms[weight.mode.check_key]))
    if is_read is not None:
        keep = keras.ops.logical_and(is_read, keep)
    pieces = [keras.ops.reshape(terms[key], (-1,)) for key, _ in weight.layout]
    # (A constant of the step: a tensor made at build could belong to another graph.)
    flat = keras.ops.concatenate([*pieces, keras.ops.ones((1,), dtype="float32")])
    return keras.ops.where(keep, flat, 0.0)


def step_increments(state: Any, applied: Any, gradient_every: int) -> Any:
    """The increments of the state's last two columns: the update counted, the phase moved.

    `applied` is `True` or a boolean tensor (an update under gradient
    accumulation). The phase (applied updates modulo `gradient_every`) moves
    by an exact small integer, so its Kahan compensation stays 0.
    """
    phase = state[0, PHASE]
    after = phase + 1.0
    after = keras.ops.where(after >= gradient_every, 0.0, after)
    if applied is True:
        return keras.ops.stack([keras.ops.ones((), dtype="float32"), after - phase])
    counted = keras.ops.cast(applied, "float32")
    return keras.ops.stack([counted, keras.ops.where(applied, after - phase, 0.0)])


def kahan_add(state: Any, increments: Any) -> Any:
    """`state` (`(2, n)`: sums, then their Kahan compensation) after adding `increments`.

    The compensation keeps an epoch of many thousands of float32 reads at a
    float64 sum's precision (JAX has no float64 without `jax_enable_x64`);
    an increment of 0 (a masked read) is a valid Kahan step.
    """
    total, compensation = state[0], state[1]
    corrected = increments - compensation
    new_total = total + corrected
    return keras.ops.stack([new_total, (new_total - total) - corrected])


def count_step_only(state: Any, steps: Any) -> Any:
    """`state` with only its last two columns (step count, phase) advanced by `steps`.

    A step that is not read leaves the sums as they are: on a wide state
    (an embedding table's one term per row) a Kahan pass over every column
    at every step would cost more than the reads.
    """
    tail = kahan_add(state[:, STEPS:], steps)
    return keras.ops.concatenate([state[:, :STEPS], tail], axis=1)


def drain_compiled_state(
    variable: Any, weights: Sequence[_Weight]
) -> tuple[list[tuple[dict[str, np.ndarray], int]], int]:
    """Every weight's sums (float64) and read count, and the applied updates; zero the sums.

    Called once per epoch: the state is read in one transfer, and written
    back once with its sums and counts zeroed, the step count and phase kept.
    """
    state = np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)
    exact = state[0] - state[1]
    zeroed = np.zeros(state.shape, dtype=np.float32)
    zeroed[:, STEPS:] = state[:, STEPS:]
    variable.assign(zeroed)
    drained = [_split_sums(w, exact[w.offset : w.offset + w.size]) for w in weights]
    return drained, round(float(exact[STEPS]))


def set_compiled_steps(variable: Any, steps: int, gradient_every: int) -> None:
    """Set the compiled state's count of applied updates (and its phase), keeping the sums."""
    state = np.array(keras.ops.convert_to_numpy(variable), dtype=np.float32)
    state[:, STEPS:] = 0.0
    state[0, STEPS] = float(steps)
    state[0, PHASE] = float(steps % gradient_every)
    if float(state[0, STEPS]) != steps:
        # Above 2**24 a float32 holds the count as a sum and its compensation.
        state[1, STEPS] = np.float32(float(state[0, STEPS]) - steps)
    variable.assign(state)


def compiled_steps(variable: Any) -> int:
    """The compiled state's count of applied updates, read on the host."""
    state = np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)
    return round(float(state[0, STEPS] - state[1, STEPS]))


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


def drain_eager(weight: _Weight) -> tuple[dict[str, np.ndarray], int]:
    """`weight`'s float64 sums and read count (eager PyTorch backend); then zero them."""
    flat = np.asarray(keras.ops.convert_to_numpy(weight.total), dtype=np.float64)
    weight.total.assign(np.zeros(flat.shape, dtype=flat.dtype))
    return _split_sums(weight, flat)


def _split_sums(weight: _Weight, flat: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
    """`weight`'s columns as its terms' sums and its read count."""
    sums, start = {}, 0
    for key, shape in weight.layout:
        size = int(np.prod(shape))
        sums[key] = flat[start : start + size].reshape(shape)
        start += size
    return sums, round(float(flat[start]))
