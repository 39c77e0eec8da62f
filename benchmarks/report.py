"""Writing results: Markdown tables, the machine they ran on, and RESULTS.md sections.

``benchmarks/RESULTS.md`` has a hand-written summary and one generated section
per benchmark, between ``<!-- BEGIN name -->`` and ``<!-- END name -->``
markers; :func:`update_section` replaces a section's body and leaves the rest
of the file alone, so rerunning a benchmark refreshes its tables only.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

BENCHMARKS_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCHMARKS_DIR / "results"
RESULTS_MD = BENCHMARKS_DIR / "RESULTS.md"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _version(module: str) -> str:
    try:
        from importlib import metadata

        return metadata.version(module)
    except Exception:  # any failure just means "not installed"
        return "not installed"


def machine_info(device: str | None = None) -> str:
    """One Markdown paragraph naming the machine, the libraries and the date."""
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    try:
        import torch

        torch_threads = str(torch.get_num_threads())
    except ImportError:  # pragma: no cover
        torch_threads = "n/a"
    tensorflow = _version("tensorflow-cpu")
    if tensorflow == "not installed":
        tensorflow = _version("tensorflow")
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    libraries = (
        f"numpy {_version('numpy')}, torch {_version('torch')}, keras {_version('keras')} "
        f"(backend {backend}), tensorflow {tensorflow}, captum {_version('captum')}, "
        f"shap {_version('shap')}, scikit-learn {_version('scikit-learn')}"
    )
    parts = [
        f"{_cpu_model()}, {os.cpu_count()} logical cores",
        f"device: {device or 'CPU only (no GPU in this session)'}",
        f"Python {platform.python_version()} on {platform.system()}",
        libraries,
        f"OMP_NUM_THREADS={threads}, torch threads {torch_threads}",
        f"run {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
    ]
    return (
        "Machine: "
        + "; ".join(parts)
        + ". The machine was shared with other engineers' jobs while this ran, so "
        "absolute seconds are noisy; the tracker times are measured inside the "
        "tracker, not as a difference of two runs."
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table (first column left-aligned, the rest right-aligned)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        padded = [
            row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(len(row))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * widths[0]] + ["-" * (w - 1) + ":" for w in widths[1:]]
    return "\n".join([line(cells[0]), "| " + " | ".join(rule) + " |", *map(line, cells[1:])])


def fmt_mean_std(values: Sequence[float], digits: int = 2) -> str:
    """``"0.97 ± 0.02"`` over the finite values (``"n/a"`` if none; no ± for one)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return "n/a"
    if arr.size == 1:
        return f"{arr[0]:.{digits}f}"
    return f"{arr.mean():.{digits}f} ± {arr.std(ddof=1):.{digits}f}"


def fmt_seconds(seconds: float) -> str:
    """Seconds with sensible precision (``"0.8 ms"``, ``"1.24 s"``, ``"95 s"``)."""
    if not np.isfinite(seconds):
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    if seconds < 10.0:
        return f"{seconds:.2f} s"
    return f"{seconds:.0f} s"


def update_section(name: str, body: str, path: Path = RESULTS_MD) -> None:
    """Replace the body of section ``name`` in ``path`` (appended if missing)."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def relative(path: Path, start: Path = BENCHMARKS_DIR) -> str:
    """``path`` relative to ``start`` when inside it (for links in RESULTS.md)."""
    try:
        return str(Path(path).resolve().relative_to(start))
    except ValueError:
        return str(path)
