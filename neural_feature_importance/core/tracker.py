"""The core tracker: statistics in, named and normalised importances out.

[`VarianceImportanceBase`][] is what every adapter holds. It owns the
options (checked once, [`options`][]), the statistics of the tracked weight
or weights ([`statistics`][], [`combined`][]), the columns the scores
are reported under ([`columns`][]), and the results surface: learned
attributes that follow scikit-learn (`feature_importances_`, raising
[`NotFittedError`][] until they exist), `state_dict` /
`load_state_dict` (schema in [`state`][]) and `merge`.

The method names follow the original package (`start`, `update`,
`finalize`, `var_scores`) so existing code keeps working.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

import numpy as np

from neural_feature_importance.core import state as state_schema
from neural_feature_importance.core._persistence import TrackerState
from neural_feature_importance.core._results import ConvResults, TrackerResults
from neural_feature_importance.core.arrays import NUMPY_OPS, Array, ArrayOps
from neural_feature_importance.core.columns import FeatureColumns, Member, ResolvedColumns
from neural_feature_importance.core.combined import CombinedStatistics
from neural_feature_importance.core.errors import no_gradient
from neural_feature_importance.core.logs import EpochImportances, LogImportances
from neural_feature_importance.core.modes import RECOMMENDED_MODE, get_mode
from neural_feature_importance.core.options import FiniteCheck, check_core_options
from neural_feature_importance.core.scoring import Normalize, top_features
from neural_feature_importance.core.sharding import WeightShard
from neural_feature_importance.core.statistics import LayerStatistics
from neural_feature_importance.core.views import Kind, Layout, WeightView

logger = logging.getLogger(__name__)

STATE_FORMAT_VERSION = state_schema.STATE_FORMAT_VERSION


class VarianceImportanceBase(TrackerState, TrackerResults):
    """Training-time importance of one layer's input features (VIANN and the other modes).

    Feed it every optimizer step's gradient with [`update_gradients()`][update_gradients] (the
    gradient modes, the default among them) and the weight array after every epoch (or step)
    with [`update()`][update] (the snapshot modes, VIANN among them); read
    [`feature_importances_`][neural_feature_importance.core.VarianceImportanceBase.feature_importances_]
    once enough was recorded. It holds the statistics of the tracked weight ([`LayerStatistics`][]),
    or of several input layers ([`CombinedStatistics`][]), and turns their raw scores into named,
    grouped, normalised columns. Every adapter (PyTorch loops, Lightning, the Hugging Face
    `Trainer`, Keras) holds one.

    Parameters
    ----------
    normalize : {"minmax", "sum", None}, default="minmax"
        How
        [`feature_importances_`][neural_feature_importance.core.VarianceImportanceBase.feature_importances_]
        is scaled: `"minmax"` to [0, 1] as in the paper, `"sum"` to sum to 1, `None` for raw scores.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the running statistics.
    include_initial : bool, default=False
        Count the weights passed to [`start()`][start] (the initialisation) as a
        snapshot. The paper does not: its samples are the weights after each
        epoch.
    record_history : bool, default=False
        Keep the raw scores after every update in
        [`history_`][neural_feature_importance.core.VarianceImportanceBase.history_] (one host copy
        per update; off by default), and every column's scores at every epoch's end
        ([`epoch_importances_`][neural_feature_importance.core.VarianceImportanceBase.epoch_importances_]).
    layout : {"keras", "torch"}, default="keras"
        Axis order of the weights passed in (see [`views`][]).
    ops : ArrayOps, default=NUMPY_OPS
        Array library of the weights; the statistics live in it, on its device.
    finite_check : {"update", "deferred"}, default="update"
        `"update"` rejects a snapshot with NaN/Inf before it touches the
        statistics (one device sync per update); `"deferred"` lets NaN/Inf
        propagate into the statistics and detects it in [`check_finite()`][check_finite],
        which adapters call once per epoch. Either way a diverged run raises
        [`NonFiniteWeightsError`][], never silent NaN scores.
    scoring : str, optional
        Which statistic of the run scores the features ([`SCORING_MODES`][]). By default
        [`RECOMMENDED_MODE`][neural_feature_importance.core.modes.RECOMMENDED_MODE]
        (`"taylor"`), as in every adapter: a gradient mode, fed by
        [`update_gradients()`][update_gradients]; left to it, a snapshot before any gradient
        raises `ValueError`. `"viann"` (the paper's method, bit for bit) and `"growth"` need
        weight snapshots ([`update()`][update]) only.
    feature_names : sequence of str, optional
        One name per tracked input (default `x0, x1, ...`), e.g. the
        columns of the DataFrame the model reads.
    groups : mapping of str to sequence of (int or str), optional
        Column name -> the tracked inputs that encode it (indices, or names
        from `feature_names`): a one-hot column's levels, an embedded
        categorical's dimensions inside a concatenation. The result then has
        one score per group plus one per input no group covers, ordered by
        the first input each covers; a group's raw score is the sum of its
        inputs' raw scores. See [`columns`][].
    log_importances : bool or int, default=False
        What
        [`epoch_logs()`][neural_feature_importance.core.VarianceImportanceBase.epoch_logs]
        returns at each epoch's end, which the adapters hand to their framework's
        loggers: `True` every column's normalised importance under
        `importance/<column>`, an int `k` the `k` columns that rank highest at the first
        epoch with importances (kept for the run), `False` nothing. Either of the
        first two also keeps every column's scores at every epoch's end, as
        `record_history=True` does. See [`logs`][].

    Attributes
    ----------
    feature_importances_ : ndarray
        Normalised score of every column, shape `(n_columns,)`, in the order of
        [`feature_names_in_`][neural_feature_importance.core.VarianceImportanceBase.feature_names_in_]
        (without `groups`: one column per input feature).
    raw_importances_ : ndarray
        The same before normalisation.
    feature_names_in_ : ndarray of str
        Name of every column of the result.
    importances_ : FeatureImportances
        Names, normalised and raw scores together, with `to_frame()` and
        `plot()`.
    epoch_importances_ : ndarray of shape (n_epochs, n_columns)
        Normalised scores at every epoch's end (with `log_importances` or
        `record_history=True`); `importances_at(epoch)` gives one epoch's as an
        `importances_` result.
    n_updates_ : int
        Number of snapshots in the statistics.
    n_gradient_steps_ : int
        Gradient modes: optimizer steps whose gradient was read and recorded.
    skipped_gradient_steps_ : int
        Gradient modes: reads skipped because the gradient held NaN or Inf
        (mixed precision's overflowed steps).

    Raises
    ------
    ValueError
        From the constructor, for an option it does not accept (and see `scoring`).
    NoSignalError
        When importances are read and every raw score is exactly 0.

    Examples
    --------
    >>> import numpy as np
    >>> tracker = VarianceImportanceBase(scoring="viann")   # snapshots only: the paper's method
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
    """Which kind of weight this tracker scores (see [`WeightView`][])."""

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
        scoring: str | None = None,
        feature_names: Sequence[str] | None = None,
        groups: Mapping[str, Sequence[Member]] | None = None,
        log_importances: LogImportances = False,
    ) -> None:
        # None: the recommended mode, and a snapshot before any gradient raises (update()).
        self._default_scoring = scoring is None
        scoring = RECOMMENDED_MODE if scoring is None else scoring
        # Checked here, once, not at the first snapshot: a typo fails on the line that made it.
        checked = check_core_options(
            normalize=normalize,
            dtype=dtype,
            finite_check=finite_check,
            scoring=scoring,
            log_importances=log_importances,
        )
        self.normalize = normalize
        self.dtype = str(checked["dtype"])
        self.include_initial = include_initial
        self.record_history = record_history
        self.layout = layout
        self.ops = ops
        self.finite_check = finite_check
        self.scoring = scoring
        self.feature_names = feature_names
        self.groups = groups
        self.log_importances: LogImportances = cast(LogImportances, checked["log_importances"])
        self._feature_columns = FeatureColumns(feature_names, groups)
        self.epochs = EpochImportances(self.log_importances, record_history)
        """Every column's raw scores at every epoch's end, and the columns logged ([`logs`][])."""
        self._clear()

    # ------------------------------------------------------------------ state
    def _clear(self) -> None:
        statistics: LayerStatistics | None = getattr(self, "statistics", None)
        if statistics is None:
            self.statistics = self._new_statistics(self.kind)
            """The tracked weight's statistics (one input layer)."""
        else:
            # The same object, forgotten: whoever holds it (an adapter combining
            # several layers) keeps reading this tracker's statistics.
            statistics.reset()
            statistics.ops = self.ops
        self.combined: CombinedStatistics | None = None
        """With several input layers: their statistics (else `None`)."""
        self._layer_views: dict[str, VarianceImportanceBase] | None = None
        self._columns: ResolvedColumns | None = None
        # Whether update_gradients() / update_gradient_sums() fed this tracker since it started.
        self._gradients_fed = False

    def _new_statistics(self, kind: Kind) -> LayerStatistics:
        return LayerStatistics(
            kind,
            self.layout,
            self.ops,
            scoring=self.scoring,
            dtype=self.dtype,
            finite_check=self.finite_check,
            record_history=self.record_history,
            owner=type(self).__name__,
        )

    def options(self) -> dict[str, Any]:
        """The constructor's options (a tracker made with them tracks the same way)."""
        return {
            "normalize": self.normalize,
            "dtype": self.dtype,
            "include_initial": self.include_initial,
            "record_history": self.record_history,
            "layout": self.layout,
            "ops": self.ops,
            "finite_check": self.finite_check,
            "scoring": self.scoring,
            "feature_names": self.feature_names,
            "groups": self.groups,
            "log_importances": self.log_importances,
        }

    def with_kind(self, kind: Kind) -> VarianceImportanceBase:
        """A new tracker of `kind` with these options (an adapter that found its layer's kind)."""
        return CORE_TRACKERS[kind](**self.options())

    def reset(self) -> None:
        """Forget every statistic, keeping the options; the next snapshot starts afresh.

        Use it to track another layer (or another model) with the same tracker.
        """
        self._clear()
        self.epochs.clear()

    @property
    def view(self) -> WeightView | None:
        """The tracked weight's view (this process's slice if sharded; `None` before one)."""
        return self.statistics.view

    @property
    def layers_(self) -> dict[str, VarianceImportanceBase] | None:
        """With several input layers: a raw-score tracker of each, by name (else `None`)."""
        if self.combined is None:
            return None
        if self._layer_views is None:
            self._layer_views = {
                name: self._around(stats) for name, stats in self.combined.members.items()
            }
        return self._layer_views

    def _around(self, stats: LayerStatistics) -> VarianceImportanceBase:
        """A tracker of one layer's statistics (shared, not copied), with raw scores."""
        # Raw scores: a layer's inputs are columns of the combined result, not its own.
        raw = {"normalize": None, "feature_names": None, "groups": None, "log_importances": False}
        tracker = CORE_TRACKERS[stats.kind](**(self.options() | raw))
        tracker.statistics = stats
        return tracker

    # ----------------------------------------------------------------- ingest
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
            The layer's weight before training, in `layout`. It fixes the
            shape (and, with `include_initial=True`, is the first snapshot).
        layer_name : str, optional
            Name used in log messages and errors.
        check_columns : bool, default=True
            Check `feature_names`/`groups` against the weight's inputs now.
            Adapters that may still move to another layer (the torch trackers
            before the first forward pass) check them once the layer is final.
        shard : WeightShard, optional
            Where `weights` lies in a weight sharded across processes
            ([`sharding`][]): the statistics are then this process's slice,
            and reading scores is a collective every process must join.
        """
        whole = WeightView(self.kind, self.layout, tuple(weights.shape))
        if shard is not None:
            whole = shard.view
        columns = None
        if check_columns:
            columns = self._feature_columns.resolve(whole.n_features, layer_name)
        self._clear()
        self.epochs.clear()
        self.statistics.start(weights, layer_name, shard)
        self._columns = columns
        if self.include_initial:
            self.statistics.update(weights)

    def start_layers(
        self, weights: Mapping[str, tuple[Kind, Array]], check_columns: bool = True
    ) -> None:
        """Begin tracking several input layers as one result: name -> (kind, weight)."""
        members = {name: self._new_statistics(kind) for name, (kind, _) in weights.items()}
        for name, (_, weight) in weights.items():
            members[name].start(weight, name)
        self.adopt_layers(members)
        self.epochs.clear()
        if check_columns:
            self.check_columns()
        if self.include_initial:
            for name, (_, weight) in weights.items():
                members[name].update(weight)

    def adopt_layers(self, members: Mapping[str, LayerStatistics]) -> None:
        """Combine statistics tracked elsewhere (an adapter's per-layer trackers) as one result.

        The per-epoch importances ([`epochs`][VarianceImportanceBase.epochs]) are kept: an
        adapter that resumes its layers adopts them again. [`start_layers()`][start_layers]
        and [`reset()`][reset] forget them.
        """
        self._clear()
        self.combined = CombinedStatistics(dict(members), type(self).__name__)

    def check_columns(self, n_inputs: int | None = None, layer_name: str | None = None) -> None:
        """Check `feature_names`/`groups` against the tracked inputs (or `n_inputs`).

        Adapters that know their layer before tracking starts pass its
        number of inputs and its name, so a wrong name fails at construction.
        """
        if n_inputs is None:
            if self.combined is not None:
                n_inputs = self.combined.n_inputs()
            elif self.view is not None:
                n_inputs = self.statistics.whole_view.n_features
        if n_inputs is not None:
            self._feature_columns.resolve(n_inputs, layer_name or self.layer_name)

    def update(self, weights: Array) -> None:
        """Add one snapshot of the tracked weight (copied, never aliased).

        Raises
        ------
        ValueError
            Built without `scoring=` (a gradient mode), if no gradient came before: a
            loop that feeds snapshots only needs `scoring="viann"` or `"growth"`.
        NonFiniteWeightsError
            If the snapshot holds NaN or Inf (with `finite_check="update"`).
        """
        self._check_snapshot_only()
        if not self.statistics.started:
            self.start(weights, self.layer_name)
            if self.include_initial:
                return
        self.statistics.update(weights)

    def _check_snapshot_only(self) -> None:
        """Raise if a tracker left to the default (a gradient mode) gets a snapshot first.

        Adapters pass `scoring` and feed gradients and snapshots in their own
        order; this guards a bare core driven by snapshots only, as for VIANN.
        """
        mode = self.statistics.mode
        if (
            not self._default_scoring
            or self._gradients_fed
            or not get_mode(self.scoring).needs_gradients
            or (mode is not None and (mode.n_steps or mode.n_skipped))  # a loaded state's
        ):
            return
        raise no_gradient(
            f"{type(self).__name__} was built without scoring=, so it uses the recommended "
            f"mode, scoring={self.scoring!r}, which scores from update_gradients(grad, "
            "weights) after every optimizer step; this snapshot (update()) came before any "
            "gradient. Pass scoring= explicitly to take snapshots before the first gradient."
        )

    def hold_weights_before(self, weights: Array) -> None:
        """Keep `weights` as the weight before the next read step (`descent_taylor`).

        Call it after the optimizer step that precedes a read step (the
        PyTorch trackers do), or pass `before=` to
        [`update_gradients()`][update_gradients]; [`start()`][start] holds the
        initial weights for the first read. A no-op for the other modes.
        """
        if not self.statistics.started:
            self.start(weights, self.layer_name)
        self.statistics.hold_weights_before(weights)

    def update_gradients(
        self, gradient: Array, weights: Array, before: Array | None = None
    ) -> None:
        """Add one optimizer step's gradient of the tracked weight (gradient modes).

        Call it after `optimizer.step()` and before the gradient is cleared,
        with the weight after the step; the PyTorch trackers do this in
        `on_step_end`. A no-op for snapshot modes (`viann`, `growth`).
        `before` is the weight before the step (`descent_taylor`; by default
        the copy held by [`hold_weights_before()`][hold_weights_before]).

        A gradient holding NaN or Inf is skipped and counted in
        [`skipped_gradient_steps_`][neural_feature_importance.core.VarianceImportanceBase.skipped_gradient_steps_]:
        a mixed-precision loss scaler (`torch.amp.GradScaler`) skips that optimizer step too, and
        the weights stay finite. [`end_epoch()`][end_epoch] reports the skipped reads once per
        epoch; weights that really diverge are still caught by the snapshots' NaN/Inf check.
        """
        if not self.statistics.started:
            self.start(weights, self.layer_name)
        self._gradients_fed = True
        self.statistics.update_gradients(gradient, weights, before)

    def update_gradient_sums(
        self, sums: dict[str, np.ndarray], n_steps: int, n_skipped: int = 0
    ) -> None:
        """Add gradient reads that were summed elsewhere (gradient modes).

        The Keras gradient tap
        ([`GradientTapOptimizer`][neural_feature_importance.keras.gradients.GradientTapOptimizer])
        sums the mode's per-step terms
        ([`step_terms()`][neural_feature_importance.core.modes.ScoringMode.step_terms])
        inside the compiled train step, with no host transfer, and hands the sums over
        once per epoch.
        """
        self.statistics.update_gradient_sums(sums, n_steps, n_skipped)
        self._gradients_fed = True

    def end_epoch(self) -> None:
        """Once per epoch: report skipped gradient reads, check for NaN/Inf, record the epoch.

        Skipped reads are logged at INFO (a loss scaler's overflowed steps are
        normal early in fp16 training), or at WARNING when every read of the
        epoch was skipped. With `log_importances` or `record_history`, the
        scores of every column are then recorded
        ([`record_epoch()`][neural_feature_importance.core.VarianceImportanceBase.record_epoch]).
        """
        if self.combined is not None:
            self.combined.end_epoch()
        else:
            self.statistics.end_epoch()
        self.record_epoch()

    def check_finite(self) -> None:
        """Raise [`NonFiniteWeightsError`][] if an unchecked update held NaN/Inf.

        With `finite_check="deferred"` the adapters call this once per epoch:
        it costs one device sync instead of one per update.
        """
        self.statistics.check_finite()

    def finalize(self, log: bool = True) -> np.ndarray:
        """Compute the importances now (the original's `on_train_end` step).

        Logs the ten most important columns and returns
        [`feature_importances_`][neural_feature_importance.core.VarianceImportanceBase.feature_importances_].
        Under a sharded weight every process calls it (reading scores is a collective).

        Parameters
        ----------
        log : bool, default=True
            Log the top features (distributed adapters pass `False` except
            on the first process).
        """
        scores = self.feature_importances_
        names = self.feature_names_in_
        if log:
            logger.info(
                "%s: most important features of %r: %s",
                type(self).__name__,
                self.layer_name,
                ", ".join(str(names[i]) for i in top_features(scores, 10)),
            )
        return scores


class EmbeddingVarianceImportanceBase(VarianceImportanceBase):
    """VIANN for an embedding table: one score per token, `sum_j var[token, j]`.

    Rows of the table that no batch touched keep a variance of zero, so unseen
    tokens score at the bottom.
    """

    kind: ClassVar[Kind] = "embedding"


class ConvVarianceImportanceBase(ConvResults, VarianceImportanceBase):
    """VIANN for a convolution kernel.

    Features are (kernel position, input channel) pairs, flattened in Keras order `(*kernel, in)`:
    [`feature_importances_`][neural_feature_importance.core.VarianceImportanceBase.feature_importances_]
    has one score per pair,
    [`heatmap_`][neural_feature_importance.core.ConvVarianceImportanceBase.heatmap_] the same
    scores shaped `(*kernel, in)`, and
    [`filter_importances_`][neural_feature_importance.core.ConvVarianceImportanceBase.filter_importances_]
    ranks the filters (output channels).
    """

    kind: ClassVar[Kind] = "conv"


CORE_TRACKERS: dict[str, type[VarianceImportanceBase]] = {
    "dense": VarianceImportanceBase,
    "conv": ConvVarianceImportanceBase,
    "embedding": EmbeddingVarianceImportanceBase,
}
"""The core tracker of each layer kind, what
[`VarianceImportanceBase.from_state()`][neural_feature_importance.core.VarianceImportanceBase.from_state]
makes."""
