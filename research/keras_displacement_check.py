r"""Keras check of the weight-displacement factor that was not shipped with ``steady_taylor``.

Trains the suite's MLP (64-64, Adam 1e-3, batch 32, the benchmark's 75/25
split) with Keras's own initialisation (Glorot-uniform kernels, zero biases)
and the ``taylor`` and ``steady_taylor`` callbacks attached, then scores by
hand the distance each feature's first-layer weights moved from their
initialisation and ``steady_taylor`` times that distance (the candidate
that ranked best in PyTorch). One line per seed: ROC-AUC and precision@k.

Usage::

    KERAS_BACKEND=tensorflow OMP_NUM_THREADS=1 .venv/bin/python \\
        research/keras_displacement_check.py high_dim 15
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.metrics import ranking_metrics  # noqa: E402
from neural_feature_importance.datasets.synthetic import make_synthetic  # noqa: E402
from neural_feature_importance.keras import VarianceImportanceKeras  # noqa: E402


def main() -> None:
    """Command line: data set name and number of epochs."""
    name, epochs = sys.argv[1], int(sys.argv[2])
    for seed in range(3):
        data = make_synthetic(name, random_state=seed)
        stratify = data.y if data.task == "classification" else None
        X, _, y, _ = train_test_split(
            data.X, data.y, test_size=0.25, random_state=seed, stratify=stratify
        )
        keras.utils.set_random_seed(seed)
        outputs = 2 if data.task == "classification" else 1
        model = keras.Sequential(
            [
                keras.Input((data.X.shape[1],)),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(outputs),
            ]
        )
        loss = (
            keras.losses.SparseCategoricalCrossentropy(from_logits=True) if outputs == 2 else "mse"
        )
        model.compile(keras.optimizers.Adam(1e-3), loss)
        initial = np.asarray(keras.ops.convert_to_numpy(model.layers[0].kernel), np.float64)
        trackers = {s: VarianceImportanceKeras(scoring=s) for s in ("taylor", "steady_taylor")}
        model.fit(
            X.astype("float32"),
            y,
            epochs=epochs,
            batch_size=32,
            verbose=0,
            callbacks=list(trackers.values()),
        )
        final = np.asarray(keras.ops.convert_to_numpy(model.layers[0].kernel), np.float64)
        moved = np.sqrt(((final - initial) ** 2).sum(axis=1))
        scores = {
            "taylor": trackers["taylor"].raw_importances_,
            "steady_taylor": trackers["steady_taylor"].raw_importances_,
            "displacement": moved,
            "steady_taylor_times_displacement": trackers["steady_taylor"].raw_importances_ * moved,
        }
        cells = {
            k: "{auc:.3f} / {precision_at_k:.2f}".format(**ranking_metrics(s, data.informative))
            for k, s in scores.items()
        }
        print(name, seed, cells, flush=True)


if __name__ == "__main__":
    main()
