"""Reusable logic of the example scripts and notebooks.

:mod:`.conv` trains small Conv2D classifiers and checks their filter ranking by
ablation; :mod:`.tokens` trains small text CNNs and scores their token ranking
against planted truth (recall@k). Both import their framework only inside the
functions that need it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence


def write_csv(rows: Sequence[Mapping[str, object]], path: str | os.PathLike[str]) -> None:
    """Write a list of same-keyed dicts as a CSV file with a header row."""
    if not rows:
        raise ValueError(f"no rows to write to {os.fspath(path)!r}.")
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def markdown_table(rows: Sequence[Mapping[str, object]], digits: int = 3) -> str:
    """A list of same-keyed dicts as a Markdown table (floats rounded to ``digits``)."""
    if not rows:
        return ""
    header = list(rows[0])

    def cell(value: object) -> str:
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(row[key]) for key in header) + " |" for row in rows]
    return "\n".join(lines)
