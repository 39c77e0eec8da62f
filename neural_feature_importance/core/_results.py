"""The learned attributes of a core tracker: raw scores -> named, grouped, normalised columns.

[`TrackerResults`][] reads the statistics a core tracker holds (one
layer's [`LayerStatistics`][], or several layers'
[`CombinedStatistics`][]) and reports them under the columns
of [`columns`][], normalised by [`scoring`][]. The attributes follow
scikit-learn: they end in an underscore and raise
[`NotFittedError`][] until they exist. [`ConvResults`][] adds a
convolution's heatmap and filter ranking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from neural_feature_importance.core.columns import FeatureColumns, ResolvedColumns
from neural_feature_importance.core.combined import LayerScores, combined_inputs
from neural_feature_importance.core.errors import NoSignalError, NotFittedError, never_trained
from neural_feature_importance.core.logs import EpochImportances, LogImportances, normalized_rows
from neural_feature_importance.core.modes import ViannMode
from neural_feature_importance.core.result import FeatureImportances
from neural_feature_importance.core.scoring import Normalize, normalize_scores, top_features

if TYPE_CHECKING:
    from neural_feature_importance.core.arrays import ArrayOps
    from neural_feature_importance.core.combined import CombinedStatistics
    from neural_feature_importance.core.statistics import LayerStatistics


class TrackerResults:
    """Results of a core tracker, read from the statistics it holds."""

    statistics: LayerStatistics
    combined: CombinedStatistics | None
    normalize: Normalize
    scoring: str
    record_history: bool
    ops: ArrayOps
    log_importances: LogImportances
    epochs: EpochImportances
    _feature_columns: FeatureColumns
    _columns: ResolvedColumns | None

    @property
    def layer_name(self) -> str | None:
        """Name of the tracked layer (comma-separated for several)."""
        if self.combined is not None:
            return self.combined.name
        return self.statistics.name

    @layer_name.setter
    def layer_name(self, name: str | None) -> None:
        self.statistics.name = name

    def ready(self) -> bool:
        """Whether importances can be read (without raising)."""
        if self.combined is not None:
            return all(layer.ready() for layer in self.combined.members.values())
        return self.statistics.ready()

    def _columns_and_raw(self) -> tuple[ResolvedColumns, np.ndarray]:
        """The result's columns and their raw scores (summed over groups)."""
        if self.combined is not None:
            names, raw = self.combined.raw_inputs()
            columns = self._feature_columns.resolve(raw.size, self.layer_name, default_names=names)
        else:
            raw = self.statistics.feature_raw()
            columns = self._resolved_columns()
        return columns, (columns.aggregate(raw) if columns.grouped else raw)

    def _current_columns(self) -> ResolvedColumns:
        """The result's columns, known once the layer(s) are, before any score exists."""
        if self.combined is not None:
            members = self.combined.members.values()
            if any(layer.view is None for layer in members):
                raise NotFittedError(f"{self.combined.owner} does not know all its layers yet.")
            names, _ = combined_inputs(
                [
                    LayerScores(name, layer.kind, np.zeros(layer.whole_view.n_features))
                    for name, layer in self.combined.members.items()
                ]
            )
            return self._feature_columns.resolve(names.size, self.layer_name, default_names=names)
        if self.statistics.view is None:
            raise never_trained(
                f"{type(self).__name__} does not know its layer yet; its columns exist once "
                "tracking has started (the first snapshot or on_train_begin())."
            )
        return self._resolved_columns()

    def _resolved_columns(self) -> ResolvedColumns:
        if self._columns is None:
            n_inputs = self.statistics.whole_view.n_features
            self._columns = self._feature_columns.resolve(n_inputs, self.layer_name)
        return self._columns

    @property
    def raw_importances_(self) -> np.ndarray:
        """Raw (unnormalised) score of every column, `(n_columns,)`.

        Without `groups` a column is one input feature; a group's raw score
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
        """Normalised score of every column, `(n_columns,)`, as [`feature_names_in_`][]."""
        return normalize_scores(self.raw_importances_, self.normalize)

    @property
    def feature_names_in_(self) -> np.ndarray:
        """Name of every column of the result (`x0, x1, ...` unless named).

        With `groups`, one name per group plus one per input no group
        covers, ordered by the first input each covers.
        """
        return self._current_columns().names.copy()

    @property
    def importances_(self) -> FeatureImportances:
        """Names, normalised and raw scores of every column, with `to_frame()` and `plot()`."""
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
        """The original package's name for [`feature_importances_`][]."""
        return self.feature_importances_

    @property
    def variance_(self) -> np.ndarray:
        """Running variance of every tracked weight, in the framework's layout.

        Kept by `scoring="viann"` only (each mode keeps only what its scores
        read); under a sharded weight, this process's slice.
        """
        mode = self.statistics.mode
        if self.scoring != "viann":
            raise NotFittedError(
                f"variance_ is VIANN's statistic; scoring={self.scoring!r} keeps no "
                "per-weight variance. Use scoring='viann' to read it."
            )
        self.statistics.require_fitted()
        assert isinstance(mode, ViannMode)
        return self.ops.to_numpy(mode.moments.variance(ddof=1))

    @property
    def n_updates_(self) -> int:
        """Number of snapshots in the statistics (the same in every tracked input layer)."""
        if self.combined is not None:
            return self.combined.n_snapshots
        return self.statistics.n_snapshots

    @property
    def skipped_gradient_steps_(self) -> int:
        """Gradient reads skipped because the gradient held NaN or Inf (0 for snapshot modes)."""
        if self.combined is not None:
            return self.combined.skipped
        return self.statistics.skipped

    @property
    def n_gradient_steps_(self) -> int:
        """Gradient reads recorded (the optimizer steps read; 0 for snapshot modes)."""
        if self.combined is not None:
            members = self.combined.members.values()
            return min(layer.mode.n_steps if layer.mode else 0 for layer in members)
        mode = self.statistics.mode
        return 0 if mode is None else mode.n_steps

    @property
    def history_(self) -> np.ndarray:
        """Raw scores after each update from the second on, `(n, n_features)`.

        Only recorded with `record_history=True`.
        """
        if not self.record_history:
            raise NotFittedError(
                "no history was recorded; construct the tracker with record_history=True."
            )
        if not self.statistics.history:
            raise NotFittedError("history needs at least 2 updates.")
        return np.stack(self.statistics.history)

    def record_epoch(self) -> None:
        """Record every column's raw scores at this epoch's end (one host read).

        Done by [`end_epoch()`][neural_feature_importance.core.VarianceImportanceBase.end_epoch]
        when `log_importances` or `record_history` is set (or a loaded state holds such
        rows); an adapter whose layers each call their own `end_epoch()` calls this on
        the tracker that combines them. The row
        is what a tracker stopped here would report: NaN before the statistics can
        score, zeros where nothing was measured. Under a sharded weight, a collective
        every process joins, as `end_epoch()` is.
        """
        if not self.epochs.recording:
            return
        try:
            n_columns = self._current_columns().names.size
        except NotFittedError:  # no layer yet (a lazy module before its first batch)
            self.epochs.add(None)
            return
        try:
            raw = self._columns_and_raw()[1]
        except NoSignalError:
            raw = np.zeros(n_columns)
        except NotFittedError:
            raw = np.full(n_columns, np.nan)
        self.epochs.add(raw)

    def epoch_logs(self) -> dict[str, float]:
        """The last epoch's normalised importances under `importance/<column>` ([`logs`][]).

        The columns are those `log_importances` selects; empty with
        `log_importances=False`. A value is NaN where the statistics cannot score
        yet, or where nothing was measured.
        """
        if not self.log_importances or not len(self.epochs):
            return {}
        return self.epochs.logs(self._current_columns().names.tolist(), self.normalize)

    def _epoch_rows(self) -> np.ndarray:
        if not len(self.epochs):
            raise NotFittedError(
                "no per-epoch importances were recorded; construct the tracker with "
                "log_importances=True (or an int) or record_history=True, and train for an "
                "epoch."
                if not self.epochs.recording
                else "no epoch has ended yet; per-epoch importances are recorded at each "
                "epoch's end."
            )
        rows = self.epochs.matrix()
        if rows.shape[1] == 0:
            # Every recorded epoch ended before the layer was known: no score yet.
            rows = np.full((rows.shape[0], self._current_columns().names.size), np.nan)
        return rows

    @property
    def epoch_importances_(self) -> np.ndarray:
        """Normalised importance of every column at the end of every epoch, `(n_epochs, n_columns)`.

        Row `e` is the end of epoch `e` (0-based, as Keras and Lightning count epochs,
        counted from when tracking started): what
        [`importances_at(e)`][importances_at] reports, and what a tracker stopped
        there would report. A row is NaN where the statistics could not score yet
        (VIANN's first epoch) or nothing was measured. Recorded with
        `log_importances` or `record_history=True`.
        """
        return normalized_rows(self._epoch_rows(), self.normalize)

    def importances_at(self, epoch: int) -> FeatureImportances:
        """The importances at the end of `epoch` (0-based), as a run stopped there reports them.

        The statistics accumulated up to that epoch's end give them, so they equal the
        `importances_` of a tracker whose training stopped after epoch `epoch`, up
        to floating-point rounding. Use it with the epoch a checkpoint or early
        stopping picked: `tracker.importances_at(early_stopping.best_epoch)`.
        Recorded with `log_importances` or `record_history=True`.

        Raises
        ------
        NotFittedError
            If no per-epoch importances were recorded, or none exist at that epoch
            (VIANN's first epoch).
        NoSignalError
            If every raw score was 0 at that epoch.
        IndexError
            If `epoch` is not a recorded epoch.
        """
        rows = self._epoch_rows()
        if isinstance(epoch, bool) or not 0 <= int(epoch) < rows.shape[0]:
            raise IndexError(
                f"epoch={epoch!r}: the tracker recorded the ends of epochs 0 to "
                f"{rows.shape[0] - 1} (0-based)."
            )
        raw = rows[int(epoch)]
        if not np.all(np.isfinite(raw)):
            raise NotFittedError(
                f"{type(self).__name__}(scoring={self.scoring!r}) had no importances at the end "
                f"of epoch {epoch} (VIANN's variance needs two snapshots, taylor one gradient "
                "read, steady_taylor two)."
            )
        if not np.any(raw):
            raise NoSignalError(
                f"{type(self).__name__}: every raw score was 0 at the end of epoch {epoch}, so "
                "nothing was measured by then."
            )
        columns = self._current_columns()
        return FeatureImportances(
            feature_names=columns.names.copy(),
            importances=normalize_scores(raw, self.normalize),
            raw_importances=raw.copy(),
            members={
                str(name): [int(i) for i in members]
                for name, members in zip(columns.names, columns.members, strict=True)
            },
            scoring=self.scoring,
            normalize=self.normalize,
        )


class ConvResults(TrackerResults):
    """A convolution's results besides its features: the heatmap and the filters."""

    @property
    def heatmap_(self) -> np.ndarray:
        """Normalised importance per kernel position and input channel, `(*kernel, in)`."""
        scores = normalize_scores(self.statistics.feature_raw(), self.normalize)
        return scores.reshape(self.statistics.whole_view.feature_shape)

    @property
    def raw_filter_importances_(self) -> np.ndarray:
        """Raw score of every filter (output channel), `(n_filters,)`.

        Under a sharded weight, a collective every process must join.
        """
        return self.statistics.unit_raw()

    @property
    def filter_importances_(self) -> np.ndarray:
        """Normalised score of every filter (output channel), `(n_filters,)`."""
        return normalize_scores(self.raw_filter_importances_, self.normalize)

    @property
    def filter_ranking_(self) -> np.ndarray:
        """Filter indices from most to least important."""
        raw = self.raw_filter_importances_
        return top_features(raw, raw.size)
