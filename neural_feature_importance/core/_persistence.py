"""A core tracker's state and merging: resume, combine processes, read a checkpoint.

[`TrackerState`][] gives the core tracker `state_dict` /
`load_state_dict` (the schema is [`state`][]), files
(`save_state` / `load_state`, [`serialization`][]), `merge` of two
streams (Chan et al.'s formula for VIANN's moments, sums for the rest) and
`from_state`, a numpy tracker holding any saved state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

from neural_feature_importance.core import state as state_schema
from neural_feature_importance.core.combined import CombinedStatistics
from neural_feature_importance.core.errors import StateDictError
from neural_feature_importance.core.logs import EpochImportances
from neural_feature_importance.core.serialization import load_state, save_state
from neural_feature_importance.core.sharding import WeightShard
from neural_feature_importance.core.views import Kind, Layout

if TYPE_CHECKING:
    from neural_feature_importance.core.arrays import ArrayOps
    from neural_feature_importance.core.columns import FeatureColumns, ResolvedColumns
    from neural_feature_importance.core.statistics import LayerStatistics
    from neural_feature_importance.core.tracker import VarianceImportanceBase


class TrackerState:
    """State, files and merging of a core tracker."""

    kind: ClassVar[Kind]
    layout: Layout
    ops: ArrayOps
    statistics: LayerStatistics
    combined: CombinedStatistics | None
    epochs: EpochImportances
    _feature_columns: FeatureColumns
    _columns: ResolvedColumns | None

    def _clear(self) -> None:
        raise NotImplementedError

    def _new_statistics(self, kind: Kind) -> LayerStatistics:
        raise NotImplementedError

    def adopt_layers(self, members: Mapping[str, LayerStatistics]) -> None:
        raise NotImplementedError

    @property
    def view(self) -> Any:
        raise NotImplementedError

    def merge(self, other: TrackerState) -> None:
        """Absorb another tracker's snapshots of the same layer(s).

        For data-parallel training: each process tracks its replica and the
        statistics are combined with Chan et al.'s formula. The last weights
        are taken from `other` (the later stream).

        Per-epoch importances (`epoch_importances_`) are dropped: each described
        one stream's statistics, not the merged ones.

        Raises
        ------
        ValueError
            If the two trackers track different weights, layers or scoring modes.
        """
        self._merge_statistics(other)
        self.epochs.clear()

    def _merge_statistics(self, other: TrackerState) -> None:
        if self.combined is None and other.combined is None:
            self.statistics.merge(other.statistics)
            return
        if other.combined is None:
            if not other.statistics.started:
                return  # nothing tracked yet on the other side
            raise ValueError(
                f"cannot merge a tracker of one layer ({other.statistics.name!r}) into one of the "
                f"layers {list(self.combined.members) if self.combined else []}."
            )
        if self.combined is None and not self.statistics.started:
            self.load_state_dict(other.state_dict())
            return
        if self.combined is None:
            raise ValueError(
                f"cannot merge a tracker of the layers {list(other.combined.members)} into one "
                f"of the layers {[self.statistics.name]}; both must track the same input layers."
            )
        self.combined.merge(other.combined)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume tracking, without pickle (schema: [`state`][]).

        Values are plain numbers, strings, lists of ints and arrays of
        `ops`' library, so a torch tracker's state saves with
        `torch.save` and loads with `torch.load(..., weights_only=True)`,
        and any state saves with [`save_state()`][save_state].
        """
        if self.combined is not None:
            state = self.combined.state_dict(self.kind, self.layout)
        else:
            state = self.statistics.state_dict()
        if len(self.epochs):
            state["epochs"] = self.epoch_state()
        return state

    def epoch_state(self) -> dict[str, Any]:
        """The per-epoch importances' entry of the state (see [`state`][])."""
        return self.epochs.state_dict(self.ops)

    def load_epoch_state(self, state: dict[str, Any]) -> None:
        """Restore the per-epoch importances of a state (none if it has none)."""
        self.epochs = self._loaded_epochs(state)

    def _loaded_epochs(self, state: dict[str, Any]) -> EpochImportances:
        """The per-epoch importances of `state`, checked, aside from this tracker's."""
        epochs = EpochImportances(self.epochs.log_importances, self.epochs.asked)
        epochs.load_state_dict(state.get("epochs"), self.ops)
        return epochs

    def load_state_dict(
        self,
        state: dict[str, Any],
        expected_shape: tuple[int, ...] | None = None,
        expected_shard: WeightShard | None = None,
        expected_name: str | None = None,
    ) -> None:
        """Restore a state from [`state_dict()`][state_dict]; tracking then continues.

        The state is checked against this tracker (format, kind, layout,
        scoring, and the tracked weight's shape where it is known) before
        anything changes: a rejected state leaves the tracker as it was.

        Parameters
        ----------
        state : dict
            A state from [`state_dict()`][state_dict].
        expected_shape, expected_shard, expected_name : optional
            What an adapter knows of the weight it will track before tracking
            starts (its shape, its slice, its name), so that a state of
            another model is refused at once.

        Raises
        ------
        StateDictError
            If the state is not a tracker state, or belongs to another kind of
            tracker, scoring mode or weight shape. The message names both sides
            and what to do.
        """
        state_schema.check_version(state)
        epochs = self._loaded_epochs(state)
        if "layer_names" in state:
            self._load_layers(state)
            self.epochs = epochs
            return
        statistics = self._new_statistics(self.kind)
        if self.view is not None:
            expected_shape, expected_shard = self.view.weight_shape, self.statistics.shard
            expected_name = self.statistics.name
        statistics.load_state_dict(state, expected_shape, expected_shard, expected_name)
        columns = None
        if statistics.started:
            n_inputs = statistics.whole_view.n_features
            columns = self._feature_columns.resolve(n_inputs, str(state["layer_name"]))
        self._clear()
        self.statistics = statistics
        self._columns = columns
        self.epochs = epochs

    def _load_layers(self, state: dict[str, Any]) -> None:
        """Restore a state of several input layers (see [`state`][])."""
        header = state_schema.read_layers_header(state)
        members = {}
        for name, kind in header:
            if kind not in state_schema.KINDS:
                raise StateDictError(
                    f"the state tracks the layers {[n for n, _ in header]}, which this model does "
                    f"not have as trackable layers (layer {name!r} has kind {kind!r}, not one of "
                    f"{list(state_schema.KINDS)}); load it into a tracker of the model it was "
                    "saved from."
                )
            members[name] = self._new_statistics(cast(Kind, kind))
            members[name].load_state_dict(state["layers"][name])
        self.adopt_layers(members)

    def save_state(self, path: str | os.PathLike[str]) -> None:
        """Write [`state_dict()`][state_dict] to a file (safetensors, no pickle; any framework)."""
        save_state(self.state_dict(), path, to_numpy=self.ops.to_numpy)

    def load_state(self, path: str | os.PathLike[str]) -> None:
        """Restore a state written by [`save_state()`][save_state]; arrays move to `ops`."""
        self.load_state_dict(load_state(path))

    @classmethod
    def from_state(cls, state: dict[str, Any], **options: Any) -> VarianceImportanceBase:
        """A core tracker (numpy) holding a saved state, to read its scores anywhere.

        For a state that reached another process than the one that trained
        (Lightning's `ddp_spawn` hands its workers' state back this way), or
        to inspect a checkpoint without the model: the kind, layout and
        scoring come from the state, the rest from `options`.

        Parameters
        ----------
        state : dict
            A state from [`state_dict()`][state_dict] (tensors are converted) or
            [`load_state()`][serialization.load_state].
        **options
            `normalize`, `dtype`, `feature_names`, `groups`...: as
            the constructor's.

        Examples
        --------
        >>> import numpy as np
        >>> tracker = VarianceImportanceBase(scoring="viann")
        >>> for step in range(3):
        ...     tracker.update(np.array([[0.0, 1.0], [float(step), 2.0]]))
        >>> restored = VarianceImportanceBase.from_state(tracker.state_dict())
        >>> restored.raw_importances_.tolist()
        [0.0, 1.0]
        """
        if not isinstance(state, dict) or str(state.get("kind")) not in (
            "dense",
            "conv",
            "embedding",
        ):
            raise StateDictError(
                "from_state() takes a tracker state (a dict from state_dict() or load_state())."
            )
        scoring = state.get("scoring")
        if "layers" in state and scoring is None:
            first = str(state["layer_names"]).split("\n")[0]
            scoring = state["layers"][first].get("scoring")
        # A state without "scoring" is VIANN's (core/state.py), not the default mode's.
        options = {"scoring": str(scoring or "viann"), **options}
        layout = str(state.get("layout"))
        if layout not in ("keras", "torch"):
            raise StateDictError(f"the state's layout {layout!r} is not 'keras' or 'torch'.")
        from neural_feature_importance.core.tracker import CORE_TRACKERS

        tracker = CORE_TRACKERS[str(state["kind"])](layout=cast(Layout, layout), **options)
        tracker.load_state_dict(state)
        return tracker
