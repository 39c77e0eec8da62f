"""``keras_gradients``: training time of the Keras gradient mode, with and without the tap.

The tap (``scoring="taylor"`` and ``"steady_taylor"``, the recommended mode)
does its per-step work inside the compiled train step, where hook timing
cannot see it: paired, interleaved fits of a fresh model without any
callback, with a ``scoring="viann"`` callback and with a ``taylor`` and a
``steady_taylor`` one, then the compiled step alone
(:mod:`benchmarks.cost.keras_step_profile`). One subprocess per Keras backend.
"""

from __future__ import annotations

import gc
import json
import logging
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import report
from benchmarks.cost.internals import KERAS_TAP_HOOKS, gradient_reads
from benchmarks.cost.keras_step_profile import keras_step_profile
from benchmarks.cost.models import overhead_data, subset, tracker_classes
from benchmarks.cost.tables import rotated
from benchmarks.training import (
    KERAS_HOOKS,
    count_keras_traces,
    keras_backend_env,
    keras_epoch_clock,
    start_keras_child,
    time_hooks,
    train_keras,
)
from neural_feature_importance.core.errors import NotFittedError

KERAS_GRADIENT_BACKENDS = ("tensorflow", "jax")
KERAS_GRADIENT_MODELS = ("mlp", "conv2d", "embedding")
KERAS_GRADIENT_VARIANTS = ("plain", "viann", "taylor", "steady_taylor")
GRADIENT_VARIANTS = ("taylor", "steady_taylor")
"""The variants that read the gradient through the tap."""
KERAS_GRADIENT_ROWS = {"mlp": 10_000, "conv2d": 5_000, "embedding": 4_000}
"""Training rows of each model in the full run."""
# The module each Keras backend needs (a backend whose module is missing is skipped).
BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


