"""What the figures share: colours, the lazy pyplot import, new axes, argument checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from neural_feature_importance._optional import import_optional

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


IMPORTANCE_COLOR = "#3b6ea8"
HIGHLIGHT_COLOR = "#d1495b"
MUTED_COLOR = "#9aa5b1"


def _pyplot() -> Any:
    return import_optional("matplotlib.pyplot", "plotting")


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        # Typed Figure | SubFigure: axes inside a subfigure give the SubFigure (same drawing API).
        return cast("Figure", ax.figure), ax
    fig, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _names(feature_names: Sequence[str] | None, n: int) -> list[str]:
    if feature_names is None:
        return [f"feature {i}" for i in range(n)]
    names = [str(name) for name in feature_names]
    if len(names) != n:
        raise ValueError(
            f"feature_names has {len(names)} entries but there are {n} importances; "
            "pass one name per feature."
        )
    return names


def _check_top_k(top_k: int | None, n: int) -> int:
    if top_k is None:
        return n
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k={top_k!r}; use a positive number of features, or None for all.")
    return min(int(top_k), n)
