"""Whole short Keras fits with and without the gradient tap, as a notebook user runs them.

A fit of a few seconds pays the tap's fixed costs (wrapping the optimizer,
rebuilding the train function, the extra work the compilers do for the tap's
operations) as much as its per-step cost. Three planted-truth problems
(`classification`, `friedman1`, `xor`; 600 rows), an MLP 64-64 (Adam 1e-3,
batch 32, 60 epochs), a fresh model per fit, the callback built without
`scoring=` (the recommended mode) against no callback, in an order
alternated from round to round, on the Keras backend set by `KERAS_BACKEND`::

    KERAS_BACKEND=jax python -m benchmarks.cost.keras_short_fits --rounds 3

Prints the median and each fit's ratio of wall times (tracked / plain).
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.training import limit_threads

PROBLEMS = ("classification", "friedman1", "xor")


def short_fit_mlp(n_features: int) -> Any:
    """The short fits' model: an MLP 64-64 (ReLU), compiled with Adam 1e-3 and the squared error."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((n_features,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    return model


def short_fit_ratios(rounds: int = 3, epochs: int = 60, rows: int = 600) -> list[float]:
    """Wall time of a tracked fit over a plain one, per problem and round."""
    import keras

    from neural_feature_importance import VarianceImportanceKeras
    from neural_feature_importance.datasets import make_synthetic

    data = {}
    for name in PROBLEMS:
        bunch = make_synthetic(name, n_samples=rows, random_state=0)
        data[name] = (np.asarray(bunch.X, "float32"), np.asarray(bunch.y, "float32"))

    def fit(name: str, tracked: bool, seed: int) -> float:
        keras.backend.clear_session()
        gc.collect()
        keras.utils.set_random_seed(seed)
        X, y = data[name]
        model = short_fit_mlp(X.shape[1])
        callbacks = [VarianceImportanceKeras()] if tracked else []
        start = time.perf_counter()
        model.fit(X, y, epochs=epochs, batch_size=32, verbose=0, callbacks=callbacks)
        return time.perf_counter() - start

    fit(PROBLEMS[0], True, 0)  # first-use costs of the process, on both sides
    fit(PROBLEMS[0], False, 0)
    ratios = []
    for index in range(rounds):
        for name in PROBLEMS:
            order = (True, False) if index % 2 == 0 else (False, True)
            seconds = {tracked: fit(name, tracked, index) for tracked in order}
            ratios.append(seconds[True] / seconds[False])
    return ratios


def main(argv: Sequence[str] | None = None) -> None:
    """Print the short fits' ratios on the backend `KERAS_BACKEND` names."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    import keras

    ratios = short_fit_ratios(args.rounds)
    print(
        f"{keras.backend.backend()}: tracked / plain, median {np.median(ratios):.2f}x; "
        f"per fit {', '.join(f'{r:.2f}' for r in ratios)}"
    )


if __name__ == "__main__":
    main()
