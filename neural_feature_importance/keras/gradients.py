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
  PyTorch trackers do under Lightning's gradient accumulation.

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
(`GradientTapOptimizer.save_own_variables()`), so a model saved during
training (`ModelCheckpoint`) loads into a model compiled with the plain optimizer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from neural_feature_importance.core.arrays import NUMPY_OPS, Array
from neural_feature_importance.core.modes import ScoringMode

__all__ = ["GradientTapOptimizer", "KerasStepOps", "find_taps", "unlink_tap"]


def _nothing() -> None:
    """The branch of a step that is not read."""


def _distribution_scope(variables: Sequence[Any]) -> contextlib.AbstractContextManager[Any]:
    """The `tf.distribute` strategy scope of the tracked weights, where the tap is created.

    On TensorFlow, a variable of the tap that a replica writes in the train
    step must be a mirrored variable of the strategy that runs the step, and
    Keras's TensorFlow optimizer takes its strategy from the scope it is
    constructed in. The callbacks construct the tap in `on_train_begin`,
    outside the user's `strategy.scope()`, so the tap enters the strategy
    that owns the tracked weights itself. A null context on other backends,
    for weights of no strategy, and inside a strategy scope already.
    """
    if keras.backend.backend() != "tensorflow":
        return contextlib.nullcontext()
    import tensorflow as tf  # only on the TensorFlow backend, where Keras has imported it

    if tf.distribute.has_strategy():
        return contextlib.nullcontext()
    for variable in variables:
        value = getattr(variable, "value", variable)
        if isinstance(value, tf.distribute.DistributedValues):
            return value.distribute_strategy.scope()
    return contextlib.nullcontext()


def _sum_over_replicas(gradients: list[Any]) -> list[Any]:
    """The tracked gradients summed over `tf.distribute` replicas, as Keras's optimizer sums them.

    Keras's TensorFlow optimizer (`TFOptimizer._all_reduce_sum_gradients`)
    all-reduces each replica's gradient with `ReduceOp.SUM` before its
    update; each replica's loss is already divided by the number of replicas,
    so the sum is the gradient of the global batch. Unchanged on other
    backends, outside a replica context, and with a single replica.
    """
    if keras.backend.backend() != "tensorflow":
        return gradients
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return gradients
    return list(context.all_reduce(tf.distribute.ReduceOp.SUM, gradients))


class KerasStepOps:
    """The modes' per-step reduction in `keras.ops` (compiles into the train step)."""

    def sum(self, array: Array, axis: int | tuple[int, ...]) -> Array:
        return keras.ops.sum(array, axis=axis)

    def dot(self, a: Array, b: Array, axis: int) -> Array:
        # The compilers (XLA, Grappler) fuse the product into the reduction.
        return keras.ops.sum(a * b, axis=axis)


KERAS_STEP_OPS = KerasStepOps()


@dataclass
class _Slot:
    """One tracked weight: its variable, its scoring mode and the tap's sums of it.

    A plain object, not a Keras-tracked attribute: the tracked weight belongs
    to the model and must never become one of the optimizer's variables.
    """

    name: str
    variable: Any
    mode: ScoringMode
    sums: dict[str, Any] = field(default_factory=dict)
    compensations: dict[str, Any] = field(default_factory=dict)
    n_read: Any = None
    n_skipped: Any = None


