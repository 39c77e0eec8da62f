"""What the trainer callbacks share: a torch tracker made when training starts.

The Lightning callback and the Hugging Face `Trainer` callback take the
same options, check them when they are constructed, make one of the torch
trackers (`TRACKERS`) when
training starts, and expose its results. Only their hooks differ; this
mixin is the rest.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from neural_feature_importance.core.errors import NotFittedError
from neural_feature_importance.core.modes import RECOMMENDED_MODE
from neural_feature_importance.core.scoring import Normalize
from neural_feature_importance.core.surface import HeldTrackerResults, finish_training
from neural_feature_importance.core.tracker import VarianceImportanceBase
from neural_feature_importance.torch.trackers import TRACKERS, Layer, VarianceImportanceTorch


class WrappedTracker(HeldTrackerResults):
    """Options, tracker, results and end of training of a callback that holds a torch tracker.

    Parameters
    ----------
    layer : str, nn.Module or list of them, optional
        The layer(s) to track (see the torch trackers' `layer`).
    kind : {"dense", "conv", "embedding"}, default="dense"
        Which torch tracker to make.
    update_every : int, optional
        Snapshot every `update_every` optimizer steps instead of per epoch.
    normalize : {"minmax", "sum", None}, default="minmax"
        Scaling of
        [`feature_importances_`][neural_feature_importance.core.VarianceImportanceBase.feature_importances_].
    **tracker_options
        The torch trackers' other options, checked here.

    Raises
    ------
    TypeError, ValueError
        For an option the trackers do not have or a value they do not accept.
    """

    fit_call: ClassVar[str] = "the training"
    """How the trainer is run, for the not-fitted message (`trainer.fit()`)."""

    def __init__(
        self,
        layer: Layer = None,
        *,
        kind: str = "dense",
        update_every: int | None = None,
        normalize: Normalize = "minmax",
        **tracker_options: Any,
    ) -> None:
        if kind not in TRACKERS:
            raise ValueError(
                f"kind={kind!r} is not supported; use one of {sorted(TRACKERS)} (the tracked "
                "layer is an nn.Linear, an nn.ConvNd or an nn.Embedding)."
            )
        # Checked now, although the tracker is made when training starts.
        TRACKERS[kind].check_options(
            update_every=update_every, normalize=normalize, **tracker_options
        )
        self.layer = layer
        self.kind = kind
        self.update_every = update_every
        self.normalize = normalize
        self.tracker_options = tracker_options
        self.tracker: VarianceImportanceTorch | None = None
        self._pending_state: dict[str, Any] | None = None
        self._init_callback_state()

    @property
    def scoring(self) -> str:
        """The scoring mode of the tracker: `scoring=` as passed, else the recommended mode."""
        return str(self.tracker_options.get("scoring", RECOMMENDED_MODE))

    def _init_callback_state(self) -> None:
        """Set the callback's own attributes (its trainer's counters); none by default."""

    def _make_tracker(self, model: nn.Module) -> VarianceImportanceTorch:
        return TRACKERS[self.kind](
            model,
            self.layer,
            update_every=self.update_every,
            normalize=self.normalize,
            **self.tracker_options,
        )

    # ---------------------------------------------------------------- results
    def _fitted_core(self) -> VarianceImportanceBase:
        """The core tracker to read results from; raises [`NotFittedError`][] before training."""
        if self.tracker is None:
            raise NotFittedError(
                f"{type(self).__name__} has not seen training yet; pass it to the trainer's "
                f"callbacks and call {self.fit_call} first."
            )
        return self.tracker.core

    def _finish(self, is_first_process: bool) -> None:
        """The end of training: remove the tracker's hooks, compute, log once (first process)."""
        if self.tracker is None:
            return
        self.tracker._detach_hooks()
        finish_training(
            self.tracker.core,
            log=is_first_process,
            raise_errors=False,
            owner=type(self).__name__,
        )
