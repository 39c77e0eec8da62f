"""Which layer of a Keras model a VIANN callback tracks.

VIANN scores the *input features* of a network, so by default the callbacks
track the first layer that learns from the inputs: the first trainable
``Dense``, ``Conv1D/2D/3D`` or ``Embedding`` layer. Layers in front of it that
only transform the inputs are skipped:

* input layers, normalisation (``Normalization``, ``BatchNormalization``, ...),
  ``Rescaling`` and dropout / noise layers,
* frozen layers (``layer.trainable = False``), whose weights never change,
* layers without weights (``Flatten``, ``Reshape``, pooling, ...).

The original package tracked "the first layer that has weights", which picked
a ``BatchNormalization`` (1-D weights: ``AxisError`` at the end of training) or
a frozen ``Dense`` (all-zero importances).

If the first learning layer is of a type the callbacks cannot read (an
``LSTM``, a transposed convolution, ...), scores of a later layer would not be
input-feature importances, so selection stops there with an error that says
how to choose a layer explicitly.

Where the layers are searched depends on the model:

* **Sequential** models (nested ones too) are searched in ``model.layers``
  order, which is their call order.
* **Functional** models are searched in *graph order* from their inputs:
  :func:`find_input_layers` walks the graph forward from every ``Input``, in
  ``model.inputs`` order, through the layers above and merge layers
  (``Concatenate``, ``Add``, ...), and stops at the first learning layer on
  every path (``model.layers`` is ordered by distance to the *outputs*, which
  need not be the order in which the inputs are read). With one Input, the
  first of these readers is tracked, or refused as above. With several, the
  first reader of the tracker's kind is tracked (an ``Embedding`` or ``LSTM``
  branch on another Input does not stop the search), and where its scores do
  not cover every Input one by one (another layer reads some Input first, or
  the layer reads Inputs through a concatenation) the choice is logged as a
  warning (:attr:`LayerChoice.caveat`) that names the Inputs tracked and not,
  and says to pass ``layer=`` and ``groups=``.
* **Subclassed** models have no graph (their ``call`` is Python code), so the
  order is the order in which ``__init__`` assigned the layers; pass
  ``layer=`` if that differs from the call order. Nested models inside a
  functional graph are searched in their ``model.layers`` order.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import keras

from neural_feature_importance.core.errors import LayerSelectionError

logger = logging.getLogger(__name__)

LayerSpec: TypeAlias = str | int | keras.layers.Layer | None
"""What ``layer=`` accepts: a layer name, an index into ``model.layers``, a
layer object, or ``None`` for the default choice."""


def _classes(*names: str) -> tuple[type[Any], ...]:
    """Keras layer classes by name, ignoring names this Keras version lacks."""
    return tuple(cls for name in names if (cls := getattr(keras.layers, name, None)) is not None)


TRACKABLE: dict[str, tuple[type, ...]] = {
    "dense": _classes("Dense"),
    "conv": _classes("Conv1D", "Conv2D", "Conv3D"),
    "embedding": _classes("Embedding"),
}
"""Layer classes each tracker kind can read (subclasses included)."""

WEIGHT_ATTRIBUTE: dict[str, str] = {"dense": "kernel", "conv": "kernel", "embedding": "embeddings"}
"""Attribute of the layer that holds the tracked weight, per kind."""

TRACKER_FOR_KIND: dict[str, str] = {
    "dense": "VarianceImportanceKeras",
    "conv": "ConvVarianceImportanceKeras",
    "embedding": "EmbeddingVarianceImportanceKeras",
}

_KIND_WORDS = {
    "dense": "Dense",
    "conv": "Conv1D/Conv2D/Conv3D",
    "embedding": "Embedding",
}

SKIPPED: dict[str, tuple[type, ...]] = {
    "input": _classes("InputLayer"),
    "normalization": _classes(
        "Normalization",
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "UnitNormalization",
        "RMSNormalization",
    ),
    "rescaling": _classes("Rescaling"),
    "dropout": _classes(
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianDropout",
        "GaussianNoise",
        "AlphaDropout",
    ),
}
"""Layers skipped by the default choice, by the reason given in logs."""

MERGES: tuple[type, ...] = _classes(
    "Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Dot"
)
"""Layers that combine several tensors into one. A weightless operation with
several tensor inputs (``keras.ops.concatenate``, ...) counts as a merge too."""


@dataclass
class LayerChoice:
    """The tracked layer and why it was chosen.

    Attributes
    ----------
    layer : keras.layers.Layer
        The layer whose weight is tracked.
    reason : str
        ``"layer=..."`` for an explicit choice, else a short description.
    skipped : list of str
        ``"'name' (Class: why)"`` for every layer the default choice passed over.
    caveat : str or None
        For the default choice in a functional model with several Inputs: why
        the scores may not cover every Input as expected (another layer reads
        some Input first, or the layer reads a merge of several Inputs), with
        what to pass instead. The callbacks log it as a warning.
    """

    layer: Any
    reason: str
    skipped: list[str] = field(default_factory=list)
    caveat: str | None = None


def iter_layers(model: Any) -> Iterator[Any]:
    """Yield the layers of ``model`` in order, descending into nested models."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer)
        else:
            yield layer


