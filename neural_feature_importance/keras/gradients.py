"""The gradient tap: gradient scoring modes (`taylor`...) inside Keras's compiled train step.

A Keras callback never sees gradients, but the optimizer does: every backend's trainer hands them to
`optimizer.apply` (TensorFlow, PyTorch) or to `optimizer.stateless_apply` inside `jax.jit` (JAX).
[`GradientTapOptimizer`][] wraps the user's optimizer in the manner of Keras's own
`LossScaleOptimizer`: it delegates the update to the wrapped optimizer and, in the same compiled
step, adds the scoring mode's per-step terms
([`step_terms()`][neural_feature_importance.core.modes.ScoringMode.step_terms], the formula the
PyTorch trackers use) to Keras variables of its own, with `keras.ops` only. Nothing crosses to the
host during training; the callback hands the sums to the core tracker once per epoch
([`GradientTapOptimizer.drain()`][GradientTapOptimizer.drain]).

Where the tap sits:

- a plain optimizer is wrapped directly (`model.optimizer` becomes the tap);
- under `mixed_float16` Keras wraps the optimizer in a `LossScaleOptimizer`,
  and the tap goes *inside* it, around its inner optimizer: the tap then sees
  unscaled gradients, and only the steps the scaler applies (a step it skips
  for overflow never reaches the tap, so it is neither read nor counted);
- with `gradient_accumulation_steps=k` on the wrapped optimizer, the tap
  reads the averaged gradient that is applied, once per `k` batches, as the
  PyTorch trackers do under Lightning's gradient accumulation;
- on TensorFlow an `Embedding` table's gradient arrives as `tf.IndexedSlices`:
  the tap computes the terms of the batch's rows only, and never densifies
  the table (`keras/_sparse.py`).

The tap reads the gradient before the wrapped optimizer's own clipping and
weight decay (`clipnorm`, `weight_decay`), and the weight after the step.

Under Keras distribution the tap reads the gradient of the global batch, the
one the wrapped optimizer applies:

- JAX (`keras.distribution.DataParallel`): the trainer compiles one train
  step over the whole mesh, so `stateless_apply` already receives the
  global batch's gradient, and the tap's variables are replicated like the
  optimizer's own;
- TensorFlow (`tf.distribute.MirroredStrategy`): Keras calls
  `optimizer.apply` once per replica, in replica context, with that
  replica's gradient of its loss divided by the number of replicas; the
  wrapped optimizer all-reduces them (a sum) before its update. The tap sums
  them in the same way, before its `cond`: `tf.distribute` allows no
  cross-replica communication (`merge_call`) inside a branch of a `cond`
  in replica context, which is why this reduction runs at every step, not
  only at read steps. Its variables are mirrored variables created in the
  strategy that owns the tracked weight, with `aggregation="none"`: every
  replica computes the same new values from the all-reduced gradient and
  the mirrored weights, and writes its own copy (no cross-replica write in
  the branch either); [`GradientTapOptimizer.drain()`][GradientTapOptimizer.drain] reads them in
  cross-replica context and zeroes every copy.

The callbacks install the tap at `on_train_begin` and give the user's
optimizer back at `on_train_end`, rebuilding the train function each time.
Its variables are saved as those of the wrapped optimizer
(`GradientTapOptimizer.save_own_variables()`), and left out of a
`LossScaleOptimizer`'s list (`keras/_saving.py`), so a model saved during
training (`ModelCheckpoint`) holds the entries of an untracked one and loads
into a model compiled with the plain optimizer, loss scale included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from neural_feature_importance.core.arrays import NUMPY_OPS, Array
from neural_feature_importance.core.modes import ScoringMode
from neural_feature_importance.keras._distributed import distribution_scope as _distribution_scope
from neural_feature_importance.keras._distributed import sum_over_replicas as _sum_over_replicas
from neural_feature_importance.keras._sparse import (
    RowGradient,
    SparseGradient,
    is_indexed_slices,
    row_gradient,
    row_terms,
    rows_are_features,
)
from neural_feature_importance.keras._tap_weights import VariableGroup, _Slot, _Weight

__all__ = ["GradientTapOptimizer", "KerasStepOps", "VariableGroup", "find_taps", "unlink_tap"]


def _nothing() -> None:
    """The branch of a step that is not read."""


class KerasStepOps:
    """The modes' per-step reduction in `keras.ops` (compiles into the train step)."""

    def sum(self, array: Array, axis: int | tuple[int, ...]) -> Array:
        return keras.ops.sum(array, axis=axis)

    def dot(self, a: Array, b: Array, axis: int) -> Array:
        # The compilers (XLA, Grappler) fuse the product into the reduction.
        return keras.ops.sum(a * b, axis=axis)


