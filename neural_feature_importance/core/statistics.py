"""The statistics of one tracked weight: snapshots and gradients in, raw scores out.

[`LayerStatistics`][] is the core's unit of work, one per tracked weight, in the style of
torchmetrics' `Metric`: [`update()`][LayerStatistics.update] (a weight snapshot) and
[`update_gradients()`][LayerStatistics.update_gradients] (an optimizer step) accumulate,
[`feature_raw()`][LayerStatistics.feature_raw] and [`unit_raw()`][LayerStatistics.unit_raw] compute,
[`merge()`][LayerStatistics.merge] combines two streams, [`reset()`][LayerStatistics.reset] forgets,
and [`state_dict()`][LayerStatistics.state_dict] /
[`load_state_dict()`][LayerStatistics.load_state_dict] carry exactly what resuming needs (the schema
is [`state`][]).

What is kept is the scoring mode's business ([`modes`][]); this object adds
what every mode shares: the weight's shape and layout ([`WeightView`][]),
the slice of a sharded weight ([`sharding`][]), the NaN/Inf checks, the
history of scores, and the per-epoch report of skipped gradient reads. It
knows nothing of frameworks, columns or normalisation, and never calls back
into an adapter: what an adapter knows about the weight (its shape, its
shard) is passed in.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np

from neural_feature_importance.core import state as state_schema
from neural_feature_importance.core.arrays import Array, ArrayOps, check_dtype
from neural_feature_importance.core.errors import (
    NonFiniteWeightsError,
    NoSignalError,
    NotFittedError,
    never_trained,
)
from neural_feature_importance.core.modes import ScoringMode, get_mode
from neural_feature_importance.core.options import FiniteCheck
from neural_feature_importance.core.sharding import WeightShard
from neural_feature_importance.core.views import Kind, Layout, WeightView

logger = logging.getLogger(__name__)


class LayerStatistics:
    """Running statistics of one tracked weight under one scoring mode.

    Parameters
    ----------
    kind : {"dense", "conv", "embedding"}
        What the weight is (fixes which axis is a feature, [`views`][]).
    layout : {"keras", "torch"}
        Axis order of the arrays passed in.
    ops : ArrayOps
        Array library of the weights; the statistics live in it, on its device.
    scoring : str
        The scoring mode's name ([`SCORING_MODES`][]).
    dtype : {"float64", "float32"}
        Precision of the statistics.
    finite_check : {"update", "deferred"}
        Check each snapshot for NaN/Inf at once, or in [`check_finite()`][check_finite].
    record_history : bool
        Keep the raw scores after every snapshot.
    owner : str
        Name used in messages (the tracker class that holds this object).
    """

    def __init__(
        self,
        kind: Kind,
        layout: Layout,
        ops: ArrayOps,
        *,
        scoring: str,
        dtype: str = "float64",
        finite_check: FiniteCheck = "update",
        record_history: bool = False,
        owner: str = "LayerStatistics",
    ) -> None:
        self.kind = kind
        self.layout = layout
        self.ops = ops
        self.scoring = scoring
        self.mode_class = get_mode(scoring)
        self.dtype = check_dtype(dtype)
        self.finite_check = finite_check
        self.record_history = record_history
        self.owner = owner
        self.reset()

    def reset(self) -> None:
        """Forget every statistic (the options stay)."""
        self.view: WeightView | None = None
        self.mode: ScoringMode | None = None
        self.name: str | None = None
        # This process's slice of a sharded weight (FSDP2), else None.
        self.shard: WeightShard | None = None
        self.n_snapshots = 0
        self.checked_updates = 0
        # Modes that keep no per-weight copy: the snapshots' sums since the last
        # finite check (NaN/Inf propagate into a sum), for finite_check="deferred".
        self.unchecked_sum: Array | None = None
        self.history: list[np.ndarray] = []
        self._cached_raw: np.ndarray | None = None
        # Gradient reads already reported by end_epoch() (read = absorbed + skipped).
        self._reads_reported = 0
        self._skipped_reported = 0

    # ------------------------------------------------------------------ ingest
    def start(self, weights: Array, name: str | None, shard: WeightShard | None = None) -> None:
        """Begin tracking `weights` (the weight before training), forgetting the past."""
        view = WeightView(self.kind, self.layout, tuple(weights.shape))
        if shard is not None and shard.local_shape != view.weight_shape:
            raise ValueError(
                f"the weights passed have shape {view.weight_shape}, but the shard is "
                f"{shard.describe()}, of shape {shard.local_shape}."
            )
        self.reset()
        self.view, self.shard, self.name = view, shard, name or "weights"
        self.mode = self.mode_class(view, self.ops, self.dtype)
        self.mode.start(weights)
        whole = self.whole_view
        logger.info(
            "%s tracks %r: weight %s, %d input features x %d units%s",
            self.owner,
            self.name,
            whole.weight_shape,
            whole.n_features,
            whole.n_units,
            "" if shard is None else f"; this process holds {shard.describe()}",
        )

    @property
    def started(self) -> bool:
        """Whether a weight is being tracked."""
        return self.mode is not None

    @property
    def whole_view(self) -> WeightView:
        """The view of the whole weight (the shard's, when this process holds a slice)."""
        assert self.view is not None
        return self.view if self.shard is None else self.shard.view

    def _started_mode(self) -> ScoringMode:
        if self.mode is None:
            raise NotFittedError(f"{self.owner} tracks no weight yet.")
        return self.mode

    def update(self, weights: Array) -> None:
        """Add one snapshot of the tracked weight (copied where kept, never aliased)."""
        mode = self._started_mode()
        assert self.view is not None
        if tuple(weights.shape) != self.view.weight_shape:
            raise ValueError(
                f"layer {self.name!r}: a weight of shape {tuple(weights.shape)} was "
                f"passed, but this tracker tracks a {self.view.weight_shape} weight. To "
                "track another layer, call reset() first (the torch trackers and Keras "
                "callbacks do this when training begins)."
            )
        number = self.n_snapshots + 1
        if self.finite_check == "update" and not self.ops.all_finite(weights):
            raise NonFiniteWeightsError(
                f"layer {self.name!r}: weight update {number} contains NaN "
                "or Inf, so training diverged before it. The statistics keep the "
                f"{number - 1} finite updates. Lower the learning rate, clip "
                "gradients, or check the inputs for NaN."
            )
        mode.snapshot(weights)
        if self.finite_check == "deferred" and not mode.keeps_last:
            total = weights.sum()
            if self.unchecked_sum is None:
                self.unchecked_sum = self.ops.copy_as(total, self.dtype)
            else:
                self.unchecked_sum += total
        self.n_snapshots += 1
        if self.finite_check == "update":
            self.checked_updates = self.n_snapshots
        self._cached_raw = None
        if self.record_history and self.ready():
            self.history.append(self._compute_raw())

    def hold_weights_before(self, weights: Array) -> None:
        """Keep `weights` as the weight before the next read step (modes that need it)."""
        self._started_mode().hold_weights_before(weights)

    def update_gradients(
        self, gradient: Array, weights: Array, before: Array | None = None
    ) -> None:
        """Add one optimizer step's gradient (gradient modes; a no-op for the others)."""
        mode = self._started_mode()
        if not mode.needs_gradients:
            return
        assert self.view is not None
        if gradient.shape != self.view.weight_shape:  # a tuple, or torch.Size (equal to one)
            raise ValueError(
                f"gradient of shape {tuple(gradient.shape)} does not match the tracked "
                f"weight {self.view.weight_shape} (layer {self.name!r})."
            )
        mode.gradient(gradient, weights, before)
        self._cached_raw = None

    def update_gradient_sums(
        self, sums: dict[str, np.ndarray], n_steps: int, n_skipped: int = 0
    ) -> None:
        """Add gradient reads summed elsewhere (the Keras tap, once per epoch)."""
        if self.mode is None or not self.mode.needs_gradients:
            raise ValueError(
                f"update_gradient_sums() needs a tracker that has started tracking a weight "
                f"with a gradient scoring mode; this one has scoring={self.scoring!r}"
                + ("" if self.mode is not None else " and no weight yet (call start() first)")
                + "."
            )
        self.mode.add_sums(sums, n_steps, n_skipped)
        self._cached_raw = None

    @property
    def skipped(self) -> int:
        """Gradient reads skipped because they held NaN or Inf."""
        return 0 if self.mode is None else self.mode.n_skipped

    def end_epoch(self) -> None:
        """Report the epoch's skipped gradient reads (INFO, WARNING if all), then check NaN/Inf."""
        mode = self.mode
        if mode is not None and mode.needs_gradients:
            skipped = mode.n_skipped - self._skipped_reported
            reads = mode.n_steps + mode.n_skipped - self._reads_reported
            if skipped:
                logger.log(
                    logging.WARNING if skipped == reads else logging.INFO,
                    "%s: skipped %d of this epoch's %d gradient reads of %r because the "
                    "gradient held NaN or Inf (a mixed-precision loss scaler skips those "
                    "optimizer steps too); %d skipped in all.",
                    self.owner,
                    skipped,
                    reads,
                    self.name,
                    mode.n_skipped,
                )
            self._skipped_reported = mode.n_skipped
            self._reads_reported = mode.n_steps + mode.n_skipped
        self.check_finite()

    def check_finite(self) -> None:
        """Raise [`NonFiniteWeightsError`][] if an unchecked snapshot held NaN/Inf."""
        count = self.n_snapshots
        if count == self.checked_updates or self.mode is None:
            return
        arrays = [*self.mode.checked_arrays(), self.unchecked_sum]
        # Under a sharded weight all_finite is a collective whose answer is the
        # same on every process, so every process stops at the same array.
        if all(array is None or self.ops.all_finite(array) for array in arrays):
            self.checked_updates = count
            self.unchecked_sum = None
            return
        first = self.checked_updates + 1
        span = f"update {count}" if first == count else f"one of updates {first}-{count}"
        raise NonFiniteWeightsError(
            f"layer {self.name!r}: {span} contained NaN or Inf, so training "
            "diverged. Lower the learning rate, clip gradients, or check the inputs "
            "for NaN; resume from a checkpoint taken before the divergence."
        )

    # ----------------------------------------------------------------- compute
    def ready(self) -> bool:
        """Whether scores can be computed (without raising)."""
        if self.mode is None:
            return False
        try:
            self.mode.check_ready()
        except NotFittedError:
            return False
        return self.mode.needs_gradients or not self.mode.keeps_last or self.mode.last is not None

    def require_fitted(self) -> None:
        """Raise [`NotFittedError`][] or [`NonFiniteWeightsError`][] unless scores exist."""
        if self.mode is None:
            raise never_trained(
                f"{self.owner} has 0 weight snapshot(s); a variance needs at least 2. Call "
                "update()/on_epoch_end() after each epoch and train before reading importances."
                if self.scoring == "viann"
                else f"{self.owner} tracks no weight yet; start training first."
            )
        self.mode.check_ready()
        # An unchecked snapshot makes check_finite read every array of the mode (and
        # raise for the snapshot); otherwise the mode's arrays are read here, once.
        checked_now = self.n_snapshots != self.checked_updates
        self.check_finite()
        if not checked_now and not self.mode.all_finite():
            raise NonFiniteWeightsError(
                f"layer {self.name!r}: the statistics of scoring={self.scoring!r} "
                "contain NaN or Inf, so a gradient or weight diverged. Lower the learning "
                "rate, clip gradients, or check the inputs for NaN."
            )

    def _compute_raw(self) -> np.ndarray:
        """Raw score of every input feature of the whole weight (a collective if sharded)."""
        return self._whole_scores(self._started_mode().feature_sums(), "features")

    def _whole_scores(self, sums: np.ndarray, axis: Literal["features", "units"]) -> np.ndarray:
        """The whole weight's scores from this slice's sums (a collective if sharded)."""
        mode = self._started_mode()
        if self.shard is not None:
            combine = self.shard.features if axis == "features" else self.shard.units
            sums = combine(sums, partial=not mode.reduces_each_step)
        return np.maximum(sums, 0.0) if mode.clips else sums

    def feature_raw(self, check_signal: bool = True) -> np.ndarray:
        """Raw score of every input feature, `(n_features,)`, kept until the next update.

        Under a sharded weight only the first read after an update communicates.
        """
        if self._cached_raw is None:
            self.require_fitted()
            self._cached_raw = self._compute_raw()
        raw = self._cached_raw.copy()
        return self.check_signal(raw, "feature") if check_signal else raw

    def unit_raw(self) -> np.ndarray:
        """Raw score of every unit (a convolution's filters), `(n_units,)`."""
        self.require_fitted()
        sums = self._started_mode().unit_sums()
        return self.check_signal(self._whole_scores(sums, "units"), "filter")

    def check_signal(self, raw: np.ndarray, what: str) -> np.ndarray:
        """Return `raw`, or raise [`NoSignalError`][] if every score is exactly 0.

        All-zero scores would normalise to equal importances, which read as
        "every feature matters" when in truth nothing was measured.
        """
        if not raw.size or np.any(raw):
            return raw
        mode = self._started_mode()
        if mode.needs_gradients:
            measured = (
                f"every gradient x weight product of the {mode.n_steps} recorded "
                "optimizer steps was 0"
            )
            causes = (
                "in PyTorch, the gradient was cleared before on_step_end() (call it "
                "after optimizer.step() and before optimizer.zero_grad(); "
                "zero_grad(set_to_none=False) leaves zeros behind); in Keras, a custom "
                "loop that updates the model with another optimizer than the one "
                "wrap_optimizer() returned"
            )
        elif self.scoring == "growth":
            measured = "no feature's weights grew since initialisation"
            causes = "strong weight decay"
        else:
            measured = f"the weights did not change over the {self.n_snapshots} snapshots"
            causes = "too few snapshots of a layer that does not learn"
        raise NoSignalError(
            f"{self.owner}: every raw {what} score of layer {self.name!r} "
            f"is 0 ({measured}), so there is no importance to report. Likely causes: "
            f"{causes}; the layer is frozen or not used in the forward pass; or the "
            "learning rate is 0."
        )

    # ------------------------------------------------------------- merge/state
    def merge(self, other: LayerStatistics) -> None:
        """Absorb another stream's statistics of the same weight (`other` is the later one).

        Raises
        ------
        ValueError
            If the two track different weights, scoring modes or slices.
        """
        if other.mode is None:
            return
        if self.mode is None:
            self.load_state_dict(other.state_dict())
            return
        if other.view != self.view:
            raise ValueError(f"cannot merge a tracker of {other.view} into one of {self.view}")
        if other.scoring != self.scoring:
            raise ValueError(
                f"cannot merge a tracker with scoring={other.scoring!r} into one with "
                f"scoring={self.scoring!r}."
            )
        if state_schema.shard_state(self.shard) != state_schema.shard_state(other.shard):
            raise ValueError(
                "cannot merge trackers of different slices of a sharded weight; each "
                "process's tracker already follows every step of its own slice."
            )
        self.mode.merge(other.mode)
        if other.unchecked_sum is not None:
            total = self.ops.copy_as(other.unchecked_sum, self.dtype)
            self.unchecked_sum = total if self.unchecked_sum is None else self.unchecked_sum + total
        self.n_snapshots += other.n_snapshots
        self.checked_updates = min(self.checked_updates, other.checked_updates)
        self._cached_raw = None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, without pickle (see [`state`][])."""
        return state_schema.layer_state(self)

    def load_state_dict(
        self,
        state: dict[str, Any],
        expected_shape: tuple[int, ...] | None = None,
        expected_shard: WeightShard | None = None,
        expected_name: str | None = None,
    ) -> None:
        """Restore [`state_dict()`][state_dict]; a rejected state leaves this object as it was.

        Parameters
        ----------
        state : dict
            A state from [`state_dict()`][state_dict].
        expected_shape : tuple of int, optional
            The shape of the weight the caller will track, if known: a state
            of another weight is refused at once.
        expected_shard : WeightShard, optional
            The slice of the weight this process will track, if sharded.
        expected_name : str, optional
            The name of the layer the caller will track, for messages.

        Raises
        ------
        StateDictError
            Naming what does not match and what to do.
        """
        loaded = state_schema.read_layer_state(
            self, state, expected_shape, expected_shard, expected_name
        )
        self.reset()
        if loaded is None:
            return  # a state saved before any weight was tracked
        self.view, self.shard, self.name = loaded.view, loaded.shard, loaded.name
        self.mode = loaded.mode
        self.n_snapshots = loaded.n_snapshots
        self.checked_updates = loaded.checked_updates
        if loaded.unchecked_sum is not None:
            self.unchecked_sum = self.ops.copy_as(loaded.unchecked_sum, self.dtype)
        self.history = loaded.history
        self._skipped_reported = loaded.mode.n_skipped
        self._reads_reported = loaded.mode.n_steps + loaded.mode.n_skipped
