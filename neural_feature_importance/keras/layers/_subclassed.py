"""The default choice in a subclassed model, and the weight read from the chosen layer.

Part of [`neural_feature_importance.keras.layers`][]. A subclassed model has
no graph to walk, so its layers are taken in call order
([`trace_calls()`][neural_feature_importance.keras.layers._trace.trace_calls]),
and the chosen layer's input width is checked against the model's input:
a subclassed model that assigns its head first (`self.head = Dense(1)` before
`self.body = Dense(32)`) must never have its head scored as if it read the
inputs.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from neural_feature_importance.core.errors import LayerSelectionError
from neural_feature_importance.keras.layers._graph import _Graph
from neural_feature_importance.keras.layers._kinds import ATTENTION, _skip_reason, describe
from neural_feature_importance.keras.layers._trace import (
    CallRecord,
    CallTrace,
    input_shape_of,
    trace_calls,
)
from neural_feature_importance.keras.layers._weights import (
    PROJECTIONS,
    LayerWeight,
    TrackedWeight,
    attention_arguments,
    attention_projections,
    weight_of,
)


def is_subclassed(model: Any) -> bool:
    """Whether `model` has neither a functional graph nor Sequential's call order."""
    return not isinstance(model, keras.Sequential) and _Graph.of(model) is None


def first_reader(trace: CallTrace) -> tuple[CallRecord | None, list[str]]:
    """The first learning layer called on the model's input, and the layers passed before it.

    The first called learning layer that receives a tensor carrying the
    model's input; if none does (the input went through `keras.ops` calls
    the trace cannot follow), the first learning layer called.
    """
    skipped: list[str] = []
    seen: set[int] = set()
    first: CallRecord | None = None
    for record in trace.records:
        if id(record.layer) in seen:
            continue
        seen.add(id(record.layer))
        why = _skip_reason(record.layer)
        if why is not None:
            skipped.append(describe(record.layer, why))
            continue
        if record.reads_input:
            return record, skipped
        if first is None:
            first = record
    return first, skipped


def check_width(
    model: Any,
    weight: TrackedWeight,
    kind: str,
    tracker: str,
    record: CallRecord | None = None,
    shape: tuple[int | None, ...] | None = None,
) -> None:
    """Refuse a default Dense choice whose input width is not the model input's.

    A Dense-kind weight has one row per input of its layer. If the layer does
    not receive the model's input in the trace and its number of inputs is
    neither the input's last dimension nor its flattened size, its scores
    would be those of some hidden layer's outputs, not of the model's inputs.

    Raises
    ------
    LayerSelectionError
        Naming the layer, the two widths and the `layer=` remedy.
    """
    if kind != "dense" or (record is not None and record.reads_input):
        return
    shape = shape or input_shape_of(model)
    if shape is None or len(shape) < 2 or shape[-1] is None:
        return
    n_features = weight.shape[0]
    known = [dim for dim in shape[1:] if dim is not None]
    flat = math.prod(known) if len(known) == len(shape) - 1 else None
    if n_features in (shape[-1], flat):
        return
    raise LayerSelectionError(
        f"{tracker}: model {model.name!r} is a subclassed model, so its first layer is found "
        f"by the order in which its call() uses its layers; that gave {weight.describe()}, "
        f"which has {n_features} inputs, but the model's input has {shape[-1]} features "
        f"(shape {tuple(shape)}): its scores would not be those of the model's inputs. Pass "
        f"layer= to {tracker} naming the layer that reads the inputs (its name, index or the "
        "layer object)."
    )


def _projections(model: Any, layer: Any, trace: CallTrace | None) -> tuple[str, ...]:
    """The projections of an attention layer that read the model's inputs (see weight_for)."""
    graph = _Graph.of(model)
    if graph is not None:
        nodes = graph.calls_of(layer)
        if nodes:
            arguments = nodes[0].arguments
            return attention_projections(
                *attention_arguments(arguments.args, arguments.kwargs), graph.fed_tensors()
            )
    if trace is None and not isinstance(model, keras.Sequential):
        trace = trace_calls(model)
    if trace is not None:
        for record in trace.records:
            if record.layer is layer:
                query, value, key = attention_arguments(record.args, record.kwargs)
                return attention_projections(query, value, key, set(trace.fed))
    return PROJECTIONS


def weight_for(
    model: Any,
    layer: Any,
    kind: str,
    tracker: str,
    spec: LayerWeight | None = None,
    trace: CallTrace | None = None,
) -> TrackedWeight:
    """The weight a tracker of `kind` reads from `layer` of `model`.

    For a `MultiHeadAttention` layer, its projections that read the model's
    inputs (from the functional graph, else from the call trace; all three
    in self-attention), or those that read the query's tensor if none does.
    """
    projections = PROJECTIONS
    if spec is None and isinstance(layer, ATTENTION):
        projections = _projections(model, layer, trace)
    return weight_of(layer, kind, tracker, projections, spec)
