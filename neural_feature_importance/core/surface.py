"""What every adapter shares: the results surface and the end of training.

An adapter (the PyTorch loop tracker, the Lightning and Hugging Face
callbacks, the Keras callbacks) subclasses its framework's base class and
*holds* a core tracker ([`VarianceImportanceBase`][]), as
torchmetrics' wrappers hold a `Metric`. [`HeldTrackerResults`][] gives
each of them the same learned attributes, read from the tracker it holds,
with the same names everywhere; [`finish_training()`][finish_training] is the one
end-of-training policy.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from neural_feature_importance.core.errors import NoSignalError, NotFittedError
from neural_feature_importance.core.serialization import load_state, save_state

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from neural_feature_importance.core.columns import Member
    from neural_feature_importance.core.logs import LogImportances
    from neural_feature_importance.core.options import FiniteCheck
    from neural_feature_importance.core.result import FeatureImportances
    from neural_feature_importance.core.scoring import Normalize
    from neural_feature_importance.core.tracker import VarianceImportanceBase
    from neural_feature_importance.core.views import WeightView

logger = logging.getLogger(__name__)


def finish_training(
    core: VarianceImportanceBase, *, log: bool, raise_errors: bool, owner: str
) -> np.ndarray | None:
    """Compute the importances once training has ended; log them once.

    The adapter has removed its hooks from the model before it calls this.

    Parameters
    ----------
    core : VarianceImportanceBase
        The tracker the adapter holds.
    log : bool
        Whether this process logs (the first process of a distributed run).
        Every process computes, because under FSDP2 the slices' scores are
        reduced across the processes.
    raise_errors : bool
        `True` when the user called the hook (a PyTorch loop): a tracker
        that cannot score raises. `False` inside a trainer's `fit()`,
        which has trained the model successfully: the reason is logged as a
        WARNING, and reading the importances raises the same error.
    owner : str
        The adapter's name, for the messages.

    Returns
    -------
    ndarray or None
        [`feature_importances_`][neural_feature_importance.core.VarianceImportanceBase.feature_importances_],
        or `None` when there are none.
    """
    try:
        return core.finalize(log=log)
    except (NotFittedError, NoSignalError) as error:
        if raise_errors:
            raise
        if log:
            logger.warning("%s: no importances after training. %s", owner, error)
        return None


class HeldTrackerResults:
    """The results of an adapter, read from the core tracker it holds.

    Subclasses implement `_fitted_core()` (the tracker, or
    [`NotFittedError`][] before training made one) and
    `state_dict` / `load_state_dict` (the tracker's state plus the
    adapter's own counters).
    """

    def _fitted_core(self) -> VarianceImportanceBase:
        """The tracker to read results from; raises [`NotFittedError`][] before training."""
        raise NotImplementedError

    @property
    def feature_importances_(self) -> np.ndarray:
        """Normalised score of every column, `(n_columns,)`, in the order of `feature_names_in_`."""
        return self._fitted_core().feature_importances_

    @property
    def raw_importances_(self) -> np.ndarray:
        """Raw (unnormalised) score of every column, `(n_columns,)`."""
        return self._fitted_core().raw_importances_

    @property
    def feature_names_in_(self) -> np.ndarray:
        """Name of every column of the result (`x0, x1, ...` unless named)."""
        return self._fitted_core().feature_names_in_

    @property
    def importances_(self) -> FeatureImportances:
        """Names, normalised and raw scores together, with `to_frame()` and `plot()`."""
        return self._fitted_core().importances_

    @property
    def var_scores(self) -> np.ndarray:
        """The original package's name for `feature_importances_`."""
        return self._fitted_core().var_scores

    @property
    def variance_(self) -> np.ndarray:
        """VIANN's running variance of every tracked weight (`scoring="viann"` only)."""
        return self._fitted_core().variance_

    @property
    def n_updates_(self) -> int:
        """Number of weight snapshots in the statistics."""
        return self._fitted_core().n_updates_

    @property
    def n_gradient_steps_(self) -> int:
        """Gradient reads recorded (the optimizer steps read; 0 for snapshot modes)."""
        return self._fitted_core().n_gradient_steps_

    @property
    def skipped_gradient_steps_(self) -> int:
        """Gradient reads skipped because the gradient held NaN or Inf."""
        return self._fitted_core().skipped_gradient_steps_

    @property
    def history_(self) -> np.ndarray:
        """Raw scores after every snapshot from the second on (`record_history=True`)."""
        return self._fitted_core().history_

    @property
    def layers_(self) -> dict[str, VarianceImportanceBase] | None:
        """With several input layers: a raw-score tracker of each, by name (else `None`)."""
        return self._fitted_core().layers_

    @property
    def epoch_importances_(self) -> np.ndarray:
        """Normalised importance of every column at every epoch's end, `(n_epochs, n_columns)`.

        Recorded with `log_importances` or `record_history=True`; row `e` is epoch
        `e` (0-based), NaN where there were no importances yet.
        """
        return self._fitted_core().epoch_importances_

    def importances_at(self, epoch: int) -> FeatureImportances:
        """The importances at the end of `epoch` (0-based), equal to a run stopped there.

        Recorded with `log_importances` or `record_history=True`; see
        [`VarianceImportanceBase.importances_at()`][neural_feature_importance.core.VarianceImportanceBase.importances_at].
        """
        return self._fitted_core().importances_at(epoch)

    def _conv_result(self, name: str) -> Any:
        core = self._fitted_core()
        if not hasattr(core, name):
            raise AttributeError(
                f"{type(self).__name__} tracks a {core.kind} layer; {name} exists for "
                "convolutions (track a ConvNd / ConvND layer)."
            )
        return getattr(core, name)

    @property
    def heatmap_(self) -> np.ndarray:
        """Convolutions: normalised importance per kernel position and input channel."""
        return np.asarray(self._conv_result("heatmap_"))

    @property
    def filter_importances_(self) -> np.ndarray:
        """Convolutions: normalised score of every filter (output channel)."""
        return np.asarray(self._conv_result("filter_importances_"))

    @property
    def raw_filter_importances_(self) -> np.ndarray:
        """Convolutions: raw score of every filter (output channel)."""
        return np.asarray(self._conv_result("raw_filter_importances_"))

    @property
    def filter_ranking_(self) -> np.ndarray:
        """Convolutions: filter indices from most to least important."""
        return np.asarray(self._conv_result("filter_ranking_"))

    # The original package's method names, on the tracker this adapter holds.
    def start(self, weights: Any, layer_name: str | None = None) -> None:
        """Begin tracking `weights` by hand (the original's name; training hooks do this)."""
        self._fitted_core().start(weights, layer_name)

    def update(self, weights: Any) -> None:
        """Add one snapshot by hand (the original's name; training hooks do this)."""
        self._fitted_core().update(weights)

    def finalize(self, log: bool = True) -> np.ndarray:
        """Compute (and log) the importances now; returns `feature_importances_`."""
        return self._fitted_core().finalize(log=log)

    def state_dict(self) -> dict[str, Any]:
        """The tracker's state and the adapter's counters (plain values and arrays)."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore [`state_dict()`][state_dict]; training then continues from it."""
        raise NotImplementedError

    def save_state(self, path: str | os.PathLike[str]) -> None:
        """Write [`state_dict()`][state_dict] to a file (safetensors with a checksum, no pickle)."""
        save_state(self.state_dict(), path, to_numpy=self._fitted_core().ops.to_numpy)

    def load_state(self, path: str | os.PathLike[str]) -> None:
        """Restore a state written by [`save_state()`][save_state]; training continues it."""
        self.load_state_dict(load_state(path))


class HeldCore(HeldTrackerResults):
    """An adapter that holds its core tracker from construction on (PyTorch loops, Keras).

    The Lightning and Hugging Face callbacks make theirs when training starts,
    so they offer only [`HeldTrackerResults`][].
    """

    core: VarianceImportanceBase
    """The core tracker this adapter holds (statistics, columns, state)."""

    def _fitted_core(self) -> VarianceImportanceBase:
        return self.core

    @property
    def layer_name(self) -> str | None:
        """Name of the tracked layer(s) in the statistics (comma-separated for several)."""
        return self.core.layer_name

    @property
    def view(self) -> WeightView | None:
        """The tracked weight's view (`None` before tracking starts, or for several layers)."""
        return self.core.view

    # The options the core tracker checked and keeps, read from it (one copy of each).
    @property
    def scoring(self) -> str:
        """The scoring mode (`scoring=`)."""
        return self.core.scoring

    @property
    def dtype(self) -> str:
        """Precision of the statistics (`dtype=`)."""
        return self.core.dtype

    @property
    def include_initial(self) -> bool:
        """Whether the weights before training count as a snapshot."""
        return self.core.include_initial

    @property
    def record_history(self) -> bool:
        """Whether the raw scores after every snapshot are kept."""
        return self.core.record_history

    @property
    def log_importances(self) -> LogImportances:
        """Which columns' importances go to the loggers at each epoch's end (`log_importances=`)."""
        return self.core.log_importances

    @property
    def finite_check(self) -> FiniteCheck:
        """When snapshots are checked for NaN/Inf (`"update"` or `"deferred"`)."""
        return self.core.finite_check

    @property
    def feature_names(self) -> Sequence[str] | None:
        """The names given to the tracked inputs (`feature_names=`)."""
        return self.core.feature_names

    @property
    def groups(self) -> Mapping[str, Sequence[Member]] | None:
        """The columns given as groups of inputs (`groups=`)."""
        return self.core.groups

    @property
    def normalize(self) -> Normalize:
        """Scaling of `feature_importances_`, applied when the scores are read."""
        return self.core.normalize

    @normalize.setter
    def normalize(self, normalize: Normalize) -> None:
        self.core.normalize = normalize

    def reset(self) -> None:
        """Forget every statistic, keeping the options."""
        self.core.reset()
