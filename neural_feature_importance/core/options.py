"""Checks of the trackers' options, shared by every adapter.

The trackers are not cloned estimators (unlike scikit-learn's, whose checks
run in ``fit``): like Keras callbacks and torch modules they check their
options in the constructor, so a typo fails on the line that made it. Each
check returns the value it accepts and raises a :class:`ValueError` that
names the option and the accepted values.
"""

from __future__ import annotations

from typing import Literal, cast

import numpy as np

FiniteCheck = Literal["update", "deferred"]
FINITE_CHECK_OPTIONS: tuple[str, ...] = ("update", "deferred")


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and int(value) >= 1


def check_update_every(update_every: object) -> int | None:
    """Return ``update_every`` as an int (or ``None``) if valid, else raise.

    ``None`` takes one snapshot per epoch (the paper's choice); a positive int
    ``N`` takes one every ``N`` optimizer steps (training batches in Keras).
    """
    if update_every is None:
        return None
    if not _is_positive_int(update_every):
        raise ValueError(
            f"update_every={update_every!r} is not supported; use None (one snapshot at "
            "the end of every epoch, the paper's choice) or a positive int N (one "
            "snapshot every N optimizer steps, i.e. training batches)."
        )
    return int(cast(int, update_every))


def check_gradient_every(gradient_every: object) -> int | None:
    """Return ``gradient_every`` as an int (or ``None``) if valid, else raise.

    Gradient scoring modes read one optimizer step in ``gradient_every``;
    ``None`` keeps the mode's own default.
    """
    if gradient_every is None:
        return None
    if not _is_positive_int(gradient_every):
        raise ValueError(
            f"gradient_every={gradient_every!r} is not supported; use a positive number "
            "of optimizer steps between gradient reads (1 reads every step), or None for "
            "the scoring mode's default."
        )
    return int(cast(int, gradient_every))


def check_finite_check(finite_check: object) -> FiniteCheck:
    """Return ``finite_check`` if it is ``"update"`` or ``"deferred"``, else raise."""
    if finite_check not in FINITE_CHECK_OPTIONS:
        raise ValueError(
            f"finite_check={finite_check!r} is not supported; use 'update' (check every "
            "snapshot for NaN/Inf, one device sync each) or 'deferred' (check once per "
            "epoch)."
        )
    return cast(FiniteCheck, finite_check)
