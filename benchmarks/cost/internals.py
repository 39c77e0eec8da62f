"""The library internals the cost benchmark reads: one small helper per concept.

Each private attribute, hook or module path the benchmark depends on is
named here once, so that following a move is one edit in this file.
"""

from __future__ import annotations

import re
from typing import Any

COLUMNS_ATTRIBUTE = "_columns"
"""Tracker attribute of the resolved feature columns (names, one index array per column)."""

PENDING_SUMS = "statistics.mode.held._held"
"""Where the gradient modes hold their reads since the last fold (folded into the state on read)."""

KERAS_TAP_HOOKS = ("_install_tap", "_drain_tap")
"""The Keras callback's methods that install the gradient tap and drain its sums."""


def is_columns_path(path: str) -> bool:
    """Whether an attribute path found by the memory walk is the feature columns' metadata.

    Matched as a component of the path (``_columns.names``, or
    ``core._columns.names`` where the tracker holds its core in an attribute).
    """
    return re.search(rf"(^|\.){COLUMNS_ATTRIBUTE}($|[.\[])", path) is not None


def gradient_reads(tracker: Any) -> int:
    """Gradient steps a tracker's scoring mode has read (0 for a snapshot mode)."""
    return int(tracker.n_gradient_steps_)


def snapshot_hook(framework: str, mode: str) -> str:
    """The hook that takes the snapshots of a ``"epoch"`` or ``"step"`` tracker.

    On Keras the per-step hook is ``_count_batch`` (what the batch-end
    property returns, see :data:`benchmarks.training.KERAS_HOOKS`).
    """
    return {
        ("torch", "epoch"): "on_epoch_end",
        ("torch", "step"): "on_step_end",
        ("keras", "epoch"): "on_epoch_end",
        ("keras", "step"): "_count_batch",
    }[framework, mode]


def read_steps(scoring: str) -> int | None:
    """A gradient mode's default steps between gradient reads; ``None`` for snapshot modes."""
    from neural_feature_importance.core.modes import get_mode

    mode = get_mode(scoring)
    return mode.gradient_every if mode.needs_gradients else None
