"""TensorFlow's sparse gradients of an `Embedding` table, read by the rows of the batch.

On the TensorFlow backend the gradient of an `Embedding` table arrives in
the train step as a `tf.IndexedSlices`: one slice per token looked up,
`(n_lookups, dim)`, rather than a `(vocabulary, dim)` tensor that is zero
outside the batch's tokens. The gradient modes' terms are one value per
row of the table (`taylor`: `|sum_j g_ij w_ij|`, and its square for
`steady_taylor`), and the term of a row whose gradient is zero is zero; so
the tap computes the terms of the batch's rows only and scatters them into
a zero vector, instead of densifying the whole table at every read step.
The rows are gathered from a dense read of the table, never by a sparse read
of the variable, which would make TensorFlow copy the whole table at each of
its later reads and updates ([`row_terms()`][row_terms]).

A token looked up twice in a batch arrives as two slices: they are summed
per row (`tf.unique` and `tf.math.unsorted_segment_sum`, as TensorFlow
aggregates `IndexedSlices`) before a term is computed, since the absolute
value of a sum is not the sum of absolute values.

Whether a mode's terms have that form is checked once per tracked weight
on the host ([`rows_are_features()`][rows_are_features]); a mode that does not
gets the dense gradient, as before. A mode that reads the weight before the
step (`descent_taylor`) gets the batch's rows of it, gathered before the
update ([`rows_before()`][rows_before]), not a copy of the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from neural_feature_importance.core.arrays import NUMPY_OPS, StepOps
from neural_feature_importance.core.modes import ScoringMode

__all__ = [
    "RowGradient",
    "SparseGradient",
    "is_indexed_slices",
    "row_gradient",
    "row_terms",
    "rows_are_features",
    "rows_before",
]


@dataclass(frozen=True)
class SparseGradient:
    """A `tf.IndexedSlices` gradient of a table of `n_rows` rows, to be read by rows.

    Only marks the gradient: the rows are summed in the read step's branch.
    `before` holds the table's looked-up rows before the update, one per slice
    (modes that read the weight before the step; see [`rows_before()`][rows_before]).
    """

    slices: Any
    n_rows: int
    before: Any = None


@dataclass(frozen=True)
class RowGradient:
    """The gradient of the batch's rows: `rows` unique, `values` summed per row, float32.

    `before`: those rows of the table before the update, float32 (or `None`).
    """

    rows: Any
    values: Any
    n_rows: int
    before: Any = None


def is_indexed_slices(gradient: Any) -> bool:
    """Whether `gradient` is a TensorFlow `IndexedSlices` (never on other backends)."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf  # only on the TensorFlow backend, where Keras has imported it

    return isinstance(gradient, tf.IndexedSlices)


def rows_are_features(mode: ScoringMode, shape: tuple[int, ...]) -> bool:
    """Whether `mode`'s terms for a weight of `shape` can be computed row by row.

    True when every term of the mode's `step_terms()` has one value per row
    of the 2-D weight, a row's value depends on that row alone, and a row
    whose gradient is zero has a zero term; checked on three rows of a host
    probe (with a weight before the step where the mode reads one).
    """
    if len(shape) != 2:
        return False
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(3, shape[1])).astype(np.float32)
    gradient = np.zeros_like(weights)
    gradient[1] = rng.normal(size=shape[1])
    before = None
    if mode.needs_weights_before:
        before = weights - rng.normal(scale=0.1, size=weights.shape).astype(np.float32)
    try:
        terms = mode.step_terms(gradient, weights, before, NUMPY_OPS)
        alone = mode.step_terms(
            gradient[1:2], weights[1:2], None if before is None else before[1:2], NUMPY_OPS
        )
    except Exception:  # a mode written for other shapes: read it densely
        return False
    for key, term in terms.items():
        term = np.asarray(term)
        if term.shape != (3,) or np.any(term[[0, 2]] != 0):
            return False
        if not np.allclose(term[1], np.asarray(alone[key]).reshape(-1)[0]):
            return False
    return True


def rows_before(variable: Any, slices: Any) -> Any:
    """The table's rows looked up in `slices`, read before the update (one per slice), float32.

    A dense read, then the gather (see [`row_terms()`][row_terms]): the batch's
    rows only, where a copy of the whole table would cost a pass over it at
    every step.
    """
    import tensorflow as tf

    return keras.ops.cast(
        tf.gather(tf.convert_to_tensor(variable.value), slices.indices), "float32"
    )


def row_gradient(gradient: SparseGradient, scale: Any = None) -> RowGradient:
    """Sum the slices of each row looked up (a row twice in the batch: two slices)."""
    import tensorflow as tf

    slices = gradient.slices
    rows, position = tf.unique(slices.indices)
    n_unique = tf.shape(rows)[0]
    values = tf.math.unsorted_segment_sum(
        keras.ops.cast(slices.values, "float32"), position, n_unique
    )
    if scale is not None:
        values = values / scale
    before = None
    if gradient.before is not None:
        # Every slice of a row holds the same row before the update: take the first.
        first = tf.math.unsorted_segment_min(tf.range(tf.shape(position)[0]), position, n_unique)
        before = tf.gather(gradient.before, first)
    return RowGradient(rows, values, gradient.n_rows, before)


def row_terms(
    mode: ScoringMode, gradient: RowGradient, weights: Any, ops: StepOps
) -> dict[str, Any]:
    """The mode's terms of the whole table: its rows' terms where looked up, 0 elsewhere."""
    import tensorflow as tf

    # A dense read, then the gather. `tf.gather` of a variable itself is a
    # sparse read (`ResourceGather`), which turns the variable's copy-on-read
    # mode on for good: every later read and update of the table then copies
    # all of it (TensorFlow's `resource_var.h`). On a 20,000 x 32 table that
    # cost about 0.35 ms at every step of training, read or not.
    rows_weights = tf.gather(tf.convert_to_tensor(weights), gradient.rows)
    terms = mode.step_terms(gradient.values, rows_weights, gradient.before, ops)
    shape = tf.constant([gradient.n_rows], dtype=gradient.rows.dtype)
    return {key: tf.scatter_nd(gradient.rows[:, None], term, shape) for key, term in terms.items()}
