"""``overhead``: time inside the trackers' hooks as a share of training.

An MLP, a Conv2D network and an embedding model, each trained in PyTorch and
in Keras with a per-epoch and a per-step (``update_every=1``) tracker
attached; a separate run without trackers gives the plain training time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import report
from benchmarks.cost.internals import snapshot_hook
from benchmarks.cost.models import OVERHEAD_MODELS, overhead_data, subset, tracker_classes
from benchmarks.cost.tables import cells, data_lines, markdown_table
from benchmarks.training import (
    KERAS_HOOKS,
    TORCH_HOOKS,
    time_hooks,
    timed_read,
    train_keras,
    train_torch,
)

OVERHEAD_ROWS = {"mlp": 20_000, "conv2d": 5_000, "embedding": 4_000}
"""Training rows of each overhead model in the full run."""


def _train(
    framework: str,
    spec: dict[str, Any],
    epochs: int,
    with_trackers: bool,
    device: str,
    seed: int = 0,
) -> tuple[float, list[tuple[str, Any, Any]], Any]:
    """One training run; returns (seconds, [(mode, tracker, timer)], model)."""
    if framework == "torch":
        import torch

        torch.manual_seed(seed)
        model = spec["torch"]().to(device)
        classes = tracker_classes("torch")[spec["kind"]]
        trackers = []
        if with_trackers:
            sync = torch.cuda.synchronize if device.startswith("cuda") else None
            for mode, every in (("epoch", None), ("step", 1)):
                tracker = classes(model, update_every=every, scoring="viann")
                trackers.append((mode, tracker, time_hooks(tracker, TORCH_HOOKS, sync)))
        seconds = train_torch(
            model,
            spec["X"],
            spec["y"],
            "classification",
            epochs=epochs,
            batch_size=spec["batch_size"],
            seed=seed,
            hooks=[t for _, t, _ in trackers],
            device=device,
        )
        return seconds, trackers, model
    import keras

    keras.utils.set_random_seed(seed)
    model = spec["keras"]()
    classes = tracker_classes("keras")[spec["kind"]]
    trackers = []
    if with_trackers:
        for mode, every in (("epoch", None), ("step", 1)):
            tracker = classes(update_every=every, scoring="viann")
            trackers.append((mode, tracker, time_hooks(tracker, KERAS_HOOKS)))
    seconds = train_keras(
        model,
        spec["X_keras"],
        spec["y"],
        "classification",
        epochs=epochs,
        batch_size=spec["batch_size"],
        callbacks=[t for _, t, _ in trackers],
    )
    return seconds, trackers, model


def run_overhead(
    models: Iterable[str] = OVERHEAD_MODELS,
    frameworks: Iterable[str] = ("torch", "keras"),
    *,
    rows: dict[str, int] | None = None,
    epochs: int = 3,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Tracker time as a share of training, per model, framework and snapshot mode.

    For each (model, framework): one run without trackers (plain training
    time) and one with a per-epoch and a per-step tracker attached, each timed
    inside its hooks. ``overhead_pct`` = tracker seconds / (training seconds of
    that run minus both trackers' seconds).
    """
    rows = rows or OVERHEAD_ROWS
    out = []
    for name in models:
        spec = overhead_data(name, rows[name])
        for framework in frameworks:
            dev = device if framework == "torch" else "cpu"
            # Warm-up: first-call set-up (graph tracing, allocators) is not training.
            _train(framework, subset(spec, 2 * spec["batch_size"]), 2, True, dev)
            plain_s, _, _ = _train(framework, spec, epochs, False, dev)
            tracked_s, trackers, _ = _train(framework, spec, epochs, True, dev)
            net = tracked_s - sum(timer.seconds for _, _, timer in trackers)
            for mode, tracker, timer in trackers:
                timed_read(tracker, timer)
                weight_shape = tuple(tracker.view.weight_shape)
                # The hook that takes the snapshots; the rest is the other hooks
                # (layer choice and first copy, per-epoch checks, final scores).
                snapshot_s = timer.per_hook.get(snapshot_hook(framework, mode), 0.0)
                out.append(
                    {
                        "model": name,
                        "framework": framework,
                        "device": dev,
                        "mode": mode,
                        "data": spec["data"],
                        "tracked_shape": "x".join(map(str, weight_shape)),
                        "n_weights": int(np.prod(weight_shape)),
                        "epochs": epochs,
                        "steps": int(np.ceil(len(spec["y"]) / spec["batch_size"])) * epochs,
                        "n_updates": tracker.n_updates_,
                        "tracker_seconds": timer.seconds,
                        "us_per_update": 1e6 * snapshot_s / max(tracker.n_updates_, 1),
                        "rest_seconds": timer.seconds - snapshot_s,
                        "train_seconds_net": net,
                        "train_seconds_plain": plain_s,
                        "overhead_pct": 100.0 * timer.seconds / net,
                    }
                )
            if progress is not None:
                progress(f"overhead {name} ({framework}): {plain_s:.1f} s plain training")
    return pd.DataFrame(out)


def overhead_table(overhead: pd.DataFrame) -> pd.DataFrame:
    """One formatted row per (model, framework, snapshot mode) of :func:`run_overhead`."""
    seconds = report.fmt_seconds
    return pd.DataFrame(
        {
            "model": cells(overhead, "{} ({}, {})".format, "model", "framework", "device"),
            "tracked weight": overhead["tracked_shape"],
            "weights": overhead["n_weights"].map("{:,}".format),
            "snapshots": overhead["mode"],
            "updates": overhead["n_updates"].map("{:,}".format),
            "plain training": overhead["train_seconds_plain"].map(seconds),
            "in tracker": overhead["tracker_seconds"].map(seconds),
            "per snapshot": overhead["us_per_update"].map("{:.0f} µs".format),
            "rest": overhead["rest_seconds"].map(seconds),
            "overhead": overhead["overhead_pct"].map("{:.2f} %".format),
        }
    )


def overhead_markdown(overhead: pd.DataFrame) -> list[str]:
    """The ``overhead`` section of ``cost.md``, as Markdown lines."""
    return [
        "### Tracker overhead during training",
        "",
        "Time inside the tracker's hooks (perf_counter, including reading the importances "
        "at the end) as a share of the training time without it. `plain training` is a "
        "separate run of the same model without any tracker. Per-step = `update_every=1`. "
        "`per snapshot` = time of the hook that takes the snapshots / snapshots; `rest` = "
        "the other hooks (choosing the layer and the first copy, per-epoch NaN checks, the "
        "final scores).",
        "",
        *data_lines(overhead),
        "",
        markdown_table(overhead_table(overhead)),
        "",
    ]
