"""An optimizer that delegates to the one it wraps: the frame of the gradient tap.

Keras's `LossScaleOptimizer` wraps an optimizer the same way. The wrapper
forwards the learning rate, the iteration count, loss scaling and the end of
training to its `inner_optimizer`, lists the inner optimizer's variables
after its own, and saves and configures itself as the inner optimizer: a
model saved or compiled while a wrapper is installed holds exactly what one
with the plain optimizer holds. What the wrapper adds to a step is its
subclass's `apply()` (`GradientTapOptimizer` in `keras/gradients.py`).
"""

from __future__ import annotations

from typing import Any

import keras

__all__ = ["WrappedOptimizer"]


class WrappedOptimizer(keras.optimizers.Optimizer):
    """Forwards everything but the update itself to `inner_optimizer`.

    Parameters
    ----------
    inner_optimizer : keras.optimizers.Optimizer
        The optimizer that updates the model, whose learning rate and
        iteration count are the wrapper's.
    name : str
        The wrapper's name.
    """

    def __init__(self, inner_optimizer: keras.optimizers.Optimizer, name: str) -> None:
        # The base class's own learning rate is never used (see `variables`).
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = inner_optimizer

    @property
    def variables(self) -> list[Any]:
        # The base class's own iteration count and learning rate are never used
        # (both are the wrapped optimizer's): left out, they are not carried in
        # a compiled step's state (each variable costs JAX's jit a buffer).
        unused = (self._iterations, self._learning_rate)
        own = [v for v in self._variables if not any(v is u for u in unused)]
        return own + list(self.inner_optimizer.variables)

    @property
    def learning_rate(self) -> Any:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: Any) -> None:
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self) -> Any:
        return self.inner_optimizer.iterations

    def scale_loss(self, loss: Any) -> Any:
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list: list[Any]) -> None:
        self.inner_optimizer.finalize_variable_values(var_list)

    # Saved as the wrapped optimizer, at the wrapper's place: a model saved while
    # the gradient tap is installed (ModelCheckpoint during fit) holds the entries
    # of one compiled with the plain optimizer, and loads into it. Under a
    # LossScaleOptimizer, keras/_saving.py leaves the tap's variables out of its list.
    def save_own_variables(self, store: Any) -> None:
        """Save the wrapped optimizer's variables (the wrapper's own are never saved)."""
        self.inner_optimizer.save_own_variables(store)

    def load_own_variables(self, store: Any) -> None:
        """Load the wrapped optimizer's variables, saved with or without a wrapper."""
        self.inner_optimizer.load_own_variables(store)

    def __dir__(self) -> list[str]:
        # Keras's saving walks dir(): the wrapped optimizer, already saved in the
        # wrapper's place above, would be saved a second time under "inner_optimizer".
        return [name for name in super().__dir__() if name != "inner_optimizer"]

    def get_config(self) -> dict[str, Any]:
        # A wrapper (the tap: bound to a live tracker) is never serialised on its
        # own; a model's compile config holds the optimizer it was compiled with.
        return self.inner_optimizer.get_config()
