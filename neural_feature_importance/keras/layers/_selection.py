"""The choice of the layer a Keras callback tracks, and its errors.

Part of [`neural_feature_importance.keras.layers`][]: what `layer=` accepts,
the default choice (in graph order for functional models, in `model.layers`
order otherwise), explicit choices, and the several input layers of a
multi-Input model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import keras

from neural_feature_importance.core.errors import LayerSelectionError
from neural_feature_importance.core.views import FeatureAxis
from neural_feature_importance.keras.layers._graph import (
    InputLayers,
    InputReader,
    _Graph,
    find_input_layers,
)
from neural_feature_importance.keras.layers._kinds import (
    _KIND_WORDS,
    TRACKER_FOR_KIND,
    _skip_reason,
    describe,
    iter_layers,
    kind_of,
    refuse_first_layer,
)
from neural_feature_importance.keras.layers._subclassed import (
    check_width,
    first_reader,
    is_subclassed,
    weight_for,
)
from neural_feature_importance.keras.layers._trace import trace_calls
from neural_feature_importance.keras.layers._weights import LayerWeight, TrackedWeight

LayerSpec: TypeAlias = str | int | keras.layers.Layer | FeatureAxis | LayerWeight | None
"""What `layer=` accepts: a layer name, an index into `model.layers`, a
layer object, a [`FeatureAxis`][neural_feature_importance.core.FeatureAxis]
naming a variable of a layer (`"<layer name>.<attribute>"`) and its feature
axis, or `None` for the default choice."""


def resolve_feature_axis(model: Any, spec: FeatureAxis, tracker: str) -> LayerWeight:
    """The layer and attribute a `FeatureAxis("<layer name>.<attribute>", axis)` names.

    The longest layer name of the model (nested models' layers included) that
    starts `spec.weight` and is followed by a dot names the layer; the rest
    is the attribute path (`"query_dense.kernel"`).

    Raises
    ------
    LayerSelectionError
        If no layer's name starts `spec.weight`, listing the layers.
    """
    names = [layer.name for layer in iter_layers(model)]
    for name in sorted(names, key=len, reverse=True):
        if spec.weight.startswith(name + ".") and len(spec.weight) > len(name) + 1:
            return LayerWeight(name, spec.weight[len(name) + 1 :], spec.axis)
    raise LayerSelectionError(
        f"{tracker}: layer={spec!r} names no variable of model {model.name!r}: pass "
        "FeatureAxis('<layer name>.<attribute>', axis), such as 'proj.kernel', with one of "
        f"the layers {names}."
    )


def _resolved(model: Any, layer: Any, tracker: str) -> Any:
    return resolve_feature_axis(model, layer, tracker) if isinstance(layer, FeatureAxis) else layer


@dataclass
class LayerChoice:
    """The tracked layer and why it was chosen.

    Attributes
    ----------
    layer : keras.layers.Layer
        The layer whose weight is tracked.
    reason : str
        `"layer=..."` for an explicit choice, else a short description.
    skipped : list of str
        `"'name' (Class: why)"` for every layer the default choice passed over.
    caveat : str or None
        For the default choice in a functional model with several Inputs: why
        the scores may not cover every Input as expected (another layer reads
        some Input first, or the layer reads a merge of several Inputs), with
        what to pass instead. The callbacks log it as a warning.
    weight : TrackedWeight or None
        The variable(s) read from `layer` (set by `select_layer()`).
    """

    layer: Any
    reason: str
    skipped: list[str] = field(default_factory=list)
    caveat: str | None = None
    weight: TrackedWeight | None = None


def check_layer_spec(layer: object, tracker: str) -> None:
    """Raise [`LayerSelectionError`][] unless `layer` is a valid `layer=` value.

    The callbacks call it in their constructor, before the model is known.
    """
    if isinstance(layer, FeatureAxis):
        return  # its fields are checked by its constructor
    if isinstance(layer, LayerWeight):
        if not isinstance(layer.attribute, str) or isinstance(layer.feature_axis, bool):
            raise LayerSelectionError(
                f"{tracker}: layer={layer!r}: attribute must be a str and feature_axis an int."
            )
        if not isinstance(layer.feature_axis, int) or isinstance(layer.layer, LayerWeight):
            raise LayerSelectionError(
                f"{tracker}: layer={layer!r}: feature_axis must be an int and layer a name, "
                "an index or a layer object."
            )
        check_layer_spec(layer.layer, tracker)
        return
    if layer is None or isinstance(layer, str | keras.layers.Layer):
        return
    if isinstance(layer, int) and not isinstance(layer, bool):
        return
    raise LayerSelectionError(
        f"{tracker}: layer={layer!r} is not supported; pass a layer name (str), an index "
        "into model.layers (int), a keras layer object, a FeatureAxis('<layer "
        "name>.<attribute>', axis), or None for the first trainable layer."
    )


def select_layer(model: Any, layer: LayerSpec, kind: str, tracker: str) -> LayerChoice:
    """Find the layer a tracker of `kind` should track in `model`.

    Parameters
    ----------
    model : keras.Model
        A built model (`fit` builds it before any callback runs).
    layer : str, int, keras.layers.Layer or None
        `None` for the first trainable Dense, Conv1D/2D/3D or Embedding layer
        (see the module docstring); a name (nested models are searched); an
        index into `model.layers` (as `model.get_layer(index=...)`); or a
        layer object of the model.
    kind : {"dense", "conv", "embedding"}
        What the tracker can read.
    tracker : str
        Class name of the tracker, for messages.

    Raises
    ------
    LayerSelectionError
        If no layer qualifies, the named layer does not exist, or it is of a
        type the tracker cannot read. The message lists the layers seen and
        says what to pass instead.
    """
    layer = _resolved(model, layer, tracker)
    if layer is None:
        choice = _default_layer(model, kind, tracker)
    else:
        choice = _explicit_choice(model, layer, kind, tracker)
    if choice.weight is None:
        spec = layer if isinstance(layer, LayerWeight) else None
        choice.weight = weight_for(model, choice.layer, kind, tracker, spec)
    return choice


def _explicit_choice(model: Any, layer: LayerSpec, kind: str, tracker: str) -> LayerChoice:
    found = _explicit_layer(model, layer, tracker)
    if isinstance(layer, LayerWeight):
        return LayerChoice(found, f"layer={layer!r}")
    found_kind = kind_of(found)
    if found_kind != kind:
        hint = (
            f"use {TRACKER_FOR_KIND[found_kind]} for it"
            if found_kind is not None
            else "VIANN reads Dense, Conv1D/2D/3D and Embedding weights only"
        )
        raise LayerSelectionError(
            f"{tracker} tracks {_KIND_WORDS[kind]} layers, but layer={layer!r} is "
            f"{describe(found)}; {hint}, or pass layer= naming a {_KIND_WORDS[kind]} layer."
        )
    return LayerChoice(found, f"layer={layer!r}")


def _default_layer(model: Any, kind: str, tracker: str) -> LayerChoice:
    graph = _Graph.of(model)
    if graph is not None:
        choice = _default_from_graph(graph, kind, tracker)
        if choice is not None:
            return choice
    subclassed = is_subclassed(model)
    if subclassed:
        choice = _default_from_trace(model, kind, tracker)
        if choice is not None:
            return choice
    skipped: list[str] = []
    for candidate in iter_layers(model):
        why = _skip_reason(candidate)
        if why is not None:
            skipped.append(describe(candidate, why))
            continue
        if kind_of(candidate) == kind:
            choice = LayerChoice(candidate, "first trainable layer", skipped)
            if subclassed:
                # Call order unknown: assignment order, checked against the input's width.
                choice.weight = weight_for(model, candidate, kind, tracker)
                check_width(model, choice.weight, kind, tracker)
            return choice
        refuse_first_layer(model, candidate, kind, tracker)
    seen = ", ".join(skipped) if skipped else "none"
    raise LayerSelectionError(
        f"{tracker} found no layer to track in model {model.name!r}: it tracks the first "
        f"trainable {_KIND_WORDS[kind]} layer, skipping input, normalisation, rescaling, "
        f"dropout, frozen and weightless layers. Layers seen: {seen}. Add such a layer, "
        "unfreeze one (layer.trainable = True), or pass layer=<name, index or layer>."
    )


def _default_from_trace(model: Any, kind: str, tracker: str) -> LayerChoice | None:
    """The default choice in a subclassed model: its first learning layer in call order.

    `None` if the call cannot be traced or calls no learning layer (the
    caller then takes the layers in assignment order).
    """
    trace = trace_calls(model)
    if trace is None:
        return None
    record, skipped = first_reader(trace)
    if record is None:
        return None
    if kind_of(record.layer) != kind:
        refuse_first_layer(model, record.layer, kind, tracker)
    weight = weight_for(model, record.layer, kind, tracker, trace=trace)
    check_width(model, weight, kind, tracker, record, trace.input_shape)
    return LayerChoice(record.layer, "first trainable layer in call order", skipped, weight=weight)


def _default_from_graph(graph: _Graph, kind: str, tracker: str) -> LayerChoice | None:
    """The default choice in a functional model: the first reader of `kind` in graph order.

    Readers are taken Input by Input (`model.inputs` order), each Input's in
    graph order. With one Input the first reader must be of `kind`, as the
    first learning layer of a Sequential model must; with several, the first
    reader of `kind` is chosen, and if there is none the first reader
    decides the error. `None` if no Input reaches a learning layer (the
    caller then reports the layers it saw).
    """
    per_input = [graph.input_layers(tensor) for tensor in graph.inputs]
    candidates: list[InputReader] = []
    for entry in per_input:
        for reader in entry.readers:
            if all(reader.layer is not seen.layer for seen in candidates):
                candidates.append(reader)
    if not candidates:
        return None
    chosen = next((reader for reader in candidates if kind_of(reader.layer) == kind), None)
    if chosen is None or (len(per_input) == 1 and chosen is not candidates[0]):
        refuse_first_layer(graph.model, candidates[0].layer, kind, tracker)
        raise AssertionError("unreachable: refuse_first_layer always raises")
    if len(per_input) == 1:
        return LayerChoice(chosen.layer, "first trainable layer", list(chosen.skipped))
    return LayerChoice(
        chosen.layer,
        "first trainable layer in graph order from the Inputs",
        list(chosen.skipped),
        _caveat(graph, per_input, chosen.layer, tracker),
    )


def _caveat(graph: _Graph, per_input: list[InputLayers], layer: Any, tracker: str) -> str | None:
    """Why the tracked layer of a multi-Input model may not score the Inputs as expected.

    `None` if every Input that reaches a learning layer is read by `layer`
    itself without a merge. Otherwise the message lists every Input: how it
    reaches `layer` (directly, through a merge, through other learning
    layers) or which layers read it instead.
    """
    tracked: list[str] = []
    untracked: list[str] = []
    mixed = missing = False
    for tensor, entry in zip(graph.inputs, per_input, strict=True):
        name = f"Input {entry.input_name!r}"
        others = [describe(r.layer) for r in entry.readers if r.layer is not layer]
        also = f" (also read by {', '.join(others)})" if others else ""
        reader = next((r for r in entry.readers if r.layer is layer), None)
        if reader is not None and reader.direct:
            tracked.append(f"{name} directly{also}")
            continue
        if reader is not None:
            mixed = True
            tracked.append(f"{name} through the merge {', '.join(reader.merges)}{also}")
            continue
        route = graph.route(tensor, layer)
        if route is not None:
            mixed = True
            learned, merges = route
            through = f"the outputs of {', '.join(learned)}"
            if merges:
                through += f" and the merge {', '.join(merges)}"
            tracked.append(f"{name} through {through}")
        elif others:
            missing = True
            untracked.append(f"{name}, read by {', '.join(others)}")
        else:
            untracked.append(f"{name}, which reaches no trainable layer")
    if not (mixed or missing):
        return None
    model = graph.model
    parts = [
        f"{tracker} tracks {describe(layer)}, but model {model.name!r} has "
        f"{len(per_input)} Inputs. Tracked: {'; '.join(tracked)}."
    ]
    if untracked:
        parts.append(f"Not tracked: {'; '.join(untracked)}.")
    if mixed:
        parts.append(
            f"The inputs of {layer.name!r} mix several tensors, so its scores are one per "
            f"input of {layer.name!r}, not one per model Input or column."
        )
    parts.append(
        "To score every Input, pass layer= naming a layer that reads them all (such as the "
        "first one after the Concatenate) and groups= mapping each column to its inputs of "
        "that layer (feature_names= names them), or use one callback per branch."
    )
    return " ".join(parts)


def _explicit_layer(model: Any, layer: LayerSpec, tracker: str) -> Any:
    layer = _resolved(model, layer, tracker)
    if isinstance(layer, LayerWeight):
        return _explicit_layer(model, layer.layer, tracker)
    if isinstance(layer, str):
        for candidate in iter_layers(model):
            if candidate.name == layer:
                return candidate
        names = [candidate.name for candidate in iter_layers(model)]
        raise LayerSelectionError(
            f"{tracker}: model {model.name!r} has no layer named {layer!r}; its layers are {names}."
        )
    if isinstance(layer, int) and not isinstance(layer, bool):
        layers = model.layers
        if not -len(layers) <= layer < len(layers):
            raise LayerSelectionError(
                f"{tracker}: layer={layer} is out of range; model {model.name!r} has "
                f"{len(layers)} layers (indices 0 to {len(layers) - 1}): "
                f"{[candidate.name for candidate in layers]}."
            )
        found = layers[layer]
        if isinstance(found, keras.Model):
            raise LayerSelectionError(
                f"{tracker}: layer={layer} is the nested model {found.name!r}; pass the "
                "layer inside it (by name or object) instead."
            )
        return found
    if isinstance(layer, keras.layers.Layer):
        model_weights = {id(weight) for weight in model.weights}
        if layer.weights and not any(id(weight) in model_weights for weight in layer.weights):
            raise LayerSelectionError(
                f"{tracker}: the layer object {describe(layer)} is not part of model "
                f"{model.name!r}; pass one of its layers (model.layers) or a layer name."
            )
        return layer
    check_layer_spec(layer, tracker)
    raise AssertionError("unreachable: check_layer_spec accepts only the types above")


def independent_input_layers(model: Any) -> list[Any] | None:
    """The input layers of a model whose every Input reaches a trackable layer of its own.

    Returns the layers, one per model Input in `model.inputs` order, when
    the model has at least two Inputs and each is read *directly* (through no
    merge) by exactly one Dense/ConvND/Embedding layer that no other Input
    reads; otherwise `None` (one Input, a Sequential or subclassed model, or
    Inputs mixed before their first layer, which the default choice warns
    about). The callbacks then track all of them as one result.
    """
    per_input = find_input_layers(model)
    if not per_input or len(per_input) < 2:
        return None
    chosen: list[Any] = []
    for entry in per_input:
        if len(entry.readers) != 1:
            return None
        reader = entry.readers[0]
        if not reader.direct or kind_of(reader.layer) is None:
            return None
        if any(reader.layer is layer for layer in chosen):
            return None
        chosen.append(reader.layer)
    return chosen


def explicit_kind(model: Any, layer: LayerSpec, tracker: str) -> str | None:
    """The kind of the layer `layer=` names, which a tracker then tracks (`None`: unreadable).

    Raises
    ------
    LayerSelectionError
        If the model has no such layer.
    """
    if isinstance(layer, FeatureAxis | LayerWeight):
        _explicit_layer(model, layer, tracker)
        return "dense"  # its variable is read as a Dense kernel, (features, units)
    return kind_of(_explicit_layer(model, layer, tracker))


def explicit_layers(model: Any, layers: Sequence[Any], tracker: str) -> list[Any]:
    """The layers named by `layer=[...]` (names, indices or objects), of any trackable kind.

    Raises
    ------
    LayerSelectionError
        If an entry is not a layer of the model, or not a Dense, ConvND or
        Embedding layer.
    ValueError
        If two entries name the same layer.
    """
    found: list[Any] = []
    for spec in layers:
        if isinstance(spec, FeatureAxis | LayerWeight):
            raise LayerSelectionError(
                f"{tracker}: layer=[...] holds {spec!r}; several input layers are named by "
                "name, index or object (a FeatureAxis tracks one layer's variable on its own)."
            )
        layer = _explicit_layer(model, spec, tracker)
        if kind_of(layer) is None:
            raise LayerSelectionError(
                f"{tracker}: layer={spec!r} in layer=[...] is {describe(layer)}; several input "
                "layers are Dense, Conv1D/2D/3D or Embedding layers."
            )
        if any(layer is other for other in found):
            raise ValueError(f"{tracker}: layer=[...] names {layer.name!r} twice.")
        found.append(layer)
    return found