def all_built(model: Any) -> bool:
    """Whether ``model`` and all its layers have created their weights."""
    return bool(model.built) and all(layer.built for layer in iter_layers(model))


def kind_of(layer: Any) -> str | None:
    """The tracker kind that can read ``layer`` (``"dense"``, ...), or ``None``."""
    for kind, classes in TRACKABLE.items():
        if isinstance(layer, classes):
            return kind
    return None


def describe(layer: Any, why: str | None = None) -> str:
    """``'name' (Class)`` or ``'name' (Class: why)``, for messages."""
    label = type(layer).__name__ if why is None else f"{type(layer).__name__}: {why}"
    return f"{layer.name!r} ({label})"


def _skip_reason(layer: Any) -> str | None:
    """Why the default choice passes over ``layer``, or ``None`` if it stops there."""
    for why, classes in SKIPPED.items():
        if isinstance(layer, classes):
            return why
    if not layer.weights:
        return "no weights"
    if not layer.trainable or not layer.trainable_weights:
        return "frozen"
    return None


# ----------------------------------------------------------- functional graphs
@dataclass(frozen=True)
class InputReader:
    """A learning layer that reads a model Input: the first one on some path from it.

    Attributes
    ----------
    layer : keras.layers.Layer
        The first layer on the path that learns from the data (trainable
        weights, not a normalisation layer). Inside a nested model, the nested
        model's first such layer. It may be of a type no tracker reads (an
        ``LSTM``, ...).
    level : int
        Operations from the Input to ``layer`` on the shortest path (1: the
        layer is called on the Input itself).
    direct : bool
        Whether some path reaches ``layer`` without passing a merge. If not,
        the layer's inputs mix this Input with other tensors, so its scores are
        per input of the layer, not per feature of the Input.
    merges : tuple of str
        ``'name' (Class)`` of the merges on the first path that passes one;
        empty if no path does.
    skipped : tuple of str
        ``'name' (Class: why)`` of the layers passed on the first path, as in
        :attr:`LayerChoice.skipped`.
    """

    layer: Any
    level: int
    direct: bool
    merges: tuple[str, ...]
    skipped: tuple[str, ...]


@dataclass(frozen=True)
class InputLayers:
    """The first learning layers that read one model Input.

    Attributes
    ----------
    input_name : str
        The Input's name (``keras.Input(name=...)``).
    readers : tuple of InputReader
        One per layer, in graph order: fewest operations from the Input first,
        then in ``model.operations`` order. Empty if no path from the Input
        meets a learning layer (an Input used only by a loss, or only added to
        the output).
    """

    input_name: str
    readers: tuple[InputReader, ...]


