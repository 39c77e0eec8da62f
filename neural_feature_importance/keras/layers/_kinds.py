"""What each Keras layer is to the callbacks: the classes of each kind, and those skipped.

Part of [`neural_feature_importance.keras.layers`][]: the layer classes each
tracker kind reads, the ones the default choice passes over, the merges, and
the small helpers that classify and name a layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras


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
    return None
