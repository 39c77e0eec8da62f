"""The base of every scoring mode: the statistics it keeps and how they combine.

A mode is one small object per tracked weight, in the style of torchmetrics'
`Metric`: it absorbs weight snapshots ([`ScoringMode.snapshot()`][ScoringMode.snapshot]) and
optimizer steps ([`ScoringMode.gradient()`][ScoringMode.gradient], or sums of them read inside a
compiled train step, [`ScoringMode.add_sums()`][ScoringMode.add_sums]), derives per-feature and
per-unit sums from them, merges with another stream's statistics
([`ScoringMode.merge()`][ScoringMode.merge]) and saves and restores them
([`ScoringMode.state_dict()`][ScoringMode.state_dict]). The paper's method is one of them
([`ViannMode`][]); the registry is [`neural_feature_importance.core.modes`][].
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from neural_feature_importance.core.arrays import Array, ArrayOps, StepOps
from neural_feature_importance.core.errors import SNAPSHOT_ADVICE, NotFittedError, StateDictError
from neural_feature_importance.core.modes._held_reads import HeldReads
from neural_feature_importance.core.views import WeightView

GRADIENT_ADVICE = {
    "torch": (
        "Call the tracker's on_step_end() after optimizer.step() and before "
        "optimizer.zero_grad() (on the bare core: update_gradients(grad, weights) after "
        "every optimizer step)."
    ),
    "keras": (
        "Pass the callback to fit() of a compiled model: it reads the gradient in "
        "model.optimizer for the length of fit(), so a custom train_step must update the "
        "weights through self.optimizer (apply(), apply_gradients(), or stateless_apply() "
        "on JAX). In a custom training loop, update the model with the optimizer the "
        "callback's wrap_optimizer() returns (on the bare core: "
        "update_gradients(grad, weights) after every optimizer step)."
    ),
}
"""What to do when a gradient mode recorded no read, by weight layout (framework)."""


def reduced_to_features(view: WeightView, reduced: np.ndarray) -> np.ndarray:
    """Per-feature values summed over the unit axis -> `(n_features,)` in view order."""
    axis = view.unit_axis
    shape = list(view.weight_shape)
    shape[axis] = 1
    single_unit = WeightView(view.kind, view.layout, tuple(shape))
    return single_unit.to_matrix(np.expand_dims(reduced, axis))[:, 0]


class ScoringMode:
    """Base class: the statistics one mode keeps, and the scores it derives.

    Parameters
    ----------
    view : WeightView
        The tracked weight's view (shape, layout, which axis is a feature).
    ops : ArrayOps
        Array library of the weights; the statistics live in it.
    dtype : str
        Precision of the statistics (`"float64"` or `"float32"`).

    Notes
    -----
    Subclasses set `name`, `needs_gradients`, `min_snapshots`
    and the names of their arrays with how two trackers' arrays merge
    (`merge_rules`: `"sum"` adds them, `"first"` keeps this
    tracker's, `"last"` takes the other's), and implement the hooks they need
    and [`contributions()`][contributions] (or [`feature_sums()`][feature_sums] and
    [`unit_sums()`][unit_sums]).
    """

    name: ClassVar[str] = ""
    needs_gradients: ClassVar[bool] = False
    gradient_every: ClassVar[int] = 1
    """Gradient modes: read one optimizer step in this many, unless the tracker says."""
    min_snapshots: ClassVar[int] = 1
    merge_rules: ClassVar[dict[str, str]] = {}
    keeps_last: ClassVar[bool] = False
    """Whether the scores read the last weight snapshot.

    The tracker keeps a copy of the last snapshot only for the modes that
    read it, so that each mode's state holds only what it needs (`taylor`
    keeps one accumulator per feature and nothing per weight).
    """
    clips: ClassVar[bool] = True
    """Whether the sums are clipped at 0 to give scores (VIANN's are scores as they are)."""
    reduces_each_step: ClassVar[bool] = False
    """Whether each step's terms are already complete sums (gradient modes).

    `taylor` takes the absolute value of each step's per-feature sum over
    the units (and, for convolutions, of each unit's sum over the features),
    so under a sharded weight those sums must be complete at every step: the
    adapter's step operations reduce them over the processes
    ([`sharding`][]), and the accumulated sums need no reduction when read.
    """

    def __init__(self, view: WeightView, ops: ArrayOps, dtype: str) -> None:
        self.view = view
        self.ops = ops
        self.dtype = dtype
        self.n_snapshots = 0
        self._n_steps = 0
        self._n_skipped = 0
        self.arrays: dict[str, Array | None] = dict.fromkeys(self.merge_rules)
        self.last: Array | None = None
        """Copy of the last snapshot, kept by the modes whose scores read it."""
        self.before: Array | None = None
        """Modes with [`needs_weights_before`][]: the weight before the next read step.

        Held by [`start()`][start] (the initial weights), then by each read (its weight
        after the step: the next step's weight before, for a caller that feeds every
        step, as the bare core's contract is), or by
        [`hold_weights_before()`][hold_weights_before] once a caller holds it by hand (the
        PyTorch trackers, which read one step in `gradient_every`, call it after the step
        before each read). A held copy serves one read. The Keras tap passes the weight
        before the step to [`step_terms()`][step_terms] instead. Part of the state while
        held, so that a resumed run reads it as the uninterrupted run does.
        """
        self._before_held = False
        self._held_by_hand = False
        self.held = HeldReads(ops, self.check_key, self.terms_from_raw, self._add)
        """Gradient reads not yet in `arrays` (see [`HeldReads`][])."""

    # ----------------------------------------------------------------- counts
    @property
    def n_steps(self) -> int:
        """Gradient reads recorded (finite ones); reading it settles the held reads."""
        self.settle()
        return self._n_steps

    @n_steps.setter
    def n_steps(self, value: int) -> None:
        self._n_steps = int(value)

    @property
    def n_skipped(self) -> int:
        """Gradient reads skipped because they held NaN or Inf (settles the held reads)."""
        self.settle()
        return self._n_skipped

    @n_skipped.setter
    def n_skipped(self, value: int) -> None:
        self._n_skipped = int(value)

    def settle(self) -> None:
        """Bring the held reads into the sums and the counts (one host sync if any are held)."""
        kept, skipped = self.held.settle()
        self._n_steps += kept
        self._n_skipped += skipped

    # ------------------------------------------------------------------ hooks
    def start(self, weights: Array) -> None:
        """Record the weights before training (the first read's weight before its step)."""
        if self.needs_weights_before:
            self._hold(weights)

    def hold_weights_before(self, weights: Array) -> None:
        """Keep a float32 copy of `weights` as the weight before the next read step.

        Only modes with [`needs_weights_before`][] keep one (a no-op elsewhere). From
        the first call on, the caller holds it before every read: a read no longer
        keeps its own weight for the next one. The copy is refreshed in place: one
        pass over the weight per read step.
        """
        if self.needs_weights_before:
            self._held_by_hand = True
            self._hold(weights)

    def _hold(self, weights: Array) -> None:
        if self.before is None or tuple(self.before.shape) != tuple(weights.shape):
            self.before = self.ops.copy_as(weights, "float32")
        else:
            self.ops.copy_into(self.before, weights)
        self._before_held = True

    def snapshot(self, weights: Array) -> None:
        """Absorb one weight snapshot: counted, and copied if [`keeps_last`][].

        The held gradient reads join the sums here too, so that the state at a
        snapshot does not depend on when it is saved: a resumed run equals an
        uninterrupted one.
        """
        self.held.fold()
        self.n_snapshots += 1
        if self.keeps_last:
            if self.last is None:
                self.last = self.ops.copy_as(weights, self.dtype)
            else:
                self.ops.copy_into(self.last, weights)

    check_key: ClassVar[str] = ""
    """Gradient modes: the term of [`step_terms()`][step_terms] whose finiteness decides a read."""
    needs_weights_before: ClassVar[bool] = False
    """Gradient modes: whether [`step_terms()`][step_terms] reads the weight before the step."""

    def raw_terms(
        self, gradient: Array, weights: Array, ops: StepOps, before: Array | None = None
    ) -> dict[str, Array]:
        """The linear part of one step's terms, computed at every read step.

        The built-in gradient modes return reductions of `gradient * weights`
        (one value per feature, and per filter for convolutions): they sum
        linearly over processes, and are held on the device until
        [`terms_from_raw()`][terms_from_raw] turns a block of them into terms.
        By default the whole of [`step_terms()`][step_terms]. The arrays must be
        new ones, never views of the live gradient or weights (they are held).
        `before` is the weight before the step, for modes with
        [`needs_weights_before`][].
        """
        return self.step_terms(gradient, weights, before, ops)

    def terms_from_raw(self, raw: dict[str, Array]) -> dict[str, Array]:
        """The non-linear part: terms from [`raw_terms()`][raw_terms], elementwise.

        Works on one step's raw terms and on a block of steps stacked along a
        first axis alike (operators only). By default the identity.
        """
        return raw

    def step_terms(
        self, gradient: Array, weights: Array, before: Array | None, ops: StepOps
    ) -> dict[str, Array]:
        """One optimizer step's contribution to each of the mode's sums.

        The mode's whole per-step formula, written with operators and
        `ops.sum` only, so that the same code runs on the host (numpy), on
        a torch parameter's device and inside a compiled Keras train step
        (`neural_feature_importance.keras.gradients`).

        Parameters
        ----------
        gradient : array
            The loss gradient of the tracked weight, in its framework layout.
        weights : array
            The weight after the optimizer step.
        before : array or None
            The weight before the step, for modes with [`needs_weights_before`][]
            (`descent_taylor`); `None` elsewhere.
        ops : StepOps
            The array library's reductions.
        """
        raise NotImplementedError(f"scoring={self.name!r} does not use gradients")

    def gradient(self, gradient: Array, weights: Array, before: Array | None = None) -> None:
        """Absorb one optimizer step's gradient (gradient modes only).

        `before` is the weight before the step; modes with
        [`needs_weights_before`][] take the held copy (`before`) when it is not
        given.

        Only the linear part of the terms is computed here, on the gradient's
        device, and held ([`HeldReads`][]); the rest is computed for blocks of
        reads. A read whose terms hold NaN or Inf is left out of the sums and
        counted in [`n_skipped`][], which is known once the held reads are
        settled (when the counts or the sums are read). Nothing here waits for
        the device.
        """
        held = self.needs_weights_before and before is None
        if self.needs_weights_before and not held:
            # A scratch copy: the step operations may form the difference in it.
            before = self.ops.copy_as(before, "float32")
        if held:
            # A held copy serves one read: a stale one would measure the distance
            # from an older weight, not this step's.
            if not self._before_held:
                raise ValueError(
                    f"scoring={self.name!r} reads the weight before each read step, and none "
                    "is held for this one: call hold_weights_before(weights) before each "
                    "optimizer step that is read (the PyTorch trackers do, after the step "
                    "before it), or pass update_gradients(grad, weights, before=...)."
                )
            before = self.before
            self._before_held = False
        self.held.hold(self.raw_terms(gradient, weights, self.ops, before))
        if held and not self._held_by_hand:
            self._hold(weights)  # the next step's weight before, if every step is fed

    def add_sums(self, sums: dict[str, np.ndarray], n_steps: int, n_skipped: int) -> None:
        """Absorb the sums of [`step_terms()`][step_terms] over steps read elsewhere.

        The Keras gradient tap sums the terms inside the compiled train step
        and hands them over once per epoch; this adds them to the mode's own
        sums, exactly as if each step had been passed to [`gradient()`][gradient].

        Parameters
        ----------
        sums : dict of str to ndarray
            One summed term per key of [`step_terms()`][step_terms].
        n_steps : int
            Steps absorbed into `sums`.
        n_skipped : int
            Reads skipped because their terms held NaN or Inf.
        """
        unknown = set(sums) - set(self.merge_rules)
        if unknown or not self.needs_gradients:
            raise ValueError(
                f"scoring={self.name!r} keeps no gradient sums named {sorted(unknown)}."
            )
        if n_steps:
            for key, value in sums.items():
                self._add(key, self.ops.copy_as(value, self.dtype))
        self._n_steps += int(n_steps)
        self._n_skipped += int(n_skipped)

    # ---------------------------------------------------------------- scoring
    def check_ready(self) -> None:
        """Raise [`NotFittedError`][] unless scores can be computed."""
        if self.needs_gradients:
            if self.n_steps < 1 and self.n_skipped:
                raise NotFittedError(
                    f"scoring={self.name!r} read {self.n_skipped} gradient(s), and every "
                    "one held NaN or Inf, so none was recorded. Under mixed precision the "
                    "loss scaler skips such steps while it lowers its scale: train for "
                    "more steps. Otherwise training diverged: lower the learning rate or "
                    "clip gradients."
                )
            if self.n_steps < 1:
                snapshots = (
                    f" ({self.n_snapshots} weight snapshot(s) were)" if self.n_snapshots else ""
                )
                raise NotFittedError(
                    f"scoring={self.name!r} reads the tracked layer's gradient at every "
                    f"optimizer update, but none was recorded{snapshots}. "
                    f"{GRADIENT_ADVICE[self.view.layout]} {SNAPSHOT_ADVICE}"
                )
            return
        if self.n_snapshots < self.min_snapshots:
            raise NotFittedError(
                f"scoring={self.name!r} needs at least {self.min_snapshots} weight "
                f"snapshot(s), but {self.n_snapshots} were recorded; train for more epochs "
                "or use update_every=N."
            )

    def contributions(self) -> np.ndarray:
        """Per-weight contributions as a `(features, units)` numpy matrix."""
        raise NotImplementedError

    def feature_sums(self) -> np.ndarray:
        """Per-feature sums before the final clipping at 0, `(n_features,)`.

        Sums over the units, so the sums of the slices of a sharded weight
        add up to the whole weight's ([`sharding`][]); see
        [`reduces_each_step`][] for the exception.
        """
        return self.contributions().sum(axis=1)

    def unit_sums(self) -> np.ndarray:
        """Per-unit (filter) sums before the final clipping at 0, `(n_units,)`."""
        return self.contributions().sum(axis=0)

    def last_matrix(self) -> np.ndarray | None:
        """The last snapshot as a `(features, units)` numpy matrix (`None` before one)."""
        return None if self.last is None else self.view.to_matrix(self.ops.to_numpy(self.last))

    def _matrix(self, key: str) -> np.ndarray:
        self.held.fold()
        return self.view.to_matrix(self.ops.to_numpy(self.arrays[key]))

    def _add(self, key: str, value: Array) -> None:
        """`arrays[key] += value`, allocating the accumulator at the first call."""
        if self.arrays[key] is None:
            self.arrays[key] = self.ops.copy_as(value, self.dtype)
        else:
            self.arrays[key] += value

    # ------------------------------------------------------------------ state
    def all_finite(self) -> bool:
        """Whether every statistic is finite (one device sync per array)."""
        return all(a is None or self.ops.all_finite(a) for a in self.checked_arrays())

    def checked_arrays(self) -> list[Array | None]:
        """The arrays a NaN/Inf in a snapshot or gradient reaches (see `check_finite`)."""
        self.held.fold()
        return [*self.arrays.values(), self.last]

    def state_dict(self) -> dict[str, Any]:
        """Counts and arrays (the accumulators themselves, not copies)."""
        self.settle()
        state = {
            "n_snapshots": self.n_snapshots,
            "n_steps": self.n_steps,
            "n_skipped": self.n_skipped,
            **self.arrays,
        }
        if self.needs_weights_before:
            state["weights_before"] = self.before if self._before_held else None
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore [`state_dict()`][state_dict] (arrays are copied into `ops`)."""
        missing = [key for key in ("n_snapshots", "n_steps", *self.arrays) if key not in state]
        if missing:
            raise StateDictError(
                f"state of scoring={self.name!r} is missing {missing}; was it saved by a "
                "tracker with the same scoring mode?"
            )
        self.held.clear()
        self.n_snapshots = int(state["n_snapshots"])
        self.n_steps = int(state["n_steps"])
        # States written before skipped steps were counted have no "n_skipped".
        self.n_skipped = int(state.get("n_skipped", 0))
        for key in self.arrays:
            value = state[key]
            self.arrays[key] = None if value is None else self.ops.copy_as(value, self.dtype)
        if self.needs_weights_before:
            before = state.get("weights_before")
            self.before = None if before is None else self.ops.copy_as(before, "float32")
            self._before_held = before is not None

    def merge(self, other: ScoringMode) -> None:
        """Absorb `other`'s statistics (`other` is the later stream)."""
        self.settle()
        other.settle()
        for key, rule in self.merge_rules.items():
            mine, theirs = self.arrays[key], other.arrays[key]
            if theirs is None or (rule == "first" and mine is not None):
                continue
            if mine is None or rule == "last":
                self.arrays[key] = self.ops.copy_as(theirs, self.dtype)
            else:
                self.arrays[key] = mine + theirs
        if other.last is not None:
            self.last = self.ops.copy_as(other.last, self.dtype)
        if other._before_held and other.before is not None:
            self.before = self.ops.copy_as(other.before, "float32")
            self._before_held = True
        self.n_snapshots += other.n_snapshots
        self.n_steps += other.n_steps
        self.n_skipped += other.n_skipped
