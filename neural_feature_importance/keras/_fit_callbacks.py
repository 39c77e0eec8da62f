"""The other callbacks of a `fit()`: the loggers that read the importances, `EarlyStopping`.

Keras calls the callbacks of a `fit()` in the order of its `callbacks=[...]` list, and
hands every one the same epoch `logs` dict; `History` and the progress bar are appended
after the user's callbacks. A tracker with `log_importances` adds the importances to
that dict in its `on_epoch_end`, so a logger listed before it has written the epoch
without them: [`check_log_order()`][check_log_order] refuses that order when `fit()`
starts, naming the logger, instead of leaving a CSV file or a TensorBoard run silently
without the importances. (Running the tracker's epoch end first instead would move its
snapshot before the callbacks listed ahead of it, which may change the weights it reads,
as `SwapEMAWeights(swap_on_epoch=True)` does.)

`EarlyStopping(restore_best_weights=True)` puts the weights of its best epoch back
when training ends. [`EarlyStoppingFollower`][] keeps a copy of the tracker's state at
each epoch that callback takes as its best, and gives it back at the end of training,
so the importances describe the restored model: those of a run stopped at that epoch.

A callback is not handed its `CallbackList`; the one that calls `on_train_begin` is
found on the call stack (`neural_feature_importance._callers`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import keras

from neural_feature_importance._callers import calling_instance

logger = logging.getLogger("neural_feature_importance.keras.callbacks")

LOG_WRITERS: tuple[type[keras.callbacks.Callback], ...] = (
    keras.callbacks.CSVLogger,
    keras.callbacks.TensorBoard,
    keras.callbacks.RemoteMonitor,
    keras.callbacks.History,
)
"""Keras's callbacks that write out an epoch's logs in their `on_epoch_end`."""


def fit_callbacks(tracker: keras.callbacks.Callback) -> list[keras.callbacks.Callback] | None:
    """The callbacks of the `fit()` whose `on_train_begin` calls `tracker`'s, in call order.

    `None` when the hook was not called by a Keras `CallbackList` (a custom
    training loop that calls it by hand).
    """
    callback_list = calling_instance(keras.callbacks.CallbackList)
    if callback_list is None or not any(entry is tracker for entry in callback_list.callbacks):
        return None
    return list(callback_list.callbacks)


def check_log_order(
    tracker: keras.callbacks.Callback, callbacks: list[keras.callbacks.Callback]
) -> None:
    """Raise if a logger runs its `on_epoch_end` before `tracker` adds the importances.

    Raises
    ------
    ValueError
        Naming the logger and the order that works.
    """
    position = next(index for index, entry in enumerate(callbacks) if entry is tracker)
    early = [entry for entry in callbacks[:position] if isinstance(entry, LOG_WRITERS)]
    if early:
        names = ", ".join(type(entry).__name__ for entry in early)
        raise ValueError(
            f"{type(tracker).__name__}(log_importances=...) is listed after {names} in "
            "fit(callbacks=[...]). Keras calls callbacks in list order, so "
            f"{names} would write each epoch before the importances are added to its "
            f"logs. List the tracker first: callbacks=[tracker, {names.lower()}, ...]."
        )


def check_follow_early_stopping(follow_early_stopping: object) -> bool:
    """Return `follow_early_stopping` if it is a bool, else raise naming the accepted values."""
    if not isinstance(follow_early_stopping, bool):
        raise ValueError(
            f"follow_early_stopping={follow_early_stopping!r} is not supported; use True "
            "(after an EarlyStopping(restore_best_weights=True) restores its best epoch, "
            "report the importances of that epoch) or False (of the whole run)."
        )
    return follow_early_stopping


def fit_companions(
    tracker: keras.callbacks.Callback, follow_early_stopping: bool
) -> EarlyStoppingFollower | None:
    """At `on_train_begin`: check the loggers' order, and find the `EarlyStopping` to follow.

    Nothing is checked or followed when the hook was not called by a `fit()`.

    Raises
    ------
    ValueError
        From [`check_log_order()`][check_log_order], with `log_importances`.
    """
    callbacks = fit_callbacks(tracker)
    if callbacks is None:
        return None
    if tracker.log_importances:
        check_log_order(tracker, callbacks)
    return EarlyStoppingFollower.find(callbacks) if follow_early_stopping else None


class EarlyStoppingFollower:
    """Follows an `EarlyStopping(restore_best_weights=True)`: the tracker's state at its best epoch.

    Parameters
    ----------
    stopper : keras.callbacks.EarlyStopping
        The callback whose best epoch is followed: the last one with
        `restore_best_weights=True` in the `fit()` (its weights are set last).
    """

    def __init__(self, stopper: keras.callbacks.EarlyStopping) -> None:
        self.stopper = stopper
        self.saved_epoch: int | None = None
        self.saved_state: dict[str, Any] | None = None

    @classmethod
    def find(cls, callbacks: list[keras.callbacks.Callback]) -> EarlyStoppingFollower | None:
        """A follower of the last `EarlyStopping(restore_best_weights=True)`, or `None`."""
        stoppers = [
            entry
            for entry in callbacks
            if isinstance(entry, keras.callbacks.EarlyStopping) and entry.restore_best_weights
        ]
        return cls(stoppers[-1]) if stoppers else None

    def _best_epoch(self) -> int | None:
        """The epoch whose weights the stopper holds (`None` before it holds any)."""
        if getattr(self.stopper, "best_weights", None) is None:
            return None
        return int(self.stopper.best_epoch)

    def epoch_done(self, epoch: int | None, state: Callable[[], dict[str, Any]]) -> None:
        """After `epoch` ended (the stopper has judged it): keep the state if it is the best.

        Called when the next epoch begins and when training ends: the tracker's
        statistics do not change in between, whether the stopper is listed before or
        after the tracker.
        """
        if epoch is None or epoch == self.saved_epoch or self._best_epoch() != epoch:
            return
        self.saved_epoch = epoch
        self.saved_state = copy.deepcopy(state())

    def finish(
        self, last_epoch: int | None, state: Callable[[], dict[str, Any]]
    ) -> tuple[int, dict[str, Any]] | None:
        """At the end of training: the restored epoch and the tracker's state then, if any.

        Keras 3's `EarlyStopping` restores its best weights at the end of training
        whenever it holds some, whether or not it stopped training early.
        """
        self.epoch_done(last_epoch, state)
        best = self._best_epoch()
        if best is None:
            return None
        if best != self.saved_epoch or self.saved_state is None:
            logger.warning(
                "EarlyStopping restores the weights of epoch %d, but the tracker has no state "
                "of that epoch (it did not see that epoch end); its importances describe the "
                "whole run.",
                best,
            )
            return None
        return best, self.saved_state
