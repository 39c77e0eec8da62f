"""What each Keras layer is to the callbacks: the classes of each kind, and those skipped.

Part of [`neural_feature_importance.keras.layers`][]: the layer classes each
tracker kind reads, the ones the default choice passes over, the merges, and
the small helpers that classify and name a layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras

from neural_feature_importance.core.errors import LayerSelectionError


def _classes(*names: str) -> tuple[type[Any], ...]:
    """Keras layer classes by name, ignoring names this Keras version lacks."""
    return tuple(cls for name in names if (cls := getattr(keras.layers, name, None)) is not None)


RECURRENT: tuple[type, ...] = _classes("LSTM", "GRU", "SimpleRNN")
"""Recurrent layers whose cell's input `kernel` `(in, k * units)` is read as a Dense kernel."""

BIDIRECTIONAL: tuple[type, ...] = _classes("Bidirectional")
"""Wrappers whose two directions' input kernels are read as one Dense kernel."""

ATTENTION: tuple[type, ...] = _classes("MultiHeadAttention")
"""Attention layers whose query, key and value kernels are read as one Dense kernel."""

TRACKABLE: dict[str, tuple[type, ...]] = {
    "dense": (*_classes("Dense"), *RECURRENT, *BIDIRECTIONAL, *ATTENTION),
    "conv": _classes("Conv1D", "Conv2D", "Conv3D"),
    "embedding": _classes("Embedding"),
}
"""Layer classes each tracker kind can read (subclasses included). Recurrent,
`Bidirectional` and `MultiHeadAttention` layers are read as Dense kernels
(`neural_feature_importance.keras.layers._weights`)."""

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
several tensor inputs (`keras.ops.concatenate`, ...) counts as a merge too."""


def iter_layers(model: Any) -> Iterator[Any]:
    """Yield the layers of `model` in order, descending into nested models."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer)
        else:
            yield layer


def all_built(model: Any) -> bool:
    """Whether `model` and all its layers have created their weights."""
    return bool(model.built) and all(layer.built for layer in iter_layers(model))


def kind_of(layer: Any) -> str | None:
    """The tracker kind that can read `layer` (`"dense"`, ...), or `None`."""
    if isinstance(layer, BIDIRECTIONAL) and not isinstance(
        getattr(layer, "forward_layer", None), RECURRENT
    ):
        return None  # a custom RNN inside: its cell's weights are unknown
    for kind, classes in TRACKABLE.items():
        if isinstance(layer, classes):
            return kind
    return None


def describe(layer: Any, why: str | None = None) -> str:
    """`'name' (Class)` or `'name' (Class: why)`, for messages."""
    label = type(layer).__name__ if why is None else f"{type(layer).__name__}: {why}"
    return f"{layer.name!r} ({label})"


def _skip_reason(layer: Any) -> str | None:
    """Why the default choice passes over `layer`, or `None` if it stops there."""
    for why, classes in SKIPPED.items():
        if isinstance(layer, classes):
            return why
    if not layer.weights:
        return "no weights"
    if not layer.trainable or not layer.trainable_weights:
        return "frozen"
    if kind_of(layer) is None and all(len(w.shape) <= 1 for w in layer.trainable_weights):
        # A per-feature scale or shift (a custom layer, PReLU on vectors) mixes no features.
        return "elementwise weights"
    return None


def refuse_first_layer(model: Any, candidate: Any, kind: str, tracker: str) -> None:
    """Raise the error for a first learning layer that a tracker of `kind` cannot read."""
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
        "whose weights VIANN cannot read (it reads Dense, Conv1D/2D/3D, Embedding, LSTM, "
        "GRU, SimpleRNN, Bidirectional and MultiHeadAttention weights), and the "
        "importances of a later layer would not be those of the model's inputs. Pass "
        f"layer=FeatureAxis('{candidate.name}.<attribute>', axis=<feature axis>) to {tracker} "
        "naming the variable of this layer that reads the inputs, or layer= naming a "
        f"{_KIND_WORDS[kind]} layer if a later layer's inputs are what you want."
    )