def find_input_layers(model: Any) -> list[InputLayers] | None:
    """For every Input of a functional model, the first learning layers that read it.

    The graph is walked forward from each Input, in ``model.inputs`` order,
    through the layers the default choice skips (input, normalisation,
    rescaling, dropout and noise, frozen and weightless layers: ``Flatten``,
    ``Reshape``, pooling, ``keras.ops`` calls, ...) and through merges
    (``Concatenate``, ``Add``, ...), which are noted. Every path stops at its
    first learning layer; a nested model on the path is searched in its
    ``model.layers`` order.

    Parameters
    ----------
    model : keras.Model
        A functional model (or a subclass built with ``inputs=``/``outputs=``).

    Returns
    -------
    list of InputLayers or None
        One entry per model Input, in ``model.inputs`` order; ``None`` for a
        Sequential model (its layers are called in ``model.layers`` order) and
        for a subclassed model, which has no graph to walk.

    Examples
    --------
    >>> import keras
    >>> a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    >>> merged = keras.layers.Concatenate(name="concat")([keras.layers.Dense(4, name="da")(a), b])
    >>> model = keras.Model([a, b], keras.layers.Dense(1, name="head")(merged))
    >>> [(e.input_name, [(r.layer.name, r.direct) for r in e.readers])
    ...  for e in find_input_layers(model)]
    [('a', [('da', True)]), ('b', [('head', False)])]
    """
    graph = _Graph.of(model)
    if graph is None:
        return None
    return [graph.input_layers(tensor) for tensor in graph.inputs]


def _producer(tensor: Any) -> Any:
    """The node that produced a symbolic tensor, or ``None`` for a constant."""
    history = getattr(tensor, "_keras_history", None)
    if history is None or history.operation is None:
        return None
    return history.operation._inbound_nodes[history.node_index]


def _is_merge(node: Any) -> bool:
    """Whether a weightless node combines several tensors into one."""
    if isinstance(node.operation, MERGES):
        return True
    if isinstance(node.operation, keras.layers.Layer) and node.operation.weights:
        return False
    return len({id(tensor) for tensor in node.input_tensors}) > 1


def _learner(operation: Any) -> tuple[Any, tuple[str, ...]]:
    """The learning layer an operation of the graph amounts to, and the layers passed.

    ``(layer, passed)``: a learning layer is itself, a nested model its first
    learning layer in ``model.layers`` order; ``(None, passed)`` for an
    operation the walk goes through.
    """
    if isinstance(operation, keras.Model):
        passed: list[str] = []
        for layer in iter_layers(operation):
            why = _skip_reason(layer)
            if why is None:
                return layer, tuple(passed)
            passed.append(describe(layer, why))
        return None, tuple(passed)
    if isinstance(operation, keras.layers.Layer):
        why = _skip_reason(operation)
        return (operation, ()) if why is None else (None, (describe(operation, why),))
    return None, ()  # a keras.ops call (keras.ops.concatenate, ...): no weights


def _contains(operation: Any, layer: Any) -> bool:
    """Whether ``layer`` is the operation or a layer of a nested model."""
    if operation is layer:
        return True
    return isinstance(operation, keras.Model) and any(
        inner is layer for inner in iter_layers(operation)
    )


def input_name(tensor: Any) -> str:
    """The name of a model Input: its ``InputLayer``'s, else the tensor's."""
    history = getattr(tensor, "_keras_history", None)
    operation = None if history is None else history.operation
    if isinstance(operation, _classes("InputLayer")):
        return str(operation.name)
    return str(getattr(tensor, "name", "?"))


