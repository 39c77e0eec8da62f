"""skorch callback: feature importances of a skorch net, on the net for scikit-learn's selectors.

```pycon
>>> from skorch import NeuralNetClassifier
>>> from sklearn.feature_selection import RFE, SelectFromModel
>>> from neural_feature_importance import VarianceImportanceSkorch
>>> net = NeuralNetClassifier(MLP, max_epochs=20, callbacks=[VarianceImportanceSkorch()])
>>> SelectFromModel(net).fit(X, y)          # no importance_getter needed
>>> RFE(net, n_features_to_select=4).fit(X, y)
```

The callback holds one of the torch trackers (`tracker_`, composition, as the
Lightning callback does) and drives it from skorch's hooks:

`initialize()`
:   skorch calls it from `net.initialize()`, which `net.fit()` runs unless
    `warm_start=True`: the per-fit state is forgotten. Every attribute set
    after construction ends in `_`, so `sklearn.base.clone()` (which skorch's
    `get_params` feeds with every other attribute) rebuilds the callback from
    its parameters alone.

`on_train_begin(net, X, y)`
:   Makes the tracker for `net.module_`, the module just initialised (a
    refit, as RFE does with fewer columns, gets a new tracker of the new
    module), or continues the existing one (below).

`on_batch_end(net, batch, training)`
:   The tracker's step, on training batches only (`training=True`).
    skorch's `train_step` calls `optimizer.step(step_fn)`, whose closure
    zeroes the gradients, runs forward and backward and then notifies
    `on_grad_computed`; `on_batch_end` comes after `step()` returns and
    before the next batch's closure zeroes the gradients. So the gradient
    modes read the gradient of the update just applied, with the weights
    after it, as a plain loop's `tracker.on_step_end()` after
    `optimizer.step()`. Validation batches (`training=False`) are not read.

`on_epoch_end(net)`
:   The per-epoch snapshot (with `update_every`, the tracker counts steps).

`on_train_end(net, X, y)`
:   Detaches the tracker's hooks, computes and logs the importances, and puts
    them on the net (see below).

`net.partial_fit()` and `net.fit()` with `warm_start=True` keep training the
same module, so the statistics continue too: the importances then cover every
epoch since the module was initialised, as `net.history` does. `net.fit()`
without `warm_start` re-initialises the module and starts afresh.

The net's learned attributes. After training, the callback sets on the net
`feature_importances_` (one score per column of `X`), `n_features_in_`
(the number of columns of `X`) and, when `X` is a DataFrame with string
column names, `feature_names_in_` (its columns), as scikit-learn's own
estimators do: `SelectFromModel(net)`, `RFE(net)` and `RFECV(net)` read them
with the default `importance_getter="auto"`, on a stock
`NeuralNetClassifier` / `NeuralNetRegressor`, cloned or not. They end in
`_`, so `clone(net)` does not copy them. `feature_importances_` is set only when
it has one score per column of `X` (a 2-D `X`, whose columns the tracked layer
reads); otherwise, and when the net holds several tracker callbacks, a WARNING
says why and the callback's own attributes still hold the results.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from skorch.callbacks import Callback

from neural_feature_importance.core.columns import Member
from neural_feature_importance.core.errors import never_trained
from neural_feature_importance.core.logs import LogImportances
from neural_feature_importance.core.modes import RECOMMENDED_MODE
from neural_feature_importance.core.options import FiniteCheck
from neural_feature_importance.core.scoring import Normalize
from neural_feature_importance.core.surface import HeldTrackerResults, finish_training
from neural_feature_importance.core.tracker import VarianceImportanceBase
from neural_feature_importance.torch.trackers import TRACKERS, Layer, VarianceImportanceTorch

logger = logging.getLogger(__name__)

__all__ = ["VarianceImportanceSkorch"]

NET_ATTRIBUTES = ("feature_importances_", "n_features_in_", "feature_names_in_")
"""The learned attributes the callback sets on the net after training."""


class VarianceImportanceSkorch(HeldTrackerResults, Callback):
    """Track feature importances while a skorch net trains; put them on the net.

    The parameters are `kind` and the options of
    [`VarianceImportanceTorch`][neural_feature_importance.torch.VarianceImportanceTorch],
    with its defaults, checked here.

    Parameters
    ----------
    layer : str, FeatureAxis or list of str, optional
        Name (from `net.module_.named_modules()`) of the layer to track, a
        [`FeatureAxis`][neural_feature_importance.core.FeatureAxis], or a list
        of names for one combined result over several input layers. By default
        the layer the inputs reach at the first forward pass, as
        [`VarianceImportanceTorch`][neural_feature_importance.torch.VarianceImportanceTorch]
        chooses it. (A module object cannot be given: skorch makes the module
        when the net is initialised.)
    kind : {"dense", "conv", "embedding"}, default="dense"
        Which torch tracker to use.
    scoring : str, default=RECOMMENDED_MODE
        The statistic that scores the features (see
        [`neural_feature_importance.core.modes`][]); by default the recommended mode,
        [`RECOMMENDED_MODE`][neural_feature_importance.core.modes.RECOMMENDED_MODE]
        (`"taylor"`), which reads the gradient after skorch's optimizer
        step; `"viann"` is the paper's method, bit for bit.
    update_every : int, optional
        Snapshot every `update_every` optimizer steps (training batches) instead
        of per epoch.
    gradient_every : int, optional
        Gradient modes read one optimizer step in `gradient_every` (default: the
        mode's own).
    normalize : {"minmax", "sum", None}, default="minmax"
        Scaling of `feature_importances_`.
    dtype : {"float64", "float32"} or torch.dtype, default="float64"
        Precision of the statistics.
    include_initial : bool, default=False
        Count the weights before training as a snapshot.
    record_history : bool, default=False
        Keep the raw scores after each snapshot in `history_`.
    finite_check : {"update", "deferred"}, optional
        When snapshots are checked for NaN/Inf.
    feature_names : sequence of str, optional
        One name per input of the tracked layer, for the callback's own results
        (the net's `feature_names_in_` are the columns of the DataFrame it was
        fitted on).
    groups : mapping of str to sequence of (int or str), optional
        Column name -> the layer's inputs that encode it. The result then has one
        score per group, not per column of `X`, so the net gets no
        `feature_importances_`.
    log_importances : bool or int, default=False
        Record each epoch's importances in the net's `history` under
        `importance/<column>` (`True`: every column; an int `k`: the `k` that
        rank highest at the first epoch with importances), as skorch records its
        losses: `net.history[:, "importance/x0"]`. Off by default (one host read
        of the scores per epoch); see
        [`neural_feature_importance.core.logs`][].

    Attributes
    ----------
    tracker_ : VarianceImportanceTorch or None
        The torch tracker of the last fit (of `kind`), made when training
        begins; `None` before.
    feature_importances_, raw_importances_, feature_names_in_, importances_ :
        The tracker's results (see
        [`VarianceImportanceBase`][neural_feature_importance.core.VarianceImportanceBase]);
        before training they raise `NotFittedError`.

    Raises
    ------
    TypeError, ValueError
        From the constructor, for an option the trackers do not have or a value they
        do not accept.

    Notes
    -----
    The constructor stores its arguments as given and sets nothing else, as
    scikit-learn's `get_params` convention asks: `clone()`, `GridSearchCV`
    and skorch's `net.set_params(callbacks__VarianceImportanceSkorch__scoring=...)`
    work. The options are checked again when training begins, so a value set by
    `set_params` is checked too.
    """

    def __init__(
        self,
        layer: Layer = None,
        *,
        kind: str = "dense",
        scoring: str = RECOMMENDED_MODE,
        update_every: int | None = None,
        gradient_every: int | None = None,
        normalize: Normalize = "minmax",
        dtype: str | torch.dtype = "float64",
        include_initial: bool = False,
        record_history: bool = False,
        finite_check: FiniteCheck | None = None,
        feature_names: Sequence[str] | None = None,
        groups: Mapping[str, Sequence[Member]] | None = None,
        log_importances: LogImportances = False,
    ) -> None:
        self.layer = layer
        self.kind = kind
        self.scoring = scoring
        self.update_every = update_every
        self.gradient_every = gradient_every
        self.normalize = normalize
        self.dtype = dtype
        self.include_initial = include_initial
        self.record_history = record_history
        self.finite_check = finite_check
        self.feature_names = feature_names
        self.groups = groups
        self.log_importances = log_importances
        # Checked now, although the tracker is made when training begins.
        self._tracker_class().check_options(**self._tracker_options())

    def _tracker_class(self) -> type[VarianceImportanceTorch]:
        if self.kind not in TRACKERS:
            raise ValueError(
                f"kind={self.kind!r} is not supported; use one of {sorted(TRACKERS)} (the "
                "tracked layer is an nn.Linear, an nn.ConvNd or an nn.Embedding)."
            )
        return TRACKERS[self.kind]

    def _tracker_options(self) -> dict[str, Any]:
        return {
            "scoring": self.scoring,
            "update_every": self.update_every,
            "gradient_every": self.gradient_every,
            "normalize": self.normalize,
            "dtype": self.dtype,
            "include_initial": self.include_initial,
            "record_history": self.record_history,
            "finite_check": self.finite_check,
            "feature_names": self.feature_names,
            "groups": self.groups,
            "log_importances": self.log_importances,
        }

    # ------------------------------------------------------------------ hooks
    def initialize(self) -> VarianceImportanceSkorch:
        """Forget the last fit's tracker (skorch calls this from `net.initialize()`)."""
        if getattr(self, "pending_state_", None) is not None:
            logger.info(
                "%s: the net was initialised (a fresh module), so the state loaded with "
                "load_state_dict() is dropped; load it after net.initialize() and continue "
                "with net.partial_fit().",
                type(self).__name__,
            )
        self.tracker_: VarianceImportanceTorch | None = None
        self.pending_state_: dict[str, Any] | None = None
        return self

    def on_train_begin(self, net: Any, X: Any = None, y: Any = None, **kwargs: Any) -> None:
        """Make the tracker for `net.module_`, or continue it (`partial_fit`, `warm_start`)."""
        module = net.module_
        tracker = getattr(self, "tracker_", None)
        state = getattr(self, "pending_state_", None)
        if tracker is None or tracker.model is not module:
            tracker = self._tracker_class()(module, self.layer, **self._tracker_options())
            self.tracker_ = tracker
        elif state is None and (tracker.core.statistics.started or tracker.core.combined):
            # The same module trains on: its statistics continue (the tracker's own resume).
            state = tracker.state_dict()
        if state is not None:
            tracker.load_state_dict(state)
            self.pending_state_ = None
        tracker.on_train_begin()
        for name in NET_ATTRIBUTES:
            # The last fit's results; set again when this one ends.
            if name in vars(net):
                delattr(net, name)

    def on_batch_end(
        self, net: Any, batch: Any = None, training: bool | None = None, **kwargs: Any
    ) -> None:
        """The tracker's step, after `optimizer.step()`; validation batches are not read."""
        tracker = getattr(self, "tracker_", None)
        if training and tracker is not None:
            tracker.on_step_end()

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        """Snapshot (per-epoch mode), check for NaN/Inf, record the epoch's importances."""
        tracker = getattr(self, "tracker_", None)
        if tracker is not None:
            for key, value in tracker.on_epoch_end().items():
                net.history.record(key, value)

    def on_train_end(self, net: Any, X: Any = None, y: Any = None, **kwargs: Any) -> None:
        """Detach the tracker's hooks, compute and log the importances, put them on the net."""
        tracker = getattr(self, "tracker_", None)
        if tracker is None:
            return
        tracker._detach_hooks()
        importances = finish_training(
            tracker.core, log=True, raise_errors=False, owner=type(self).__name__
        )
        self._set_net_attributes(net, X, importances)

    def _set_net_attributes(self, net: Any, X: Any, importances: np.ndarray | None) -> None:
        """Set `NET_ATTRIBUTES` on the net, as a scikit-learn estimator has them after `fit`."""
        shape = getattr(X, "shape", None)
        if shape is None or len(shape) != 2:
            logger.info(
                "%s: X is not a 2-D table (%s), so the net gets no feature_importances_; "
                "read them from the callback.",
                type(self).__name__,
                type(X).__name__,
            )
            return
        n_columns = int(shape[1])
        net.n_features_in_ = n_columns
        names = _column_names(X)
        if names is not None:
            net.feature_names_in_ = names
        if importances is None:
            return  # finish_training() has logged why
        ours = [(name, cb) for name, cb in net.callbacks_ if isinstance(cb, HeldTrackerResults)]
        if len(ours) > 1:
            if ours[0][1] is self:  # one warning for them all
                logger.warning(
                    "%s: the net has %d tracker callbacks (%s), so it gets no "
                    "feature_importances_: they would not say whose. Read each callback's, or "
                    "give SelectFromModel/RFE an importance_getter that reads the one you want.",
                    type(self).__name__,
                    len(ours),
                    ", ".join(name for name, _ in ours),
                )
            return
        if importances.size != n_columns:
            logger.warning(
                "%s: the tracked layer %r has %d columns of importances (%s) but X has %d "
                "columns, so the net gets no feature_importances_: they would not be one "
                "score per column of X. The callback's own attributes hold them.",
                type(self).__name__,
                self.tracker_.tracked_layer_name_ if self.tracker_ else None,
                importances.size,
                "grouped" if self.groups else "one per input of the layer",
                n_columns,
            )
            return
        net.feature_importances_ = importances

    # ---------------------------------------------------------------- results
    def _fitted_core(self) -> VarianceImportanceBase:
        tracker = getattr(self, "tracker_", None)
        if tracker is None:
            raise never_trained(
                f"{type(self).__name__} has not seen training yet; pass it to a skorch net's "
                "callbacks=[...] and call net.fit() first."
            )
        return tracker.core

    def state_dict(self) -> dict[str, Any]:
        """The tracker's state (tensors and plain values), to resume with `load_state_dict`.

        Raises
        ------
        NotFittedError
            Before training (there is no tracker yet).
        """
        self._fitted_core()
        assert self.tracker_ is not None
        return self.tracker_.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Keep a saved state; the next training (`net.partial_fit()`) continues it.

        Call it after `net.initialize()` (and after loading the module's
        parameters): `net.initialize()`, which `net.fit()` runs unless
        `warm_start=True`, makes a fresh module and drops a loaded state. The
        state is checked against the tracked layer when training begins.
        """
        self.pending_state_ = dict(state)


def _column_names(X: Any) -> np.ndarray | None:
    """The column names of a DataFrame whose names are all strings, as scikit-learn keeps them."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = np.asarray(columns, dtype=object)
    if names.ndim != 1 or not all(isinstance(name, str) for name in names):
        return None
    return names
