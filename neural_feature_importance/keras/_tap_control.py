"""The gradient tap of the Keras callbacks: install, drain and remove it.

Gradient scoring modes read the tracked kernel's gradient inside the
compiled train step, through an optimizer wrapper
([`GradientTapOptimizer`][neural_feature_importance.keras.gradients.GradientTapOptimizer]).
`GradientTapControl` puts that wrapper into `model.optimizer` for the
duration of `fit()` (inside a `LossScaleOptimizer` when there is one),
moves its sums into the core once per epoch, and gives the user's optimizer
back at the end.
"""

from __future__ import annotations

import logging
from typing import Any

import keras

from neural_feature_importance.core.modes import get_mode
from neural_feature_importance.keras._layer_choice import KerasLayerChoice
from neural_feature_importance.keras.gradients import GradientTapOptimizer, unlink_tap
from neural_feature_importance.keras.layers import WEIGHT_ATTRIBUTE, all_built

# The messages are the public callbacks' (users configure that logger).
logger = logging.getLogger("neural_feature_importance.keras.callbacks")


class GradientTapControl(KerasLayerChoice):
    """The gradient tap's life cycle (the Keras callbacks' base, over their layer choice)."""

    def _needs_gradients(self) -> bool:
        return get_mode(self.core.scoring).needs_gradients

    def _gradient_every(self) -> int:
        return self.gradient_every or get_mode(self.core.scoring).gradient_every

    def wrap_optimizer(self, optimizer: keras.optimizers.Optimizer) -> GradientTapOptimizer:
        """Return `optimizer` wrapped in a gradient tap that feeds this tracker.

        For custom training loops with a gradient scoring mode: call
        `set_model(model)` and `on_train_begin()`, then update the model
        with the returned optimizer (`apply` or, on JAX, `stateless_apply`)
        and call `on_epoch_end(epoch)` after every epoch. `fit()` needs
        none of this: the callback wraps `model.optimizer` itself.

        Raises
        ------
        ValueError
            If the scoring mode needs no gradients, or the model is not built.
        """
        if not self._needs_gradients():
            raise ValueError(
                f"scoring={self.core.scoring!r} needs no gradients, so there is nothing to wrap; "
                "use the optimizer as it is."
            )
        if self.tracked_layer_ is None:
            if self.model is None or not all_built(self.model):
                raise ValueError(
                    f"{type(self).__name__}.wrap_optimizer() needs a built model: call "
                    "set_model(model) on a built model (call it on a batch first), then "
                    "on_train_begin()."
                )
            self._choose_layer(self._has_statistics())
        self._tap = GradientTapOptimizer(
            optimizer, self._tap_targets(), gradient_every=self._gradient_every()
        )
        self._tap.build(list(self.model.trainable_variables))
        self._tap.steps = self._gradient_steps
        self._tap_installed = False
        return self._tap

    def _tap_targets(self) -> list[tuple[str, Any, Any]]:
        """(name, variable, scoring mode) of every tracked weight."""
        if self.core.combined is not None:
            return [
                (
                    name,
                    getattr(self._input_layers[name], WEIGHT_ATTRIBUTE[stats.kind]),
                    stats.mode,
                )
                for name, stats in self.core.combined.members.items()
            ]
        layer = self.tracked_layer_
        mode = self.core.statistics.mode
        return [(layer.name, getattr(layer, WEIGHT_ATTRIBUTE[self.core.kind]), mode)]

    def _install_tap(self) -> None:
        """Put a gradient tap into `model.optimizer` and rebuild the train function.

        Under a `LossScaleOptimizer` the tap wraps its inner optimizer, so
        it reads unscaled gradients of the steps that are applied.
        """
        model = self.model
        host = model.optimizer
        if isinstance(host, keras.optimizers.LossScaleOptimizer):
            tap = self.wrap_optimizer(host.inner_optimizer)
            host.inner_optimizer = tap
        else:
            tap = self.wrap_optimizer(host)
            model.optimizer = tap
        self._tap_installed = True
        model.make_train_function(force=True)
        logger.info(
            "%s(scoring=%r) reads the gradient of %s in the optimizer, one applied update "
            "in %d, inside the compiled train step.",
            type(self).__name__,
            self.core.scoring,
            self.core.layer_name,
            tap.gradient_every,
        )

    def _remove_tap(self) -> None:
        """Give the user's optimizer back (after `fit`), keeping other wrappers."""
        if self._tap is None:
            return
        if self._tap_installed:
            unlink_tap(self.model, self._tap)
            # The compiled train function still calls the tap: rebuild it at the next fit().
            self.model.train_function = None
        self._tap = None
        self._tap_installed = False

    def _drain_tap(self) -> None:
        """Move the tap's sums (read in the compiled step) into the core tracker."""
        tap = self._tap
        if tap is None:
            return
        sync_state = getattr(self.model, "jax_state_sync", None)
        if sync_state is not None:
            # Under JAX the tap's variables live in the trainer's state during an epoch.
            sync_state()
        for name, (sums, n_read, n_skipped) in tap.drain().items():
            combined = self.core.combined
            stats = self.core.statistics if combined is None else combined.members[name]
            stats.update_gradient_sums(sums, n_read, n_skipped)
        self._gradient_steps = tap.steps
