"""Framework-free VIANN trackers: feed weight snapshots, read importances.

:class:`VarianceImportanceBase` is the whole method in one place. It keeps the
running statistics of one weight array (:class:`~.moments.RunningMoments`),
a copy of its last value, and turns both into per-feature scores through a
:class:`~.views.WeightView`. The Keras callbacks, the PyTorch trackers and the
Lightning callback subclass it and only add *which* layer to read and *when*.

The method names follow the original package (``start``, ``update``,
``finalize``, ``var_scores``) so existing code keeps working; the learned
attributes follow scikit-learn (``feature_importances_``, raising
:class:`~.errors.NotFittedError` until they exist).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, cast

import numpy as np

from neural_feature_importance.core.arrays import NUMPY_OPS, Array, ArrayOps, check_dtype
from neural_feature_importance.core.columns import FeatureColumns, Member, ResolvedColumns
from neural_feature_importance.core.combined import LayerScores, combined_inputs
from neural_feature_importance.core.errors import (
    NonFiniteWeightsError,
    NoSignalError,
    NotFittedError,
    StateDictError,
)
from neural_feature_importance.core.modes import (
    ScoringMode,
    ViannMode,
    get_mode,
)
from neural_feature_importance.core.moments import RunningMoments
from neural_feature_importance.core.options import FiniteCheck, check_finite_check
from neural_feature_importance.core.result import FeatureImportances
from neural_feature_importance.core.scoring import (
    Normalize,
    check_normalize,
    normalize_scores,
    top_features,
    unit_scores,
    variance_sum_scores,
    viann_scores,
)
from neural_feature_importance.core.serialization import load_state, save_state
from neural_feature_importance.core.sharding import WeightShard
from neural_feature_importance.core.views import Kind, Layout, WeightView

logger = logging.getLogger(__name__)

STATE_FORMAT_VERSION = 1
_STATE_KEYS = ("kind", "layout", "layer_name", "weight_shape", "moments", "last")
"""Keys every saved state has (see :meth:`VarianceImportanceBase.state_dict`)."""


class VarianceImportanceBase:
    """Variance-based importance (VIANN) of one layer's input features.

    Feed it the weight array after every epoch (or step) with :meth:`update`;
    read :attr:`feature_importances_` once it has seen two snapshots.

    Parameters
    ----------
    normalize : {"minmax", "sum", None}, default="minmax"
        How :attr:`feature_importances_` is scaled: ``"minmax"`` to [0, 1] as in
        the paper, ``"sum"`` to sum to 1, ``None`` for raw scores.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the running statistics.
    include_initial : bool, default=False
        Count the weights passed to :meth:`start` (the initialisation) as a
        snapshot. The paper does not: its samples are the weights after each
        epoch.
    record_history : bool, default=False
        Keep the raw scores after every update in :attr:`history_` (one host
        copy per update; off by default).
    layout : {"keras", "torch"}, default="keras"
        Axis order of the weights passed in (see :mod:`.views`).
    ops : ArrayOps, default=NUMPY_OPS
        Array library of the weights; the statistics live in it, on its device.
    finite_check : {"update", "deferred"}, default="update"
        ``"update"`` rejects a snapshot with NaN/Inf before it touches the
        statistics (one device sync per update); ``"deferred"`` lets NaN/Inf
        propagate into the statistics and detects it in :meth:`check_finite`,
        which adapters call once per epoch. Either way a diverged run raises
        :class:`NonFiniteWeightsError`, never silent NaN scores.
    scoring : str, default="viann"
        Which statistic of the run scores the features (:mod:`.modes`):
        ``"viann"`` is the paper's method, bit for bit; ``"taylor"`` (needs
        gradients: every adapter feeds them) and ``"growth"`` (snapshots only) do not depend on
        when training stops. See :data:`~.modes.SCORING_MODES`.
    feature_names : sequence of str, optional
        One name per tracked input (default ``x0, x1, ...``), e.g. the
        columns of the DataFrame the model reads.
    groups : mapping of str to sequence of (int or str), optional
        Column name -> the tracked inputs that encode it (indices, or names
        from ``feature_names``): a one-hot column's levels, an embedded
        categorical's dimensions inside a concatenation. The result then has
        one score per group plus one per input no group covers, ordered by
        the first input each covers; a group's raw score is the sum of its
        inputs' raw scores. See :mod:`.columns`.

    Attributes
    ----------
    feature_importances_ : ndarray
        Normalised score of every column, shape ``(n_columns,)``, in the
        order of :attr:`feature_names_in_` (without ``groups``: one column
        per input feature).
    raw_importances_ : ndarray
        The same before normalisation.
    feature_names_in_ : ndarray of str
        Name of every column of the result.
    importances_ : FeatureImportances
        Names, normalised and raw scores together, with ``to_frame()`` and
        ``plot()``.
    n_updates_ : int
        Number of snapshots in the statistics.
    skipped_gradient_steps_ : int
        Gradient modes: reads skipped because the gradient held NaN or Inf
        (mixed precision's overflowed steps).

    Raises
    ------
    ValueError
        From the constructor, for an option it does not accept.
    NoSignalError
        When importances are read and every raw score is exactly 0.

    Examples
    --------
    >>> import numpy as np
    >>> tracker = VarianceImportanceBase()
    >>> rng = np.random.default_rng(0)
    >>> w = rng.normal(size=(3, 2))             # Keras layout: (in=3, out=2)
    >>> tracker.start(w)
    >>> for epoch in range(5):
    ...     w[0] += rng.normal(scale=1.0, size=2)   # feature 0 keeps moving
    ...     w[1:] += rng.normal(scale=0.01, size=(2, 2))
    ...     tracker.update(w)
    >>> int(np.argmax(tracker.feature_importances_))
    0
    """

    kind: ClassVar[Kind] = "dense"
    """Which :class:`~.views.WeightView` kind this tracker scores."""

    def __init__(
        self,
        normalize: Normalize = "minmax",
        *,
        dtype: str = "float64",
        include_initial: bool = False,
        record_history: bool = False,
        layout: Layout = "keras",
        ops: ArrayOps = NUMPY_OPS,
        finite_check: FiniteCheck = "update",
        scoring: str = "viann",
        feature_names: Sequence[str] | None = None,
        groups: Mapping[str, Sequence[Member]] | None = None,
    ) -> None:
        # Checked here, not at the first snapshot: a typo fails on the line that made it.
        self.normalize = check_normalize(normalize)
        self.dtype = check_dtype(dtype)
        self.include_initial = include_initial
        self.record_history = record_history
        self.layout = layout
        self.ops = ops
        self.finite_check = check_finite_check(finite_check)
        self.scoring = scoring
        self._check_scoring()
        self.feature_names = feature_names
        self.groups = groups
        self._feature_columns = FeatureColumns(feature_names, groups)
        self._clear()

    # ------------------------------------------------------------------ state
    def _clear(self) -> None:
        self.layers_: Mapping[str, VarianceImportanceBase] | None = None
        """With several input layers: one tracker per layer, by name (else ``None``)."""
        self.view: WeightView | None = None
        self.layer_name: str | None = None
        self._columns: ResolvedColumns | None = None
        self._moments = RunningMoments(check_dtype(self.dtype), self.ops)
        self._last: Array | None = None
        self._n_snapshots = 0
        # This process's slice of a sharded weight (FSDP2), else None.
        self._shard: WeightShard | None = None
        # Modes that keep no per-weight copy: the snapshots' sums since the last
        # finite check (NaN/Inf propagate into a sum), for finite_check="deferred".
        self._unchecked_sum: Array | None = None
        self._history: list[np.ndarray] = []
        self._checked_updates = 0
        self._cached_raw: np.ndarray | None = None
        # The scoring mode's own statistics; None for the paper's method.
        self._mode: ScoringMode | None = None
        # Gradient reads already reported by end_epoch() (read = absorbed + skipped).
        self._reads_reported = 0
        self._skipped_reported = 0

    def reset(self) -> None:
        """Forget every statistic, keeping the options; the next snapshot starts afresh.

        Use it to track another layer (or another model) with the same tracker.
        """
        self._clear()

    def _check_scoring(self) -> type[ScoringMode]:
        return get_mode(self.scoring)

    def _new_mode(self, mode: type[ScoringMode], view: WeightView) -> ScoringMode | None:
        return None if mode is ViannMode else mode(view, self.ops, check_dtype(self.dtype))

    def start(
        self,
        weights: Array,
        layer_name: str | None = None,
        check_columns: bool = True,
        shard: WeightShard | None = None,
    ) -> None:
        """Begin tracking a weight array, forgetting any earlier statistics.

        Parameters
        ----------
        weights : array
            The layer's weight before training, in :attr:`layout`. It fixes the
            shape (and, with ``include_initial=True``, is the first snapshot).
        layer_name : str, optional
            Name used in log messages and errors.
        check_columns : bool, default=True
            Check ``feature_names``/``groups`` against the weight's inputs now.
            Adapters that may still move to another layer (the torch trackers
            before the first forward pass) check them once the layer is final.
        shard : WeightShard, optional
            Where ``weights`` lies in a weight sharded across processes
            (:mod:`.sharding`): the statistics are then this process's slice,
            and reading scores is a collective every process must join.
        """
        check_normalize(self.normalize)
        check_finite_check(self.finite_check)
        mode = self._check_scoring()
        view = WeightView(self.kind, self.layout, tuple(weights.shape))
        if shard is not None and shard.local_shape != view.weight_shape:
            raise ValueError(
                f"the weights passed have shape {view.weight_shape}, but the shard is "
                f"{shard.describe()}, of shape {shard.local_shape}."
            )
        whole = view if shard is None else shard.view
        columns = (
            self._feature_columns.resolve(whole.n_features, layer_name) if check_columns else None
        )
        self._clear()
        self.view = view
        self._shard = shard
        self._columns = columns
        self.layer_name = layer_name or "weights"
        self._mode = self._new_mode(mode, self.view)
        if self._mode is not None:
            self._mode.start(weights)
        logger.info(
            "%s tracks %r: weight %s, %d input features x %d units%s",
            type(self).__name__,
            self.layer_name,
            whole.weight_shape,
            whole.n_features,
            whole.n_units,
            "" if shard is None else f"; this process holds {shard.describe()}",
        )
        if self.include_initial:
            self.update(weights)

    def update(self, weights: Array) -> None:
        """Add one snapshot of the tracked weight (copied, never aliased).

        Raises
        ------
        NonFiniteWeightsError
            If the snapshot holds NaN or Inf (with ``finite_check="update"``).
        """
        if self.view is None:
            self.start(weights, self.layer_name)
            if self.include_initial:
                return
        assert self.view is not None  # set by start()
        if tuple(weights.shape) != self.view.weight_shape:
            raise ValueError(
                f"layer {self.layer_name!r}: a weight of shape {tuple(weights.shape)} was "
                f"passed, but this tracker tracks a {self.view.weight_shape} weight. To "
                "track another layer, call reset() first (the torch trackers and Keras "
                "callbacks do this when training begins)."
            )
        update_number = self._n_snapshots + 1
        if self.finite_check == "update" and not self.ops.all_finite(weights):
            raise NonFiniteWeightsError(
                f"layer {self.layer_name!r}: weight update {update_number} contains NaN "
                "or Inf, so training diverged before it. The statistics keep the "
                f"{update_number - 1} finite updates. Lower the learning rate, clip "
                "gradients, or check the inputs for NaN."
            )
        # Each mode keeps only what its scores read: VIANN the moments and the
        # last weights, the other modes their own statistics (and the last
        # weights if they read them); taylor nothing per weight.
        if self._mode is None:
            self._moments.update(weights)
        else:
            self._mode.snapshot(weights)
            if self.finite_check == "deferred" and not self._mode.keeps_last:
                total = weights.sum()
                if self._unchecked_sum is None:
                    self._unchecked_sum = self.ops.copy_as(total, self.dtype)
                else:
                    self._unchecked_sum += total
        if self._keeps_last():
            if self._last is None:
                self._last = self.ops.copy_as(weights, self.dtype)
            else:
                self.ops.copy_into(self._last, weights)
        self._n_snapshots += 1
        if self.finite_check == "update":
            self._checked_updates = self._n_snapshots
        self._cached_raw = None
        if self.record_history and self._ready():
            self._history.append(self._compute_raw())

    def _keeps_last(self) -> bool:
        """Whether the scores read the last snapshot (VIANN and some modes)."""
        return self._mode is None or self._mode.keeps_last

    def update_gradients(self, gradient: Array, weights: Array) -> None:
        """Add one optimizer step's gradient of the tracked weight (gradient modes).

        Call it after ``optimizer.step()`` and before the gradient is cleared,
        with the weight after the step; the PyTorch trackers do this in
        ``on_step_end``. A no-op for snapshot modes (``viann``, ``growth``...).

        A gradient holding NaN or Inf is skipped and counted in
        :attr:`skipped_gradient_steps_`: a mixed-precision loss scaler
        (``torch.amp.GradScaler``) skips that optimizer step too, and the
        weights stay finite. :meth:`end_epoch` reports the skipped reads once
        per epoch; weights that really diverge are still caught by the
        snapshots' NaN/Inf check.
        """
        if self.view is None:
            self.start(weights, self.layer_name)
        assert self.view is not None  # set by start()
        if self._mode is None or not self._mode.needs_gradients:
            return
        if tuple(gradient.shape) != self.view.weight_shape:
            raise ValueError(
                f"gradient of shape {tuple(gradient.shape)} does not match the tracked "
                f"weight {self.view.weight_shape} (layer {self.layer_name!r})."
            )
        if self._mode.gradient(gradient, weights):
            self._cached_raw = None

    def update_gradient_sums(
        self, sums: dict[str, np.ndarray], n_steps: int, n_skipped: int = 0
    ) -> None:
        """Add gradient reads that were summed elsewhere (gradient modes).

        The Keras gradient tap
        (:class:`~neural_feature_importance.keras.gradients.GradientTapOptimizer`)
        sums the mode's per-step terms
        (:meth:`~.modes.ScoringMode.step_terms`) inside the compiled train
        step, with no host transfer, and hands the sums over once per epoch.

        Parameters
        ----------
        sums : dict of str to ndarray
            The summed terms, one per key of the mode's ``step_terms``.
        n_steps : int
            Gradient reads summed into ``sums``.
        n_skipped : int, default=0
            Reads skipped because their terms held NaN or Inf.
        """
        if self.view is None or self._mode is None or not self._mode.needs_gradients:
            raise ValueError(
                f"update_gradient_sums() needs a tracker that has started tracking a weight "
                f"with a gradient scoring mode; this one has scoring={self.scoring!r}"
                + ("" if self.view is not None else " and no weight yet (call start() first)")
                + "."
            )
        self._mode.add_sums(sums, n_steps, n_skipped)
        self._cached_raw = None

    @property
    def skipped_gradient_steps_(self) -> int:
        """Gradient reads skipped because the gradient held NaN or Inf (0 for snapshot modes)."""
        if self.layers_ is not None:
            return sum(layer.skipped_gradient_steps_ for layer in self.layers_.values())
        return 0 if self._mode is None else self._mode.n_skipped

    def end_epoch(self) -> None:
        """Once per epoch: report skipped gradient reads, then check for NaN/Inf.

        The adapters call it at every epoch's end. Skipped reads are logged at
        INFO (a loss scaler's overflowed steps are normal early in fp16
        training), or at WARNING when every read of the epoch was skipped.
        """
        if self.layers_ is not None:
            for layer in self.layers_.values():
                layer.end_epoch()
            return
        if self._mode is not None and self._mode.needs_gradients:
            skipped = self._mode.n_skipped - self._skipped_reported
            reads = self._mode.n_steps + self._mode.n_skipped - self._reads_reported
            if skipped:
                logger.log(
                    logging.WARNING if skipped == reads else logging.INFO,
                    "%s: skipped %d of this epoch's %d gradient reads of %r because the "
                    "gradient held NaN or Inf (a mixed-precision loss scaler skips those "
                    "optimizer steps too); %d skipped in all.",
                    type(self).__name__,
                    skipped,
                    reads,
                    self.layer_name,
                    self._mode.n_skipped,
                )
            self._skipped_reported = self._mode.n_skipped
            self._reads_reported = self._mode.n_steps + self._mode.n_skipped
        self.check_finite()

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteWeightsError` if an unchecked update held NaN/Inf.

        With ``finite_check="deferred"`` the adapters call this once per epoch:
        it costs one device sync instead of one per update.
        """
        count = self._n_snapshots
        if count == self._checked_updates:
            return
        if self._mode is None:
            state = self._moments.state_dict()
            arrays = [state["mean"], state["m2"], self._last]
        else:
            arrays = [self._unchecked_sum, self._last]
        # Under a sharded weight all_finite is a collective whose answer is the
        # same on every process, so every process stops at the same array.
        if all(array is None or self.ops.all_finite(array) for array in arrays):
            self._checked_updates = count
            self._unchecked_sum = None
            return
        first = self._checked_updates + 1
        span = f"update {count}" if first == count else f"one of updates {first}-{count}"
        raise NonFiniteWeightsError(
            f"layer {self.layer_name!r}: {span} contained NaN or Inf, so training "
            "diverged. Lower the learning rate, clip gradients, or check the inputs "
            "for NaN; resume from a checkpoint taken before the divergence."
        )

    def finalize(self, log: bool = True) -> np.ndarray:
        """Compute the importances now (the original's ``on_train_end`` step).

        Logs the ten most important features and returns
        :attr:`feature_importances_`. Under a sharded weight every process
        calls it (reading scores is a collective), and then any process may
        read the importances again without communicating, until the next
        update.

        Parameters
        ----------
        log : bool, default=True
            Log the top features (distributed adapters pass ``False`` except
            on the first process).
        """
        scores = self.feature_importances_
        names = self.feature_names_in_
        if not log:
            return scores
        logger.info(
            "%s: most important features of %r: %s",
            type(self).__name__,
            self.layer_name,
            ", ".join(str(names[i]) for i in top_features(scores, 10)),
        )
        return scores

    # ---------------------------------------------------------------- scoring
    def _ready(self) -> bool:
        """Whether scores can be computed (without raising)."""
        if self._mode is None:
            return self._moments.count >= 2
        try:
            self._mode.check_ready()
        except NotFittedError:
            return False
        return self._mode.needs_gradients or not self._mode.keeps_last or self._last is not None

    def _require_fitted(self) -> None:
        if self._mode is not None:
            self._mode.check_ready()
            self.check_finite()
            if not self._mode.all_finite():
                raise NonFiniteWeightsError(
                    f"layer {self.layer_name!r}: the statistics of scoring={self.scoring!r} "
                    "contain NaN or Inf, so a gradient or weight diverged. Lower the learning "
                    "rate, clip gradients, or check the inputs for NaN."
                )
            return
        count = self._moments.count
        if count < 2:
            raise NotFittedError(
                f"{type(self).__name__} has {count} weight snapshot(s); a variance "
                "needs at least 2. Call update()/on_epoch_end() after each epoch "
                "(or use update_every=N for per-step snapshots) and train for at "
                "least 2 of them before reading importances."
            )
        self.check_finite()

    def _matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """Variance and last weights as numpy ``(features, units)`` matrices."""
        assert self.view is not None
        variance = self.ops.to_numpy(self._moments.variance(ddof=1))
        last = self.ops.to_numpy(self._last)
        return self.view.to_matrix(variance), self.view.to_matrix(last)

    def _score_matrices(self, variance: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Raw per-feature scores from the matrices (the method's formula)."""
        return viann_scores(variance, last)

    def _compute_raw(self) -> np.ndarray:
        """Raw score of every input feature of the whole weight (a collective if sharded)."""
        if self._mode is None:
            sums = self._score_matrices(*self._matrices())
        else:
            sums = self._mode.feature_sums(self._moments, self._last_matrix())
        return self._whole_scores(sums, "features")

    def _whole_scores(self, sums: np.ndarray, axis: Literal["features", "units"]) -> np.ndarray:
        """Scores of the whole weight from this tracker's per-feature or per-unit sums.

        Under a sharded weight the slices' sums are put together first (a
        collective, see :mod:`.sharding`). VIANN's sums are its scores (kept
        bit for bit); the other modes clip them at 0.
        """
        if self._shard is not None:
            complete = self._mode is not None and self._mode.reduces_each_step
            combine = self._shard.features if axis == "features" else self._shard.units
            sums = combine(sums, partial=not complete)
        return sums if self._mode is None else np.maximum(sums, 0.0)

    def _whole_view(self) -> WeightView:
        """The view of the whole weight (the shard's, when this process holds a slice)."""
        assert self.view is not None
        return self.view if self._shard is None else self._shard.view

    def _last_matrix(self) -> np.ndarray | None:
        """The last snapshot as a ``(features, units)`` numpy matrix (None before one)."""
        assert self.view is not None
        if self._last is None:
            return None
        return self.view.to_matrix(self.ops.to_numpy(self._last))

    def _check_signal(self, raw: np.ndarray, what: str) -> np.ndarray:
        """Return ``raw``, or raise :class:`NoSignalError` if every score is exactly 0.

        All-zero scores would normalise to equal importances, which read as
        "every feature matters" when in truth nothing was measured.
        """
        if raw.size and not np.any(raw):
            if self._mode is not None and self._mode.needs_gradients:
                measured = (
                    f"every gradient x weight product of the {self._mode.n_steps} recorded "
                    "optimizer steps was 0"
                )
                causes = (
                    "in PyTorch, the gradient was cleared before on_step_end() (call it "
                    "after optimizer.step() and before optimizer.zero_grad(); "
                    "zero_grad(set_to_none=False) leaves zeros behind); in Keras, a custom "
                    "loop that updates the model with another optimizer than the one "
                    "wrap_optimizer() returned"
                )
            else:
                measured = f"the weights did not change over the {self.n_updates_} snapshots"
                causes = "too few snapshots of a layer that does not learn"
                if self.scoring == "growth":
                    measured = "no feature's weights grew since initialisation"
                    causes = "strong weight decay"
            raise NoSignalError(
                f"{type(self).__name__}: every raw {what} score of layer {self.layer_name!r} "
                f"is 0 ({measured}), so there is no importance to report. Likely causes: "
                f"{causes}; the layer is frozen or not used in the forward pass; or the "
                "learning rate is 0."
            )
        return raw

    def _input_raw(self) -> np.ndarray:
        """Raw score of every tracked input (before grouping), checked for signal.

        Kept until the next update, so that under a sharded weight only the
        first read after an update communicates.
        """
        if self._cached_raw is None:
            self._require_fitted()
            self._cached_raw = self._compute_raw()
        return self._check_signal(self._cached_raw, "feature").copy()

    def _resolved_columns(self) -> ResolvedColumns:
        if self._columns is None:
            assert self.view is not None
            whole = self._whole_view()
            self._columns = self._feature_columns.resolve(whole.n_features, self.layer_name)
        return self._columns

    # ------------------------------------------------------ several input layers
    def _new_layer_tracker(self, name: str, kind: str) -> VarianceImportanceBase:
        """A tracker of one of several input layers, of ``kind``, with this tracker's options.

        ``kind`` is the layer's kind as a saved state recorded it. The core's
        own trackers (which restore a state to read its scores, see
        :meth:`from_state`) make core trackers; adapters make their own and
        check the kind against the model.
        """
        if kind not in CORE_TRACKERS:
            raise ValueError(
                f"layer {name!r} has kind {kind!r}, not one of {sorted(CORE_TRACKERS)}"
            )
        return CORE_TRACKERS[kind](
            layout=self.layout, ops=self.ops, **self._layer_tracker_options()
        )

    @classmethod
    def from_state(cls, state: dict[str, Any], **options: Any) -> VarianceImportanceBase:
        """A core tracker (numpy) holding a saved state, to read its scores anywhere.

        For a state that reached another process than the one that trained
        (Lightning's ``ddp_spawn`` hands its workers' state back this way), or
        to inspect a checkpoint without the model: the kind, layout and
        scoring come from the state, the rest from ``options``.

        Parameters
        ----------
        state : dict
            A state from :meth:`state_dict` (tensors are converted) or
            :func:`~.serialization.load_state`.
        **options
            ``normalize``, ``dtype``, ``feature_names``, ``groups``...: as
            the constructor's.

        Examples
        --------
        >>> import numpy as np
        >>> tracker = VarianceImportanceBase()
        >>> for step in range(3):
        ...     tracker.update(np.array([[0.0, 1.0], [float(step), 2.0]]))
        >>> restored = VarianceImportanceBase.from_state(tracker.state_dict())
        >>> restored.raw_importances_.tolist()
        [0.0, 1.0]
        """
        if not isinstance(state, dict) or str(state.get("kind")) not in CORE_TRACKERS:
            raise StateDictError(
                "from_state() takes a tracker state (a dict from state_dict() or load_state())."
            )
        scoring = state.get("scoring")
        if "layers" in state and scoring is None:
            first = str(state["layer_names"]).split("\n")[0]
            scoring = state["layers"][first].get("scoring")
        options = {"scoring": str(scoring or "viann"), **options}
        layout = str(state.get("layout"))
        if layout not in ("keras", "torch"):
            raise StateDictError(f"the state's layout {layout!r} is not 'keras' or 'torch'.")
        tracker = CORE_TRACKERS[str(state["kind"])](layout=cast(Layout, layout), **options)
        tracker.load_state_dict(state)
        return tracker

    def _layer_tracker_options(self) -> dict[str, Any]:
        """The options a tracker of one input layer shares with this one (scores stay raw)."""
        return {
            "normalize": None,
            "dtype": self.dtype,
            "include_initial": self.include_initial,
            "record_history": self.record_history,
            "finite_check": self.finite_check,
            "scoring": self.scoring,
        }

    def _load_layers(self, state: dict[str, Any]) -> None:
        """Restore a state of several input layers (see :meth:`state_dict`)."""
        names = str(state["layer_names"]).split("\n")
        kinds = str(state.get("layer_kinds", "")).split("\n")
        if len(kinds) != len(names):
            raise StateDictError(
                f"the state of the layers {names} does not say their kinds; it is incomplete. "
                "Load an unmodified state from state_dict()/save_state()."
            )
        try:
            layers = {
                name: self._new_layer_tracker(name, kind)
                for name, kind in zip(names, kinds, strict=True)
            }
        except (LookupError, ValueError) as error:
            raise StateDictError(
                f"the state tracks the layers {names}, which this model does not have as "
                f"trackable layers ({error}); load it into a tracker of the model it was saved "
                "from."
            ) from error
        for name, layer in layers.items():
            layer.load_state_dict(state["layers"][name])
        self._clear()
        self.layers_ = layers
        self.layer_name = ", ".join(names)

    def _combined_columns(self) -> tuple[ResolvedColumns, np.ndarray]:
        """Raw score of every model input over the input layers, and the columns over them."""
        assert self.layers_ is not None
        scores, silent = [], []
        for name, layer in self.layers_.items():
            try:
                raw = layer._input_raw()
            except NoSignalError as error:
                raw = np.zeros(layer._whole_view().n_features)  # a silent layer is a finding
                silent.append(error)
            scores.append(LayerScores(name, layer.kind, raw))
        names, raw = combined_inputs(scores)
        if len(silent) == len(self.layers_):
            raise NoSignalError(
                f"{type(self).__name__}: none of the layers {list(self.layers_)} recorded a "
                f"signal. {silent[0]}"
            )
        columns = self._feature_columns.resolve(raw.size, self.layer_name, default_names=names)
        return columns, raw

    def _columns_and_raw(self) -> tuple[ResolvedColumns, np.ndarray]:
        """The result's columns and their raw scores (summed over groups)."""
        if self.layers_ is not None:
            columns, raw = self._combined_columns()
        else:
            raw = self._input_raw()
            columns = self._resolved_columns()
        return columns, (columns.aggregate(raw) if columns.grouped else raw)

    @property
    def raw_importances_(self) -> np.ndarray:
        """Raw (unnormalised) score of every column, ``(n_columns,)``.

        Without ``groups`` a column is one input feature; a group's raw score
        is the sum of its inputs' raw scores.

        Raises
        ------
        NotFittedError
            Before enough snapshots (or gradient reads) were recorded.
        NoSignalError
            If every raw score is exactly 0 (nothing was measured).
        """
        return self._columns_and_raw()[1]

    @property
    def feature_importances_(self) -> np.ndarray:
        """Normalised score of every column, ``(n_columns,)``, as :attr:`feature_names_in_`."""
        return normalize_scores(self.raw_importances_, self.normalize)

    @property
    def feature_names_in_(self) -> np.ndarray:
        """Name of every column of the result (``x0, x1, ...`` unless named).

        With ``groups``, one name per group plus one per input no group
        covers, ordered by the first input each covers.
        """
        if self.layers_ is not None:
            return self._combined_columns()[0].names.copy()
        if self.view is None:
            raise NotFittedError(
                f"{type(self).__name__} does not know its layer yet; feature_names_in_ "
                "exists once tracking has started (the first snapshot or on_train_begin())."
            )
        return self._resolved_columns().names.copy()

    @property
    def importances_(self) -> FeatureImportances:
        """Names, normalised and raw scores of every column, with ``to_frame()`` and ``plot()``."""
        columns, raw = self._columns_and_raw()
        return FeatureImportances(
            feature_names=columns.names.copy(),
            importances=normalize_scores(raw, self.normalize),
            raw_importances=raw,
            members={
                str(name): [int(i) for i in members]
                for name, members in zip(columns.names, columns.members, strict=True)
            },
            scoring=self.scoring,
            normalize=self.normalize,
        )

    @property
    def var_scores(self) -> np.ndarray:
        """The original package's name for :attr:`feature_importances_`."""
        return self.feature_importances_

    @property
    def variance_(self) -> np.ndarray:
        """Running variance of every tracked weight, in the framework's layout.

        Kept by ``scoring="viann"`` only (each mode keeps only what its scores
        read); under a sharded weight, this process's slice.
        """
        if self._mode is not None:
            raise NotFittedError(
                f"variance_ is VIANN's statistic; scoring={self.scoring!r} keeps no "
                "per-weight variance. Use scoring='viann' to read it."
            )
        self._require_fitted()
        return self.ops.to_numpy(self._moments.variance(ddof=1))

    @property
    def n_updates_(self) -> int:
        """Number of snapshots in the statistics (the same in every tracked input layer)."""
        if self.layers_ is not None:
            return min(layer.n_updates_ for layer in self.layers_.values())
        return self._n_snapshots

    @property
    def history_(self) -> np.ndarray:
        """Raw scores after each update from the second on, ``(n, n_features)``.

        Only recorded with ``record_history=True``.
        """
        if not self.record_history:
            raise NotFittedError(
                "no history was recorded; construct the tracker with record_history=True."
            )
        if not self._history:
            raise NotFittedError("history needs at least 2 updates.")
        return np.stack(self._history)

    # --------------------------------------------------------- state / merge
    def merge(self, other: VarianceImportanceBase) -> None:
        """Absorb another tracker's snapshots of the same layer.

        For data-parallel training: each process tracks its replica and the
        statistics are combined with Chan et al.'s formula. The last weights
        are taken from ``other`` (the later stream). Trackers of several input
        layers (:attr:`layers_`) merge layer by layer.

        Raises
        ------
        ValueError
            If the two trackers track different weights, layers or scoring modes.
        """
        if self.layers_ is not None or other.layers_ is not None:
            self._merge_layers(other)
            return
        if other.view is None:
            return
        if self.view is None:
            self.load_state_dict(other.state_dict())
            return
        if other.view != self.view:
            raise ValueError(f"cannot merge a tracker of {other.view} into one of {self.view}")
        if other.scoring != self.scoring:
            raise ValueError(
                f"cannot merge a tracker with scoring={other.scoring!r} into one with "
                f"scoring={self.scoring!r}."
            )
        if _shard_state(self._shard) != _shard_state(other._shard):
            raise ValueError(
                "cannot merge trackers of different slices of a sharded weight; each "
                "process's tracker already follows every step of its own slice."
            )
        if self._mode is not None and other._mode is not None:
            self._mode.merge(other._mode)
        self._moments.merge(other._moments)
        if other._last is not None:
            self._last = self.ops.copy_as(other._last, self.dtype)
        if other._unchecked_sum is not None:
            total = self.ops.copy_as(other._unchecked_sum, self.dtype)
            self._unchecked_sum = (
                total if self._unchecked_sum is None else self._unchecked_sum + total
            )
        self._n_snapshots += other._n_snapshots
        self._checked_updates = min(self._checked_updates, other._checked_updates)
        self._cached_raw = None

    def _merge_layers(self, other: VarianceImportanceBase) -> None:
        """:meth:`merge` of two trackers of the same input layers, one layer at a time."""
        mine = list(self.layers_ or {})
        theirs = list(other.layers_ or {})
        if not theirs:
            if other.view is None:
                return  # nothing tracked yet on the other side
            raise ValueError(
                f"cannot merge a tracker of one layer ({other.layer_name!r}) into one of the "
                f"layers {mine}."
            )
        if not mine and self.view is None:
            self.load_state_dict(other.state_dict())
            return
        if mine != theirs:
            raise ValueError(
                f"cannot merge a tracker of the layers {theirs} into one of the layers "
                f"{mine or [self.layer_name]}; both must track the same input layers."
            )
        assert self.layers_ is not None and other.layers_ is not None
        for name, tracker in self.layers_.items():
            tracker.merge(other.layers_[name])
        self._cached_raw = None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume tracking, without pickle.

        Values are plain numbers, strings, lists of ints and arrays of
        :attr:`ops`' library, so a torch tracker's state saves with
        ``torch.save`` and loads with ``torch.load(..., weights_only=True)``,
        and a numpy state saves with :func:`~.serialization.save_state`.
        """
        if self.layers_ is not None:
            return {
                "format_version": STATE_FORMAT_VERSION,
                "kind": self.kind,
                "layout": self.layout,
                "layer_names": "\n".join(self.layers_),
                "layer_kinds": "\n".join(layer.kind for layer in self.layers_.values()),
                "layers": {name: layer.state_dict() for name, layer in self.layers_.items()},
            }
        state: dict[str, Any] = {
            "format_version": STATE_FORMAT_VERSION,
            "kind": self.kind,
            "layout": self.layout,
            "layer_name": self.layer_name or "",
            "weight_shape": list(self.view.weight_shape) if self.view else [],
            "moments": self._moments.state_dict(),
            "last": self._last,
            "checked_updates": int(self._checked_updates),
        }
        if self.record_history and self._history:
            state["history"] = self.ops.from_numpy(np.stack(self._history), like=self._last)
        if self._mode is not None:
            # Only non-default modes add keys: the paper's state stays as it was.
            state["scoring"] = self.scoring
            state["mode"] = self._mode.state_dict()
            state["n_snapshots"] = int(self._n_snapshots)
            if self._unchecked_sum is not None:
                state["unchecked_sum"] = self._unchecked_sum
        if self._shard is not None:
            state["shard"] = self._shard.state_dict()
        return state

    def _expected_weight_shape(self) -> tuple[int, ...] | None:
        """Shape of the weight this tracker will track, if known before tracking starts.

        Adapters that know their layer before the first snapshot (the torch
        trackers) return its weight's shape, so that :meth:`load_state_dict`
        rejects a state of another model at once.
        """
        return None

    def _expected_shard(self) -> WeightShard | None:
        """The slice of the weight this process will track, if sharded (adapters say)."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`; tracking then continues.

        The state is checked against this tracker (format, kind, layout,
        scoring, and the tracked weight's shape where it is known) before
        anything changes: a rejected state leaves the tracker as it was.

        Raises
        ------
        StateDictError
            If the state is not a tracker state, or belongs to another kind of
            tracker, scoring mode or weight shape. The message names both sides
            and what to do.
        """
        if not isinstance(state, dict):
            raise StateDictError(
                f"a tracker state is a dict from state_dict(), not {type(state).__name__}."
            )
        version = state.get("format_version")
        if version is None:
            raise StateDictError(
                "the state has no 'format_version', so it was not written by a tracker's "
                "state_dict()/save_state(); pass the tracker's own state (in a Lightning or "
                "torch checkpoint it is the entry you saved it under)."
            )
        if int(version) != STATE_FORMAT_VERSION:
            raise StateDictError(
                f"state format version {int(version)} is not supported (expected "
                f"{STATE_FORMAT_VERSION}); save it again with this version of the library."
            )
        if "layer_names" in state:
            self._load_layers(state)
            return
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise StateDictError(
                f"the state is missing {missing}; it is incomplete or was edited. Load an "
                "unmodified state from state_dict()/save_state()."
            )
        for key, expected in (("kind", self.kind), ("layout", self.layout)):
            if state[key] != expected:
                raise StateDictError(
                    f"state was saved by a tracker with {key}={state[key]!r}, but "
                    f"{type(self).__name__} has {key}={expected!r}; load it into a tracker "
                    f"of the same {key}."
                )
        scoring = str(state.get("scoring", "viann"))
        if scoring != self.scoring:
            raise StateDictError(
                f"state was saved by a tracker with scoring={scoring!r}, but this one has "
                f"scoring={self.scoring!r}; construct the tracker with scoring={scoring!r}."
            )
        shape = tuple(int(s) for s in state["weight_shape"])
        tracked = self.view.weight_shape if self.view is not None else self._expected_weight_shape()
        if shape and tracked is not None and shape != tracked:
            raise StateDictError(
                f"the state tracks a weight of shape {shape} (layer "
                f"{str(state['layer_name'])!r}), but this tracker's layer "
                f"{self.layer_name or getattr(self, 'tracked_layer_name_', None)!r} has a "
                f"weight of shape {tracked}. Load the state into a tracker of the model it "
                "was saved from (pass layer= naming the same layer), or start afresh "
                "without loading it."
            )
        mode_class = self._check_scoring()
        if not shape:
            self._clear()
            return
        shard = self._shard if self.view is not None else self._expected_shard()
        if shard is not None:
            shard.check_state(state.get("shard"), str(state["layer_name"]))
        elif state.get("shard") is not None:
            raise StateDictError(
                f"the state of layer {str(state['layer_name'])!r} is one process's slice of a "
                "sharded weight, but this tracker tracks a whole weight. Load it in the process "
                "that saved it, under the same sharding."
            )
        # Build the new statistics aside, so that a failure leaves this tracker intact.
        view = WeightView(self.kind, self.layout, shape)
        moments = RunningMoments(check_dtype(self.dtype), self.ops)
        if mode_class is ViannMode:
            moments.load_state_dict(state["moments"])
        # States saved before each mode kept only its own statistics carry VIANN's
        # moments (and the last weights) for every mode; those are dropped here.
        n_snapshots = int(state.get("n_snapshots", state["moments"]["count"]))
        last = None
        if mode_class.keeps_last and state["last"] is not None:
            last = self.ops.copy_as(state["last"], self.dtype)
        for name, array in (("moments", moments.state_dict()["shift"]), ("last", last)):
            if array is not None and tuple(array.shape) != shape:
                raise StateDictError(
                    f"the state's {name!r} array has shape {tuple(array.shape)}, not the "
                    f"weight shape {shape} it declares; the state is corrupted."
                )
        whole = view if shard is None else shard.view
        columns = self._feature_columns.resolve(whole.n_features, str(state["layer_name"]))
        mode = self._new_mode(mode_class, view)
        if mode is not None:
            if "mode" not in state:
                raise StateDictError(f"state of scoring={scoring!r} has no 'mode' statistics.")
            mode.load_state_dict(state["mode"])
        self._clear()
        self.view = view
        self._shard = shard
        self._columns = columns
        self._mode = mode
        self.layer_name = str(state["layer_name"]) or None
        self._moments = moments
        self._last = last
        self._n_snapshots = n_snapshots
        if state.get("unchecked_sum") is not None:
            self._unchecked_sum = self.ops.copy_as(state["unchecked_sum"], self.dtype)
        self._checked_updates = int(state.get("checked_updates", n_snapshots))
        if mode is not None:
            self._skipped_reported = mode.n_skipped
            self._reads_reported = mode.n_steps + mode.n_skipped
        if "history" in state:
            self._history = list(self.ops.to_numpy(state["history"]))

    def save_state(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` to an ``.npz`` file (no pickle; any framework)."""
        save_state(self.state_dict(), path, to_numpy=self.ops.to_numpy)

    def load_state(self, path: str | os.PathLike[str]) -> None:
        """Restore a state written by :meth:`save_state`; arrays move to :attr:`ops`."""
        self.load_state_dict(load_state(path))


class EmbeddingVarianceImportanceBase(VarianceImportanceBase):
    """VIANN for an embedding table: one score per token, ``sum_j var[token, j]``.

    Rows of the table that no batch touched keep a variance of zero, so unseen
    tokens score at the bottom.
    """

    kind: ClassVar[Kind] = "embedding"

    def _score_matrices(self, variance: np.ndarray, last: np.ndarray) -> np.ndarray:
        return variance_sum_scores(variance)


class ConvVarianceImportanceBase(VarianceImportanceBase):
    """VIANN for a convolution kernel.

    Features are (kernel position, input channel) pairs, flattened in Keras
    order ``(*kernel, in)``: :attr:`feature_importances_` has one score per
    pair, :attr:`heatmap_` the same scores shaped ``(*kernel, in)``, and
    :attr:`filter_importances_` ranks the filters (output channels).
    """

    kind: ClassVar[Kind] = "conv"

    @property
    def heatmap_(self) -> np.ndarray:
        """Normalised importance per kernel position and input channel, ``(*kernel, in)``."""
        scores = normalize_scores(self._input_raw(), self.normalize)
        return scores.reshape(self._whole_view().feature_shape)

    @property
    def raw_filter_importances_(self) -> np.ndarray:
        """Raw score of every filter (output channel), ``(n_filters,)``.

        Under a sharded weight, a collective every process must join.
        """
        self._require_fitted()
        if self._mode is not None:
            sums = self._mode.unit_sums(self._moments, self._last_matrix())
        else:
            sums = unit_scores(*self._matrices())
        return self._check_signal(self._whole_scores(sums, "units"), "filter")

    @property
    def filter_importances_(self) -> np.ndarray:
        """Normalised score of every filter (output channel), ``(n_filters,)``."""
        return normalize_scores(self.raw_filter_importances_, self.normalize)

    @property
    def filter_ranking_(self) -> np.ndarray:
        """Filter indices from most to least important."""
        raw = self.raw_filter_importances_
        return top_features(raw, raw.size)


CORE_TRACKERS: dict[str, type[VarianceImportanceBase]] = {
    "dense": VarianceImportanceBase,
    "conv": ConvVarianceImportanceBase,
    "embedding": EmbeddingVarianceImportanceBase,
}
"""The core tracker of each layer kind (what :meth:`VarianceImportanceBase.from_state` makes)."""


def _shard_state(shard: WeightShard | None) -> dict[str, Any] | None:
    return None if shard is None else shard.state_dict()
