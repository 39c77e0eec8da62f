"""Reusable logic of the example scripts and notebooks.

[`conv`][] trains small Conv2D classifiers and checks their filter ranking by
ablation; [`tokens`][] trains small text CNNs and scores their token ranking
against planted truth (recall@k). Both train through the same loops (one per
framework, in `_training`) and import their framework only inside the
functions that need it. The helpers below write the scripts' tables and figures.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def write_csv(rows: Sequence[Mapping[str, object]], path: str | os.PathLike[str]) -> None:
    """Write a list of same-keyed dicts as a CSV file with a header row."""
    if not rows:
        raise ValueError(f"no rows to write to {os.fspath(path)!r}.")
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def markdown_table(rows: Sequence[Mapping[str, object]], digits: int = 3) -> str:
    """A list of same-keyed dicts as a Markdown table (floats rounded to `digits`)."""
    if not rows:
        return ""
    header = list(rows[0])

    def cell(value: object) -> str:
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(row[key]) for key in header) + " |" for row in rows]
    return "\n".join(lines)


def write_figures(
    figures: Mapping[str, Figure], output: Path, prefix: str, *, show: bool = False
) -> list[Path]:
    """Save each figure as `output / f"{prefix}_{key}.png"`; show them if asked; close them all.

    Returns the paths written, in the order of `figures`.
    """
    import matplotlib.pyplot as plt

    paths = []
    for key, fig in figures.items():
        path = output / f"{prefix}_{key}.png"
        fig.savefig(path, dpi=110)
        paths.append(path)
    if show:
        plt.show()
    plt.close("all")
    return paths
