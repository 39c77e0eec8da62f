"""Exceptions raised by the trackers.

Each error says what went wrong *and* what to do about it, so that a user who
meets one in the middle of a training script can fix the call without reading
the source.
"""

from __future__ import annotations


class NotFittedError(ValueError, AttributeError):
    """Importances were read before the tracker saw enough weight snapshots.

    Inherits from both :class:`ValueError` and :class:`AttributeError`, as
    scikit-learn's ``NotFittedError`` does, so ``hasattr(tracker,
    "feature_importances_")`` is ``False`` until importances exist.
    """


class NonFiniteWeightsError(FloatingPointError, ValueError):
    """A weight snapshot contained NaN or Inf (the training run diverged)."""


class LayerSelectionError(ValueError):
    """The layer to track could not be found or cannot be tracked."""


class StateDictError(ValueError):
    """A saved tracker state does not fit the tracker it is loaded into."""
