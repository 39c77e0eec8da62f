"""``memory``: the bytes a tracker keeps against the size of the tracked weight.

VIANN on ``Linear(n, 64)`` weights of growing size (float64 and float32
statistics, the numpy core's peak extra memory during an update, the time per
update); then every scoring mode and both dtypes on a dense weight and an
embedding table, in the PyTorch trackers and the numpy core, against
:data:`MEMORY_GOALS`.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import report
from benchmarks.cost.internals import COLUMNS_ATTRIBUTE, PENDING_SUMS, read_steps
from benchmarks.cost.tables import fmt_bytes, markdown_table
from benchmarks.cost.tracker_bytes import split_extra, tracker_bytes

MEMORY_INPUTS = (10, 100, 1_000, 10_000, 100_000)
MEMORY_UNITS = 64
MEMORY_LAYERS: dict[str, tuple[str, tuple[int, int]]] = {
    # name -> (kind, weight shape in PyTorch's layout)
    "dense": ("dense", (64, 10_000)),
    "embedding": ("embedding", (50_000, 768)),
}
MEMORY_GOALS = {
    ("taylor", "float64"): 0.1,
    ("taylor", "float32"): 0.1,
    ("viann", "float64"): 8.0,
    ("viann", "float32"): 4.0,
}
"""Largest tracker memory, as a multiple of the float32 weight's bytes, per (mode, dtype)."""
MEMORY_STEPS_PER_EPOCH = 4


def _memory_torch(
    kind: str, shape: tuple[int, int], scoring: str, dtype: str, epochs: int, seed: int = 0
) -> dict[str, Any]:
    """A torch tracker of one weight through ``epochs`` epochs and one more step; its bytes.

    Every step moves the weight and leaves a fixed gradient in ``param.grad``
    (as ``backward()`` and ``optimizer.step()`` would), then calls
    ``on_step_end()``; every epoch ends with ``on_epoch_end()``. The extra
    step at the end leaves a gradient mode's sums since the last snapshot
    pending, as in the middle of an epoch.
    """
    import torch
    from torch import nn

    from neural_feature_importance.torch import (
        EmbeddingVarianceImportanceTorch,
        VarianceImportanceTorch,
    )

    torch.manual_seed(seed)
    if kind == "embedding":
        layer: nn.Embedding | nn.Linear = nn.Embedding(*shape)
        tracker_class: type = EmbeddingVarianceImportanceTorch
    else:
        units, n_in = shape
        layer = nn.Linear(n_in, units, bias=False)
        tracker_class = VarianceImportanceTorch
    model = nn.Sequential(layer)
    weight = layer.weight
    with torch.no_grad():
        weight.grad = torch.randn_like(weight).mul_(1e-3)
        move = torch.randn_like(weight).mul_(1e-3)
    tracker = tracker_class(model, "0", scoring=scoring, dtype=dtype)
    tracker.on_train_begin()
    every = read_steps(scoring)
    snapshots, reads = [], []
    step = 0

    def one_step() -> None:
        nonlocal step
        with torch.no_grad():
            weight.add_(move)
        step += 1
        start = time.perf_counter()
        tracker.on_step_end()
        if every is not None and (step - 1) % every == 0:
            reads.append(time.perf_counter() - start)

    for _ in range(epochs):
        for _ in range(MEMORY_STEPS_PER_EPOCH):
            one_step()
        start = time.perf_counter()
        tracker.on_epoch_end()
        snapshots.append(time.perf_counter() - start)
    one_step()
    state, extra = tracker_bytes(tracker, exclude=[weight, weight.grad, move])
    # The first snapshot allocates the statistics: the steady cost is the others'.
    steady = snapshots[1:] or snapshots
    return {
        "state_bytes": state,
        **split_extra(extra),
        "us_per_snapshot": 1e6 * float(np.median(steady)),
        "us_per_gradient_read": 1e6 * float(np.median(reads)) if reads else np.nan,
        "update_peak_bytes": np.nan,
    }