KERAS_STEP_OPS = KerasStepOps()


class GradientTapOptimizer(keras.optimizers.Optimizer):
    """Wraps an optimizer and sums a scoring mode's gradient terms in the train step.

    Parameters
    ----------
    inner_optimizer : keras.optimizers.Optimizer
        The optimizer that updates the model; the tap delegates every update,
        the learning rate and the iteration count to it.
    tracked : sequence of (str, keras.Variable or VariableGroup, ScoringMode)
        The weights to read: a name, the model's variable (or a group of
        variables read as one weight, such as an LSTM's two directions), and
        the core tracker's scoring mode, whose `step_terms` give the per-step
        terms.
    gradient_every : int, default=1
        Read one applied update in this many (updates 1, 1 + k, 1 + 2k...,
        counted from [`steps`][]), as the PyTorch trackers do.
    name : str, optional
        The optimizer's name.

    Notes
    -----
    The sums are float32 Keras variables kept with Kahan's compensated
    summation, so an epoch of many thousands of steps loses no more precision
    than a float64 sum would for the ranking; [`drain()`][drain] returns them in
    float64 and zeroes them. The step counter is an int32 variable.

    Examples
    --------
    In a custom training loop, wrap the optimizer through the callback, which
    chooses the layer and owns the statistics:

    ```python
    tracker = VarianceImportanceKeras(scoring="taylor")
    tracker.set_model(model)
    tracker.on_train_begin()
    optimizer = tracker.wrap_optimizer(keras.optimizers.Adam(1e-3))
    ...  # optimizer.apply(grads, model.trainable_variables) every step
    tracker.on_epoch_end(epoch)  # every epoch
    tracker.on_train_end()
    ```
    """

    def __init__(
        self,
        inner_optimizer: keras.optimizers.Optimizer,
        tracked: Sequence[tuple[str, Any, ScoringMode]],
        gradient_every: int = 1,
        name: str | None = None,
    ) -> None:
        # One _Weight per tracked weight, one _Slot per variable (apply() reads them in order).
        weights: list[_Weight] = []
        slots: list[_Slot] = []
        for weight_name, target, mode in tracked:
            if isinstance(target, keras.Variable) or not hasattr(target, "combine"):
                weight = _Weight(weight_name, mode, tuple(target.shape))
                variables: Sequence[Any] = [target]
            else:
                weight = _Weight(weight_name, mode, tuple(target.shape), group=target)
                variables = target.variables
            weights.append(weight)
            slots += [_Slot(weight_name, variable, mode, weight) for variable in variables]
        # Keras's TensorFlow optimizer takes its tf.distribute strategy from this scope.
        with _distribution_scope([slot.variable for slot in slots]):
            super().__init__(learning_rate=0.0, name=name or f"gradient_tap_{inner_optimizer.name}")
        self.inner_optimizer = inner_optimizer
        self.gradient_every = int(gradient_every)
        self._tracked_weights = weights
        self._slots = slots
        for slot in self._slots:
            if not isinstance(slot.variable, keras.Variable):
                raise TypeError(
                    f"the tracked weight of {slot.name!r} is a {type(slot.variable).__name__}, "
                    "not a keras.Variable (a LoRA-enabled or quantized layer computes its "
                    "kernel); track another layer, or disable LoRA while tracking."
                )
        self._steps_variable: Any = None

    # ------------------------------------------------------------- variables
    def build(self, var_list: list[Any]) -> None:
        """Create the tap's sums and counters (the wrapped optimizer keeps its own).

        On TensorFlow they are created in the `tf.distribute` strategy of the
        tracked weights (see `_distribution_scope()`). Built once: a
        `LossScaleOptimizer` built after the tap went in (TensorFlow builds
        it in the first train step) builds its inner optimizer again, and
        new sums would orphan the step count set since.
        """
        if self.built:
            return
        with _distribution_scope([slot.variable for slot in self._slots]):
            self._build(var_list)

    def _build(self, var_list: list[Any]) -> None:
        if not self.inner_optimizer.built:
            self.inner_optimizer.build(var_list)
        super().build(var_list)
        known = {id(v) for v in var_list}
        for slot in self._slots:
            if id(slot.variable) not in known:
                raise ValueError(
                    f"the tracked weight of {slot.name!r} is not one of the variables the "
                    "optimizer updates; is the layer trainable, and part of this model?"
                )
        for weight in self._tracked_weights:
            shapes = self._term_shapes(weight)
            for key, shape in shapes.items():
                weight.sums[key] = self.add_variable(shape, dtype="float32", name=f"{key}_sum")
                weight.compensations[key] = self.add_variable(
                    shape, dtype="float32", name=f"{key}_compensation"
                )
            weight.n_read = self.add_variable((), dtype="int32", name="reads")
            weight.n_skipped = self.add_variable((), dtype="int32", name="skipped_reads")
        self._steps_variable = self.add_variable((), dtype="int32", name="applied_updates")

    @staticmethod
    def _term_shapes(weight: _Weight) -> dict[str, tuple[int, ...]]:
        """Shapes of the mode's per-step terms (from a zero weight, on the host)."""
        zeros = np.zeros(weight.shape, dtype="float32")
        terms = weight.mode.step_terms(zeros, zeros, zeros, NUMPY_OPS)
        return {key: tuple(np.shape(value)) for key, value in terms.items()}

    @property
    def variables(self) -> list[Any]:
        return self._variables + list(self.inner_optimizer.variables)

    @property
    def learning_rate(self) -> Any:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: Any) -> None:
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self) -> Any:
        return self.inner_optimizer.iterations

    def scale_loss(self, loss: Any) -> Any:
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list: list[Any]) -> None:
        self.inner_optimizer.finalize_variable_values(var_list)

    # Saved as the wrapped optimizer, at the tap's place: a model saved while the
    # tap is installed (ModelCheckpoint during fit) holds the entries of one
    # compiled with the plain optimizer, and loads into it. Under a
    # LossScaleOptimizer, keras/_saving.py leaves the tap's variables out of its list.
    def save_own_variables(self, store: Any) -> None:
        """Save the wrapped optimizer's variables (the tap's own are never saved)."""
        self.inner_optimizer.save_own_variables(store)

    def load_own_variables(self, store: Any) -> None:
        """Load the wrapped optimizer's variables, saved with or without a tap."""
        self.inner_optimizer.load_own_variables(store)

    def __dir__(self) -> list[str]:
        # Keras's saving walks dir(): the wrapped optimizer, already saved in the
        # tap's place above, would be saved a second time under "inner_optimizer".
        return [name for name in super().__dir__() if name != "inner_optimizer"]

    def get_config(self) -> dict[str, Any]:
        # The tap is bound to a live tracker and never serialised on its own;
        # a model's compile config holds the optimizer it was compiled with.
        return self.inner_optimizer.get_config()

    # ------------------------------------------------------------------ step
    def apply(self, grads: Sequence[Any], trainable_variables: Sequence[Any] | None = None) -> None:
        """Apply the update with the wrapped optimizer, then add the step's terms if read.

        The terms are computed only on read steps, behind a `keras.ops.cond`:
        reading one update in `gradient_every` costs a quarter of reading every one.
        Under `tf.distribute` each replica calls this with its own gradient,
        and the tracked gradients are first summed over the replicas.
        """
        if trainable_variables is not None:
            variables = list(trainable_variables)
            if not self.built:
                self.build(variables)
        else:
            variables = list(self._trainable_variables)
        grads = list(grads)
        position = {id(v): i for i, v in enumerate(variables)}
        gradients = []
        for slot in self._slots:
            index = position.get(id(slot.variable))
            gradient = None if index is None else grads[index]
            if gradient is None:
                raise ValueError(
                    f"scoring={slot.mode.name!r} reads the gradient of {slot.name!r}, but the "
                    "train step computed none; is the layer used in the forward pass and "
                    "trainable?"
                )
            gradients.append(gradient)
        # Under MirroredStrategy: the global batch's gradient, at every step (not in the cond).
        gradients = _sum_over_replicas(gradients)
        inputs = []
        for slot, gradient in zip(self._slots, gradients, strict=True):
            # Read before the update: it resets the accumulated gradient and moves the weight.
            accumulated = self._accumulated(slot.variable)
            if accumulated is None and self._reads_rows(slot, gradient):
                # An Embedding's tf.IndexedSlices: read by the batch's rows (keras/_sparse.py).
                gradient = SparseGradient(gradient, int(slot.variable.shape[0]))
            # A copy: on TensorFlow and torch .value reads the live variable.
            before = keras.ops.copy(slot.variable.value) if slot.mode.needs_weights_before else None
            inputs.append((slot, gradient, accumulated, before))
        applied = self._is_update_step()
        self.inner_optimizer.apply(grads, trainable_variables)
        # Keras variables are read through .value: JAX refuses them inside jit.
        steps = self._steps_variable.value
        read = keras.ops.equal(keras.ops.mod(steps, self.gradient_every), 0)
        if applied is True:
            self._steps_variable.assign_add(1)
        else:
            read = keras.ops.logical_and(applied, read)
            self._steps_variable.assign(keras.ops.where(applied, steps + 1, steps))
        if keras.backend.backend() == "jax":
            # Inside jit's stateless scope a branch may not assign: it returns the values.
            current = [variable.value for variable in self._state_variables()]
            new = keras.ops.cond(read, lambda: self._read_values(inputs), lambda: current)
            self._assign_state(new)
        else:
            # TensorFlow graphs and eager torch run the assignments in the taken branch only.
            keras.ops.cond(read, lambda: self._assign_state(self._read_values(inputs)), _nothing)

    def _accumulated(self, variable: Any) -> Any:
        """A copy of the accumulated gradient of `variable` (None without accumulation)."""
        inner = self.inner_optimizer
        if not inner.gradient_accumulation_steps:
            return None
        accumulated = inner._accumulated_gradients[inner._get_variable_index(variable)]
        # A copy: the update resets the accumulator in place (torch), or after this read.
        return keras.ops.copy(accumulated.value)

    @staticmethod
    def _reads_rows(slot: _Slot, gradient: Any) -> bool:
        """Whether this slot's gradient is read by rows: a TensorFlow Embedding's, one variable."""
        return (
            is_indexed_slices(gradient)
            and slot.weight.group is None
            and rows_are_features(slot.mode, tuple(slot.variable.shape))
        )

    def _applied_gradient(self, gradient: Any, accumulated: Any) -> Any:
        """The gradient the wrapped optimizer applies (unscaled, averaged if accumulated).

        A `SparseGradient` becomes the summed gradient of the batch's rows
        (`RowGradient`); any other `tf.IndexedSlices` is densified.
        """
        inner = self.inner_optimizer
        if isinstance(gradient, SparseGradient):
            return row_gradient(gradient, inner.loss_scale_factor)
        gradient = keras.ops.convert_to_tensor(gradient)  # densifies TensorFlow IndexedSlices
        gradient = keras.ops.cast(gradient, "float32")
        if inner.loss_scale_factor is not None:
            gradient = gradient / inner.loss_scale_factor
        if accumulated is not None:
            steps = inner.gradient_accumulation_steps
            gradient = (gradient + keras.ops.cast(accumulated, "float32")) / steps
        return gradient

    @staticmethod
    def _step_terms(mode: ScoringMode, gradient: Any, weights: Any, before: Any) -> dict[str, Any]:
        """The mode's terms of one read step; a `RowGradient`'s by its rows only."""
        if isinstance(gradient, RowGradient):
            return row_terms(mode, gradient, weights, KERAS_STEP_OPS)
        return mode.step_terms(gradient, weights, before, KERAS_STEP_OPS)

    def _is_update_step(self) -> Any:
        """Whether this call updates the weights: `True`, or a tensor under accumulation."""
        inner = self.inner_optimizer
        steps = inner.gradient_accumulation_steps
        if not steps:
            return True
        return keras.ops.equal(keras.ops.mod(inner._iterations.value + 1, steps), 0)

    def _state_variables(self) -> list[Any]:
        """The variables one read updates, in the order of `_read_values()`."""
        variables = []
        for weight in self._tracked_weights:
            for key in weight.sums:
                variables += [weight.sums[key], weight.compensations[key]]
            variables += [weight.n_read, weight.n_skipped]
        return variables

    def _assign_state(self, values: Sequence[Any]) -> None:
        for variable, value in zip(self._state_variables(), values, strict=True):
            variable.assign(value)

    def _read_values(self, inputs: Sequence[tuple[_Slot, Any, Any, Any]]) -> list[Any]:
        """The state after reading this step: Kahan-added terms where they are finite.

        `inputs` holds one entry per variable (`_slots` order); a tracked
        weight of several variables gets their gradients, values and values
        before the step combined into one first.
        """
        parts: dict[int, list[tuple[Any, Any, Any]]] = {id(w): [] for w in self._tracked_weights}
        for slot, raw_gradient, accumulated, before in inputs:
            gradient = self._applied_gradient(raw_gradient, accumulated)
            current = keras.ops.cast(slot.variable.value, "float32")
            if before is not None:
                before = keras.ops.cast(before, "float32")
            parts[id(slot.weight)].append((gradient, current, before))
        values = []
        for tracked in self._tracked_weights:
            gradients, currents, befores = zip(*parts[id(tracked)], strict=True)
            gradient = tracked.combine(gradients)
            weights = tracked.combine(currents)
            before = None if befores[0] is None else tracked.combine(befores)
            terms = self._step_terms(tracked.mode, gradient, weights, before)
            finite = keras.ops.all(keras.ops.isfinite(terms[tracked.mode.check_key]))
            for key, term in terms.items():
                total, compensation = tracked.sums[key].value, tracked.compensations[key].value
                corrected = term - compensation
                new_total = total + corrected
                new_compensation = (new_total - total) - corrected
                values += [
                    keras.ops.where(finite, new_total, total),
                    keras.ops.where(finite, new_compensation, compensation),
                ]
            counted = keras.ops.cast(finite, "int32")
            values += [tracked.n_read.value + counted, tracked.n_skipped.value + (1 - counted)]
        return values

    # ------------------------------------------------------------------ host
    @property
    def steps(self) -> int:
        """Applied updates seen so far (decides which are read)."""
        if self._steps_variable is None:
            return 0
        return int(keras.ops.convert_to_numpy(self._steps_variable))

    @steps.setter
    def steps(self, value: int) -> None:
        if self._steps_variable is None:
            raise RuntimeError("build the tap (or apply a step) before setting its step count")
        self._steps_variable.assign(int(value))

    def drain(self) -> dict[str, tuple[dict[str, np.ndarray], int, int]]:
        """Return each tracked weight's sums and counts since the last drain, and zero them.

        Call it outside the train step (once per epoch): it reads the
        variables on the host. Returns `{name: (sums, n_read, n_skipped)}`
        with the sums in float64.
        """
        result = {}
        for tracked in self._tracked_weights:
            if tracked.n_read is None:
                continue
            compensations = tracked.compensations
            sums = {
                key: np.asarray(keras.ops.convert_to_numpy(total), dtype=np.float64)
                - np.asarray(keras.ops.convert_to_numpy(compensations[key]), dtype=np.float64)
                for key, total in tracked.sums.items()
            }
            n_read = int(keras.ops.convert_to_numpy(tracked.n_read))
            n_skipped = int(keras.ops.convert_to_numpy(tracked.n_skipped))
            for variable in (*tracked.sums.values(), *tracked.compensations.values()):
                variable.assign(keras.ops.zeros(variable.shape, dtype=variable.dtype))
            tracked.n_read.assign(0)
            tracked.n_skipped.assign(0)
            result[tracked.name] = (sums, n_read, n_skipped)
        return result


def find_taps(optimizer: Any) -> list[GradientTapOptimizer]:
    """Every tap in the chain of wrappers that starts at `optimizer`."""
    taps = []
    while optimizer is not None:
        if isinstance(optimizer, GradientTapOptimizer):
            taps.append(optimizer)
        optimizer = getattr(optimizer, "inner_optimizer", None)
    return taps


def unlink_tap(model: Any, tap: GradientTapOptimizer) -> bool:
    """Remove `tap` from the model's chain of optimizer wrappers.

    The chain may hold other wrappers (a `LossScaleOptimizer`, another
    callback's tap); each keeps its place. Returns whether `tap` was found.
    """
    parent: Any = None
    current = getattr(model, "optimizer", None)
    while current is not None:
        if current is tap:
            if parent is None:
                model.optimizer = tap.inner_optimizer
            else:
                parent.inner_optimizer = tap.inner_optimizer
            return True
        parent, current = current, getattr(current, "inner_optimizer", None)
    return False
