"""The gradient tap of the Keras callbacks: install, drain and remove it.

Gradient scoring modes read the tracked kernel's gradient inside the
compiled train step, through an optimizer wrapper
([`GradientTapOptimizer`][neural_feature_importance.keras.gradients.GradientTapOptimizer]).
`GradientTapControl` puts that wrapper into `model.optimizer` for the
duration of `fit()` (inside a `LossScaleOptimizer` when there is one),
moves its sums into the core once per epoch, and gives the user's optimizer
back at the end.

A model without `keras.Input` (a subclassed model, or a `Sequential` of
layers alone) is built by `fit()` from its first batch: before
`on_train_begin` on the JAX and PyTorch backends, but on TensorFlow only
while its first train step is traced. There the tap goes in at that first
call of the train function, after the model is built from the batch's
shapes (`iterator.element_spec`) as Keras's other backends build it, so
the first step is read and the train step is compiled once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import keras

from neural_feature_importance.core.errors import no_gradient
from neural_feature_importance.core.modes import get_mode
from neural_feature_importance.keras._layer_choice import KerasLayerChoice
from neural_feature_importance.keras._saving import hide_taps_from_saving, restore_saving
from neural_feature_importance.keras.gradients import GradientTapOptimizer, unlink_tap
from neural_feature_importance.keras.layers import all_built

# The messages are the public callbacks' (users configure that logger).
logger = logging.getLogger("neural_feature_importance.keras.callbacks")


# Marks a train function that installs a tracker's tap at its first call.
_FIRST_BATCH_MARK = "_neural_feature_importance_first_batch"


class GradientTapControl(KerasLayerChoice):
    """The gradient tap's life cycle (the Keras callbacks' base, over their layer choice)."""

    # The train function that installs the tap at the first batch, and the one it wraps.
    _first_batch_call: Callable[[Any], Any] | None = None
    _first_batch_inner: Callable[[Any], Any] | None = None

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
        """(name, variable or group of variables, scoring mode) of every tracked weight.

        A weight of one variable read as it is (a Dense, ConvND or Embedding
        kernel, a recurrent layer's input kernel) is given as that variable,
        so the tap adds no operation; a group (a Bidirectional layer's two
        kernels, an attention layer's projections) as its `TrackedWeight`,
        which the tap combines into one kernel in the train step.
        """
        weights = self._tracked_weights()
        if self.core.combined is not None:
            modes = {name: stats.mode for name, stats in self.core.combined.members.items()}
        else:
            modes = {name: self.core.statistics.mode for name in weights}
        return [
            (name, weight if weight.grouped else weight.variables[0], modes[name])
            for name, weight in weights.items()
        ]

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
            # A checkpoint saved during fit() keeps the loss scale's state loadable.
            hide_taps_from_saving(host)
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

    def _install_tap_at_first_batch(self, continuing: bool) -> bool:
        """Install the tap at the first batch of a `fit()` that builds the model there.

        Keras's TensorFlow `fit()` (without a `tf.distribute` strategy)
        builds a model that has no `keras.Input` only while tracing its first
        train step, after `on_train_begin`. The train function it has made
        is wrapped: at the first batch the wrapper builds the model from the
        batch's shapes, chooses the layer and installs the tap, and only then
        calls a train function that is traced for the first time, so the tap
        reads every step and the step is compiled once. Returns whether it
        will (TensorFlow inside `fit()`); elsewhere the model is built before
        `on_train_begin`, or this is a custom training loop, which builds the
        model before calling [`wrap_optimizer()`][wrap_optimizer].
        """
        model = self.model
        inner = getattr(model, "train_function", None)
        if keras.backend.backend() != "tensorflow" or inner is None:
            return False

        def first_batch(iterator: Any) -> Any:
            return self._first_batch(iterator, inner, continuing)

        setattr(first_batch, _FIRST_BATCH_MARK, True)
        self._first_batch_call, self._first_batch_inner = first_batch, inner
        model.train_function = first_batch
        logger.info(
            "%s: model %r is built by its first batch; the gradient tap goes in then.",
            type(self).__name__,
            model.name,
        )
        return True

    def _first_batch(self, iterator: Any, inner: Callable[[Any], Any], continuing: bool) -> Any:
        """The first call of the train function: build, choose the layer, install, train."""
        model = self.model
        model.train_function = inner
        self._first_batch_call = self._first_batch_inner = None
        failure = None if all_built(model) else _build_from_batch_spec(model, iterator)
        if failure is not None:
            # The model could not be built from the shapes alone: let the first
            # step build it, then install the tap (the step after is traced again).
            logger.info(
                "%s: model %r could not be built from the first batch's shapes (%s); the "
                "gradient tap goes in after the first step, which it does not read.",
                type(self).__name__,
                model.name,
                failure,
            )
            logs = inner(iterator)
            self._choose_layer(continuing)
            self._install_tap()
            return logs
        self._choose_layer(continuing)
        # Rebuilds model.train_function; no step has been traced yet, so it compiles once.
        self._install_tap()
        if getattr(inner, _FIRST_BATCH_MARK, False):
            # Another tracker's tap goes in at this batch too: it calls the new function.
            return inner(iterator)
        return model.train_function(iterator)

    def _check_gradients_reached(self) -> None:
        """Raise at an epoch's end if a gradient mode has read nothing, and no step can reach it.

        Two cases, where the old default, VIANN (snapshots only), worked and the
        tap cannot: no tap at all (a custom loop that neither compiled the model
        nor called [`wrap_optimizer()`][wrap_optimizer]), or a tap no update went
        through (a train step or loop that updates the weights with an optimizer
        of its own). Gradient accumulation that has not applied an update yet
        counts as an update (the wrapped optimizer's iterations moved); under a
        `LossScaleOptimizer`, whose skipped steps move nothing, the second case is
        left to the error that reading the importances raises.
        """
        if not self._needs_gradients() or self._gradient_steps or self.core.n_gradient_steps_:
            return
        owner = f"{type(self).__name__}(scoring={self.core.scoring!r})"
        if self._tap is None:
            raise no_gradient(
                f"{owner} reads the gradient in the optimizer, but an epoch ended and no "
                "optimizer carries its tap: the model was not compiled when training began "
                "(a custom training loop). Update the model with the optimizer "
                f"{type(self).__name__}.wrap_optimizer(optimizer) returns, after "
                "set_model(model) and on_train_begin()."
            )
        if isinstance(self.model.optimizer, keras.optimizers.LossScaleOptimizer):
            return
        if int(keras.ops.convert_to_numpy(self._tap.iterations)) == 0:
            raise no_gradient(
                f"{owner} reads the gradient in the optimizer it wraps (model.optimizer "
                "during fit()), but an epoch ended and no update went through it: the train "
                "step or loop updates the weights by other means. Update them through "
                "self.optimizer (apply(), apply_gradients(), or stateless_apply() on JAX), or "
                "wrap the optimizer that does with wrap_optimizer()."
            )

    def _remove_tap(self) -> None:
        """Give the user's optimizer back (after `fit`), keeping other wrappers."""
        if self._first_batch_call is not None:
            # A fit() that ran no batch: give Keras its own train function back.
            if getattr(self.model, "train_function", None) is self._first_batch_call:
                self.model.train_function = self._first_batch_inner
            self._first_batch_call = self._first_batch_inner = None
        if self._tap is None:
            return
        if self._tap_installed:
            unlink_tap(self.model, self._tap)
            host = getattr(self.model, "optimizer", None)
            if isinstance(host, keras.optimizers.LossScaleOptimizer):
                restore_saving(host)
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


def _build_from_batch_spec(model: Any, iterator: Any) -> str | None:
    """Build `model` from the shapes of the batches `iterator` yields; None, or why not.

    What Keras's JAX and PyTorch `fit()` do before `on_train_begin` (and
    its TensorFlow `fit()` under a `tf.distribute` strategy): the model, its
    loss, metrics and optimizer are built on symbolic tensors of the batch's
    shapes, taken here from the `tf.data` iterator's `element_spec`, without
    consuming a batch.
    """
    spec = getattr(iterator, "element_spec", None)
    if spec is None:
        return f"a {type(iterator).__name__} has no element_spec"
    try:
        with model.distribute_strategy.scope():
            model._symbolic_build(data_batch=spec)
    except Exception as error:  # whatever the model's call raises on symbolic inputs
        return f"{type(error).__name__}: {error}"
    if not all_built(model):
        return "some layers are still not built"
    return None
