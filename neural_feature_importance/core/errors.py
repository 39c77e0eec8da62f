"""Exceptions raised by the trackers.

Each error says what went wrong *and* what to do about it, so that a user who
meets one in the middle of a training script can fix the call without reading
the source.
"""

from __future__ import annotations


class NotFittedError(ValueError, AttributeError):
    """Importances were read before the tracker saw enough weight snapshots.

    Inherits from both `ValueError` and `AttributeError`, as
    scikit-learn's `NotFittedError` does, so
    `hasattr(tracker, "feature_importances_")` is `False` until importances exist.
    """


CLONED_CALLBACK_HINT = (
    "If it was passed as a callback to an estimator that scikit-learn cloned "
    "(GridSearchCV, SelectFromModel, RFE, cross_validate), this instance never trained: the "
    "fitted copy is in the fitted estimator's callbacks (skorch: `net.callbacks_`; scikeras: "
    "`estimator.callbacks`), e.g. of `search.best_estimator_` or `selector.estimator_`, and "
    "`neural_feature_importance.importance_getter(fitted_estimator)` reads its importances."
)
"""What `never_trained()` adds to the message of a tracker that never saw training."""


def never_trained(message: str) -> NotFittedError:
    """A `NotFittedError` for a tracker that never saw training: `message`, then where a clone is.

    A callback handed to a scikit-learn meta-estimator is cloned (deep-copied) before it is
    fitted, so the instance the user holds stays empty; the message says where the fitted copy is.
    """
    return NotFittedError(f"{message} {CLONED_CALLBACK_HINT}")


SNAPSHOT_ADVICE = (
    "To score from weight snapshots alone, with no gradient, construct the tracker with "
    "scoring='viann' (the paper's method) or scoring='growth'."
)
"""The way out for a run that gives a gradient mode no gradient: a snapshot mode.

Every tracker built without `scoring=` uses the recommended mode, a gradient mode, so
this is what a loop written for the snapshot-only VIANN needs."""


VIANN_DEFAULT_STATE = (
    "what a tracker or callback built without scoring= saved before the default became "
    "the recommended mode"
)
"""Where a saved VIANN state met by a tracker of another mode most likely comes from.

Said by the state check and the callbacks' resume hints: a run saved with the
1.0 default (VIANN) and resumed with the recommended mode, the default now."""


def no_gradient(message: str) -> ValueError:
    """A `ValueError` for a gradient mode that no gradient reaches: `message`, then the way out.

    Raised where the misuse shows first (a snapshot before any gradient on the
    bare core, an epoch without a read in an adapter), not when the importances
    are read after the whole run.
    """
    return ValueError(f"{message} {SNAPSHOT_ADVICE}")


class NonFiniteWeightsError(FloatingPointError, ValueError):
    """A weight snapshot contained NaN or Inf (the training run diverged)."""


class LayerSelectionError(ValueError):
    """The layer to track could not be found or cannot be tracked."""


class StateDictError(ValueError):
    """A saved tracker state does not fit the tracker it is loaded into."""


class NoSignalError(ValueError):
    """Every raw score is exactly zero: the run recorded no signal at all.

    Normalising such scores would give every feature the same importance,
    which reads as "every feature matters". The message lists the likely
    causes (a gradient cleared before it was read, a frozen layer or one
    outside the forward pass, a learning rate of 0).
    """
