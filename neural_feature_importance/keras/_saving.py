"""Checkpoints saved during `fit()` under a `LossScaleOptimizer` hold no tap variables.

Keras saves an optimizer as the list of its `variables`, by position
(`Optimizer.save_own_variables`), and loads a list only into an optimizer
with exactly as many. A `LossScaleOptimizer` saves its own variables (the
loss scale and its step counter) followed by those of its inner optimizer,
and under a gradient mode that inner optimizer is the tap: a checkpoint
written during `fit()` (`ModelCheckpoint`, `model.save` from a callback)
would then hold the tap's sums too, and a model compiled without the
library would skip the whole list, losing the loss scale. The tap's own
`save_own_variables()` saves the optimizer it wraps; here the
`LossScaleOptimizer` above it is made to save and load the list it would
hold without the tap, for as long as a tap is installed.

The tap's variables must stay in `LossScaleOptimizer.variables`: the JAX
trainer carries exactly those through `stateless_apply`, so only saving and
loading are changed, on the instance (Keras looks the methods up there).
"""

from __future__ import annotations

from typing import Any

from neural_feature_importance.keras.gradients import find_taps

__all__ = ["hide_taps_from_saving", "restore_saving", "saved_variables"]

_METHODS = ("save_own_variables", "load_own_variables")


def saved_variables(optimizer: Any) -> list[Any]:
    """`optimizer.variables` without those of the taps below it, in Keras's order."""
    hidden = {
        id(variable)
        for tap in find_taps(getattr(optimizer, "inner_optimizer", None))
        for variable in tap._variables
    }
    return [variable for variable in optimizer.variables if id(variable) not in hidden]


def _save_own_variables(optimizer: Any, store: Any) -> None:
    """Keras's `Optimizer.save_own_variables`, over the variables saved without a tap."""
    for index, variable in enumerate(saved_variables(optimizer)):
        store[str(index)] = variable.numpy()


def _load_own_variables(optimizer: Any, store: Any) -> None:
    """Keras's `Optimizer.load_own_variables`, over the variables saved without a tap.

    A list of another length (another optimizer, or a checkpoint that holds
    the tap's variables) goes to Keras's own method, which loads a list of
    all the variables and warns about any other.
    """
    variables = saved_variables(optimizer)
    if len(store.keys()) != len(variables):
        type(optimizer).load_own_variables(optimizer, store)
        return
    for index, variable in enumerate(variables):
        variable.assign(store[str(index)])


def hide_taps_from_saving(optimizer: Any) -> None:
    """Make `optimizer` (a wrapper above a tap) save and load what it would without taps.

    Idempotent; the methods find the taps below `optimizer` at each call,
    so they stay right as taps come and go.
    """
    optimizer.save_own_variables = lambda store: _save_own_variables(optimizer, store)
    optimizer.load_own_variables = lambda store: _load_own_variables(optimizer, store)


def restore_saving(optimizer: Any) -> None:
    """Undo [`hide_taps_from_saving()`][hide_taps_from_saving] once no tap is left below."""
    if find_taps(getattr(optimizer, "inner_optimizer", None)):
        return
    for method in _METHODS:
        if method in vars(optimizer):
            delattr(optimizer, method)
