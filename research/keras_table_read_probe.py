r"""Probe: what a sparse read of a Keras `Embedding` table costs the TensorFlow train step.

The gradient tap reads the rows of a TensorFlow table that a batch looked up.
Gathering them from the variable itself (`tf.gather(variable, rows)`, a
`ResourceGather`) switches the variable to copy-on-read for the rest of the
run, so that every later read and update of the table copies all of it; the
tap now gathers from a dense read (`neural_feature_importance.keras._sparse`).
This probe times the compiled train step (`model.train_step` in a
`tf.function`, one fixed batch, blocks of 10 steps in rotated order, CPU time)
of a 50,000 x 256 table without the tap, with the tap, and with the tap's rows
gathered by the sparse read of before.

Usage::

    KERAS_BACKEND=tensorflow .venv/bin/python research/keras_table_read_probe.py
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.training import limit_threads  # noqa: E402

limit_threads(1)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import neural_feature_importance.keras.gradients as tap_module  # noqa: E402
from benchmarks.cost.keras_step_profile import _keras_step_runner  # noqa: E402

VOCABULARY, DIM, BLOCKS = 50_000, 256, 12


def _table_model() -> Any:
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(VOCABULARY, DIM, mask_zero=True),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )


def _sparse_read_row_terms(mode: Any, gradient: Any, weights: Any, ops: Any) -> dict[str, Any]:
    """The tap's row read before the fix: the rows gathered from the variable itself."""
    rows_weights = tf.gather(weights, gradient.rows)
    terms = mode.step_terms(gradient.values, rows_weights, None, ops)
    shape = tf.constant([gradient.n_rows], dtype=gradient.rows.dtype)
    return {k: tf.scatter_nd(gradient.rows[:, None], t, shape) for k, t in terms.items()}


def main() -> None:
    """Print the median CPU time per step of each variant."""
    rng = np.random.default_rng(0)
    spec = {
        "keras": _table_model,
        "batch_size": 32,
        "X_keras": rng.integers(1, VOCABULARY, size=(64, 80)).astype("int32"),
        "y": rng.integers(0, 2, size=64),
        "kind": "embedding",
    }
    runs = {name: _keras_step_runner(spec, name) for name in ("plain", "taylor")}
    for run in runs.values():
        run(3)  # traced before the sparse read is put back
    tap_module.row_terms = _sparse_read_row_terms
    runs["taylor, sparse read"] = _keras_step_runner(spec, "taylor")
    runs["taylor, sparse read"](3)
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    gc.disable()
    for block in range(BLOCKS):
        for name in names[block % 3 :] + names[: block % 3]:
            start = time.process_time()
            runs[name](10)
            times[name].append((time.process_time() - start) / 10 * 1e3)
    for name, values in times.items():
        print(f"{name:20s} {np.median(values):7.2f} ms per step")


if __name__ == "__main__":
    main()
