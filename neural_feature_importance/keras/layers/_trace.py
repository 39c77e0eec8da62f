"""The call order of a subclassed Keras model, from one symbolic call.

Part of [`neural_feature_importance.keras.layers`][]. A subclassed model has
no graph to walk: its `call` is Python code, and the order in which
`__init__` assigned its layers says nothing about the order in which `call`
uses them (`self.head = Dense(1)` may come before `self.body = Dense(32)`).
[`trace_calls()`][] calls the model once on a symbolic batch (no data, no
weight update, no state change) and records which of its layers are called,
in order, and which of them receive a tensor that carries the model's input.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from neural_feature_importance.keras.layers._kinds import _skip_reason, iter_layers

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallRecord:
    """One call of a layer of the model during the traced call.

    Attributes
    ----------
    layer : keras.layers.Layer
        The layer called.
    args, kwargs : tuple and dict
        The arguments it was called with (backend tensors of the trace).
    reads_input : bool
        Whether one of them carries the model's input: the input itself, or
        the output of a layer that only transforms it (normalisation,
        dropout, frozen or weightless layers).
    """

    layer: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    reads_input: bool


@dataclass(frozen=True)
class CallTrace:
    """The layers a subclassed model calls, in call order.

    Attributes
    ----------
    records : tuple of CallRecord
        Every call of a layer of the model (a nested model's layers
        included), in the order the calls began.
    fed : frozenset of int
        Ids of the traced tensors that carry the model's input.
    input_shape : tuple
        The shape of the model's input the trace used.
    """

    records: tuple[CallRecord, ...]
    fed: frozenset[int]
    input_shape: tuple[int | None, ...]


def input_shape_of(model: Any) -> tuple[int | None, ...] | None:
    """The shape of the single input a built model was built for, or `None`.

    `None` for a model with several inputs, or whose input shape Keras did
    not record (a model built by `build()` without a shape).
    """
    inputs = getattr(model, "inputs", None)
    if isinstance(inputs, list | tuple) and len(inputs) == 1:
        return tuple(inputs[0].shape)
    shapes = getattr(model, "_build_shapes_dict", None)
    if not isinstance(shapes, dict) or len(shapes) != 1:
        return None
    shape = next(iter(shapes.values()))
    if not isinstance(shape, list | tuple) or not shape:
        return None
    if not all(dim is None or isinstance(dim, int) for dim in shape):
        return None  # several inputs (a list or dict of shapes)
    return tuple(shape)


class _Tracer(keras.layers.Layer):
    """Runs a function inside Keras's symbolic call (`compute_output_spec`)."""

    def __init__(self, function: Callable[[Any], Any]) -> None:
        super().__init__(name="neural_feature_importance_tracer")
        self._function = function

    def call(self, inputs: Any) -> Any:
        return self._function(inputs)


def trace_calls(model: Any) -> CallTrace | None:
    """Call a built single-input model once, symbolically, and record its layers' calls.

    Keras's symbolic call (`Layer.compute_output_spec` on the backend: JAX's
    `eval_shape`, a scratch TensorFlow graph, torch's meta tensors) runs the
    model's `call` without data, so nothing is computed and no weight or
    state changes. While it runs, `keras.layers.Layer.__call__` is wrapped
    to record the calls of the model's layers; it is restored before this
    function returns (another model called from another thread at that
    moment is not recorded, and is otherwise unaffected).

    Returns
    -------
    CallTrace or None
        `None` when the model's input shape is unknown, it has several
        inputs, or the symbolic call fails (the reason is logged at DEBUG).
    """
    shape = input_shape_of(model)
    if shape is None:
        return None
    watched = {id(layer) for layer in iter_layers(model)}
    records: list[CallRecord] = []
    fed: set[int] = set()
    original = keras.layers.Layer.__call__

    def watching(layer: Any, *args: Any, **kwargs: Any) -> Any:
        if id(layer) not in watched:
            return original(layer, *args, **kwargs)
        tensors = keras.tree.flatten((args, kwargs))
        reads = any(id(tensor) in fed for tensor in tensors)
        records.append(CallRecord(layer, args, dict(kwargs), reads))
        outputs = original(layer, *args, **kwargs)
        if reads and _skip_reason(layer) is not None:
            fed.update(id(tensor) for tensor in keras.tree.flatten(outputs))
        return outputs

    try:
        parameters = inspect.signature(model.call).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    options = {"training": False} if "training" in parameters else {}

    def run(inputs: Any) -> Any:
        fed.add(id(inputs))
        return model.call(inputs, **options)

    dtype = getattr(model, "input_dtype", None) or "float32"
    placeholder = keras.KerasTensor((None, *shape[1:]), dtype=dtype)
    keras.layers.Layer.__call__ = watching
    try:
        _Tracer(run)(placeholder)
    except Exception as error:  # any failure of the user's call: fall back, never break fit()
        logger.debug("cannot trace the calls of model %r (%r)", model.name, error)
        return None
    finally:
        keras.layers.Layer.__call__ = original
    return CallTrace(tuple(records), frozenset(fed), shape)
