"""PyTorch trackers: the core's VIANN statistics, kept on the parameter's device.

Call the hooks from your training loop (the original package's names)::

    tracker = VarianceImportanceTorch(model)
    tracker.on_train_begin()
    for epoch in range(n_epochs):
        for x, y in loader:
            ...
            optimizer.step()
            tracker.on_step_end()      # counts steps; updates if update_every=N
        tracker.on_epoch_end()         # updates (default: one snapshot per epoch)
    tracker.on_train_end()
    tracker.feature_importances_       # one score per *input* feature

The statistics are the core's :class:`~neural_feature_importance.core.moments.RunningMoments`
operating on tensors in place under ``torch.no_grad()``: no host copy per update,
and the last weights are a copy, never the live parameter.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from neural_feature_importance.core.arrays import check_dtype
from neural_feature_importance.core.columns import FeatureColumns, Member
from neural_feature_importance.core.combined import n_combined_inputs
from neural_feature_importance.core.errors import LayerSelectionError, StateDictError
from neural_feature_importance.core.modes import get_mode
from neural_feature_importance.core.options import (
    FiniteCheck,
    check_finite_check,
    check_gradient_every,
    check_update_every,
)
from neural_feature_importance.core.scoring import Normalize, check_normalize
from neural_feature_importance.core.sharding import WeightShard
from neural_feature_importance.core.tracker import (
    ConvVarianceImportanceBase,
    EmbeddingVarianceImportanceBase,
    VarianceImportanceBase,
)
from neural_feature_importance.core.views import WeightView
from neural_feature_importance.torch.arrays import TorchArrayOps
from neural_feature_importance.torch.distributed import (
    ShardedTorchArrayOps,
    is_first_process,
    is_sharded,
    local_tensor,
    uses_fsdp2,
    weight_shard,
)
from neural_feature_importance.torch.input_layers import (
    InputLayerProbe,
    InputLayerResult,
    choose_input_layers,
)
from neural_feature_importance.torch.layers import module_kind, select_layer
from neural_feature_importance.torch.parametrized import (
    EffectiveWeightGradient,
    effective_weight,
    is_parametrized_weight,
    trainable_weight_parameters,
)

logger = logging.getLogger(__name__)


def _dtype_name(dtype: str | torch.dtype) -> str:
    if isinstance(dtype, torch.dtype):
        return str(dtype).removeprefix("torch.")
    return dtype


def _check_options(
    update_every: int | None,
    gradient_every: int | None,
    normalize: Normalize,
    dtype: str | torch.dtype,
    finite_check: FiniteCheck | None,
    scoring: str,
) -> None:
    """Check every option a torch tracker takes, without a model (see the core checks)."""
    check_update_every(update_every)
    check_gradient_every(gradient_every)
    check_normalize(normalize)
    check_dtype(_dtype_name(dtype))
    if finite_check is not None:
        check_finite_check(finite_check)
    get_mode(scoring)


def _check_layer_list(model: nn.Module, layers: Sequence[str | nn.Module]) -> list[str]:
    """Check every entry of ``layer=[...]`` (any trackable kind); return their names."""
    if not layers:
        raise ValueError("layer=[] names no layer; pass layer names or modules, or None.")
    names = []
    for entry in layers:
        if not isinstance(entry, str | nn.Module):
            raise TypeError(f"layer=[...] takes layer names or modules, got {type(entry).__name__}")
        module = dict(model.named_modules()).get(entry) if isinstance(entry, str) else entry
        kind = module_kind(module) if isinstance(module, nn.Module) else None
        name, _ = select_layer(model, entry, kind or "dense")
        if name in names:
            raise ValueError(f"layer=[...] names {name!r} twice.")
        names.append(name)
    return names


class _TorchTrackerMixin(VarianceImportanceBase):
    """Layer choice and training-loop hooks shared by the three torch trackers.

    Each concrete tracker also lists its core tracker (dense, conv or
    embedding) after this class, which fixes :attr:`kind` and the scores;
    inheriting the dense one here only lets the methods below use the core's
    API (the classes' method resolution order is the same either way).
    ``on_step_end`` reads ``param.grad``, so gradient scoring modes work here.
    """

    ops: TorchArrayOps
    layers_: dict[str, _TorchTrackerMixin] | None
    tracked_layer_name_: str

    def __init__(
        self,
        model: nn.Module,
        layer: str | nn.Module | list[str | nn.Module] | tuple[str | nn.Module, ...] | None = None,
        *,
        update_every: int | None = None,
        normalize: Normalize = "minmax",
        dtype: str | torch.dtype = "float64",
        include_initial: bool = False,
        record_history: bool = False,
        finite_check: FiniteCheck | None = None,
        scoring: str = "viann",
        gradient_every: int | None = None,
        feature_names: Sequence[str] | None = None,
        groups: Mapping[str, Sequence[Member]] | None = None,
    ) -> None:
        _check_options(update_every, gradient_every, normalize, dtype, finite_check, scoring)
        if isinstance(layer, list | tuple):
            # Several input layers, of any kind, give one combined result.
            _check_layer_list(model, layer)
        elif layer is not None:
            # The model is known: a wrong layer fails here, not when training begins.
            select_layer(model, layer, self.kind)
        self.model = model
        self.layer = layer
        self.update_every = update_every
        self.gradient_every = gradient_every
        super().__init__(
            normalize,
            dtype=_dtype_name(dtype),
            include_initial=include_initial,
            record_history=record_history,
            layout="torch",
            ops=TorchArrayOps(),
            finite_check=finite_check or ("deferred" if update_every else "update"),
            scoring=scoring,
            feature_names=feature_names,
            groups=groups,
        )
        self._module: nn.Module | None = None
        self._param: nn.Parameter | None = None
        # This process's slice of an FSDP2-sharded weight, else None.
        self._layer_shard: WeightShard | None = None
        # Under FSDP2, the input layers found during a forward pass (when the
        # weights are unsharded), acted on at the next hook.
        self._found_inputs: InputLayerResult | None = None
        self._parametrized = False
        self._probe: InputLayerProbe | None = None
        self._capture: EffectiveWeightGradient | None = None
        self._steps = 0
        self._resume_pending = False
        self._resumed = False
        if (feature_names is not None or groups is not None) and layer is not None:
            # The layer is known, so names and groups are checked against its inputs now
            # (with layer=None, once the first forward pass has shown the input layers).
            self._check_columns()

    @classmethod
    def check_options(cls, **options: Any) -> None:
        """Check tracker options before the model exists (the Lightning callback does).

        Raises
        ------
        TypeError
            If an option is not a parameter of the tracker (the message lists them).
        ValueError
            If an option's value is not accepted.
        """
        parameters = inspect.signature(_TorchTrackerMixin.__init__).parameters
        known = [name for name in parameters if name not in ("self", "model")]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise TypeError(
                f"{cls.__name__} has no option {', '.join(map(repr, unknown))}; its options "
                f"are {', '.join(known)}."
            )
        values = {name: parameters[name].default for name in known} | options
        FeatureColumns(values["feature_names"], values["groups"])
        _check_options(
            values["update_every"],
            values["gradient_every"],
            values["normalize"],
            values["dtype"],
            values["finite_check"],
            values["scoring"],
        )

    # ----------------------------------------------- several input layers
    def _layer_names(self) -> list[str]:
        if isinstance(self.layer, list | tuple):
            return _check_layer_list(self.model, self.layer)
        return list(self.layers_ or {})

    def _check_columns(self) -> None:
        """Check ``feature_names``/``groups`` against the tracked layer(s)' inputs.

        Raises
        ------
        ValueError
            Naming the bad entry (see
            :class:`~neural_feature_importance.core.columns.FeatureColumns`).
        """
        if isinstance(self.layer, list | tuple) or self.layers_ is not None:
            # The layers' own trackers once tracking has begun, else new ones (construction).
            members = self.layers_ or {n: self._new_layer_tracker(n) for n in self._layer_names()}
            views = []
            for member in members.values():
                shape = member._whole_weight_shape()
                if shape is None:
                    return  # a lazy layer: checked when the importances are read
                views.append(WeightView(member.kind, "torch", shape))
            self._feature_columns.resolve(n_combined_inputs(views), ", ".join(members))
            return
        shape = self._whole_weight_shape()
        if shape is not None:
            n_inputs = WeightView(self.kind, "torch", shape).n_features
            self._columns = self._feature_columns.resolve(n_inputs, self.tracked_layer_name_)

    def _new_layer_tracker(self, name: str, kind: str | None = None) -> _TorchTrackerMixin:
        """A tracker of one input layer, with this tracker's options (names/groups apply here)."""
        module = dict(self.model.named_modules())[name]
        found = module_kind(module) or "dense"
        if kind is not None and kind != found:
            raise ValueError(f"layer {name!r} is a {found} layer, not {kind}")
        return TRACKERS[found](
            self.model,
            name,
            update_every=self.update_every,
            gradient_every=self.gradient_every,
            **self._layer_tracker_options(),
        )

    def _track_layers(self, names: Sequence[str]) -> None:
        """Track ``names`` (one tracker each, started now) and combine their scores."""
        self._clear()
        self._detach_hooks()
        self.layers_ = {name: self._new_layer_tracker(name) for name in names}
        for member in self.layers_.values():
            member.on_train_begin()
        self.tracked_layer_name_ = ", ".join(self.layers_)
        self.layer_name = self.tracked_layer_name_

    def _begin_layers(self) -> None:
        names = self._layer_names()
        if self._resume_pending and self.layers_ is not None:
            self._resume_pending = False
            if isinstance(self.layer, list | tuple) and list(self.layers_) != names:
                raise StateDictError(
                    f"the state tracks the layers {list(self.layers_)}, but this tracker "
                    f"tracks {names}; pass the same layer=[...] as when it was saved."
                )
            for member in self.layers_.values():
                member.on_train_begin()
            return
        self._steps = 0
        self._track_layers(names)

    def _load_layers(self, state: dict[str, Any]) -> None:
        if not isinstance(self.layer, list | tuple) and self.layer is not None:
            raise StateDictError(
                f"the state tracks the layers {str(state['layer_names']).splitlines()}, but "
                f"{type(self).__name__} tracks one layer ({self.layer!r}); pass the same "
                "layer=[...] (or layer=None)."
            )
        super()._load_layers(state)
        assert self.layer_name is not None  # the core names the layers
        self.tracked_layer_name_ = self.layer_name
        self._steps = int(state.get("steps", 0))
        self._resume_pending = True

    # ------------------------------------------------------------- selection
    def _resolve_layer(self, layer: str | nn.Module | None = None) -> None:
        """Choose the module to track: ``layer``, else ``self.layer``, else the default."""
        # One layer here: several are tracked by one tracker each (and select_layer
        # rejects a list at run time).
        chosen = cast("str | nn.Module | None", layer or self.layer)
        name, module = select_layer(self.model, chosen, self.kind)
        self._module = module
        self._parametrized = is_parametrized_weight(module)
        # A Linear, ConvNd or Embedding: its weight is a parameter unless parametrized.
        self._param = None if self._parametrized else cast(nn.Parameter, module.weight)
        parameter = trainable_weight_parameters(module)[0]
        if self._parametrized and is_sharded(parameter):
            raise LayerSelectionError(
                f"layer {name!r} is parametrized and sharded; the trackers rebuild a "
                "parametrized layer's gradient from the whole layer. Track another layer, "
                "or remove the parametrization."
            )
        found = weight_shard(self._param, self.kind, name)
        device = local_tensor(parameter).device
        if found is None:
            self._layer_shard = None
            if isinstance(self.ops, ShardedTorchArrayOps):
                self.ops = TorchArrayOps()
            self.ops.device = device
        else:
            self._layer_shard, group = found
            self.ops = ShardedTorchArrayOps(device, self._layer_shard.dim, group)
        self.tracked_layer_name_ = name
        if self._capture is not None:
            self._capture.detach()
            self._capture = None

    def _weight(self) -> torch.Tensor:
        """The tracked weight as the forward pass uses it (detached; effective if parametrized)."""
        if self._module is None:
            self._resolve_layer()
        assert self._module is not None  # set by _resolve_layer()
        if self._parametrized:
            return effective_weight(self._module)
        assert self._param is not None
        return local_tensor(self._param.detach())

    def _uninitialized(self) -> bool:
        return isinstance(self._param, nn.parameter.UninitializedParameter)

    def _expected_weight_shape(self) -> tuple[int, ...] | None:
        if self._module is None:
            self._resolve_layer()
        if self._uninitialized():
            return None  # a lazy module: checked at the first snapshot
        return tuple(self._weight().shape)

    def _whole_weight_shape(self) -> tuple[int, ...] | None:
        """Shape of the whole weight (all processes' slices), if known."""
        shape = self._expected_weight_shape()
        shard = self._layer_shard
        return shape if shape is None or shard is None else shard.view.weight_shape

    def _expected_shard(self) -> WeightShard | None:
        if self._module is None:
            self._resolve_layer()
        return self._layer_shard

    @property
    def sharded(self) -> bool:
        """Whether this process tracks a shard of the layer (FSDP2), so its state is its own.

        With several input layers, whether any of them is sharded.
        """
        if self.layers_ is not None:
            return any(member.sharded for member in self.layers_.values())
        if isinstance(self.layer, list | tuple):
            return any(self._new_layer_tracker(name).sharded for name in self._layer_names())
        return self._expected_shard() is not None

    def _watch_inputs(self) -> None:
        """Find the layer that reads the model's inputs at the first forward pass.

        The default choice before any forward pass is the first trainable
        layer in registration order, which is not always the one the inputs
        reach first (a head registered before the body). The probe sees the
        forward pass and, if the inputs reach another layer, the tracker moves
        there before the first optimizer step, so nothing is lost.
        """
        if self._probe is not None:
            self._probe.detach()
        self._probe = InputLayerProbe(self.model, on_found=self._inputs_found)
        self._probe.attach()

    def _inputs_found(self, result: InputLayerResult) -> None:
        self._probe = None
        if uses_fsdp2(self.model):
            # FSDP2 swaps in the unsharded weights for the forward pass: choose
            # the layer at the next hook, when the sharded ones are back.
            self._found_inputs = result
            return
        self._choose_found_inputs(result)

    def _act_on_found_inputs(self) -> None:
        result, self._found_inputs = self._found_inputs, None
        if result is not None:
            self._choose_found_inputs(result)

    def _choose_found_inputs(self, result: InputLayerResult) -> None:
        untouched = self._steps == 0 and self.n_updates_ <= int(self.include_initial)
        readers = [reader.name for reader in result.readers]
        if len(readers) > 1 and not result.unread and untouched and not self._resumed:
            # Every model input reaches a layer of its own: track them all as one result.
            self._track_layers(readers)
            self._check_columns()
            logger.info(
                "%s tracks the %d layers that read the model's inputs, as one result: %s",
                type(self).__name__,
                len(readers),
                ", ".join(
                    f"{reader.name!r} (reads {result.inputs[reader.input_index].describe()})"
                    for reader in result.readers
                ),
            )
            return
        names, warning = choose_input_layers(result, self.kind)
        chosen = names[0] if names else self.tracked_layer_name_
        if chosen != self.tracked_layer_name_ and untouched and not self._resumed:
            previous = self.tracked_layer_name_
            self._resolve_layer(chosen)
            self._start_tracking()
            logger.info(
                "%s tracks %r, the layer the model's inputs reach first (not %r, the first "
                "registered).",
                type(self).__name__,
                chosen,
                previous,
            )
        if not self._resumed:
            self._check_columns()
        if warning is not None:
            logger.warning(
                "%s tracks %r only. %s",
                type(self).__name__,
                self.tracked_layer_name_,
                warning,
            )

    # ----------------------------------------------------------------- hooks
    def on_train_begin(self) -> None:
        """Choose the layer and reset the statistics (or resume a loaded state)."""
        check_update_every(self.update_every)
        check_gradient_every(self.gradient_every)
        if isinstance(self.layer, list | tuple) or (self._resume_pending and self.layers_):
            self._begin_layers()
            return
        self.layers_ = None
        resumed_layer = self.layer_name if self._resume_pending and self.layer is None else None
        self._resolve_layer(self._existing(resumed_layer))
        if self._resume_pending:
            self._resume_pending = False
            self._resumed = True
            expected = self._expected_weight_shape()
            view = self.view
            if view is not None and expected is not None and view.weight_shape != expected:
                raise StateDictError(
                    f"{type(self).__name__} resumes a state of a {view.weight_shape} weight, "
                    f"but layer {self.tracked_layer_name_!r} now has a {expected} weight. "
                    "Resume with the model the state was saved from, or call reset() to "
                    "start afresh."
                )
            logger.info(
                "%s resumes tracking %r from %d loaded snapshots",
                type(self).__name__,
                self.tracked_layer_name_,
                self.n_updates_,
            )
        else:
            self._resumed = False
            self._steps = 0
            self._start_tracking()
            if self.layer is None:
                self._watch_inputs()
        self._arm_capture()

    def _existing(self, name: str | None) -> str | None:
        """``name`` if the model has a module of that name, else ``None``."""
        return name if name and name in dict(self.model.named_modules()) else None

    def _start_tracking(self) -> None:
        if self._uninitialized():
            # Lazy modules get their shape at the first forward pass; the core
            # starts tracking at the first snapshot instead.
            self._clear()
            self.layer_name = self.tracked_layer_name_
        else:
            self.start(
                self._weight(),
                layer_name=self.tracked_layer_name_,
                check_columns=self.layer is not None,
                shard=self._layer_shard,
            )
        self._arm_capture()

    def _gradient_every(self) -> int | None:
        """Steps between gradient reads, or ``None`` for snapshot modes."""
        mode = self._mode
        if mode is None or not mode.needs_gradients:
            return None
        return self.gradient_every or mode.gradient_every

    def _arm_capture(self) -> None:
        """For a parametrized layer, capture the effective weight's gradient of the next read.

        Autograd keeps no gradient of a parametrized layer's effective weight
        (it is not a leaf), so :class:`EffectiveWeightGradient` rebuilds it from
        the layer's input and output gradient, only for steps that are read.
        """
        every = self._gradient_every()
        if every is None or not self._parametrized or self._module is None:
            return
        if self._capture is None:
            self._capture = EffectiveWeightGradient(self._module)
            self._capture.attach()
        if self._steps % every == 0 and not self._capture.armed:
            self._capture.arm()

    def on_step_end(self) -> None:
        """Call after each ``optimizer.step()``; snapshots every ``update_every`` steps.

        With a gradient scoring mode (``scoring="taylor"``...) it also reads the
        tracked weight's gradient, so call it before ``optimizer.zero_grad()``.
        """
        self._act_on_found_inputs()
        self._steps += 1
        if self.layers_ is not None:
            for member in self.layers_.values():
                member.on_step_end()
            return
        every = self._gradient_every()
        # Steps 1, 1 + k, 1 + 2k...: even a run shorter than k steps has one read.
        if every is not None and (self._steps - 1) % every == 0:
            self._gradient_step()
        self._arm_capture()
        if self.update_every and self._steps % self.update_every == 0:
            self._snapshot()

    def _gradient_step(self) -> None:
        if self._parametrized:
            capture = self._capture
            grad = None if capture is None else capture.pop()
            if grad is None and self._steps == 1:
                # The layer was chosen at the first forward pass, after it ran.
                return
        else:
            grad = None if self._param is None else self._param.grad
        if grad is not None:
            grad = local_tensor(grad)
        if grad is None:
            raise ValueError(
                f"{type(self).__name__}(scoring={self.scoring!r}) reads the gradient of "
                f"{self.tracked_layer_name_!r} in on_step_end(), but it is None. Call "
                "on_step_end() after optimizer.step() and before optimizer.zero_grad(), "
                "and make sure the layer is trainable and used in the forward pass."
            )
        # No torch.no_grad() needed (it costs a microsecond per step): neither
        # the gradient nor the detached weight requires grad.
        self.update_gradients(grad, self._weight())

    def on_epoch_end(self) -> None:
        """Call after each epoch: snapshots (per-epoch mode) and checks for NaN/Inf."""
        self._act_on_found_inputs()
        if self._probe is not None:
            # The model itself was never called (a loop that calls a submodule):
            # keep the layer chosen by registration order, and stop watching.
            self._probe.detach()
            self._probe = None
        if self.layers_ is not None:
            for member in self.layers_.values():
                member.on_epoch_end()
            return
        if self.update_every is None:
            self._snapshot()
        self.end_epoch()

    def on_train_end(self) -> Any:
        """Compute and log the importances; returns :attr:`feature_importances_`.

        Also removes the tracker's hooks from the model. In a distributed run
        only the first process logs. Under FSDP2 every process must call it
        (the scores of the slices are summed across processes); afterwards
        any process may read the importances on its own.
        """
        self._detach_hooks()
        for member in (self.layers_ or {}).values():
            member._detach_hooks()
        return self.finalize(log=is_first_process())

    def _detach_hooks(self) -> None:
        for hooks in (self._probe, self._capture):
            if hooks is not None:
                hooks.detach()
        self._probe = self._capture = None

    def _snapshot(self) -> None:
        if self._module is None:
            logger.info("%s: on_train_begin() was not called; calling it now", type(self).__name__)
            self.on_train_begin()
        with torch.no_grad():
            self.update(self._weight())

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The core state plus the step counter; tensors and plain values only.

        With several input layers: each layer's state under ``"layers"``.
        """
        state = super().state_dict()
        state["steps"] = int(self._steps)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved state; the next :meth:`on_train_begin` resumes from it.

        The state is checked against the tracked layer at once (kind, layout,
        scoring and weight shape), so a state of another model raises
        :class:`~neural_feature_importance.core.errors.StateDictError` here.
        """
        if isinstance(state, dict) and "layer_names" in state:
            super().load_state_dict(state)
            return
        if isinstance(self.layer, list | tuple):
            raise StateDictError(
                f"{type(self).__name__} tracks the layers {list(self._layer_names())}, but the "
                "state is one layer's; load it into a tracker of that one layer."
            )
        saved = self._existing(str(state.get("layer_name", ""))) if self.layer is None else None
        if self._module is None or saved is not None:
            # With the default layer, the layer the state was saved from is the one to resume.
            self._resolve_layer(saved)
        super().load_state_dict(state)
        saved_name = str(state.get("layer_name", ""))
        if saved_name and saved_name != self.tracked_layer_name_:
            logger.warning(
                "%s: the loaded state was saved while tracking layer %r; it now continues "
                "on layer %r (same weight shape). Pass layer=%r if that is not intended.",
                type(self).__name__,
                saved_name,
                self.tracked_layer_name_,
                saved_name,
            )
            self.layer_name = self.tracked_layer_name_
        self._steps = int(state.get("steps", 0))
        self._resume_pending = True


class VarianceImportanceTorch(_TorchTrackerMixin, VarianceImportanceBase):
    """VIANN importances of the input features of a PyTorch model's first ``nn.Linear``.

    Parameters
    ----------
    model : nn.Module
        The model being trained.
    layer : str, nn.Module or list of them, optional
        The layer to track: a name from ``model.named_modules()`` or the
        module; a list tracks several input layers (of any kind) as one result
        (:attr:`layers_` holds one tracker per layer, an ``nn.Embedding``
        counts as one column). By default the layer the model's inputs reach,
        found at the first forward pass: until then the first trainable
        ``nn.Linear`` in registration order (the first trainable layer must be
        an ``nn.Linear`` for this class), then the one the inputs really reach
        (logged), or all of them when every input reaches a layer of its own.
        Ambiguous models get a WARNING listing what is tracked and what is not.

        A parametrized layer (``weight_norm``, ``spectral_norm``, old or new
        API) is tracked through its effective weight. Autograd keeps no
        gradient of that weight, so gradient modes rebuild it from the layer's
        input and output gradient on the steps they read
        (:class:`~neural_feature_importance.torch.parametrized.EffectiveWeightGradient`).
        Measured: with a learning rate of 0, ``taylor`` then equals the batch's
        summed gradient x input computed by autograd to 1e-5 (float32), for
        each of the three parametrizations; the extra work is one weight-gradient
        product per read step (under cProfile, ``on_step_end`` took 4 % of a
        training step of a weight-normed 64-64-64 MLP at batch 32, reading one
        step in 4).
    update_every : int, optional
        Take a snapshot every ``update_every`` calls of :meth:`on_step_end`
        instead of at each :meth:`on_epoch_end`.
    normalize : {"minmax", "sum", None}, default="minmax"
        Scaling of :attr:`feature_importances_` (see the core).
    dtype : {"float64", "float32"} or torch.dtype, default="float64"
        Precision of the statistics, kept on the parameter's device.
    include_initial : bool, default=False
        Count the weights at :meth:`on_train_begin` as a snapshot.
    record_history : bool, default=False
        Keep the scores after each snapshot in :attr:`history_`.
    finite_check : {"update", "deferred"}, optional
        When NaN/Inf weights are detected: at each snapshot (one device sync),
        or once per epoch. Default: ``"update"`` for per-epoch snapshots and
        ``"deferred"`` with ``update_every``.
    scoring : str, default="viann"
        The statistic that scores the features (see
        :mod:`neural_feature_importance.core.modes`). ``"viann"`` is the
        paper's method. ``"steady_taylor"`` (recommended when you cannot stop
        at the right epoch), ``"taylor"`` and the other gradient modes read
        ``param.grad`` in :meth:`on_step_end`, so call that after
        ``optimizer.step()`` and before ``optimizer.zero_grad()``.
    gradient_every : int, optional
        Gradient modes read the gradient on one optimizer step in
        ``gradient_every`` (steps 1, 1 + k, ...). Default: the mode's own
        (``taylor`` and ``steady_taylor``: 4, which keeps their cost near 1-2 %
        of training even for a tiny MLP, with the same rankings as reading
        every step; ``synaptic``: 1).
    feature_names : sequence of str, optional
        One name per input of the tracked layer (default ``x0, x1, ...``).
    groups : mapping of str to sequence of (int or str), optional
        Column name -> the layer's inputs that encode it (one-hot levels, an
        embedding's dimensions inside a concatenation), by index or by name;
        the result has one score per group plus one per ungrouped input (see
        :mod:`neural_feature_importance.core.columns`).

    Attributes
    ----------
    feature_importances_, raw_importances_ : ndarray of shape (n_columns,)
        Normalised and raw score of every column, in the order of
        ``feature_names_in_`` (one column per input feature unless grouped).
    feature_names_in_ : ndarray of str
        Name of every column.
    importances_ : FeatureImportances
        Names and scores together, with ``to_frame()`` and ``plot()``.
    skipped_gradient_steps_ : int
        Gradient modes: reads skipped because ``param.grad`` held NaN or Inf,
        as ``torch.amp.GradScaler`` skips an overflowed step.
    tracked_layer_name_ : str
        Name of the tracked layer (from ``model.named_modules()``).

    Raises
    ------
    ValueError, LayerSelectionError
        From the constructor, for an option it does not accept or a ``layer=``
        the model does not have (or that is of another kind, or frozen).

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> tracker = VarianceImportanceTorch(model)
    >>> tracker.on_train_begin()
    >>> for epoch in range(3):
    ...     with torch.no_grad():
    ...         model[0].weight[:, 0] += 0.1 * (epoch + 1)    # only input 0 moves
    ...     tracker.on_epoch_end()
    >>> tracker.feature_importances_.shape, int(tracker.feature_importances_.argmax())
    ((4,), 0)
    """


class ConvVarianceImportanceTorch(_TorchTrackerMixin, ConvVarianceImportanceBase):
    """VIANN for the first ``nn.Conv1d/2d/3d`` of a PyTorch model.

    Same parameters as :class:`VarianceImportanceTorch`. Features are (kernel
    position, input channel) pairs in Keras order, so :attr:`heatmap_` has shape
    ``(*kernel_size, in_channels)`` in both frameworks; :attr:`filter_importances_`
    and :attr:`filter_ranking_` rank the output channels.
    """


class EmbeddingVarianceImportanceTorch(_TorchTrackerMixin, EmbeddingVarianceImportanceBase):
    """VIANN for the first ``nn.Embedding``/``nn.EmbeddingBag``: one score per token.

    Same parameters as :class:`VarianceImportanceTorch`. Rows never looked up
    keep zero variance and score lowest.
    """


TRACKERS: dict[str, type[_TorchTrackerMixin]] = {
    "dense": VarianceImportanceTorch,
    "conv": ConvVarianceImportanceTorch,
    "embedding": EmbeddingVarianceImportanceTorch,
}
"""The torch tracker of each layer kind."""