def _memory_numpy(
    kind: str, shape: tuple[int, int], scoring: str, dtype: str, epochs: int, seed: int = 0
) -> dict[str, Any]:
    """The numpy core through the same steps as :func:`_memory_torch`; its bytes and peak.

    The weights are in the core's default (Keras) layout. The peak is the most
    memory the core allocated during the last snapshot or the last gradient
    read, on top of what it held before (``tracemalloc``).
    """
    from neural_feature_importance import (
        EmbeddingVarianceImportanceBase,
        VarianceImportanceBase,
    )

    rng = np.random.default_rng(seed)
    keras_shape = shape if kind == "embedding" else (shape[1], shape[0])
    weights = rng.standard_normal(keras_shape, dtype=np.float32)
    gradient = 1e-3 * rng.standard_normal(keras_shape, dtype=np.float32)
    move = 1e-3 * rng.standard_normal(keras_shape, dtype=np.float32)
    core_class = EmbeddingVarianceImportanceBase if kind == "embedding" else VarianceImportanceBase
    core = core_class(scoring=scoring, dtype=dtype)
    core.start(weights)
    every = read_steps(scoring)
    peaks = []
    step = 0

    def traced(call: Callable[[], None], trace: bool) -> None:
        if not trace:
            call()
            return
        tracemalloc.start()
        call()
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()

    def one_step(trace: bool) -> None:
        nonlocal step
        read = every is not None and step % every == 0
        if read and step:  # start() held the first read's weight before
            core.hold_weights_before(weights)  # descent_taylor's (a no-op for the others)
        np.add(weights, move, out=weights)
        step += 1
        if read:
            traced(lambda: core.update_gradients(gradient, weights), trace)

    for epoch in range(epochs):
        for _ in range(MEMORY_STEPS_PER_EPOCH):
            one_step(trace=False)
        traced(lambda: core.update(weights), trace=epoch == epochs - 1)
        core.end_epoch()
    one_step(trace=True)
    state, extra = tracker_bytes(core, exclude=[weights, gradient, move])
    return {
        "state_bytes": state,
        **split_extra(extra),
        "us_per_snapshot": np.nan,
        "us_per_gradient_read": np.nan,
        "update_peak_bytes": max(peaks),
    }


