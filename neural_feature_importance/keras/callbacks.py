"""Keras 3 callbacks that track feature importances during `model.fit`.

The callbacks are thin adapters over the framework-free core
([`neural_feature_importance.core.tracker`][]): they choose a layer
(`layers`), read its weight with `keras.ops.convert_to_numpy` and pass
it to the core's `start` / `update`, and, for the gradient modes (the default),
hand it the sums their optimizer tap read in the train step
([`neural_feature_importance.keras.gradients`][]). Nothing here imports TensorFlow, so
the same callbacks run on the TensorFlow, JAX and PyTorch backends.

Snapshots are taken at the end of every epoch (the paper's choice), or every
`update_every` training batches. On the JAX backend Keras keeps the weights
outside the model during an epoch; per-batch snapshots call
`model.jax_state_sync()` first, as Keras's own checkpoint callbacks do.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import keras

from neural_feature_importance.core.arrays import NUMPY_OPS
from neural_feature_importance.core.columns import Member
from neural_feature_importance.core.logs import LogImportances
from neural_feature_importance.core.modes import RECOMMENDED_MODE
from neural_feature_importance.core.options import (
    FiniteCheck,
    check_core_options,
    default_finite_check,
)
from neural_feature_importance.core.scoring import Normalize
from neural_feature_importance.core.surface import HeldCore, finish_training
from neural_feature_importance.core.tracker import CORE_TRACKERS, VarianceImportanceBase
from neural_feature_importance.core.views import Kind
from neural_feature_importance.keras._fit_callbacks import (
    EarlyStoppingFollower,
    check_follow_early_stopping,
    fit_companions,
)
from neural_feature_importance.keras._tap_control import GradientTapControl
from neural_feature_importance.keras.gradients import GradientTapOptimizer
from neural_feature_importance.keras.layers import (
    LayerSpec,
    all_built,
    check_layer_spec,
)
from neural_feature_importance.keras.layers._weights import LayerWeight

logger = logging.getLogger(__name__)

__all__ = [
    "ConvVarianceImportanceKeras",
    "EmbeddingVarianceImportanceKeras",
    "VarianceImportanceKeras",
]


class _KerasTracker(GradientTapControl, keras.callbacks.Callback, HeldCore):
    """The Keras glue shared by the three trackers (hooks, layer, weights).

    A Keras callback that *holds* a core tracker (`core`, numpy
    statistics in Keras's layout): this class only decides which weight to
    read and when, and hands snapshots and the gradient tap's sums to it.
    """

    kind: ClassVar[Kind] = "dense"
    """The kind of layer tracked by default (`Dense`)."""

    def __init__(
        self,
        layer: LayerSpec | Sequence[LayerSpec] = None,
        update_every: int | None = None,
        normalize: Normalize = "minmax",
        *,
        include_initial: bool = False,
        record_history: bool = False,
        dtype: str = "float64",
        finite_check: FiniteCheck | None = None,
        reset_on_train_begin: bool = True,
        scoring: str = RECOMMENDED_MODE,
        feature_names: Sequence[str] | None = None,
        groups: Mapping[str, Sequence[Member]] | None = None,
        gradient_every: int | None = None,
        log_importances: LogImportances = False,
        follow_early_stopping: bool = True,
    ) -> None:
        keras.callbacks.Callback.__init__(self)
        # Checked now (the model is not known yet, so a layer name is checked at fit()).
        check_core_options(update_every=update_every, gradient_every=gradient_every)
        check_follow_early_stopping(follow_early_stopping)
        for spec in layer if isinstance(layer, list | tuple) else [layer]:
            check_layer_spec(spec, type(self).__name__)
        # The core tracker checks and keeps the statistics' options; weights
        # arrive as numpy arrays in Keras's layout.
        self.core: VarianceImportanceBase = CORE_TRACKERS[self.kind](
            normalize,
            dtype=dtype,
            include_initial=include_initial,
            record_history=record_history,
            layout="keras",
            ops=NUMPY_OPS,
            finite_check=default_finite_check(finite_check, update_every),
            scoring=scoring,
            feature_names=feature_names,
            groups=groups,
            log_importances=log_importances,
        )
        self.layer = layer
        self.follow_early_stopping = follow_early_stopping
        self.restored_epoch_: int | None = None
        self._follower: EarlyStoppingFollower | None = None
        self._last_epoch: int | None = None
        self.update_every = update_every
        self.gradient_every = gradient_every
        self.reset_on_train_begin = reset_on_train_begin
        self.tracked_layer_: Any = None
        self._input_layers: dict[str, Any] = {}
        self._batches_seen = 0
        self._resume_pending = False
        # Gradient modes: the tap in the optimizer, whether this callback put it
        # into model.optimizer (and so takes it out), and the applied updates counted.
        self._tap: GradientTapOptimizer | None = None
        self._tap_installed = False
        self._gradient_steps = 0

    @property
    def tracked_layer_name_(self) -> str | None:
        """Name of the tracked layer (comma-separated for several), as the torch trackers'."""
        layer = self.tracked_layer_
        if layer is None:
            return None
        if isinstance(layer, list | tuple):
            return ", ".join(entry.name for entry in layer)
        return str(layer.name)

    # ------------------------------------------------------------ configuration
    def get_config(self) -> dict[str, Any]:
        """The constructor parameters (a layer object is given by its name)."""
        layer: Any = self.layer
        if isinstance(layer, list | tuple):
            layer = [spec.name if isinstance(spec, keras.layers.Layer) else spec for spec in layer]
        elif isinstance(layer, keras.layers.Layer):
            layer = layer.name
        elif isinstance(layer, LayerWeight) and isinstance(layer.layer, keras.layers.Layer):
            layer = dataclasses.replace(layer, layer=layer.layer.name)
        return {
            "layer": layer,
            "update_every": self.update_every,
            "normalize": self.normalize,
            "include_initial": self.include_initial,
            "record_history": self.record_history,
            "dtype": self.dtype,
            "finite_check": self.finite_check,
            "reset_on_train_begin": self.reset_on_train_begin,
            "scoring": self.scoring,
            "feature_names": None if self.feature_names is None else list(self.feature_names),
            "groups": None if self.groups is None else {k: list(v) for k, v in self.groups.items()},
            "gradient_every": self.gradient_every,
            "log_importances": self.log_importances,
            "follow_early_stopping": self.follow_early_stopping,
        }

    # ------------------------------------------------------------------- hooks
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Choose the layer; reset the statistics unless continuing them.

        Statistics continue after
        [`load_state()`][neural_feature_importance.keras.VarianceImportanceKeras.load_state] /
        [`load_state_dict()`][load_state_dict] (once) and, with `reset_on_train_begin=False`,
        across `fit()` calls. With `log_importances`, a logger listed before this
        callback raises ValueError here (it would write each epoch without the
        importances); an `EarlyStopping(restore_best_weights=True)` of the same
        `fit()` is followed (`follow_early_stopping`).
        """
        self._follower = fit_companions(self, self.follow_early_stopping)
        self.restored_epoch_ = None
        self._last_epoch = None
        # A fit() that raised never reached on_train_end: take out its tap (its
        # unfinished epoch is dropped, as a resume from the last epoch's end would).
        self._remove_tap()
        continuing = self._has_statistics() and (
            self._resume_pending or not self.reset_on_train_begin
        )
        self._resume_pending = False
        if not continuing:
            self.core.reset()
            self._batches_seen = 0
            self._gradient_steps = 0
        self.tracked_layer_ = None
        compiled = getattr(self.model, "optimizer", None) is not None
        if all_built(self.model):
            self._choose_layer(continuing)
            if self._needs_gradients() and compiled:
                self._install_tap()
        elif not (
            # TensorFlow's fit() builds the model in its first train step: the
            # layer is chosen, and the tap installed, just before that step.
            self._needs_gradients() and compiled and self._install_tap_at_first_batch(continuing)
        ):
            # A custom training loop (other backends' fit() builds the model before
            # on_train_begin). The layer is chosen at the first snapshot.
            logger.info(
                "%s: model %r is not built yet; the layer is chosen at the first snapshot.",
                type(self).__name__,
                self.model.name,
            )

    @property
    def on_train_batch_end(self) -> Callable[..., Any]:
        """Keras's batch hook: counts batches when `update_every` is set.

        Keras dispatches batch hooks on a background thread (JAX, PyTorch
        backends) only when no callback overrides them, because an override
        forces a device sync per batch. Without `update_every` there is
        nothing to do per batch, so Keras is shown its own no-op hook.
        """
        if self.update_every is None:
            return keras.callbacks.Callback.on_train_batch_end.__get__(self)
        return self._count_batch

    def _count_batch(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Count one training batch; take a snapshot every `update_every`."""
        self._batches_seen += 1
        assert self.update_every is not None  # the hook counts only with update_every
        if self._batches_seen % self.update_every == 0:
            self._snapshot(sync=True)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Keep the statistics of the epoch just ended if `EarlyStopping` took it as its best."""
        if self._follower is not None:
            self._follower.epoch_done(self._last_epoch, self.state_dict)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Take the epoch's snapshot (unless `update_every` is set); log the importances if asked.

        With `log_importances` they go into the epoch's `logs` under
        `importance/<column>`, where `History`, the progress bar and the callbacks
        listed after this one (`CSVLogger`, `TensorBoard`) find them.
        """
        self._drain_tap()
        self._check_gradients_reached()
        if self.update_every is None:
            self._snapshot(sync=False)
        self.core.end_epoch()
        self._last_epoch = epoch
        if logs is not None:
            logs.update(self.core.epoch_logs())

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Give the optimizer back; compute and log the importances, or say why there are none.

        After an `EarlyStopping(restore_best_weights=True)` of the same `fit()` restores
        its best epoch's weights, the statistics of that epoch are restored too
        (`follow_early_stopping`), and `restored_epoch_` names it.
        """
        self._drain_tap()
        self._remove_tap()
        self._follow_restored_weights()
        gradients = self._needs_gradients()
        if gradients or self.n_updates_ >= 2:
            finish_training(self.core, log=True, raise_errors=False, owner=type(self).__name__)
            return
        when = "epoch" if self.update_every is None else f"{self.update_every} batches"
        logger.warning(
            "%s recorded %d weight snapshot(s) (one per %s); a variance needs at least "
            "2, so feature_importances_ is not available. Train for more epochs, or "
            "set update_every=N to take a snapshot every N batches.",
            type(self).__name__,
            self.n_updates_,
            when,
        )

    def _follow_restored_weights(self) -> None:
        """Go back to the statistics of the epoch whose weights EarlyStopping restores."""
        follower, self._follower = self._follower, None
        restored = None if follower is None else follower.finish(self._last_epoch, self.state_dict)
        if restored is None:
            return
        self.restored_epoch_, state = restored
        self.core.load_state_dict(state)
        self._batches_seen = int(state["batches_seen"])
        self._gradient_steps = int(state["gradient_steps"])
        logger.info(
            "%s: EarlyStopping restores the weights of epoch %d (0-based); the importances are "
            "those of that epoch too.",
            type(self).__name__,
            self.restored_epoch_,
        )

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The core's state plus the counters of `update_every` and `gradient_every`.

        During training with a gradient mode, the sums read since the last
        epoch's end are moved into the state first.
        """
        self._drain_tap()
        state = self.core.state_dict()
        state["batches_seen"] = int(self._batches_seen)
        state["gradient_steps"] = int(self._gradient_steps)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by [`state_dict()`][state_dict]; the next `fit()` continues it.

        Call it before `fit()` on a callback tracking the same layer; a
        resumed run gives the same importances as an uninterrupted one.
        """
        self.core.load_state_dict(state)
        self._batches_seen = int(state.get("batches_seen", 0))
        self._gradient_steps = int(state.get("gradient_steps", 0))
        self._resume_pending = True


class VarianceImportanceKeras(_KerasTracker):
    """Importances of a Dense layer's inputs, as a Keras 3 callback.

    Works on every Keras backend (TensorFlow, JAX, PyTorch) and with
    Sequential, functional and subclassed models.

    Parameters
    ----------
    layer : str, int, keras.layers.Layer, FeatureAxis, a list of layers, or None, default=None
        The layer to track: a name, an index into `model.layers` or a layer
        object; a list tracks several input layers (Dense, ConvND or
        Embedding) as one result (an Embedding counts as one column).
        Besides `Dense` layers, the layers that read their inputs through
        other weights are tracked, each read as one Dense kernel
        `(in_features, units)` with one score per input feature: `LSTM`,
        `GRU` and `SimpleRNN` (the input kernel, never the recurrent one),
        `Bidirectional` (both directions' input kernels, concatenated along
        the units) and `MultiHeadAttention` (its query, key and value kernels
        `(in, heads, head_dim)`, each reshaped to `(in, heads * head_dim)`,
        concatenated; only those that read the model's inputs, all three in
        self-attention). Any other variable is named with
        [`FeatureAxis`][neural_feature_importance.core.FeatureAxis]`("<layer
        name>.<attribute>", axis)`: the attribute may be a dotted path
        (`"attention.query_dense.kernel"`), and the variable's other axes are
        flattened into units.
        `None` follows the functional graph from the Inputs (a subclassed
        model: its call order, from one symbolic call) to the first trainable
        Dense (or recurrent, or attention) layer, skipping input,
        normalisation, rescaling, dropout, frozen and weightless layers (see
        `neural_feature_importance.keras.layers`); when every Input of a
        multi-Input model reaches a layer of its own, all of them are tracked
        as one result. The choice is logged, with a WARNING listing the Inputs
        tracked and not tracked where it is ambiguous. It is never silently
        wrong: a [`LayerSelectionError`][] says to pass `layer=` when the
        first layer that reads the inputs has weights no tracker can map to
        features, or when a subclassed model's chosen layer has another
        number of inputs than the model's input has features.
    update_every : int or None, default=None
        `None` takes one weight snapshot at the end of every epoch, as in the
        paper. `N` takes one every `N` training batches instead (counted
        across epochs; with `steps_per_execution=k` Keras calls batch hooks
        every `k` batches, and those calls are what is counted).
    normalize : {"minmax", "sum", None}, default="minmax"
        Scaling of
        [`feature_importances_`][neural_feature_importance.core.VarianceImportanceBase.feature_importances_]:
        `"minmax"` to [0, 1] as in the paper, `"sum"` to sum to 1, `None` for raw scores.
    include_initial : bool, default=False
        Also count the weights before training as a snapshot.
    record_history : bool, default=False
        Keep the raw scores after every snapshot in
        [`history_`][neural_feature_importance.core.VarianceImportanceBase.history_], and every
        column's importances at every epoch's end (as `log_importances` does, without logging).
    dtype : {"float64", "float32"}, default="float64"
        Precision of the running statistics.
    finite_check : {"update", "deferred"}, optional
        When to check snapshots for NaN/Inf: at every snapshot, or once per
        epoch. Default: `"update"` for per-epoch snapshots, `"deferred"` with
        `update_every` (as the PyTorch trackers). Either way a diverged run raises
        [`NonFiniteWeightsError`][]
        naming the layer and the snapshot, instead of giving NaN scores.
    reset_on_train_begin : bool, default=True
        Start new statistics at every `fit()`, so one instance can be reused for several models;
        `False` keeps accumulating across `fit()` calls on the same layer. Either way, the first
        `fit()` after
        [`load_state()`][neural_feature_importance.keras.VarianceImportanceKeras.load_state] /
        [`load_state_dict`][neural_feature_importance.keras.VarianceImportanceKeras.load_state_dict]
        continues the loaded state.
    scoring : str, default=RECOMMENDED_MODE
        The statistic that scores the features (see [`neural_feature_importance.core.modes`][]).
        The default, the recommended mode
        [`RECOMMENDED_MODE`][neural_feature_importance.core.modes.RECOMMENDED_MODE]
        (`"taylor"`), `"steady_taylor"` and the other gradient modes read the tracked kernel's
        gradient at every applied optimizer update: the callback wraps `model.optimizer` in a
        [`GradientTapOptimizer`][] for the duration of `fit()` (inside a `LossScaleOptimizer`
        under `mixed_float16`), so the work runs inside the compiled train step on every
        backend, `jit_compile`, a custom `train_step` that updates through `self.optimizer` and
        scikeras included; custom training loops use
        [`wrap_optimizer()`][neural_feature_importance.keras.VarianceImportanceKeras.wrap_optimizer].
        An epoch that ends with no update through the tap (a train step or loop that updates
        the weights with another optimizer) raises `ValueError`. `"viann"` is the paper's
        method, bit for bit, and `"growth"` the best mode that needs weight snapshots only:
        neither touches the optimizer.
    feature_names : sequence of str, optional
        One name per input of the tracked layer (default `x0, x1, ...`).
    groups : mapping of str to sequence of (int or str), optional
        Column name -> the layer's inputs that encode it (one-hot levels, an
        embedding's dimensions inside a `Concatenate`), by index or by name;
        the result has one score per group plus one per ungrouped input (see
        [`neural_feature_importance.core.columns`][]).
    gradient_every : int, optional
        Gradient modes: read one applied optimizer update in `gradient_every`
        (updates 1, 1 + k, ..., counted across epochs and saved in the
        state), as the PyTorch trackers count optimizer steps. With
        `gradient_accumulation_steps` an update is one accumulated step.
        Default: the mode's own (4 for `taylor`).
    log_importances : bool or int, default=False
        Put the epoch's importances into the epoch's `logs` under
        `importance/<column>`, so that `History`, `CSVLogger`, `TensorBoard` and the
        progress bar record them: `True` every column, an int `k` the `k` columns that
        rank highest at the first epoch with importances (the same keys for the rest
        of training). List the callback before `CSVLogger` and `TensorBoard` (Keras
        calls callbacks in list order; `fit()` raises ValueError otherwise). Off by
        default: the progress bar prints every key, and computing the scores is one
        host read per epoch. Either setting also records every column's importances
        at every epoch's end
        ([`epoch_importances_`][neural_feature_importance.core.VarianceImportanceBase.epoch_importances_],
        [`importances_at()`][neural_feature_importance.core.VarianceImportanceBase.importances_at]).
        See [`neural_feature_importance.core.logs`][].
    follow_early_stopping : bool, default=True
        When an `EarlyStopping(restore_best_weights=True)` of the same `fit()` restores
        the weights of its best epoch, restore this callback's statistics of that epoch
        too: `feature_importances_` (and the state) are then those of a run stopped at
        that epoch, the model `fit()` hands back; `restored_epoch_` names it. `False`
        keeps the statistics of every epoch trained, patience epochs included.

    Attributes
    ----------
    feature_importances_ : ndarray of shape (n_columns,)
        Normalised importance of every column (every input of the tracked
        layer unless grouped), ordered as `feature_names_in_`. Raises
        [`NotFittedError`][] before
        two snapshots exist (e.g. after a single epoch).
    raw_importances_ : ndarray of shape (n_columns,)
        The same before normalisation.
    feature_names_in_ : ndarray of str
        Name of every column.
    importances_ : FeatureImportances
        Names and scores together, with `to_frame()` and `plot()`.
    var_scores : ndarray of shape (n_features,)
        The original package's name for
        [`feature_importances_`][neural_feature_importance.core.VarianceImportanceBase.feature_importances_].
    history_ : ndarray of shape (n_snapshots - 1, n_features)
        Raw scores after every snapshot (with `record_history=True`).
    tracked_layer_ : keras.layers.Layer
        The layer being tracked.
    n_updates_ : int
        Number of snapshots taken.
    restored_epoch_ : int or None
        The epoch (0-based) whose statistics were restored together with
        `EarlyStopping`'s best weights at the end of the last `fit()`, else `None`.

    Notes
    -----
    Data-parallel training gives the importances of single-device training
    on the same global batches, up to float32 rounding: under JAX's
    `keras.distribution.DataParallel` and TensorFlow's
    `tf.distribute.MirroredStrategy` the weights read are the replicated
    ones, and the gradient modes read the gradient of the global batch, the
    one the optimizer applies, once per update (see
    `neural_feature_importance.keras.gradients`). Under
    `MirroredStrategy` build and compile the model inside
    `strategy.scope()`, as Keras requires; the callback itself needs no
    scope. Keras's PyTorch backend has no distribution API; for PyTorch DDP
    or FSDP use the PyTorch trackers.

    Examples
    --------
    >>> import keras
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
    ...                           keras.layers.Dense(3, activation="softmax")])
    >>> model.compile("adam", "sparse_categorical_crossentropy")
    >>> tracker = VarianceImportanceKeras()   # the recommended mode; scoring="viann": the paper
    >>> _ = model.fit(X, y, epochs=5, verbose=0, callbacks=[tracker])
    >>> tracker.feature_importances_.shape
    (4,)
    """


class ConvVarianceImportanceKeras(VarianceImportanceKeras):
    """Importances of a convolution's inputs, as a Keras 3 callback.

    Tracks a `Conv1D`, `Conv2D` or `Conv3D` kernel `(*kernel, in, out)`. A feature is a (kernel
    position, input channel) pair, so besides
    [`feature_importances_`][neural_feature_importance.core.VarianceImportanceBase.feature_importances_]
    (flattened in that order) it offers
    [`heatmap_`][neural_feature_importance.core.ConvVarianceImportanceBase.heatmap_] of shape
    `(*kernel, in)` and ranks the filters
    ([`filter_importances_`][neural_feature_importance.core.ConvVarianceImportanceBase.filter_importances_],
    [`filter_ranking_`][neural_feature_importance.core.ConvVarianceImportanceBase.filter_ranking_]).
    Parameters are those of [`VarianceImportanceKeras`][]; `layer=None` picks the first trainable
    convolution.
    """

    kind: ClassVar[Kind] = "conv"


class EmbeddingVarianceImportanceKeras(VarianceImportanceKeras):
    """Importances of the tokens of an Embedding layer, as a Keras 3 callback.

    One score per token (under `scoring="viann"`: `sum_j var[token, j]` over the
    table's rows). Tokens that no batch contained score zero. Parameters are those of
    [`VarianceImportanceKeras`][]; `layer=None` picks the first trainable
    Embedding layer.
    """

    kind: ClassVar[Kind] = "embedding"
