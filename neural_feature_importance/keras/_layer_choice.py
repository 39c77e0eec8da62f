"""Which layer(s) a Keras callback reads, and reading their weights.

The layer is chosen when training begins (or, for a model built only by its
first batch, at the first snapshot): `layer=`, else the layer the Inputs
reach (`neural_feature_importance.keras.layers`), or every input layer
when each Input reaches a layer of its own. What is read from a layer is a
`TrackedWeight`: its kernel, or a group of variables read as one Dense
kernel (a Bidirectional layer's two input kernels, an attention layer's
query, key and value kernels). Weights are read with
`keras.ops.convert_to_numpy`, so the same code runs on every backend.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar, cast

from neural_feature_importance.core.errors import StateDictError
from neural_feature_importance.core.views import Kind
from neural_feature_importance.keras.layers import (
    TrackedWeight,
    explicit_kind,
    explicit_layers,
    independent_input_layers,
    kind_of,
    select_layer,
    weight_for,
)

if TYPE_CHECKING:
    from neural_feature_importance.core.tracker import VarianceImportanceBase
    from neural_feature_importance.keras.gradients import GradientTapOptimizer

# The messages are the public callbacks' (users configure that logger).
logger = logging.getLogger("neural_feature_importance.keras.callbacks")


class KerasLayerChoice:
    """Layer choice and weight reads of the Keras callbacks (mixed into them)."""

    kind: ClassVar[Kind]
    model: Any
    layer: Any
    core: VarianceImportanceBase
    gradient_every: int | None
    tracked_layer_: Any
    _input_layers: dict[str, Any]
    # The weight read from the tracked layer, or from each input layer (by name).
    _tracked_weight: TrackedWeight | None = None
    _input_weights: dict[str, TrackedWeight] | None = None
    _tap: GradientTapOptimizer | None
    _tap_installed: bool
    _gradient_steps: int

    def _has_statistics(self) -> bool:
        """Whether a weight (or several input layers) is being tracked already."""
        return self.core.view is not None or self.core.combined is not None

    def _choose_layer(self, continuing: bool) -> None:
        name = type(self).__name__
        if isinstance(self.layer, list | tuple):
            self._choose_layers(explicit_layers(self.model, self.layer, name), continuing)
            return
        if self.layer is None:
            independent = independent_input_layers(self.model)
            if independent is not None:
                self._choose_layers(independent, continuing)
                return
        kind = self.kind
        if self.layer is not None:
            # The kind is the named layer's: VarianceImportanceKeras(layer="conv") tracks a
            # convolution as ConvVarianceImportanceKeras does.
            kind = cast(Kind, explicit_kind(self.model, self.layer, name) or self.kind)
            if kind != self.core.kind and not continuing:
                self.core = self.core.with_kind(kind)
        choice = select_layer(self.model, self.layer, kind, name)
        layer = choice.layer
        tracked = choice.weight
        assert tracked is not None  # select_layer always sets it
        weights = tracked.numpy()
        skipped = f"; skipped {', '.join(choice.skipped)}" if choice.skipped else ""
        logger.info("%s tracks %s (%s%s).", name, tracked.describe(), choice.reason, skipped)
        if choice.caveat is not None:
            # A multi-Input model whose Inputs are not all read by this layer, or
            # read through a merge: the scores are easily misread, so never only INFO.
            logger.warning("%s", choice.caveat)
        if not layer.trainable:
            logger.warning(
                "%s: layer %r is frozen (trainable=False), so its weights will not change "
                "and every feature will score the same.",
                name,
                layer.name,
            )
        combined = self.core.combined
        if continuing and combined is not None:
            raise StateDictError(
                f"{name} continues a state of the layers {list(combined.members)}, but tracks "
                f"one layer, {layer.name!r}; pass layer={list(combined.members)}, or construct "
                "a new callback to start afresh."
            )
        if continuing:
            view = self.core.view
            assert view is not None  # one layer's state is continued
            if tuple(weights.shape) != view.weight_shape:
                raise StateDictError(
                    f"{name} continues a state of a {view.weight_shape} weight "
                    f"(layer {self.core.layer_name!r}), but layer {layer.name!r} has a "
                    f"{tuple(weights.shape)} weight; pass layer= naming the same layer, "
                    "or construct a new callback to start afresh."
                )
            logger.info(
                "%s continues from %d snapshot(s) of %r.",
                name,
                self.core.n_updates_,
                self.core.layer_name,
            )
            self.core.layer_name = layer.name
        else:
            self.core.start(weights, layer_name=layer.name)
        self._tracked_weight = tracked
        self.tracked_layer_ = layer

    def _choose_layers(self, layers: list[Any], continuing: bool) -> None:
        """Track several input layers (one core tracker each) as one result."""
        name = type(self).__name__
        names = [layer.name for layer in layers]
        tracked = {
            layer.name: weight_for(self.model, layer, cast(str, kind_of(layer)), name)
            for layer in layers
        }
        weights = {layer_name: weight.numpy() for layer_name, weight in tracked.items()}
        if continuing:
            combined = self.core.combined
            saved = [] if combined is None else list(combined.members)
            if saved != names:
                raise StateDictError(
                    f"{name} continues a state of the layers {saved}, but this model's input "
                    f"layers are {names}; pass layer= naming the same layers, or construct a "
                    "new callback to start afresh."
                )
            assert combined is not None
            for layer_name, stats in combined.members.items():
                shape = tuple(weights[layer_name].shape)
                if stats.view is not None and stats.view.weight_shape != shape:
                    raise StateDictError(
                        f"{name} continues a state of a {stats.view.weight_shape} weight of "
                        f"layer {layer_name!r}, which now has a {shape} weight; is it the same "
                        "model?"
                    )
        else:
            self.core.start_layers(
                {layer.name: (cast(Kind, kind_of(layer)), weights[layer.name]) for layer in layers}
            )
        self._input_layers = dict(zip(names, layers, strict=True))
        self._input_weights = tracked
        self.tracked_layer_ = layers
        logger.info(
            "%s tracks %d input layers as one result: %s.",
            name,
            len(layers),
            ", ".join(weight.describe() for weight in tracked.values()),
        )

    def _tracked_weights(self) -> dict[str, TrackedWeight]:
        """The weight read from each tracked layer, by layer name (one, or one per input layer)."""
        if self.core.combined is not None:
            assert self._input_weights is not None  # set with the combined statistics
            return self._input_weights
        assert self._tracked_weight is not None  # set when the layer was chosen
        return {self._tracked_weight.layer.name: self._tracked_weight}

    def _snapshot(self, sync: bool) -> None:
        if sync:
            # Under JAX, Keras keeps the trained weights outside the model
            # during an epoch (the layer's variables are even purged); this
            # puts them back, as ModelCheckpoint(save_freq=N) does.
            sync_state = getattr(self.model, "jax_state_sync", None)
            if sync_state is not None:
                sync_state()
        if self.tracked_layer_ is None:
            # The model was not built at on_train_begin (a custom training loop).
            continuing = self._has_statistics()
            self._choose_layer(continuing)
            if self.core.include_initial and not continuing:
                logger.warning(
                    "%s: the model was not built when training began, so its initial "
                    "weights are unknown; include_initial counted the first snapshot.",
                    type(self).__name__,
                )
                return  # start() already counted these weights
        if self.core.combined is not None:
            weights = self._tracked_weights()
            for layer_name, stats in self.core.combined.members.items():
                stats.update(weights[layer_name].numpy())
            return
        assert self._tracked_weight is not None
        self.core.update(self._tracked_weight.numpy())
