"""The walk of a functional Keras graph forward from its Inputs.

Part of [`neural_feature_importance.keras.layers`][]: for every model Input,
the first learning layers on the paths from it (`find_input_layers()`), and
how an Input reaches a given layer.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras

from neural_feature_importance.keras.layers._kinds import (
    MERGES,
    _classes,
    _skip_reason,
    describe,
    iter_layers,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputReader:
    """A learning layer that reads a model Input: the first one on some path from it.

    Attributes
    ----------
    layer : keras.layers.Layer
        The first layer on the path that learns from the data (trainable
        weights, not a normalisation layer). Inside a nested model, the nested
        model's first such layer. It may be of a type no tracker reads (an
        `LSTM`, ...).
    level : int
        Operations from the Input to `layer` on the shortest path (1: the
        layer is called on the Input itself).
    direct : bool
        Whether some path reaches `layer` without passing a merge. If not,
        the layer's inputs mix this Input with other tensors, so its scores are
        per input of the layer, not per feature of the Input.
    merges : tuple of str
        `'name' (Class)` of the merges on the first path that passes one;
        empty if no path does.
    skipped : tuple of str
        `'name' (Class: why)` of the layers passed on the first path, as in
        `LayerChoice.skipped`.
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
        The Input's name (`keras.Input(name=...)`).
    readers : tuple of InputReader
        One per layer, in graph order: fewest operations from the Input first,
        then in `model.operations` order. Empty if no path from the Input
        meets a learning layer (an Input used only by a loss, or only added to
        the output).
    """

    input_name: str
    readers: tuple[InputReader, ...]


def find_input_layers(model: Any) -> list[InputLayers] | None:
    """For every Input of a functional model, the first learning layers that read it.

    The graph is walked forward from each Input, in `model.inputs` order,
    through the layers the default choice skips (input, normalisation,
    rescaling, dropout and noise, frozen and weightless layers: `Flatten`,
    `Reshape`, pooling, `keras.ops` calls, ...) and through merges
    (`Concatenate`, `Add`, ...), which are noted. Every path stops at its
    first learning layer; a nested model on the path is searched in its
    `model.layers` order.

    Parameters
    ----------
    model : keras.Model
        A functional model (or a subclass built with `inputs=`/`outputs=`).

    Returns
    -------
    list of InputLayers or None
        One entry per model Input, in `model.inputs` order; `None` for a
        Sequential model (its layers are called in `model.layers` order) and
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
    """The node that produced a symbolic tensor, or `None` for a constant."""
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

    `(layer, passed)`: a learning layer is itself, a nested model its first
    learning layer in `model.layers` order; `(None, passed)` for an
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
    """Whether `layer` is the operation or a layer of a nested model."""
    if operation is layer:
        return True
    return isinstance(operation, keras.Model) and any(
        inner is layer for inner in iter_layers(operation)
    )


def input_name(tensor: Any) -> str:
    """The name of a model Input: its `InputLayer`'s, else the tensor's."""
    history = getattr(tensor, "_keras_history", None)
    operation = None if history is None else history.operation
    if isinstance(operation, _classes("InputLayer")):
        return str(operation.name)
    return str(getattr(tensor, "name", "?"))


class _Graph:
    """The nodes of one functional model, indexed to walk it forward from its inputs.

    Built by walking *backward* from `model.outputs` (`node.input_tensors`
    and each tensor's `_keras_history`), so that a shared layer's calls in
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
        """The graph of a functional model; `None` for other models."""
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
        """The first learning layers on the paths from `tensor` (breadth first)."""
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

    def fed_tensors(self) -> set[int]:
        """Ids of the tensors that carry the Inputs: the Inputs, and what no learning layer read.

        The walk passes the layers the default choice skips and merges, and
        stops at every learning layer.
        """
        fed = {id(tensor) for tensor in self.inputs}
        queue: deque[Any] = deque(self.inputs)
        while queue:
            current = queue.popleft()
            for node in self.consumers.get(id(current), ()):
                if _learner(node.operation)[0] is not None:
                    continue
                for output in node.outputs:
                    if id(output) not in fed:
                        fed.add(id(output))
                        queue.append(output)
        return fed

    def calls_of(self, layer: Any) -> list[Any]:
        """The nodes of this graph that call `layer` itself, in `model.operations` order."""
        seen: dict[int, Any] = {}
        for readers in self.consumers.values():
            for node in readers:
                if node.operation is layer:
                    seen.setdefault(id(node), node)
        return list(seen.values())

    def route(self, tensor: Any, layer: Any) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """How `tensor` reaches `layer` through anything: (learning layers, merges) passed.

        `None` if no path from `tensor` reaches the layer.
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
