"""The gradient tap: gradient scoring modes (`taylor`...) inside Keras's compiled train step.

A Keras callback never sees gradients, but the optimizer does: every backend's trainer hands them to
`optimizer.apply` (TensorFlow, PyTorch) or to `optimizer.stateless_apply` inside `jax.jit` (JAX).
[`GradientTapOptimizer`][] wraps the user's optimizer in the manner of Keras's own
`LossScaleOptimizer`: it delegates the update to the wrapped optimizer and, in the same compiled
step, adds the scoring mode's per-step terms
([`step_terms()`][neural_feature_importance.core.modes.ScoringMode.step_terms], the formula the
PyTorch trackers use) to Keras variables of its own: with `keras.ops` in a compiled step, with
in-place torch operations on the eager PyTorch backend (`keras/_tap_state.py`). Nothing crosses to
the host during training; the callback hands the sums to the core tracker once per epoch
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
one the wrapped optimizer applies (`keras/_distributed.py`).

The callbacks install the tap at `on_train_begin` and give the user's
optimizer back at `on_train_end`, rebuilding the train function each time.
Its variables are saved as those of the wrapped optimizer
(`WrappedOptimizer` in `keras/_wrapped_optimizer.py`), and left out of a
`LossScaleOptimizer`'s list (`keras/_saving.py`), so a model saved during
training (`ModelCheckpoint`) holds the entries of an untracked one and loads
into a model compiled with the plain optimizer, loss scale included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from neural_feature_importance.core.arrays import NUMPY_OPS, StepOps
from neural_feature_importance.core.modes import ScoringMode
from neural_feature_importance.keras._distributed import distribution_scope as _distribution_scope
from neural_feature_importance.keras._distributed import sum_over_replicas as _sum_over_replicas
from neural_feature_importance.keras._sparse import (
    RowGradient,
    SparseGradient,
    is_indexed_slices,
    row_terms,
    rows_are_features,
    rows_before,
)
from neural_feature_importance.keras._tap_state import (
    EAGER_SUM_DTYPE,
    KERAS_STEP_OPS,
    PHASE,
    KerasStepOps,
    accumulated_copy,
    add_terms_eager,
    applied_gradient,
    compiled_steps,
    count_step_only,
    drain_compiled_state,
    drain_eager,
    eager_step_ops,
    kahan_add,
    layout_compiled_state,
    read_increments,
    reads_between,
    selects_reads,
    set_compiled_steps,
    step_increments,
)
from neural_feature_importance.keras._tap_weights import VariableGroup, _Slot, _Weight
from neural_feature_importance.keras._wrapped_optimizer import WrappedOptimizer

__all__ = ["GradientTapOptimizer", "KerasStepOps", "VariableGroup", "find_taps", "unlink_tap"]


class GradientTapOptimizer(WrappedOptimizer):
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
    In a compiled step the sums, their Kahan compensation and the step count
    are one float32 Keras variable; on the eager PyTorch backend the sums are
    float64 variables and the step count a host integer
    (`keras/_tap_state.py`): either way an epoch of many thousands of steps
    keeps a float64 sum's precision. [`drain()`][drain] returns them in float64
    and zeroes them.

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
            super().__init__(inner_optimizer, name or f"gradient_tap_{inner_optimizer.name}")
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
        # The eager PyTorch backend counts steps on the host and sums in float64
        # (keras/_tap_state.py); compiled steps count them in a device variable.
        self._eager = keras.backend.backend() == "torch"
        self._step_ops: StepOps = eager_step_ops() if self._eager else KERAS_STEP_OPS
        # Compiled steps: one (2, width) float32 variable holds every sum, its
        # compensation, the count of applied updates and the read phase.
        self._state: Any = None
        self._host_steps = 0
        # The wrapped optimizer's iteration count, mirrored on the host under
        # gradient accumulation (eager only; read once, when the step count is set).
        self._host_iterations: int | None = None
        # Steps read since the last drain: those of earlier counts, and from this step on.
        self._reads_before = 0
        self._counted_from = 0

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
            weight.layout = list(self._term_shapes(weight).items())
            weight.size = sum(int(np.prod(shape)) for _, shape in weight.layout) + 1
            if self._eager:
                weight.total = self.add_variable((weight.size,), dtype=EAGER_SUM_DTYPE, name="sums")
                weight.one = keras.ops.ones((1,), dtype="float32")
        if not self._eager:
            width = layout_compiled_state(self._tracked_weights)
            self._state = self.add_variable((2, width), dtype="float32", name="sums")

    @staticmethod
    def _term_shapes(weight: _Weight) -> dict[str, tuple[int, ...]]:
        """Shapes of the mode's per-step terms (from a zero weight, on the host)."""
        zeros = np.zeros(weight.shape, dtype="float32")
        terms = weight.mode.step_terms(zeros, zeros, zeros, NUMPY_OPS)
        return {key: tuple(np.shape(value)) for key, value in terms.items()}

    # ------------------------------------------------------------------ step
    def apply(self, grads: Sequence[Any], trainable_variables: Sequence[Any] | None = None) -> None:
        """Apply the update with the wrapped optimizer, then add the step's terms if read.

        Only read steps add terms. In a compiled step a small layer's terms
        are computed at every step and masked out of the steps not read, a
        large layer's computed behind a `keras.ops.cond` (`_apply_compiled`);
        on the eager PyTorch backend a host counter decides, where a tensor's
        `cond` would read it on the host at every step. Under `tf.distribute`
        each replica calls this with its own gradient, and the tracked
        gradients are first summed over the replicas.
        """
        if trainable_variables is not None:
            variables = list(trainable_variables)
            if not self.built:
                self.build(variables)
        else:
            variables = list(self._trainable_variables)
        if self._eager:
            self._apply_eager(grads, trainable_variables, variables)
        else:
            self._apply_compiled(grads, trainable_variables, variables)

    def _read_inputs(
        self, grads: Sequence[Any], variables: Sequence[Any]
    ) -> list[tuple[_Slot, Any, Any, Any]]:
        """(slot, gradient, accumulated gradient, weight before) of every tracked variable.

        Taken before the update: it resets the accumulated gradient and moves the weight.
        """
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
            accumulated = accumulated_copy(self.inner_optimizer, slot.variable)
            reads_before, before = slot.mode.needs_weights_before, None
            if accumulated is None and self._reads_rows(slot, gradient):
                # An Embedding's tf.IndexedSlices: read by the batch's rows (keras/_sparse.py),
                # and so is the weight before the update, where the mode reads it.
                rows = rows_before(slot.variable, gradient) if reads_before else None
                gradient = SparseGradient(gradient, int(slot.variable.shape[0]), rows)
            elif reads_before:
                # A copy: on TensorFlow and torch .value reads the live variable.
                before = keras.ops.copy(slot.variable.value)
            inputs.append((slot, gradient, accumulated, before))
        return inputs

    def _apply_compiled(
        self, grads: Sequence[Any], trainable_variables: Any, variables: Sequence[Any]
    ) -> None:
        """TensorFlow and JAX: the read decided on the device, its terms behind a `cond`.

        The tap's whole state is one variable (every sum and its
        compensation, the count of applied updates, the read phase), read
        once and assigned once per step: in JAX's `jit` each variable is a
        buffer carried in and out of the step, about 1.5 µs each on a CPU.
        A small layer's terms are computed at every step and masked out of
        the steps that are not read (a select); a large layer's, or a
        TensorFlow table's sparse gradient, behind a `cond`, which returns
        the new state and assigns nothing, so the step is the same on both
        backends (`selects_reads()` in `keras/_tap_state.py`).
        """
        inputs = self._read_inputs(grads, variables)
        applied = self._is_update_step()
        self.inner_optimizer.apply(grads, trainable_variables)
        # Keras variables are read through .value: JAX refuses them inside jit.
        state = self._state.value
        steps = step_increments(state, applied, self.gradient_every)

        def read(is_read: Any = None) -> Any:
            increments = self._read_increments(inputs, is_read)
            return kahan_add(state, keras.ops.concatenate([increments, steps]))

        if self.gradient_every == 1 and applied is True:
            # Every step is read: no mask, no cond.
            self._state.assign(read())
            return
        is_read = keras.ops.equal(state[0, PHASE], 0.0)
        if applied is not True:
            is_read = keras.ops.logical_and(applied, is_read)
        if selects_reads(self._tracked_weights, [gradient for _, gradient, _, _ in inputs]):
            self._state.assign(read(is_read))
        else:
            self._state.assign(keras.ops.cond(is_read, read, lambda: count_step_only(state, steps)))

    def _apply_eager(
        self, grads: Sequence[Any], trainable_variables: Any, variables: Sequence[Any]
    ) -> None:
        """The eager PyTorch backend: the read decided on the host, nothing read back.

        A step that is not read costs the tap two integer operations; a read
        step copies what the update changes, then adds its terms in place.
        """
        import torch  # only on the PyTorch backend

        applied = self._host_update_step()
        read = applied and self._host_steps % self.gradient_every == 0
        with torch.no_grad():
            inputs = self._read_inputs(grads, variables) if read else None
            self.inner_optimizer.apply(grads, trainable_variables)
            if applied:
                self._host_steps += 1
            if inputs is not None:
                for weight, terms in self._weight_terms(inputs):
                    add_terms_eager(weight, terms)

    def _host_update_step(self) -> bool:
        """Whether this call updates the weights, from the host's count of calls (eager)."""
        inner = self.inner_optimizer
        steps = inner.gradient_accumulation_steps
        if not steps:
            return True
        if self._host_iterations is None:
            self._sync_iterations()
        assert self._host_iterations is not None
        update = (self._host_iterations + 1) % steps == 0
        self._host_iterations += 1
        return bool(update)

    def _sync_iterations(self) -> None:
        """Mirror the wrapped optimizer's iteration count on the host (one read, eager only)."""
        if self._eager and self.inner_optimizer.gradient_accumulation_steps:
            iterations = self.inner_optimizer.iterations
            self._host_iterations = int(keras.ops.convert_to_numpy(iterations))

    @staticmethod
    def _reads_rows(slot: _Slot, gradient: Any) -> bool:
        """Whether this slot's gradient is read by rows: a TensorFlow Embedding's, one variable."""
        return (
            is_indexed_slices(gradient)
            and slot.weight.group is None
            and rows_are_features(slot.mode, tuple(slot.variable.shape))
        )

    def _step_terms(self, mode: ScoringMode, gradient: Any, weights: Any, before: Any) -> Any:
        """The mode's terms of one read step; a `RowGradient`'s by its rows only."""
        if isinstance(gradient, RowGradient):
            return row_terms(mode, gradient, weights, KERAS_STEP_OPS)
        return mode.step_terms(gradient, weights, before, self._step_ops)

    def _is_update_step(self) -> Any:
        """Whether this call updates the weights: `True`, or a tensor under accumulation."""
        inner = self.inner_optimizer
        steps = inner.gradient_accumulation_steps
        if not steps:
            return True
        return keras.ops.equal(keras.ops.mod(inner._iterations.value + 1, steps), 0)

    def _weight_terms(
        self, inputs: Sequence[tuple[_Slot, Any, Any, Any]]
    ) -> list[tuple[_Weight, dict[str, Any]]]:
        """Each tracked weight's terms of this step.

        `inputs` holds one entry per variable (`_slots` order); a tracked
        weight of several variables gets their gradients, values and values
        before the step combined into one first.
        """
        parts: dict[int, list[tuple[Any, Any, Any]]] = {id(w): [] for w in self._tracked_weights}
        for slot, raw_gradient, accumulated, before in inputs:
            gradient = applied_gradient(
                self.inner_optimizer, raw_gradient, accumulated, self._eager
            )
            current = slot.variable.value
            current = current.float() if self._eager else keras.ops.cast(current, "float32")
            if before is not None:
                before = keras.ops.cast(before, "float32")
            parts[id(slot.weight)].append((gradient, current, before))
        out = []
        for tracked in self._tracked_weights:
            gradients, currents, befores = zip(*parts[id(tracked)], strict=True)
            gradient = tracked.combine(gradients)
            weights = tracked.combine(currents)
            before = None if befores[0] is None else tracked.combine(befores)
            out.append((tracked, self._step_terms(tracked.mode, gradient, weights, before)))
        return out

    def _read_increments(
        self, inputs: Sequence[tuple[_Slot, Any, Any, Any]], is_read: Any = None
    ) -> Any:
        """The increments of every weight's columns by one read (compiled).

        0 where not finite, and at a step that is not read when `is_read` is given.
        """
        pieces = [
            read_increments(weight, terms, is_read) for weight, terms in self._weight_terms(inputs)
        ]
        return pieces[0] if len(pieces) == 1 else keras.ops.concatenate(pieces)

    # ------------------------------------------------------------------ host
    @property
    def steps(self) -> int:
        """Applied updates seen so far (decides which are read)."""
        if self._eager:
            return self._host_steps
        if self._state is None:
            return 0
        return compiled_steps(self._state)

    @steps.setter
    def steps(self, value: int) -> None:
        if not self.built:
            raise RuntimeError("build the tap (or apply a step) before setting its step count")
        # The reads of the count left behind are still to be drained.
        self._reads_before += reads_between(self._counted_from, self.steps, self.gradient_every)
        self._counted_from = int(value)
        if self._eager:
            self._host_steps = int(value)
            self._sync_iterations()
        else:
            set_compiled_steps(self._state, int(value), self.gradient_every)

    def drain(self) -> dict[str, tuple[dict[str, np.ndarray], int, int]]:
        """Return each tracked weight's sums and counts since the last drain, and zero them.

        Call it outside the train step (once per epoch): it reads the
        variables on the host. Returns `{name: (sums, n_read, n_skipped)}`
        with the sums in float64; `n_skipped` counts the steps read whose
        terms were not finite (those the step count says were read, less
        those added).
        """
        if not self.built:
            return {}
        if self._eager:
            steps = self._host_steps
            drained = [drain_eager(tracked) for tracked in self._tracked_weights]
        else:
            drained, steps = drain_compiled_state(self._state, self._tracked_weights)
        attempted = self._reads_before + reads_between(
            self._counted_from, steps, self.gradient_every
        )
        self._reads_before, self._counted_from = 0, steps
        return {
            tracked.name: (sums, n_read, attempted - n_read)
            for tracked, (sums, n_read) in zip(self._tracked_weights, drained, strict=True)
        }


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
