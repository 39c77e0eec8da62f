"""The report of the default parts (overhead, scale, memory): ``cost.md`` and its plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks import report
from benchmarks.cost.memory import memory_markdown, memory_modes_markdown
from benchmarks.cost.overhead import overhead_markdown
from benchmarks.cost.scale import scale_markdown


def markdown(
    overhead: pd.DataFrame | None,
    scale: pd.DataFrame | None,
    memory: pd.DataFrame | None,
    plots: Sequence[Path] = (),
    memory_modes: pd.DataFrame | None = None,
) -> str:
    """Markdown tables of the three parts (the ones that ran)."""
    parts: list[str] = []
    sections = (
        (overhead, overhead_markdown),
        (scale, scale_markdown),
        (memory, memory_markdown),
        (memory_modes, memory_modes_markdown),
    )
    for table, section in sections:
        if table is not None and not table.empty:
            parts += section(table)
    for plot_path in plots:
        parts += [f"![{plot_path.stem}]({report.relative(plot_path)})", ""]
    return "\n".join(parts).strip()


def plot(
    overhead: pd.DataFrame | None,
    scale: pd.DataFrame | None,
    memory: pd.DataFrame | None,
    out_dir: Path,
) -> list[Path]:
    """PNG plots of the parts that ran: ``cost_scale``, ``cost_memory``, ``cost_overhead``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    cmap = plt.get_cmap("tab10")
    figures = (
        ("cost_scale", scale, _plot_scale),
        ("cost_memory", memory, _plot_memory),
        ("cost_overhead", overhead, _plot_overhead),
    )
    for name, table, draw in figures:
        if table is None or table.empty:
            continue
        fig = draw(plt, cmap, table)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _plot_scale(plt: Any, cmap: Any, scale: pd.DataFrame) -> Any:
    sweeps = [s for s in ("features", "rows") if (scale["sweep"] == s).any()]
    fig, axes = plt.subplots(1, len(sweeps), figsize=(6 * len(sweeps), 4.5), squeeze=False)
    for ax, sweep in zip(axes[0], sweeps, strict=True):
        sub = scale[(scale["sweep"] == sweep) & (scale["status"] == "ok")]
        for i, method in enumerate(dict.fromkeys(scale["method"])):
            line = sub[sub["method"] == method].sort_values("size")
            if line.empty:
                continue
            style = "--" if method.startswith("training") else "-o"
            ax.plot(
                line["size"],
                line["seconds"],
                style,
                label=method,
                color="black" if method.startswith("training") else cmap(i % 10),
                ms=4,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("features" if sweep == "features" else "training rows")
        ax.set_ylabel("seconds to importances")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"Time against {sweep} (log-log)")
    axes[0][0].legend(fontsize=7)
    return fig


def _plot_memory(plt: Any, cmap: Any, memory: pd.DataFrame) -> Any:
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    x = memory["weight_bytes"]
    for i, (column, label) in enumerate(
        (
            ("torch_state_bytes_float64", "torch state, float64 stats"),
            ("torch_state_bytes_float32", "torch state, float32 stats"),
            ("numpy_update_peak_extra_bytes", "numpy update, peak extra"),
        )
    ):
        ax.plot(x, memory[column], "-o", label=label, color=cmap(i), ms=4)
    ax.plot(x, x, "k--", label="the weight itself", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tracked weight (bytes, float32)")
    ax.set_ylabel("bytes")
    ax.set_title("Tracker memory")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    for i, dtype in enumerate(("float64", "float32")):
        ax2.plot(
            memory["n_weights"],
            memory[f"torch_us_per_update_{dtype}"],
            "-o",
            label=f"{dtype} statistics",
            color=cmap(i),
            ms=4,
        )
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("tracked weights")
    ax2.set_ylabel("µs per update (torch, CPU)")
    ax2.set_title("Update time")
    ax2.legend(fontsize=7)
    ax2.grid(True, which="both", alpha=0.3)
    return fig


def _plot_overhead(plt: Any, cmap: Any, overhead: pd.DataFrame) -> Any:
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(overhead) + 1), 4.2))
    labels = [f"{r['model']}\n{r['framework']}\n{r['mode']}" for _, r in overhead.iterrows()]
    colors = [cmap(0 if m == "epoch" else 1) for m in overhead["mode"]]
    ax.bar(range(len(overhead)), overhead["overhead_pct"], color=colors)
    ax.set_xticks(range(len(overhead)), labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("tracker time, % of training (log)")
    ax.set_title("VIANN overhead: per-epoch (blue) and per-step (orange) snapshots")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    return fig
