"""Shared by every part's tables: the Markdown rendering and the cell formats.

A table is a :class:`pandas.DataFrame` whose column names are the header and
whose cells are already formatted strings; :func:`markdown_table` renders it
with :meth:`DataFrame.to_markdown` (``tabulate``), first column left-aligned
and the others right-aligned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd


def markdown_table(frame: pd.DataFrame) -> str:
    """GitHub Markdown of ``frame``: its columns are the header, its index is left out.

    Cells are written as they are (no number parsing), so preformatted
    strings such as ``"1,280"`` or ``"+0.5 %"`` stay as given.

    Examples
    --------
    >>> print(markdown_table(pd.DataFrame({"model": ["mlp"], "steps": ["1,000"]})))
    | model   |   steps |
    |:--------|--------:|
    | mlp     |   1,000 |
    """
    align = ("left",) + ("right",) * (frame.shape[1] - 1)
    return frame.to_markdown(index=False, colalign=align, disable_numparse=True)


def cells(frame: pd.DataFrame, fmt: Callable[..., str], *columns: str) -> list[str]:
    """One formatted column: ``fmt(*values)`` of each row's values in ``columns``.

    Examples
    --------
    >>> frame = pd.DataFrame({"model": ["mlp"], "backend": ["jax"]})
    >>> cells(frame, "{} ({})".format, "model", "backend")
    ['mlp (jax)']
    """
    return [fmt(*values) for values in zip(*(frame[c] for c in columns), strict=True)]


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, first quartile, third quartile) of the finite values (NaNs if none)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return (np.nan, np.nan, np.nan)
    q1, q2, q3 = np.percentile(arr, [25, 50, 75])
    return (float(q2), float(q1), float(q3))


def rotated(items: Sequence[str], by: int) -> list[str]:
    """``items`` rotated left by ``by`` (modulo their number): the order of one round."""
    shift = by % len(items)
    return [*items[shift:], *items[:shift]]


def data_lines(frame: pd.DataFrame) -> list[str]:
    """One Markdown bullet per model, naming its data (``- mlp: 20,000 x 100 ...``)."""
    return sorted({f"- {r['model']}: {r['data']}" for _, r in frame.iterrows()})


def fmt_pct(med: float, q1: float, q3: float) -> str:
    """``"+1.2 % [+0.4, +2.0]"``: a median percentage and its quartiles."""
    if not np.isfinite(med):
        return "n/a"
    return f"{med:+.1f} % [{q1:+.1f}, {q3:+.1f}]"


def fmt_ms(seconds: float) -> str:
    """Seconds as ``"12.3 ms"`` below one second, else ``"1.23 s"``."""
    if not np.isfinite(seconds):
        return "n/a"
    return f"{1e3 * seconds:.1f} ms" if abs(seconds) < 1.0 else f"{seconds:.2f} s"


def fmt_us(value: float) -> str:
    """Microseconds as ``"12 µs"``."""
    return "n/a" if not np.isfinite(value) else f"{value:.0f} µs"


def fmt_int(value: float) -> str:
    """An integer count, ``"n/a"`` when missing."""
    return "n/a" if not np.isfinite(value) else str(int(value))


def fmt_bytes(n: float) -> str:
    """Bytes as ``"320 B"``, ``"5.1 kB"`` or ``"12.8 MB"`` (empty when missing)."""
    if not np.isfinite(n):
        return ""
    if n < 1e3:
        return f"{int(n)} B"
    if n < 1e6:
        return f"{n / 1e3:.1f} kB"
    return f"{n / 1e6:.1f} MB"