def run_memory_modes(
    layers: dict[str, tuple[str, tuple[int, int]]] | None = None,
    modes: Sequence[str] | None = None,
    dtypes: Sequence[str] = ("float64", "float32"),
    frameworks: Sequence[str] = ("torch", "numpy"),
    epochs: int = 3,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Tracker memory of every scoring mode and statistics dtype, per tracked weight.

    Parameters
    ----------
    layers : dict, optional
        Name -> (``"dense"`` or ``"embedding"``, weight shape in PyTorch's
        layout); default :data:`MEMORY_LAYERS` (a 64x10,000 ``Linear``
        weight and a 50,000x768 embedding table).
    modes : sequence of str, optional
        Scoring modes (default: every one in ``SCORING_MODES``).
    dtypes : sequence of str
        Precisions of the statistics.
    frameworks : sequence of str
        ``"torch"`` (the PyTorch trackers) and ``"numpy"`` (the core).
    epochs : int
        Epochs of :data:`MEMORY_STEPS_PER_EPOCH` steps before the measure.

    Returns
    -------
    DataFrame
        One row per (layer, framework, mode, dtype): the state's bytes, the
        bytes held besides it, their ``ratio`` to the float32 weight's bytes
        and the ``verdict`` against :data:`MEMORY_GOALS` (``PASS``, ``FAIL``
        or empty where a mode has no goal).

    Examples
    --------
    >>> table = run_memory_modes({"small": ("dense", (64, 20))}, modes=["viann"], epochs=2)
    >>> table[["framework", "dtype", "ratio", "verdict"]].to_dict("records")[0]
    {'framework': 'torch', 'dtype': 'float64', 'ratio': 8.0, 'verdict': 'PASS'}
    """
    from neural_feature_importance.core.modes import SCORING_MODES

    layers = MEMORY_LAYERS if layers is None else layers
    modes = list(SCORING_MODES) if modes is None else list(modes)
    measure = {"torch": _memory_torch, "numpy": _memory_numpy}
    out = []
    for name, (kind, shape) in layers.items():
        n_weights = int(np.prod(shape))
        start = time.perf_counter()
        for framework in frameworks:
            for scoring in modes:
                for dtype in dtypes:
                    if n_weights >= 1_000_000:
                        gc.collect()  # free the last tracker's statistics first
                    row = measure[framework](kind, shape, scoring, dtype, epochs)
                    total = row["state_bytes"] + row["extra_bytes"]
                    goal = MEMORY_GOALS.get((scoring, dtype), np.nan)
                    ratio = total / (4 * n_weights)
                    verdict = "" if np.isnan(goal) else ("PASS" if ratio <= goal else "FAIL")
                    out.append(
                        {
                            "layer": name,
                            "kind": kind,
                            "weight_shape": "x".join(map(str, shape)),
                            "n_weights": n_weights,
                            "weight_bytes": 4 * n_weights,
                            "framework": framework,
                            "scoring": scoring,
                            "dtype": dtype,
                            **row,
                            "tracker_bytes": total,
                            "ratio": ratio,
                            "goal": goal,
                            "verdict": verdict,
                        }
                    )
        if progress is not None:
            progress(
                f"memory {name} {'x'.join(map(str, shape))}: {time.perf_counter() - start:.1f} s"
            )
    return pd.DataFrame(out)


def run_memory(
    inputs: Sequence[int] = MEMORY_INPUTS, units: int = MEMORY_UNITS, updates: int = 10
) -> pd.DataFrame:
    """VIANN's memory and update time against the tracked ``Linear(inputs, units)`` weight.

    One row per weight: the bytes the torch tracker keeps (state plus
    anything held besides it, :func:`tracker_bytes`) with float64 and float32
    statistics, its median time per snapshot, and the numpy core's bytes and
    the peak it allocates during an update.
    """
    out = []
    for n_in in inputs:
        shape = (units, n_in)
        row: dict[str, Any] = {
            "n_weights": n_in * units,
            "weight_shape": f"{units}x{n_in}",
            "weight_bytes": 4 * n_in * units,
        }
        for dtype in ("float64", "float32"):
            torch_row = _memory_torch("dense", shape, "viann", dtype, updates)
            row[f"torch_state_bytes_{dtype}"] = torch_row["state_bytes"] + torch_row["extra_bytes"]
            row[f"torch_extra_bytes_{dtype}"] = torch_row["extra_bytes"]
            row[f"torch_us_per_update_{dtype}"] = torch_row["us_per_snapshot"]
        numpy_row = _memory_numpy("dense", shape, "viann", "float64", 2)
        row["numpy_state_bytes"] = numpy_row["state_bytes"] + numpy_row["extra_bytes"]
        row["numpy_update_peak_extra_bytes"] = numpy_row["update_peak_bytes"]
        out.append(row)
    return pd.DataFrame(out)


def memory_table(memory: pd.DataFrame) -> pd.DataFrame:
    """One formatted row per weight of :func:`run_memory`."""

    def state(dtype: str) -> pd.Series:
        state_bytes = memory[f"torch_state_bytes_{dtype}"]
        times = state_bytes / memory["weight_bytes"]
        return state_bytes.map(fmt_bytes) + times.map(" ({:.1f}x)".format)

    return pd.DataFrame(
        {
            "weight": memory["weight_shape"],
            "weights": memory["n_weights"].map("{:,}".format),
            "weight size": memory["weight_bytes"].map(fmt_bytes),
            "state, float64 stats": state("float64"),
            "state, float32 stats": state("float32"),
            "update peak extra": memory["numpy_update_peak_extra_bytes"].map(fmt_bytes),
            "update, float64": memory["torch_us_per_update_float64"].map("{:.0f} µs".format),
            "update, float32": memory["torch_us_per_update_float32"].map("{:.0f} µs".format),
        }
    )


def memory_markdown(memory: pd.DataFrame) -> list[str]:
    """The VIANN memory section of ``cost.md``, as Markdown lines."""
    return [
        "### VIANN's memory against the tracked weight",
        "",
        'A `Linear(n, 64)` weight (float32), `scoring="viann"`. State = the arrays of '
        "the torch tracker's `state_dict()` (shift, mean, M2, last weights) plus any it "
        "holds besides them (none). Update peak = the most the numpy core allocates during "
        "one update, on top of what it holds (tracemalloc; float64 statistics).",
        "",
        markdown_table(memory_table(memory)),
        "",
    ]


def memory_modes_table(table: pd.DataFrame) -> pd.DataFrame:
    """One formatted row per (layer, mode, dtype) of :func:`run_memory_modes`.

    The torch tracker's row, with the numpy core's ratio and peak beside it
    where the core ran; the verdict needs both within the goal.
    """
    key = ["layer", "scoring", "dtype"]
    torch_rows = table[table["framework"] == "torch"]
    numpy_rows = table.loc[table["framework"] == "numpy", [*key, "ratio", "update_peak_bytes"]]
    rows = torch_rows.merge(
        numpy_rows, on=key, how="left", suffixes=("", "_numpy"), indicator=True
    ).reset_index(drop=True)
    has_numpy = rows["_merge"] == "both"
    has_goal = np.isfinite(rows["goal"].astype(float))
    worst = np.fmax(rows["ratio"], rows["ratio_numpy"])
    seconds = report.fmt_seconds
    return pd.DataFrame(
        {
            "weight": rows["layer"] + " " + rows["weight_shape"],
            "scoring": rows["scoring"],
            "stats": rows["dtype"],
            "state": rows["state_bytes"].map(fmt_bytes),
            "besides": rows["extra_bytes"].map(fmt_bytes),
            "x weight (torch)": rows["ratio"].map("{:.3g}x".format),
            "x weight (numpy)": rows["ratio_numpy"].map("{:.3g}x".format).where(has_numpy, ""),
            "columns": rows["columns_bytes"].map(fmt_bytes),
            "numpy peak": rows["update_peak_bytes_numpy"].map(fmt_bytes).where(has_numpy, ""),
            "snapshot": (rows["us_per_snapshot"] / 1e6).map(seconds),
            "gradient read": (rows["us_per_gradient_read"] / 1e6)
            .map(seconds)
            .where(np.isfinite(rows["us_per_gradient_read"]), ""),
            "goal": rows["goal"].map("<= {:g}x".format).where(has_goal, ""),
            "verdict": np.where(has_goal, np.where(worst <= rows["goal"], "PASS", "FAIL"), ""),
        }
    )


def memory_modes_markdown(table: pd.DataFrame) -> list[str]:
    """The per-mode memory table (one row per layer, mode and dtype), as Markdown lines."""
    layers = table.drop_duplicates("layer")
    described = ", ".join(
        f"{r['layer']} {r['weight_shape']} ({fmt_bytes(r['weight_bytes'])} in float32)"
        for _, r in layers.iterrows()
    )
    goals = ", ".join(
        f"{mode} {dtype} <= {goal:g}x" for (mode, dtype), goal in MEMORY_GOALS.items()
    )
    return [
        "### Tracker memory per scoring mode",
        "",
        f"Tracked weights: {described}. One tracker per scoring mode and statistics dtype, "
        f"driven through {MEMORY_STEPS_PER_EPOCH} steps per epoch (the weight moved and a "
        "gradient left in `param.grad` at each step, a snapshot per epoch) and one more "
        "step, so that a gradient mode's sums since the last snapshot are pending, as in the "
        "middle of an epoch. `state` = the arrays of `tracker.state_dict()`, recursively; "
        "`besides` = arrays the tracker holds that its state does not (the gradient modes' "
        f"reads held since the last fold, `{PENDING_SUMS}`, which `state_dict()` folds into "
        "the state); "
        "`x weight` = (state + besides) / the float32 weight's bytes, for the torch tracker "
        "and for the numpy core (`VarianceImportanceBase`, the statistics of the Keras "
        "callbacks). Not counted: the resolved feature columns "
        f"(`{COLUMNS_ATTRIBUTE}`: feature names "
        "and one index array per column, from the options, not statistics), shown as "
        "`columns`. `numpy peak` = the most the numpy core allocated during one snapshot or "
        "gradient read on top of what it held (tracemalloc). `snapshot` and `gradient read` "
        "= median time of the torch tracker's `on_epoch_end` (steady snapshots) and of its "
        f"`on_step_end` on read steps (CPU, one thread). Goals: {goals}; PASS needs both the "
        "torch tracker and the numpy core within it.",
        "",
        markdown_table(memory_modes_table(table)),
        "",
    ]