class _WarningCount(logging.Handler):
    """Collects the library's WARNING log records during one fit."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _keras_gradient_fit(
    spec: dict[str, Any], variant: str, epochs: int, seed: int = 0, refit: bool = False
) -> dict[str, Any]:
    """One ``fit`` of a fresh model (same seed) with ``variant``'s callback; its timings.

    ``variant``: ``plain`` (no callback), ``viann`` (per-epoch snapshots),
    ``taylor`` or ``steady_taylor`` (the gradient tap). The epoch clock is the last callback, so an
    epoch's time includes the tracker's ``on_epoch_end`` (the tap's drain).
    ``refit=True`` fits the model a second time for ``epochs`` more and
    reports that second ``fit`` (retracing, and the train function rebuilt).
    Keras's global state and Python's garbage are cleared before the fit, and
    the cyclic garbage collector is off during it (as ``timeit`` does), so that
    a collection of earlier models' garbage does not land in one variant's epoch.
    """
    import keras

    keras.backend.clear_session()  # also collects the garbage
    keras.utils.set_random_seed(seed)
    model = spec["keras"]()
    traces = count_keras_traces(model)
    tracker = None
    hooks = inner = None
    if variant != "plain":
        tracker = tracker_classes("keras")[spec["kind"]](scoring=variant)
        # Nested inside the hooks: the tap's install (train function rebuilt) and drain.
        inner = time_hooks(tracker, KERAS_TAP_HOOKS)
        hooks = time_hooks(tracker, KERAS_HOOKS)
    library_log = _WarningCount()
    package_logger = logging.getLogger("neural_feature_importance")
    package_logger.addHandler(library_log)
    clock = keras_epoch_clock()
    fit_args = (model, spec["X_keras"], spec["y"], "classification")
    callbacks = [*([tracker] if tracker is not None else []), clock]
    traces_before = 0
    gc.disable()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if refit:
                train_keras(
                    *fit_args, epochs=epochs, batch_size=spec["batch_size"], callbacks=callbacks
                )
                traces_before = traces()
                if hooks is not None and inner is not None:
                    for timer in (hooks, inner):
                        timer.seconds, timer.calls, timer.per_hook = 0.0, 0, {}
                # train_keras compiles again, which resets the train function; fit on
                # the compiled model directly, as a user continuing training would.
                start = time.perf_counter()
                model.fit(
                    np.asarray(spec["X_keras"], dtype=np.float32),
                    np.asarray(spec["y"]),
                    epochs=epochs,
                    batch_size=spec["batch_size"],
                    shuffle=True,
                    verbose=0,
                    callbacks=callbacks,
                )
                fit_s = time.perf_counter() - start
            else:
                fit_s = train_keras(
                    *fit_args, epochs=epochs, batch_size=spec["batch_size"], callbacks=callbacks
                )
    finally:
        gc.enable()
        package_logger.removeHandler(library_log)
    epoch_s, epoch_cpu = clock.epoch_seconds, clock.epoch_cpu_seconds
    ours = [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if "neural_feature_importance" in str(w.filename)
    ]
    row: dict[str, Any] = {
        "kind": "refit" if refit else "fit",
        "variant": variant,
        "epochs": epochs,
        "steps_per_epoch": int(np.ceil(len(spec["y"]) / spec["batch_size"])),
        "fit_seconds": fit_s,
        "first_epoch_seconds": epoch_s[0],
        "first_epoch_cpu_seconds": epoch_cpu[0],
        # Median of the epochs after the first: steady state, tracing excluded.
        "epoch_seconds": float(np.median(epoch_s[1:])) if len(epoch_s) > 1 else np.nan,
        "epoch_cpu_seconds": float(np.median(epoch_cpu[1:])) if len(epoch_cpu) > 1 else np.nan,
        "epoch_seconds_all": ";".join(f"{s:.5f}" for s in epoch_s),
        "epoch_cpu_seconds_all": ";".join(f"{s:.5f}" for s in epoch_cpu),
        "traces": traces() - traces_before,
        "optimizer_after_fit": type(model.optimizer).__name__,
        "library_warnings": " | ".join([*library_log.messages, *ours]),
    }
    if tracker is not None and hooks is not None and inner is not None:
        per_hook, nested = hooks.per_hook, inner.per_hook
        install, drain = KERAS_TAP_HOOKS
        row.update(
            {
                "on_train_begin_seconds": per_hook.get("on_train_begin", 0.0),
                "install_seconds": nested.get(install, 0.0),
                "on_epoch_end_seconds": per_hook.get("on_epoch_end", 0.0) / max(len(epoch_s), 1),
                # The drains at the epochs' ends (on_train_end drains once more, empty).
                "drain_seconds": nested.get(drain, 0.0) / max(len(epoch_s) + 1, 1),
                "on_train_end_seconds": per_hook.get("on_train_end", 0.0),
                "n_updates": tracker.n_updates_,
                "gradient_reads": gradient_reads(tracker) if variant in GRADIENT_VARIANTS else 0,
            }
        )
        # Reading the importances proves the fit tracked something (it is not timed here).
        # (steady_taylor needs two reads: the warm-up fits of two batches have one.)
        try:
            row["importances_read"] = bool(np.all(np.isfinite(tracker.feature_importances_)))
        except NotFittedError:
            row["importances_read"] = False
    return row


def keras_gradient_fits(
    models: Iterable[str] = KERAS_GRADIENT_MODELS,
    *,
    rows: dict[str, int] | None = None,
    epochs: int = 3,
    repeats: int = 6,
    step_blocks: int = 20,
    variants: Sequence[str] = KERAS_GRADIENT_VARIANTS,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Interleaved fits with and without a Keras tracker, on the backend already loaded.

    For each model: a warm-up fit of every variant on two batches (first-use
    costs of the process), then ``repeats`` rounds; a round fits a fresh model
    of the same seed once per variant (``plain``, ``viann``, ``taylor``,
    ``steady_taylor``), in an
    order rotated from round to round, each for ``1 + epochs`` epochs (the
    first epoch, which traces and compiles the train step, is reported apart).
    Then one ``refit`` per variant: a second ``fit()`` of the same model (two
    epochs each), and a profile of the compiled train step alone with and
    without the tap (:func:`~benchmarks.cost.keras_step_profile.keras_step_profile`).
    One row per fit (``kind`` ``fit`` or ``refit``) or per block of steps
    (``kind="step"``).
    """
    import keras

    backend = keras.backend.backend()
    rows = rows or KERAS_GRADIENT_ROWS
    out = []
    for name in models:
        spec = overhead_data(name, rows[name])
        columns = {"backend": backend, "model": name, "data": spec["data"]}
        for variant in variants:
            _keras_gradient_fit(subset(spec, 2 * spec["batch_size"]), variant, 2)
        for rep in range(repeats):
            order = rotated(variants, rep)
            for position, variant in enumerate(order):
                row = _keras_gradient_fit(spec, variant, 1 + epochs)
                out.append({**columns, "repeat": rep, "position": position, **row})
            if progress is not None:
                last = {r["variant"]: r["epoch_seconds"] for r in out[-len(order) :]}
                progress(
                    f"keras_gradients {backend} {name} round {rep + 1}/{repeats}: "
                    + ", ".join(f"{v} {1e3 * last[v]:.0f} ms/epoch" for v in variants)
                )
        for variant in variants:
            row = _keras_gradient_fit(spec, variant, 2, refit=True)
            out.append({**columns, "repeat": -1, "position": -1, **row})
        keras.backend.clear_session()
        for row in keras_step_profile(spec, blocks=step_blocks):
            out.append({**columns, **row})
        if progress is not None:
            progress(f"keras_gradients {backend} {name}: second fit and step profile done")
    return pd.DataFrame(out)


def _keras_gradients_child(config_path: str, out_path: str) -> None:
    """Entry point of one backend's subprocess (``KERAS_BACKEND`` is set by the parent)."""
    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    start_keras_child(int(config["threads"]))
    table = keras_gradient_fits(
        config["models"],
        rows=config["rows"],
        epochs=config["epochs"],
        repeats=config["repeats"],
        step_blocks=config["step_blocks"],
        progress=lambda line: print(line, flush=True),
    )
    table.to_csv(out_path, index=False)


def run_keras_gradients(
    backends: Iterable[str] = KERAS_GRADIENT_BACKENDS,
    models: Iterable[str] = KERAS_GRADIENT_MODELS,
    *,
    rows: dict[str, int] | None = None,
    epochs: int = 3,
    repeats: int = 6,
    step_blocks: int = 20,
    threads: int = 1,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """:func:`keras_gradient_fits` once per Keras backend, each in its own subprocess.

    Keras fixes its backend at import (``KERAS_BACKEND``), so every backend
    runs in a fresh interpreter. A backend whose module is not installed is
    skipped (with a message). Returns the fits of all backends.
    """
    import importlib.util

    rows = rows or KERAS_GRADIENT_ROWS
    models = list(models)
    tables = []
    repo = report.BENCHMARKS_DIR.parent
    for backend in backends:
        module = BACKEND_MODULES.get(backend)
        if module is None:
            raise ValueError(f"unknown Keras backend {backend!r}; use {', '.join(BACKEND_MODULES)}")
        if importlib.util.find_spec(module) is None:
            if progress is not None:
                progress(f"keras_gradients {backend}: {module} is not installed, skipped")
            continue
        env = keras_backend_env(backend, threads, repo)
        with tempfile.TemporaryDirectory(prefix="viann-keras-gradients-") as tmp:
            config_path, out_path = Path(tmp) / "config.json", Path(tmp) / "fits.csv"
            config = {
                "models": models,
                "rows": rows,
                "epochs": epochs,
                "repeats": repeats,
                "step_blocks": step_blocks,
                "threads": threads,
            }
            config_path.write_text(json.dumps(config), encoding="utf-8")
            code = (
                f"import sys; from {__name__} import _keras_gradients_child; "
                "_keras_gradients_child(sys.argv[1], sys.argv[2])"
            )
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", code, str(config_path), str(out_path)],
                cwd=repo,
                env=env,
                check=True,
            )
            table = pd.read_csv(out_path, keep_default_na=False, na_values=[""])
        table["backend_seconds"] = time.perf_counter() - start
        tables.append(table)
        if progress is not None:
            progress(f"keras_gradients {backend}: {time.perf_counter() - start:.0f} s")
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
