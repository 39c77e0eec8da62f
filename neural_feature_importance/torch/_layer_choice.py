"""Which layer(s) a torch tracker reads: the input probe, several input layers, and resuming.

Before the first forward pass a torch tracker knows only the model's
registration order; `LayerChoice` watches that pass
(`InputLayerProbe`) and
moves the tracker to the layer the inputs reach, or to all of them when
every input reaches a layer of its own. Several input layers are tracked by
one member tracker each, whose statistics the core combines
([`adopt_layers()`][neural_feature_importance.core.tracker.VarianceImportanceBase.adopt_layers]).
A loaded state names the layer it was saved from, which is the one to resume
(`load_state_dict()`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from neural_feature_importance.core.combined import n_combined_inputs
from neural_feature_importance.core.errors import StateDictError
from neural_feature_importance.core.state import check_version, read_layers_header
from neural_feature_importance.core.views import Kind, WeightView
from neural_feature_importance.torch._options import Layer, check_layer_list
from neural_feature_importance.torch._reader import LayerReader
from neural_feature_importance.torch.distributed import uses_fsdp2
from neural_feature_importance.torch.input_choice import (
    check_mappable,
    choose_input_layers,
    harmless_notes,
    is_target,
)
from neural_feature_importance.torch.input_layers import InputLayerProbe, InputLayerResult
from neural_feature_importance.torch.input_weights import ATTENTION_SLOTS
from neural_feature_importance.torch.layers import layer_kind, module_kind

if TYPE_CHECKING:
    from neural_feature_importance.core.tracker import VarianceImportanceBase
    from neural_feature_importance.torch.trackers import VarianceImportanceTorch

# The messages are the public callbacks' (users configure that logger).
logger = logging.getLogger("neural_feature_importance.torch.trackers")


class LayerChoice:
    """The layer choice of a torch tracker (mixed into [`VarianceImportanceTorch`][])."""

    kind: ClassVar[Kind]
    layer_kind: Kind
    model: nn.Module
    layer: Layer
    core: VarianceImportanceBase
    options: dict[str, Any]
    tracked_layer_name_: str | None
    _reader: LayerReader | None
    _members: dict[str, VarianceImportanceTorch] | None
    _probe: InputLayerProbe | None
    _found_inputs: InputLayerResult | None
    _attention_slots: dict[str, tuple[str, ...]]
    _steps: int
    _resumed: bool
    _resume_pending: bool

    def _tracker_for_kind(self, kind: Kind) -> type[VarianceImportanceTorch]:
        raise NotImplementedError

    def _start_tracking(self) -> None:
        raise NotImplementedError

    def _detach_hooks(self) -> None:
        raise NotImplementedError

    # ----------------------------------------------- several input layers
    def _layer_names(self) -> list[str]:
        if isinstance(self.layer, list | tuple):
            return check_layer_list(self.model, self.layer)
        return list(self._members or {})

    def _layer_readers(self) -> dict[str, LayerReader]:
        """A reader of each of several input layers, by name (no hook is attached)."""
        return {
            name: LayerReader(self.model, name, layer_kind(self.model, name) or "dense")
            for name in self._layer_names()
        }

    def _check_columns(self) -> None:
        """Check `feature_names`/`groups` against the tracked layer(s)' inputs."""
        if isinstance(self.layer, list | tuple) or self._members is not None:
            readers = self._layer_readers()
            views = []
            for reader in readers.values():
                shape = reader.whole_weight_shape()
                if shape is None:
                    return  # a lazy layer: checked when the importances are read
                views.append(WeightView(reader.kind, "torch", shape))
            self.core.check_columns(n_combined_inputs(views), ", ".join(readers))
            return
        shape = self._whole_weight_shape()
        if shape is not None:
            n_inputs = WeightView(self.layer_kind, "torch", shape).n_features
            self.core.check_columns(n_inputs, self.tracked_layer_name_)

    def _new_member(self, name: str) -> VarianceImportanceTorch:
        """A tracker of one input layer, with this tracker's options (raw scores)."""
        # Raw scores, and no per-epoch rows: the columns are the combined result's.
        options = {
            **self.options,
            "normalize": None,
            "feature_names": None,
            "groups": None,
            "log_importances": False,
        }
        kind = layer_kind(self.model, name) or "dense"
        return self._tracker_for_kind(kind)(self.model, name, **options)

    def _adopt_members(self, members: dict[str, VarianceImportanceTorch]) -> None:
        self._members = members
        self.core.adopt_layers({name: m.core.statistics for name, m in members.items()})
        self.tracked_layer_name_ = ", ".join(members)

    def _track_layers(self, names: Sequence[str]) -> None:
        """Track `names` (one tracker each, started now) and combine their scores."""
        self._detach_hooks()
        members = {name: self._new_member(name) for name in names}
        for member in members.values():
            member.on_train_begin()
        self._adopt_members(members)

    def _begin_layers(self) -> None:
        names = self._layer_names()
        if self._resume_pending and self._members is not None:
            self._resume_pending = False
            if isinstance(self.layer, list | tuple) and list(self._members) != names:
                raise StateDictError(
                    f"the state tracks the layers {list(self._members)}, but this tracker "
                    f"tracks {names}; pass the same layer=[...] as when it was saved."
                )
            for member in self._members.values():
                member.on_train_begin()
            self._adopt_members(self._members)
            return
        self._steps = 0
        self._track_layers(names)
        self.core.epochs.clear()  # a new run: its epochs start afresh

    def _load_layers(self, state: dict[str, Any]) -> None:
        names = str(state.get("layer_names", "")).splitlines()
        if not isinstance(self.layer, list | tuple) and self.layer is not None:
            raise StateDictError(
                f"the state tracks the layers {names}, but {type(self).__name__} tracks one "
                f"layer ({self.layer!r}); pass the same layer=[...] (or layer=None)."
            )
        modules = dict(self.model.named_modules())
        members = {}
        for name, kind in read_layers_header(state):
            found = module_kind(modules[name]) if name in modules else None
            if found != kind:
                raise StateDictError(
                    f"the state tracks the layers {names}, which this model does not have as "
                    f"trackable layers (layer {name!r} is {found or 'missing'}, not {kind}); "
                    "load it into a tracker of the model it was saved from."
                )
            members[name] = self._new_member(name)
            members[name].load_state_dict(state["layers"][name])
        self._adopt_members(members)
        self.core.load_epoch_state(state)
        self._steps = int(state.get("steps", 0))
        for member in members.values():
            member._steps = self._steps
        self._resume_pending = True

    # ------------------------------------------------------------- selection
    def _resolve_layer(self, layer: str | nn.Module | None = None) -> None:
        """Choose the module to track: `layer`, else `self.layer`, else the default."""
        if self._reader is not None:
            self._reader.detach()
        chosen = layer or self.layer
        assert not isinstance(chosen, list | tuple)  # several layers: one member each
        slots = self._attention_slots.get(chosen) if isinstance(chosen, str) else None
        self._reader = LayerReader(self.model, chosen, self.layer_kind, slots)
        self.core.ops = self._reader.ops
        self.tracked_layer_name_ = self._reader.name

    def _layer_reader(self) -> LayerReader:
        if self._reader is None:
            self._resolve_layer()
        assert self._reader is not None  # set by _resolve_layer()
        return self._reader

    def _weight(self) -> torch.Tensor:
        """The tracked weight as the forward pass uses it (detached; effective if parametrized)."""
        return self._layer_reader().weight()

    def _expected_weight_shape(self) -> tuple[int, ...] | None:
        return self._layer_reader().weight_shape()

    def _whole_weight_shape(self) -> tuple[int, ...] | None:
        """Shape of the whole weight (all processes' slices), if known."""
        return self._layer_reader().whole_weight_shape()

    @property
    def sharded(self) -> bool:
        """Whether this process tracks a shard of the layer (FSDP2), so its state is its own.

        With several input layers, whether any of them is sharded.
        """
        if self._members is not None:
            return any(member.sharded for member in self._members.values())
        if isinstance(self.layer, list | tuple):
            return any(reader.shard is not None for reader in self._layer_readers().values())
        return self._layer_reader().shard is not None

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
        untouched = self._steps == 0 and self.core.n_updates_ <= int(self.core.include_initial)
        check_mappable(result)
        readers = [reader.name for reader in result.readers]
        unread = [i for i in result.unread if not is_target(result.inputs[i])]
        if len(readers) > 1 and not unread and untouched and not self._resumed:
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
        names, warning = choose_input_layers(result, self.layer_kind)
        chosen = names[0] if names else self.tracked_layer_name_
        slots = next((r.slots for r in result.readers if r.name == chosen and r.slots), None)
        moved = chosen != self.tracked_layer_name_ or slots not in (None, ATTENTION_SLOTS)
        if chosen is not None and slots is not None:
            self._attention_slots[chosen] = slots
        if moved and untouched and not self._resumed:
            previous = self.tracked_layer_name_
            self._resolve_layer(chosen)
            self._start_tracking()
            if previous == chosen and chosen is not None:
                logger.info(
                    "%s tracks the %s projection(s) of %r, the arguments that are model inputs.",
                    type(self).__name__,
                    "/".join(slots or ()),
                    chosen,
                )
            else:
                logger.info(
                    "%s tracks %r, the layer the model's inputs reach first (not %r, the first "
                    "registered).",
                    type(self).__name__,
                    chosen,
                    previous,
                )
        if not self._resumed:
            self._check_columns()
        note = harmless_notes(result, [self.tracked_layer_name_ or ""])
        if note is not None:
            logger.info("%s tracks %r: %s.", type(self).__name__, self.tracked_layer_name_, note)
        if warning is not None:
            logger.warning(
                "%s tracks %r only. %s",
                type(self).__name__,
                self.tracked_layer_name_,
                warning,
            )

    def _existing(self, name: str | None) -> str | None:
        """`name` if the model has a module of that name, else `None`."""
        return name if name and name in dict(self.model.named_modules()) else None

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The core state plus the step counter; tensors and plain values only.

        With several input layers: each layer's state under `"layers"`.
        """
        state = self.core.state_dict()
        state["steps"] = int(self._steps)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved state; the next `on_train_begin()` resumes from it.

        The state is checked against the tracked layer at once (kind, layout,
        scoring and weight shape), so a state of another model raises
        [`StateDictError`][] here.
        """
        if isinstance(state, dict) and "layer_names" in state:
            self._load_layers(state)
            return
        if isinstance(self.layer, list | tuple):
            raise StateDictError(
                f"{type(self).__name__} tracks the layers {list(self._layer_names())}, but the "
                "state is one layer's; load it into a tracker of that one layer."
            )
        if not isinstance(state, dict):
            check_version(state)  # raises, naming what a state is
        saved = self._existing(str(state.get("layer_name", ""))) if self.layer is None else None
        if self._reader is None or saved is not None:
            # With the default layer, the layer the state was saved from is the one to resume.
            self._resolve_layer(saved)
        reader = self._layer_reader()
        self.core.load_state_dict(
            state,
            expected_shape=reader.weight_shape(),
            expected_shard=reader.shard,
            expected_name=self.tracked_layer_name_,
        )
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
            self.core.layer_name = self.tracked_layer_name_
        self._steps = int(state.get("steps", 0))
        self._resume_pending = True
