r"""What the Keras gradient tap costs inside the compiled train step.

The suite's cost column for the Keras callbacks is the time inside their
hooks; a gradient mode's per-step work runs inside ``model.fit``'s compiled
step, where no hook sees it. This probe times the epochs of ``fit`` calls of the
suite's MLP (``benchmarks.training.keras_mlp``, Adam 1e-3, batch 32) with no
callback, with a ``viann`` callback, and with a ``taylor`` callback (one step
in 4, and every step), alternating the settings over repeats, and reports the
median process CPU time per epoch (less sensitive than wall time to other
jobs on a shared machine; the median over all timed epochs of all repeats
ignores their bursts) and wall time, relative to no callback.

Usage (one core, about 3 minutes)::

    KERAS_BACKEND=tensorflow OMP_NUM_THREADS=1 .venv/bin/python research/keras_tap_cost_probe.py
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.training import keras_mlp, limit_threads  # noqa: E402
from benchmarks.truth import TEST_SIZE, _split  # noqa: E402
from neural_feature_importance.datasets.synthetic import make_synthetic  # noqa: E402

SETTINGS = {
    "none": None,
    "viann": {"scoring": "viann"},
    "taylor": {"scoring": "taylor"},
    "taylor_every_step": {"scoring": "taylor", "gradient_every": 1},
}


def epoch_seconds(name: str, setting: str, epochs: int) -> list[tuple[float, float]]:
    """(CPU seconds, wall seconds) of each of epochs 2..``epochs`` of one ``fit``.

    The first epoch is left out, so that tracing the train function (which the
    callback redoes when it installs the tap) is not timed. Each epoch's time
    includes the callbacks' ``on_epoch_end`` (the tap's drain).
    """
    import keras

    from neural_feature_importance.keras import VarianceImportanceKeras

    data = make_synthetic(name, random_state=0)
    X_train, _, y_train, _ = _split(data, 0, TEST_SIZE)
    n_out = int(np.max(data.y)) + 1 if data.task == "classification" else 1
    keras.utils.set_random_seed(0)
    model = keras_mlp(data.X.shape[1], n_out)
    loss = "sparse_categorical_crossentropy" if data.task == "classification" else "mse"
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    X = np.asarray(X_train, np.float32)
    y = np.asarray(y_train) if data.task == "classification" else np.asarray(y_train, np.float32)
    kwargs = SETTINGS[setting]
    callbacks = [] if kwargs is None else [VarianceImportanceKeras(**kwargs)]
    marks: list[tuple[float, float]] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: object = None) -> None:
            marks.append((time.process_time(), time.perf_counter()))

    model.fit(X, y, epochs=epochs, batch_size=32, verbose=0, callbacks=[*callbacks, Clock()])
    return [(c1 - c0, w1 - w0) for (c0, w0), (c1, w1) in itertools.pairwise(marks)]


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["friedman1", "high_dim"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    limit_threads(1)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    rows = []
    for name in args.datasets:
        for repeat in range(args.repeats):
            for setting in SETTINGS:
                for epoch, (cpu, wall) in enumerate(epoch_seconds(name, setting, args.epochs)):
                    rows.append(
                        dict(
                            dataset=name,
                            repeat=repeat,
                            setting=setting,
                            epoch=epoch + 2,
                            cpu=cpu,
                            wall=wall,
                        )
                    )
    table = pd.DataFrame(rows)
    # Median over every timed epoch of every repeat: robust to other jobs' bursts.
    median = table.groupby(["dataset", "setting"], sort=False)[["cpu", "wall"]].median()
    base = median.xs("none", level="setting")
    relative = 100 * (median / base.reindex(median.index, level="dataset") - 1)
    out = median.join(relative.add_suffix("_pct_over_none"))
    print(f"seconds per epoch (epochs 2-{args.epochs}), median over {args.repeats} fits")
    print(out.round(4).to_string())


if __name__ == "__main__":
    main()
