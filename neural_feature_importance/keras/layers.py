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
how to choose a layer explicitly. Nested models are searched in order; for a
subclassed model, the order is the order in which ``__init__`` assigned the
layers (pass ``layer=`` if that differs from the call order).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import keras

from neural_feature_importance.core.errors import LayerSelectionError

LayerSpec = str | int | keras.layers.Layer | None
"""What ``layer=`` accepts: a layer name, an index into ``model.layers``, a
layer object, or ``None`` for the default choice."""


def _classes(*names: str) -> tuple[type, ...]:
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
    """

    layer: Any
    reason: str
    skipped: list[str] = field(default_factory=list)


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
    skipped: list[str] = []
    for candidate in iter_layers(model):
        why = _skip_reason(candidate)
        if why is not None:
            skipped.append(describe(candidate, why))
            continue
        found_kind = kind_of(candidate)
        if found_kind == kind:
            return LayerChoice(candidate, "first trainable layer", skipped)
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
    seen = ", ".join(skipped) if skipped else "none"
    raise LayerSelectionError(
        f"{tracker} found no layer to track in model {model.name!r}: it tracks the first "
        f"trainable {_KIND_WORDS[kind]} layer, skipping input, normalisation, rescaling, "
        f"dropout, frozen and weightless layers. Layers seen: {seen}. Add such a layer, "
        "unfreeze one (layer.trainable = True), or pass layer=<name, index or layer>."
    )


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
