"""Checks of the trackers' options, shared by every adapter.

The trackers are not cloned estimators (unlike scikit-learn's, whose checks
run in `fit`): like Keras callbacks and torch modules they check their
options in the constructor, so a typo fails on the line that made it. Each
check returns the value it accepts and raises a `ValueError` that
names the option and the accepted values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast

import numpy as np

from neural_feature_importance.core.arrays import check_dtype
from neural_feature_importance.core.logs import check_log_importances
from neural_feature_importance.core.modes import get_mode
from neural_feature_importance.core.scoring import check_normalize

FiniteCheck = Literal["update", "deferred"]
FINITE_CHECK_OPTIONS: tuple[str, ...] = ("update", "deferred")


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and int(value) >= 1


def check_update_every(update_every: object) -> int | None:
    """Return `update_every` as an int (or `None`) if valid, else raise.

    `None` takes one snapshot per epoch (the paper's choice); a positive int
    `N` takes one every `N` optimizer steps (training batches in Keras).
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
    """Return `gradient_every` as an int (or `None`) if valid, else raise.

    Gradient scoring modes read one optimizer step in `gradient_every`;
    `None` keeps the mode's own default.
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
    """Return `finite_check` if it is `"update"` or `"deferred"`, else raise."""
    if finite_check not in FINITE_CHECK_OPTIONS:
        raise ValueError(
            f"finite_check={finite_check!r} is not supported; use 'update' (check every "
            "snapshot for NaN/Inf, one device sync each) or 'deferred' (check once per "
            "epoch)."
        )
    return cast(FiniteCheck, finite_check)


def default_finite_check(finite_check: FiniteCheck | None, update_every: int | None) -> FiniteCheck:
    """The `finite_check` every adapter uses when none is given.

    `"update"` (one device sync per snapshot) for per-epoch snapshots;
    `"deferred"` (one per epoch) when `update_every` takes a snapshot
    every few steps, where a sync per snapshot would cost more than it saves.
    """
    if finite_check is not None:
        return finite_check
    return "deferred" if update_every else "update"


def check_scoring(scoring: object) -> str:
    """Return `scoring` if it names a scoring mode, else raise naming the modes."""
    get_mode(cast(str, scoring))
    return cast(str, scoring)


OPTION_CHECKS: dict[str, Callable[[Any], object]] = {
    "normalize": check_normalize,
    "dtype": check_dtype,
    "finite_check": check_finite_check,
    "scoring": check_scoring,
    "update_every": check_update_every,
    "gradient_every": check_gradient_every,
    "log_importances": check_log_importances,
}
"""Every option that a tracker of any framework checks, and its check (one table)."""


def check_core_options(**options: object) -> dict[str, object]:
    """Run the check of every option given (`None` passes where the option allows it).

    Returns the accepted values by name. The trackers of every framework call
    this once, from their constructor.

    Raises
    ------
    ValueError
        Naming the option and the accepted values.
    """
    return {name: OPTION_CHECKS[name](value) for name, value in options.items()}
