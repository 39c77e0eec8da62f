"""The weight a Keras callback reads from its layer: one variable, or a group read as one.

Part of [`neural_feature_importance.keras.layers`][]. A Dense, convolution
or Embedding layer holds its tracked weight in one variable, read as it is.
Recurrent and attention layers read their inputs through weights of other
shapes, which are presented to the core as one Dense weight in Keras layout,
`(in_features, units)`:

* `LSTM`, `GRU`, `SimpleRNN`: the cell's input `kernel`, `(in, k * units)`
  (never the `recurrent_kernel`, which reads the layer's own state);
* `Bidirectional`: both directions read the same features, so their two
  input kernels are one weight, concatenated along the units,
  `(in, units_forward + units_backward)`;
* `MultiHeadAttention`: the query, key and value projections are
  `EinsumDense` kernels `(in, heads, head_dim)`; those that read the model's
  inputs (all three in self-attention) are reshaped to `(in, heads * head_dim)`
  and concatenated along the units;
* a [`FeatureAxis`][neural_feature_importance.core.FeatureAxis] names any
  other variable and its feature axis (resolved to a [`LayerWeight`][]).

Concatenation is what makes a group one weight: the gradient modes' term of
feature `i` is `|sum_j g_ij w_ij|` over the concatenated units, which is the
gradient times input of the feature summed over every path that reads it, and
VIANN's variance is elementwise, so it is the same over the parts as over the
whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from neural_feature_importance.core.errors import LayerSelectionError
from neural_feature_importance.keras.layers._kinds import (
    ATTENTION,
    BIDIRECTIONAL,
    RECURRENT,
    WEIGHT_ATTRIBUTE,
    describe,
)

PROJECTIONS: tuple[str, ...] = ("query", "key", "value")
"""The input projections of a `MultiHeadAttention` layer, in the order they are concatenated."""


@dataclass(frozen=True)
class LayerWeight:
    """Names a variable of a layer, and its feature axis, for `layer=`.

    For a layer the callbacks do not read by themselves (a custom layer, an
    `EinsumDense`, one projection of an attention layer): the variable
    `getattr(layer, attribute)` (a dotted path such as `"query_dense.kernel"`
    is followed) is read with `feature_axis` as its input-feature axis; its
    other axes are flattened, in order, into units. The importance of input
    `i` is then computed from the slice `weight[..., i, ...]` along that axis.

    Parameters
    ----------
    layer : str, int or keras.layers.Layer
        The layer, as `layer=` names one: a name, an index into
        `model.layers` or the layer object.
    attribute : str, default="kernel"
        The attribute of the layer that holds the variable.
    feature_axis : int, default=0
        The axis of the variable that indexes the layer's input features
        (negative counts from the end).

    Examples
    --------
    >>> LayerWeight("attention", "query_dense.kernel")  # (in, heads, head_dim)
    LayerWeight(layer='attention', attribute='query_dense.kernel', feature_axis=0)
    """

    layer: str | int | keras.layers.Layer
    attribute: str = "kernel"
    feature_axis: int = 0


@dataclass(frozen=True)
class WeightPart:
    """One variable of a tracked weight, and the axis of it that indexes input features."""

    variable: Any
    feature_axis: int = 0


@dataclass(frozen=True)
class TrackedWeight:
    """The weight a callback reads from its layer: one variable, or a group read as one.

    Attributes
    ----------
    layer : keras.layers.Layer
        The layer that holds the variables.
    parts : tuple of WeightPart
        Its variables, each with its feature axis.
    what : str
        What the weight is, for messages (`"kernel"`, `"forward and backward
        kernels"`, `"query, key and value kernels"`).
    grouped : bool
        `False`: one variable, read as it is (Dense, ConvND, Embedding, a
        recurrent layer's input kernel). `True`: every part is moved to
        `(in, -1)` and the parts are concatenated along the units, one
        Keras-layout Dense weight.
    """

    layer: Any
    parts: tuple[WeightPart, ...]
    what: str = "kernel"
    grouped: bool = False

    @property
    def variables(self) -> tuple[Any, ...]:
        """The Keras variables, in concatenation order."""
        return tuple(part.variable for part in self.parts)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the weight the core sees."""
        shapes = [tuple(int(s) for s in part.variable.shape) for part in self.parts]
        if not self.grouped:
            return shapes[0]
        n_features = shapes[0][self.parts[0].feature_axis]
        return (n_features, sum(int(np.prod(shape)) // n_features for shape in shapes))

    def combine(self, tensors: Sequence[Any]) -> Any:
        """The weight from one tensor per part (`keras.ops`: runs in the train step).

        Not grouped: the single tensor as it is (no operation is added).
        """
        if not self.grouped:
            return tensors[0]
        n_features = self.shape[0]
        flat = []
        for part, tensor in zip(self.parts, tensors, strict=True):
            if part.feature_axis != 0:
                tensor = keras.ops.moveaxis(tensor, part.feature_axis, 0)
            flat.append(keras.ops.reshape(tensor, (n_features, -1)))
        return flat[0] if len(flat) == 1 else keras.ops.concatenate(flat, axis=1)

    def numpy(self) -> np.ndarray:
        """The weight's current value on the host, as the core sees it (`combine()`d)."""
        return np.asarray(keras.ops.convert_to_numpy(self.combine(self.variables)))

    def describe(self) -> str:
        """`'name' (Class)`, with the weight named when it is not the layer's own kernel."""
        if self.what == "kernel" and not self.grouped:
            return describe(self.layer)
        return f"{describe(self.layer)}, its {self.what}"


def _missing(layer: Any, attribute: str, tracker: str) -> LayerSelectionError:
    return LayerSelectionError(
        f"{tracker}: layer {describe(layer)} has no {attribute!r} yet; build the model "
        "(call it on a batch, or fit it) before reading weights."
    )


def _cell_kernel(layer: Any, tracker: str) -> Any:
    """The input kernel of a recurrent layer (held by its cell)."""
    kernel = getattr(getattr(layer, "cell", None), "kernel", None)
    if kernel is None:
        raise _missing(layer, "cell.kernel", tracker)
    return kernel


def _attribute(layer: Any, attribute: str, tracker: str) -> Any:
    """`getattr(layer, "a.b")`, following dots."""
    value = layer
    for name in attribute.split("."):
        value = getattr(value, name, None)
        if value is None:
            raise _missing(layer, attribute, tracker)
    return value


def weight_of(
    layer: Any,
    kind: str,
    tracker: str,
    projections: Sequence[str] = PROJECTIONS,
    spec: LayerWeight | None = None,
) -> TrackedWeight:
    """The weight a tracker of `kind` reads from `layer`.

    Parameters
    ----------
    layer : keras.layers.Layer
        The tracked layer (built).
    kind : {"dense", "conv", "embedding"}
        The tracker's kind; recurrent and attention layers are Dense weights.
    tracker : str
        Class name of the tracker, for messages.
    projections : sequence of {"query", "key", "value"}
        For a `MultiHeadAttention` layer: the projections that read the
        model's inputs.
    spec : LayerWeight, optional
        An explicit variable and feature axis (`layer=LayerWeight(...)`).

    Raises
    ------
    LayerSelectionError
        If the layer has not created its weights yet, or `spec` names no
        variable of it.
    """
    if spec is not None:
        variable = _attribute(layer, spec.attribute, tracker)
        if not isinstance(variable, keras.Variable) or len(variable.shape) < 2:
            raise LayerSelectionError(
                f"{tracker}: layer={spec!r} names {describe(layer)}.{spec.attribute}, which is "
                "not a Keras variable of 2 or more dimensions."
            )
        ndim = len(variable.shape)
        if not -ndim <= spec.feature_axis < ndim:
            raise LayerSelectionError(
                f"{tracker}: layer={spec!r}: feature_axis={spec.feature_axis} is out of range "
                f"for the {tuple(variable.shape)} variable {spec.attribute!r}."
            )
        axis = spec.feature_axis % ndim
        return TrackedWeight(
            layer, (WeightPart(variable, axis),), spec.attribute, grouped=ndim != 2 or axis != 0
        )
    if isinstance(layer, RECURRENT):
        return TrackedWeight(layer, (WeightPart(_cell_kernel(layer, tracker)),), "input kernel")
    if isinstance(layer, BIDIRECTIONAL):
        wrapper: Any = layer
        parts = tuple(
            WeightPart(_cell_kernel(direction, tracker))
            for direction in (wrapper.forward_layer, wrapper.backward_layer)
        )
        return TrackedWeight(layer, parts, "forward and backward input kernels", grouped=True)
    if isinstance(layer, ATTENTION):
        names = [name for name in PROJECTIONS if name in projections] or list(PROJECTIONS)
        parts = tuple(
            WeightPart(_attribute(layer, f"{name}_dense.kernel", tracker)) for name in names
        )
        what = ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + names[-1]
        return TrackedWeight(layer, parts, f"{what} kernels", grouped=True)
    attribute = WEIGHT_ATTRIBUTE[kind]
    variable = getattr(layer, attribute, None)
    if variable is None:
        raise _missing(layer, attribute, tracker)
    return TrackedWeight(layer, (WeightPart(variable),), attribute)


def attention_projections(query: Any, value: Any, key: Any, fed: set[int]) -> tuple[str, ...]:
    """The projections of an attention call that read the model's inputs.

    `fed` holds the ids of the tensors that carry the model's inputs (the
    Inputs and what only transforms them). If none of `query`, `value` and
    `key` is such a tensor (the layer sits deeper in the model), the
    projections that read the query's tensor (all three in self-attention).
    """
    key = value if key is None else key
    tensors = {"query": query, "key": key, "value": value}
    found = tuple(name for name in PROJECTIONS if id(tensors[name]) in fed)
    if found:
        return found
    return tuple(name for name in PROJECTIONS if tensors[name] is query)


def attention_arguments(args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
    """`(query, value, key)` of a `MultiHeadAttention` call (`key` may be `None`)."""
    names = ("query", "value", "key")
    values = [kwargs.get(name) for name in names]
    for index, arg in enumerate(args[:3]):
        values[index] = arg
    return values[0], values[1], values[2]