class _Graph:
    """The nodes of one functional model, indexed to walk it forward from its inputs.

    Built by walking *backward* from ``model.outputs`` (``node.input_tensors``
    and each tensor's ``_keras_history``), so that a shared layer's calls in
    other models are left out.
    """

    def __init__(self, model: Any, inputs: Sequence[Any], outputs: Sequence[Any]) -> None:
        self.model = model
        self.inputs = list(inputs)
        order = {id(op): i for i, op in enumerate(model.operations)}
        input_ids = {id(tensor) for tensor in self.inputs}
        consumers: dict[int, list[Any]] = {}
        visited: set[int] = set()
        stack = list(outputs)
        while stack:
            tensor = stack.pop()
            if id(tensor) in input_ids:
                continue
            node = _producer(tensor)
            if node is None or node.is_input or id(node) in visited:
                continue
            visited.add(id(node))
            for parent in node.input_tensors:
                readers = consumers.setdefault(id(parent), [])
                if all(reader is not node for reader in readers):
                    readers.append(node)
                stack.append(parent)
        for readers in consumers.values():
            readers.sort(key=lambda node: order.get(id(node.operation), len(order)))
        self.consumers = consumers

    @classmethod
    def of(cls, model: Any) -> _Graph | None:
        """The graph of a functional model; ``None`` for other models."""
        if isinstance(model, keras.Sequential) or not isinstance(model, keras.Model):
            return None
        inputs = getattr(model, "inputs", None)
        outputs = getattr(model, "outputs", None)
        if not inputs or not outputs or getattr(model, "operations", None) is None:
            return None  # a subclassed model: no graph
        try:
            return cls(model, inputs, outputs)
        except (AttributeError, IndexError, TypeError) as error:
            # Keras internals laid out otherwise: fall back to model.layers order.
            logger.debug("cannot walk the graph of model %r (%r)", model.name, error)
            return None

    def input_layers(self, tensor: Any) -> InputLayers:
        """The first learning layers on the paths from ``tensor`` (breadth first)."""
        found: dict[int, dict[str, Any]] = {}
        visited: set[tuple[int, bool]] = set()
        queue: deque[tuple[Any, int, tuple[str, ...], tuple[str, ...]]] = deque(
            [(tensor, 0, (), ())]
        )
        while queue:
            current, level, merges, passed = queue.popleft()
            for node in self.consumers.get(id(current), ()):
                # A node is walked again only if reached once with and once without a merge.
                key = (id(node), bool(merges))
                if key in visited:
                    continue
                visited.add(key)
                operation = node.operation
                layer, inner = _learner(operation)
                if layer is not None:
                    entry = found.setdefault(
                        id(layer),
                        {
                            "layer": layer,
                            "level": level + 1,
                            "direct": False,
                            "merges": (),
                            "skipped": passed + inner,
                        },
                    )
                    entry["direct"] = entry["direct"] or not merges
                    if merges and not entry["merges"]:
                        entry["merges"] = merges
                    continue
                merged = (*merges, describe(operation)) if _is_merge(node) else merges
                for output in node.outputs:
                    queue.append((output, level + 1, merged, passed + inner))
        readers = tuple(InputReader(**entry) for entry in found.values())
        return InputLayers(input_name(tensor), readers)

    def route(self, tensor: Any, layer: Any) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """How ``tensor`` reaches ``layer`` through anything: (learning layers, merges) passed.

        ``None`` if no path from ``tensor`` reaches the layer.
        """
        visited: set[int] = set()
        queue: deque[tuple[Any, tuple[str, ...], tuple[str, ...]]] = deque([(tensor, (), ())])
        while queue:
            current, learned, merges = queue.popleft()
            for node in self.consumers.get(id(current), ()):
                if id(node) in visited:
                    continue
                visited.add(id(node))
                if _contains(node.operation, layer):
                    return learned, merges
                learner, _ = _learner(node.operation)
                passed = learned if learner is None else (*learned, describe(learner))
                merged = (*merges, describe(node.operation)) if _is_merge(node) else merges
                for output in node.outputs:
                    queue.append((output, passed, merged))
        return None


def check_layer_spec(layer: object, tracker: str) -> None:
    """Raise :class:`LayerSelectionError` unless ``layer`` is a valid ``layer=`` value.

    The callbacks call it in their constructor, before the model is known.
    """
    if layer is None or isinstance(layer, str | keras.layers.Layer):
        return
    if isinstance(layer, int) and not isinstance(layer, bool):
        return
    raise LayerSelectionError(
        f"{tracker}: layer={layer!r} is not supported; pass a layer name (str), an index "
        "into model.layers (int), a keras layer object, or None for the first trainable "
        "layer."
    )