class GradientTapOptimizer(keras.optimizers.Optimizer):
    """Wraps an optimizer and sums a scoring mode's gradient terms in the train step.

    Parameters
    ----------
    inner_optimizer : keras.optimizers.Optimizer
        The optimizer that updates the model; the tap delegates every update,
        the learning rate and the iteration count to it.
    tracked : sequence of (str, keras.Variable, ScoringMode)
        The weights to read: a name, the model's variable, and the core
        tracker's scoring mode, whose `step_terms` give the per-step terms.
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
        tracked = list(tracked)
        # Keras's TensorFlow optimizer takes its tf.distribute strategy from this scope.
        with _distribution_scope([variable for _, variable, _ in tracked]):
            super().__init__(learning_rate=0.0, name=name or f"gradient_tap_{inner_optimizer.name}")
        self.inner_optimizer = inner_optimizer
        self.gradient_every = int(gradient_every)
        self._slots = [_Slot(slot_name, variable, mode) for slot_name, variable, mode in tracked]
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
        tracked weights (see `_distribution_scope()`).
        """
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
            shapes = self._term_shapes(slot)
            for key, shape in shapes.items():
                slot.sums[key] = self.add_variable(shape, dtype="float32", name=f"{key}_sum")
                slot.compensations[key] = self.add_variable(
                    shape, dtype="float32", name=f"{key}_compensation"
                )
            slot.n_read = self.add_variable((), dtype="int32", name="reads")
            slot.n_skipped = self.add_variable((), dtype="int32", name="skipped_reads")
        self._steps_variable = self.add_variable((), dtype="int32", name="applied_updates")

    @staticmethod
    def _term_shapes(slot: _Slot) -> dict[str, tuple[int, ...]]:
        """Shapes of the mode's per-step terms (from a zero weight, on the host)."""
        zeros = np.zeros(tuple(slot.variable.shape), dtype="float32")
        terms = slot.mode.step_terms(zeros, zeros, zeros, NUMPY_OPS)
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

    # Saved as the wrapped optimizer: a model saved while the tap is installed
    # (ModelCheckpoint during fit) loads into one compiled with the plain optimizer.
    def save_own_variables(self, store: Any) -> None:
        self.inner_optimizer.save_own_variables(store)

    def load_own_variables(self, store: Any) -> None:
        self.inner_optimizer.load_own_variables(store)

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

    def _applied_gradient(self, gradient: Any, accumulated: Any) -> Any:
        """The gradient the wrapped optimizer applies (unscaled, averaged if accumulated)."""
        inner = self.inner_optimizer
        gradient = keras.ops.convert_to_tensor(gradient)  # densifies TensorFlow IndexedSlices
        gradient = keras.ops.cast(gradient, "float32")
        if inner.loss_scale_factor is not None:
            gradient = gradient / inner.loss_scale_factor
        if accumulated is not None:
            steps = inner.gradient_accumulation_steps
            gradient = (gradient + keras.ops.cast(accumulated, "float32")) / steps
        return gradient

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
        for slot in self._slots:
            for key in slot.sums:
                variables += [slot.sums[key], slot.compensations[key]]
            variables += [slot.n_read, slot.n_skipped]
        return variables

    def _assign_state(self, values: Sequence[Any]) -> None:
        for variable, value in zip(self._state_variables(), values, strict=True):
            variable.assign(value)

    def _read_values(self, inputs: Sequence[tuple[_Slot, Any, Any, Any]]) -> list[Any]:
        """The state after reading this step: Kahan-added terms where they are finite."""
        values = []
        for slot, raw_gradient, accumulated, before in inputs:
            gradient = self._applied_gradient(raw_gradient, accumulated)
            weights = keras.ops.cast(slot.variable.value, "float32")
            if before is not None:
                before = keras.ops.cast(before, "float32")
            terms = slot.mode.step_terms(gradient, weights, before, KERAS_STEP_OPS)
            finite = keras.ops.all(keras.ops.isfinite(terms[slot.mode.check_key]))
            for key, term in terms.items():
                total, compensation = slot.sums[key].value, slot.compensations[key].value
                corrected = term - compensation
                new_total = total + corrected
                new_compensation = (new_total - total) - corrected
                values += [
                    keras.ops.where(finite, new_total, total),
                    keras.ops.where(finite, new_compensation, compensation),
                ]
            counted = keras.ops.cast(finite, "int32")
            values += [slot.n_read.value + counted, slot.n_skipped.value + (1 - counted)]
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
        """Return each slot's sums and counts since the last drain, and zero them.

        Call it outside the train step (once per epoch): it reads the
        variables on the host. Returns `{name: (sums, n_read, n_skipped)}`
        with the sums in float64.
        """
        result = {}
        for slot in self._slots:
            if slot.n_read is None:
                continue
            sums = {
                key: np.asarray(keras.ops.convert_to_numpy(total), dtype=np.float64)
                - np.asarray(keras.ops.convert_to_numpy(slot.compensations[key]), dtype=np.float64)
                for key, total in slot.sums.items()
            }
            n_read = int(keras.ops.convert_to_numpy(slot.n_read))
            n_skipped = int(keras.ops.convert_to_numpy(slot.n_skipped))
            for variable in (*slot.sums.values(), *slot.compensations.values()):
                variable.assign(keras.ops.zeros(variable.shape, dtype=variable.dtype))
            slot.n_read.assign(0)
            slot.n_skipped.assign(0)
            result[slot.name] = (sums, n_read, n_skipped)
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
