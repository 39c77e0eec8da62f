"""Keras 3 callbacks that track VIANN importances during ``model.fit``.

The callbacks are thin adapters over the framework-free core
(:mod:`neural_feature_importance.core.tracker`): they choose a layer
(:mod:`.layers`), read its weight with ``keras.ops.convert_to_numpy`` and pass
it to the core's ``start`` / ``update``. Nothing here imports TensorFlow, so
the same callbacks run on the TensorFlow, JAX and PyTorch backends.

Snapshots are taken at the end of every epoch (the paper's choice), or every
``update_every`` training batches. On the JAX backend Keras keeps the weights
outside the model during an epoch; per-batch snapshots call
``model.jax_state_sync()`` first, as Keras's own checkpoint callbacks do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from neural_feature_importance.core.arrays import NUMPY_OPS
from neural_feature_importance.core.columns import Member
from neural_feature_importance.core.combined import n_combined_inputs
from neural_feature_importance.core.errors import (
    LayerSelectionError,
    NoSignalError,
    NotFittedError,
    StateDictError,
)
from neural_feature_importance.core.modes import get_mode
from neural_feature_importance.core.options import (
    FiniteCheck,
    check_gradient_every,
    check_update_every,
)
from neural_feature_importance.core.scoring import Normalize
from neural_feature_importance.core.tracker import (
    ConvVarianceImportanceBase,
    EmbeddingVarianceImportanceBase,
    VarianceImportanceBase,
)
from neural_feature_importance.keras.gradients import GradientTapOptimizer, unlink_tap
from neural_feature_importance.keras.layers import (
    WEIGHT_ATTRIBUTE,
    LayerSpec,
    all_built,
    check_layer_spec,
    describe,
    explicit_layers,
    independent_input_layers,
    kind_of,
    select_layer,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ConvVarianceImportanceKeras",
    "EmbeddingVarianceImportanceKeras",
    "VarianceImportanceKeras",
]


class _KerasTracker(keras.callbacks.Callback, VarianceImportanceBase):
    """The Keras glue shared by the three trackers (hooks, layer, weights).

    Concrete classes also list one of the core trackers after this class,
    which fixes :attr:`kind` and holds the statistics; this class only decides
    which weight to read and when. Inheriting the dense core tracker here lets
    its methods use the core's API (the classes' method resolution order is
    the same either way).
    """

    def __init__(
        self,
        layer: LayerSpec | Sequence[LayerSpec] = None,
        update_every: int | None = None,
        normalize: Normalize = "minmax",
        *,
        include_initial: bool = False,
        record_history: bool = False,
        dtype: str = "float64",
        finite_check: FiniteCheck = "update",
        reset_on_train_begin: bool = True,
        scoring: str = "viann",
        feature_names: Sequence[str] | None = None,
        groups: Mapping[str, Sequence[Member]] | None = None,
        gradient_every: int | None = None,
    ) -> None:
        keras.callbacks.Callback.__init__(self)
        # Checked now (the model is not known yet, so a layer name is checked at fit()).
        check_update_every(update_every)
        check_gradient_every(gradient_every)
        for spec in layer if isinstance(layer, list | tuple) else [layer]:
            check_layer_spec(spec, type(self).__name__)
        # The core tracker (every concrete class's other base) stores the
        # statistics' parameters; weights arrive as numpy arrays in Keras's layout.
        VarianceImportanceBase.__init__(
            self,
            normalize,
            dtype=dtype,
            include_initial=include_initial,
            record_history=record_history,
            layout="keras",
            ops=NUMPY_OPS,
            finite_check=finite_check,
            scoring=scoring,
            feature_names=feature_names,
            groups=groups,
        )
        self.layer = layer
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

    # ------------------------------------------------------------ configuration
    def get_config(self) -> dict[str, Any]:
        """The constructor parameters (a layer object is given by its name)."""
        layer: Any = self.layer
        if isinstance(layer, list | tuple):
            layer = [spec.name if isinstance(spec, keras.layers.Layer) else spec for spec in layer]
        elif isinstance(layer, keras.layers.Layer):
            layer = layer.name
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
        }

    # ------------------------------------------------------------------- hooks
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Choose the layer; reset the statistics unless continuing them.

        Statistics continue after :meth:`load_state` / :meth:`load_state_dict`
        (once) and, with ``reset_on_train_begin=False``, across ``fit()`` calls.
        """
        check_update_every(self.update_every)
        check_gradient_every(self.gradient_every)
        # A fit() that raised never reached on_train_end: take out its tap (its
        # unfinished epoch is dropped, as a resume from the last epoch's end would).
        self._remove_tap()
        continuing = self._has_statistics() and (
            self._resume_pending or not self.reset_on_train_begin
        )
        self._resume_pending = False
        if not continuing:
            self._clear()
            self._batches_seen = 0
            self._gradient_steps = 0
        self.tracked_layer_ = None
        if all_built(self.model):
            self._choose_layer(continuing)
            if self._needs_gradients() and getattr(self.model, "optimizer", None) is not None:
                self._install_tap()
        else:
            # Only custom training loops get here: fit() builds the model
            # before on_train_begin. The layer is chosen at the first snapshot.
            logger.info(
                "%s: model %r is not built yet; the layer is chosen at the first snapshot.",
                type(self).__name__,
                self.model.name,
            )

    @property
    def on_train_batch_end(self) -> Callable[..., Any]:
        """Keras's batch hook: counts batches when ``update_every`` is set.

        Keras dispatches batch hooks on a background thread (JAX, PyTorch
        backends) only when no callback overrides them, because an override
        forces a device sync per batch. Without ``update_every`` there is
        nothing to do per batch, so Keras is shown its own no-op hook.
        """
        if self.update_every is None:
            return keras.callbacks.Callback.on_train_batch_end.__get__(self)
        return self._count_batch

    def _count_batch(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Count one training batch; take a snapshot every ``update_every``."""
        self._batches_seen += 1
        assert self.update_every is not None  # the hook counts only with update_every
        if self._batches_seen % self.update_every == 0:
            self._snapshot(sync=True)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Take the epoch's snapshot (unless ``update_every`` is set)."""
        self._drain_tap()
        if self.update_every is None:
            self._snapshot(sync=False)
        self.end_epoch()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Give the optimizer back; compute and log the importances, or say why there are none."""
        self._drain_tap()
        self._remove_tap()
        gradients = self._needs_gradients()
        if gradients or self.n_updates_ >= 2:
            # A gradient mode may also have recorded no read (NotFittedError).
            reported = (NoSignalError, NotFittedError) if gradients else (NoSignalError,)
            try:
                self.finalize()
            except reported as error:
                # fit() itself succeeded; reading feature_importances_ raises the same error.
                logger.warning("%s", error)
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

    def _has_statistics(self) -> bool:
        """Whether a weight (or several input layers) is being tracked already."""
        return self.view is not None or self.layers_ is not None

    # --------------------------------------------------------------- gradients
    def _needs_gradients(self) -> bool:
        return get_mode(self.scoring).needs_gradients

    def _gradient_every(self) -> int:
        return self.gradient_every or get_mode(self.scoring).gradient_every

    def wrap_optimizer(self, optimizer: keras.optimizers.Optimizer) -> GradientTapOptimizer:
        """Return ``optimizer`` wrapped in a gradient tap that feeds this tracker.

        For custom training loops with a gradient scoring mode: call
        ``set_model(model)`` and ``on_train_begin()``, then update the model
        with the returned optimizer (``apply`` or, on JAX, ``stateless_apply``)
        and call ``on_epoch_end(epoch)`` after every epoch. ``fit()`` needs
        none of this: the callback wraps ``model.optimizer`` itself.

        Raises
        ------
        ValueError
            If the scoring mode needs no gradients, or the model is not built.
        """
        if not self._needs_gradients():
            raise ValueError(
                f"scoring={self.scoring!r} needs no gradients, so there is nothing to wrap; "
                "use the optimizer as it is."
            )
        if self.tracked_layer_ is None:
            if self.model is None or not all_built(self.model):
                raise ValueError(
                    f"{type(self).__name__}.wrap_optimizer() needs a built model: call "
                    "set_model(model) on a built model (call it on a batch first), then "
                    "on_train_begin()."
                )
            self._choose_layer(self._has_statistics())
        self._tap = GradientTapOptimizer(
            optimizer, self._tap_targets(), gradient_every=self._gradient_every()
        )
        self._tap.build(list(self.model.trainable_variables))
        self._tap.steps = self._gradient_steps
        self._tap_installed = False
        return self._tap

    def _tap_targets(self) -> list[tuple[str, Any, Any]]:
        """(name, variable, scoring mode) of every tracked weight."""
        if self.layers_ is not None:
            return [
                (
                    name,
                    getattr(self._input_layers[name], WEIGHT_ATTRIBUTE[tracker.kind]),
                    tracker._mode,
                )
                for name, tracker in self.layers_.items()
            ]
        layer = self.tracked_layer_
        return [(layer.name, getattr(layer, WEIGHT_ATTRIBUTE[self.kind]), self._mode)]

    def _install_tap(self) -> None:
        """Put a gradient tap into ``model.optimizer`` and rebuild the train function.

        Under a ``LossScaleOptimizer`` the tap wraps its inner optimizer, so
        it reads unscaled gradients of the steps that are applied.
        """
        model = self.model
        host = model.optimizer
        if isinstance(host, keras.optimizers.LossScaleOptimizer):
            tap = self.wrap_optimizer(host.inner_optimizer)
            host.inner_optimizer = tap
        else:
            tap = self.wrap_optimizer(host)
            model.optimizer = tap
        self._tap_installed = True
        model.make_train_function(force=True)
        logger.info(
            "%s(scoring=%r) reads the gradient of %s in the optimizer, one applied update "
            "in %d, inside the compiled train step.",
            type(self).__name__,
            self.scoring,
            self.layer_name,
            tap.gradient_every,
        )

    def _remove_tap(self) -> None:
        """Give the user's optimizer back (after ``fit``), keeping other wrappers."""
        if self._tap is None:
            return
        if self._tap_installed:
            unlink_tap(self.model, self._tap)
            # The compiled train function still calls the tap: rebuild it at the next fit().
            self.model.train_function = None
        self._tap = None
        self._tap_installed = False

    def _drain_tap(self) -> None:
        """Move the tap's sums (read in the compiled step) into the core tracker."""
        tap = self._tap
        if tap is None:
            return
        sync_state = getattr(self.model, "jax_state_sync", None)
        if sync_state is not None:
            # Under JAX the tap's variables live in the trainer's state during an epoch.
            sync_state()
        for name, (sums, n_read, n_skipped) in tap.drain().items():
            tracker = self if self.layers_ is None else self.layers_[name]
            tracker.update_gradient_sums(sums, n_read, n_skipped)
        self._gradient_steps = tap.steps

    # ----------------------------------------------------------------- weights
    def _choose_layer(self, continuing: bool) -> None:
        name = type(self).__name__
        if isinstance(self.layer, list | tuple):
            self._choose_layers(explicit_layers(self.model, self.layer, name), continuing)
            return
        if self.layer is None:
            independent = independent_input_layers(self.model)
            if independent is not None:
                self._choose_layers(independent, continuing)
                return
        choice = select_layer(self.model, self.layer, self.kind, name)
        layer = choice.layer
        weights = self._read(layer)
        skipped = f"; skipped {', '.join(choice.skipped)}" if choice.skipped else ""
        logger.info("%s tracks %s (%s%s).", name, describe(layer), choice.reason, skipped)
        if choice.caveat is not None:
            # A multi-Input model whose Inputs are not all read by this layer, or
            # read through a merge: the scores are easily misread, so never only INFO.
            logger.warning("%s", choice.caveat)
        if not layer.trainable:
            logger.warning(
                "%s: layer %r is frozen (trainable=False), so its weights will not change "
                "and every feature will score the same.",
                name,
                layer.name,
            )
        if continuing and self.layers_ is not None:
            raise StateDictError(
                f"{name} continues a state of the layers {list(self.layers_)}, but tracks one "
                f"layer, {layer.name!r}; pass layer={list(self.layers_)}, or construct a new "
                "callback to start afresh."
            )
        if continuing:
            assert self.view is not None  # one layer's state is continued
            if tuple(weights.shape) != self.view.weight_shape:
                raise StateDictError(
                    f"{name} continues a state of a {self.view.weight_shape} weight "
                    f"(layer {self.layer_name!r}), but layer {layer.name!r} has a "
                    f"{tuple(weights.shape)} weight; pass layer= naming the same layer, "
                    "or construct a new callback to start afresh."
                )
            logger.info(
                "%s continues from %d snapshot(s) of %r.", name, self.n_updates_, self.layer_name
            )
            self.layer_name = layer.name
        else:
            self.start(weights, layer_name=layer.name)
        self.tracked_layer_ = layer

    def _choose_layers(self, layers: list[Any], continuing: bool) -> None:
        """Track several input layers (one core tracker each) as one result."""
        name = type(self).__name__
        names = [layer.name for layer in layers]
        weights = {layer.name: self._read(layer, kind_of(layer)) for layer in layers}
        if continuing:
            saved = list(self.layers_ or {})
            if saved != names:
                raise StateDictError(
                    f"{name} continues a state of the layers {saved}, but this model's input "
                    f"layers are {names}; pass layer= naming the same layers, or construct a "
                    "new callback to start afresh."
                )
            assert self.layers_ is not None
            for layer_name, tracker in self.layers_.items():
                shape = tuple(weights[layer_name].shape)
                if tracker.view is not None and tracker.view.weight_shape != shape:
                    raise StateDictError(
                        f"{name} continues a state of a {tracker.view.weight_shape} weight of "
                        f"layer {layer_name!r}, which now has a {shape} weight; is it the same "
                        "model?"
                    )
        else:
            self._clear()
            self.layers_ = {
                layer.name: self._new_layer_tracker(layer.name, kind_of(layer)) for layer in layers
            }
            for layer_name, tracker in self.layers_.items():
                tracker.start(weights[layer_name], layer_name=layer_name)
            self.layer_name = ", ".join(names)
            views = [t.view for t in self.layers_.values() if t.view is not None]
            self._feature_columns.resolve(n_combined_inputs(views), self.layer_name)
        self._input_layers = dict(zip(names, layers, strict=True))
        self.tracked_layer_ = layers
        logger.info(
            "%s tracks %d input layers as one result: %s.",
            name,
            len(layers),
            ", ".join(describe(layer) for layer in layers),
        )

    def _new_layer_tracker(self, name: str, kind: Any) -> VarianceImportanceBase:
        base = LAYER_TRACKERS.get(kind)
        if base is None:
            raise ValueError(f"layer {name!r} is of kind {kind!r}, which no tracker reads")
        return base(layout="keras", ops=NUMPY_OPS, **self._layer_tracker_options())

    def _read(self, layer: Any, kind: str | None = None) -> np.ndarray:
        attribute = WEIGHT_ATTRIBUTE[kind or self.kind]
        variable = getattr(layer, attribute, None)
        if variable is None:
            raise LayerSelectionError(
                f"{type(self).__name__}: layer {describe(layer)} has no {attribute!r} yet; "
                "build the model (call it on a batch, or fit it) before reading weights."
            )
        return np.asarray(keras.ops.convert_to_numpy(variable))

    def _snapshot(self, sync: bool) -> None:
        if sync:
            # Under JAX, Keras keeps the trained weights outside the model
            # during an epoch (the layer's variables are even purged); this
            # puts them back, as ModelCheckpoint(save_freq=N) does.
            sync_state = getattr(self.model, "jax_state_sync", None)
            if sync_state is not None:
                sync_state()
        if self.tracked_layer_ is None:
            # The model was not built at on_train_begin (a custom training loop).
            continuing = self._has_statistics()
            self._choose_layer(continuing)
            if self.include_initial and not continuing:
                logger.warning(
                    "%s: the model was not built when training began, so its initial "
                    "weights are unknown; include_initial counted the first snapshot.",
                    type(self).__name__,
                )
                return  # start() already counted these weights
        if self.layers_ is not None:
            for layer_name, tracker in self.layers_.items():
                layer = self._input_layers[layer_name]
                tracker.update(self._read(layer, tracker.kind))
            return
        self.update(self._read(self.tracked_layer_))

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The core's state plus the counters of ``update_every`` and ``gradient_every``.

        During training with a gradient mode, the sums read since the last
        epoch's end are moved into the state first.
        """
        self._drain_tap()
        state = super().state_dict()
        state["batches_seen"] = int(self._batches_seen)
        state["gradient_steps"] = int(self._gradient_steps)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict`; the next ``fit()`` continues it.

        Call it before ``fit()`` on a callback tracking the same layer; a
        resumed run gives the same importances as an uninterrupted one.
        """
        super().load_state_dict(state)
        self._batches_seen = int(state.get("batches_seen", 0))
        self._gradient_steps = int(state.get("gradient_steps", 0))
        self._resume_pending = True


LAYER_TRACKERS: dict[str, type[VarianceImportanceBase]] = {
    "dense": VarianceImportanceBase,
    "conv": ConvVarianceImportanceBase,
    "embedding": EmbeddingVarianceImportanceBase,
}
"""The core tracker of each layer kind, for models with several input layers."""


class VarianceImportanceKeras(_KerasTracker, VarianceImportanceBase):
    """VIANN importances of a Dense layer's inputs, as a Keras 3 callback.

    Works on every Keras backend (TensorFlow, JAX, PyTorch) and with
    Sequential, functional and subclassed models.

    Parameters
    ----------
    layer : str, int, keras.layers.Layer, a list of them, or None, default=None
        The layer to track: a name, an index into ``model.layers`` or a layer
        object; a list tracks several input layers (Dense, ConvND or
        Embedding) as one result (an Embedding counts as one column).
        ``None`` follows the functional graph from the Inputs to the first
        trainable Dense layer, skipping input, normalisation, rescaling,
        dropout, frozen and weightless layers (see
        :mod:`neural_feature_importance.keras.layers`); when every Input of a
        multi-Input model reaches a layer of its own, all of them are tracked
        as one result. The choice is logged, with a WARNING listing the Inputs
        tracked and not tracked where it is ambiguous.
    update_every : int or None, default=None
        ``None`` takes one weight snapshot at the end of every epoch, as in the
        paper. ``N`` takes one every ``N`` training batches instead (counted
        across epochs; with ``steps_per_execution=k`` Keras calls batch hooks
        every ``k`` batches, and those calls are what is counted).
    normalize : {"minmax", "sum", None}, default="minmax"
        Scaling of :attr:`feature_importances_`: ``"minmax"`` to [0, 1] as in
        the paper, ``"sum"`` to sum to 1, ``None`` for raw scores.
    include_initial : bool, default=False
        Also count the weights before training as a snapshot.
    record_history : bool, default=False
        Keep the raw scores after every snapshot in :attr:`history_`.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the running statistics.
    finite_check : {"update", "deferred"}, default="update"
        When to check snapshots for NaN/Inf: at every snapshot, or once per
        epoch. Either way a diverged run raises
        :class:`~neural_feature_importance.core.errors.NonFiniteWeightsError`
        naming the layer and the snapshot, instead of giving NaN scores.
    reset_on_train_begin : bool, default=True
        Start new statistics at every ``fit()``, so one instance can be reused
        for several models; ``False`` keeps accumulating across ``fit()`` calls
        on the same layer. Either way, the first ``fit()`` after
        :meth:`load_state` / :meth:`load_state_dict` continues the loaded state.
    scoring : str, default="viann"
        The statistic that scores the features (see
        :mod:`neural_feature_importance.core.modes`): ``"viann"`` is the paper's
        method. ``"steady_taylor"`` (recommended), ``"taylor"`` and the other
        gradient modes read the tracked kernel's gradient at every applied optimizer update: the
        callback wraps ``model.optimizer`` in a
        :class:`~neural_feature_importance.keras.gradients.GradientTapOptimizer`
        for the duration of ``fit()`` (inside a ``LossScaleOptimizer`` under
        ``mixed_float16``), so the work runs inside the compiled train step on
        every backend; custom training loops use :meth:`wrap_optimizer`.
        ``"growth"`` is the best mode that needs weight snapshots only.
    feature_names : sequence of str, optional
        One name per input of the tracked layer (default ``x0, x1, ...``).
    groups : mapping of str to sequence of (int or str), optional
        Column name -> the layer's inputs that encode it (one-hot levels, an
        embedding's dimensions inside a ``Concatenate``), by index or by name;
        the result has one score per group plus one per ungrouped input (see
        :mod:`neural_feature_importance.core.columns`).
    gradient_every : int, optional
        Gradient modes: read one applied optimizer update in ``gradient_every``
        (updates 1, 1 + k, ..., counted across epochs and saved in the
        state), as the PyTorch trackers count optimizer steps. With
        ``gradient_accumulation_steps`` an update is one accumulated step.
        Default: the mode's own (4 for ``taylor``).

    Attributes
    ----------
    feature_importances_ : ndarray of shape (n_columns,)
        Normalised importance of every column (every input of the tracked
        layer unless grouped), ordered as ``feature_names_in_``. Raises
        :class:`~neural_feature_importance.core.errors.NotFittedError` before
        two snapshots exist (e.g. after a single epoch).
    raw_importances_ : ndarray of shape (n_columns,)
        The same before normalisation.
    feature_names_in_ : ndarray of str
        Name of every column.
    importances_ : FeatureImportances
        Names and scores together, with ``to_frame()`` and ``plot()``.
    var_scores : ndarray of shape (n_features,)
        The original package's name for :attr:`feature_importances_`.
    history_ : ndarray of shape (n_snapshots - 1, n_features)
        Raw scores after every snapshot (with ``record_history=True``).
    tracked_layer_ : keras.layers.Layer
        The layer being tracked.
    n_updates_ : int
        Number of snapshots taken.

    Notes
    -----
    Data-parallel training gives the importances of single-device training
    on the same global batches, up to float32 rounding: under JAX's
    ``keras.distribution.DataParallel`` and TensorFlow's
    ``tf.distribute.MirroredStrategy`` the weights read are the replicated
    ones, and the gradient modes read the gradient of the global batch, the
    one the optimizer applies, once per update (see
    :mod:`neural_feature_importance.keras.gradients`). Under
    ``MirroredStrategy`` build and compile the model inside
    ``strategy.scope()``, as Keras requires; the callback itself needs no
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
    >>> viann = VarianceImportanceKeras()
    >>> _ = model.fit(X, y, epochs=5, verbose=0, callbacks=[viann])
    >>> viann.feature_importances_.shape
    (4,)
    """


class ConvVarianceImportanceKeras(VarianceImportanceKeras, ConvVarianceImportanceBase):
    """VIANN importances of a convolution's inputs, as a Keras 3 callback.

    Tracks a ``Conv1D``, ``Conv2D`` or ``Conv3D`` kernel ``(*kernel, in, out)``.
    A feature is a (kernel position, input channel) pair, so besides
    :attr:`feature_importances_` (flattened in that order) it offers
    :attr:`heatmap_` of shape ``(*kernel, in)`` and ranks the filters
    (:attr:`filter_importances_`, :attr:`filter_ranking_`). Parameters are
    those of :class:`VarianceImportanceKeras`; ``layer=None`` picks the first
    trainable convolution.
    """


class EmbeddingVarianceImportanceKeras(VarianceImportanceKeras, EmbeddingVarianceImportanceBase):
    """VIANN importances of the tokens of an Embedding layer, as a Keras 3 callback.

    One score per token: ``sum_j var[token, j]`` over the table's rows. Tokens
    that no batch contained keep a variance of zero. Parameters are those of
    :class:`VarianceImportanceKeras`; ``layer=None`` picks the first trainable
    Embedding layer.
    """