def select_layer(model: Any, layer: LayerSpec, kind: str, tracker: str) -> LayerChoice:
    """Find the layer a tracker of ``kind`` should track in ``model``.

    Parameters
    ----------
    model : keras.Model
        A built model (``fit`` builds it before any callback runs).
    layer : str, int, keras.layers.Layer or None
        ``None`` for the first trainable Dense, Conv1D/2D/3D or Embedding layer
        (see the module docstring); a name (nested models are searched); an
        index into ``model.layers`` (as ``model.get_layer(index=...)``); or a
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
    if layer is None:
        return _default_layer(model, kind, tracker)
    found = _explicit_layer(model, layer, tracker)
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
    skipped: list[str] = []
    for candidate in iter_layers(model):
        why = _skip_reason(candidate)
        if why is not None:
            skipped.append(describe(candidate, why))
            continue
        if kind_of(candidate) == kind:
            return LayerChoice(candidate, "first trainable layer", skipped)
        _refuse_first_layer(model, candidate, kind, tracker)
    seen = ", ".join(skipped) if skipped else "none"
    raise LayerSelectionError(
        f"{tracker} found no layer to track in model {model.name!r}: it tracks the first "
        f"trainable {_KIND_WORDS[kind]} layer, skipping input, normalisation, rescaling, "
        f"dropout, frozen and weightless layers. Layers seen: {seen}. Add such a layer, "
        "unfreeze one (layer.trainable = True), or pass layer=<name, index or layer>."
    )


def _refuse_first_layer(model: Any, candidate: Any, kind: str, tracker: str) -> None:
    """Raise the error for a first learning layer that a tracker of ``kind`` cannot read."""
    found_kind = kind_of(candidate)
    if found_kind is not None:
        raise LayerSelectionError(
            f"the first trainable layer of model {model.name!r} is "
            f"{describe(candidate)}; use {TRACKER_FOR_KIND[found_kind]} to score "
            f"its inputs, or pass layer= to {tracker} naming a {_KIND_WORDS[kind]} "
            "layer."
        )
    raise LayerSelectionError(
        f"the first trainable layer of model {model.name!r} is {describe(candidate)}, "
        "whose weights VIANN cannot read (it reads Dense, Conv1D/2D/3D and Embedding "
        "kernels), and the importances of a later layer would not be those of the "
        f"model's inputs. If that is what you want, pass layer= to {tracker} naming "
        f"a {_KIND_WORDS[kind]} layer."
    )


def _default_from_graph(graph: _Graph, kind: str, tracker: str) -> LayerChoice | None:
    """The default choice in a functional model: the first reader of ``kind`` in graph order.

    Readers are taken Input by Input (``model.inputs`` order), each Input's in
    graph order. With one Input the first reader must be of ``kind``, as the
    first learning layer of a Sequential model must; with several, the first
    reader of ``kind`` is chosen, and if there is none the first reader
    decides the error. ``None`` if no Input reaches a learning layer (the
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
        _refuse_first_layer(graph.model, candidates[0].layer, kind, tracker)
        raise AssertionError("unreachable: _refuse_first_layer always raises")
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

    ``None`` if every Input that reaches a learning layer is read by ``layer``
    itself without a merge. Otherwise the message lists every Input: how it
    reaches ``layer`` (directly, through a merge, through other learning
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

    Returns the layers, one per model Input in ``model.inputs`` order, when
    the model has at least two Inputs and each is read *directly* (through no
    merge) by exactly one Dense/ConvND/Embedding layer that no other Input
    reads; otherwise ``None`` (one Input, a Sequential or subclassed model, or
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


def explicit_layers(model: Any, layers: Sequence[Any], tracker: str) -> list[Any]:
    """The layers named by ``layer=[...]`` (names, indices or objects), of any trackable kind.

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
