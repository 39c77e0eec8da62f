"""Compare VIANN in Keras and in PyTorch with a random forest on Iris.

The original package's comparison script, working again: the same small
network (Dense 16 ReLU -> softmax, Adam, 50 epochs, batch 16) is trained once
with the Keras callback and once in a plain PyTorch loop with the tracker, both
with ``scoring="viann"`` (the paper's method; the trackers' default is the
recommended gradient mode), on
80% of Iris; a 100-tree random forest is fitted on the same rows. Both
networks should rank the petal measurements first, as the forest does.

Examples
--------
::

    python scripts/compare_feature_importance.py            # 50 epochs, seed 42
    python scripts/compare_feature_importance.py --epochs 20 --seed 0

As a function::

    from compare_feature_importance import compare
    table, correlations = compare(epochs=30)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def _iris_split(seed: int) -> tuple[Any, ...]:
    from sklearn.model_selection import train_test_split

    from neural_feature_importance.datasets.tabular import load_dataset

    data = load_dataset("iris")
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.target, test_size=0.2, random_state=seed, stratify=data.target
    )
    return data, X_train, X_test, y_train, y_test


def keras_viann(
    X: np.ndarray, y: np.ndarray, *, epochs: int, seed: int
) -> tuple[np.ndarray, float]:
    """Train the Keras network with :class:`VarianceImportanceKeras`; return (scores, accuracy)."""
    import keras

    from neural_feature_importance import VarianceImportanceKeras

    keras.utils.set_random_seed(seed)
    n_classes = int(y.max()) + 1
    model = keras.Sequential(
        [
            keras.Input((X.shape[1],)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(n_classes, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    viann = VarianceImportanceKeras(scoring="viann")
    model.fit(
        X,
        keras.utils.to_categorical(y, n_classes),
        epochs=epochs,
        batch_size=16,
        verbose=0,
        callbacks=[viann],
    )
    predictions = keras.ops.convert_to_numpy(model(X.astype("float32"), training=False))
    return viann.feature_importances_, float(np.mean(predictions.argmax(axis=1) == y))


def torch_viann(
    X: np.ndarray, y: np.ndarray, *, epochs: int, seed: int
) -> tuple[np.ndarray, float]:
    """Train the same network in PyTorch with :class:`VarianceImportanceTorch`."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from neural_feature_importance import VarianceImportanceTorch

    torch.manual_seed(seed)
    n_classes = int(y.max()) + 1
    model = nn.Sequential(nn.Linear(X.shape[1], 16), nn.ReLU(), nn.Linear(16, n_classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    features = torch.tensor(X, dtype=torch.float32)
    loader = DataLoader(
        TensorDataset(features, torch.tensor(y, dtype=torch.long)),
        batch_size=16,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    tracker = VarianceImportanceTorch(model, scoring="viann")
    tracker.on_train_begin()
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss_fn(model(xb), yb).backward()
            optimizer.step()
            tracker.on_step_end()
        tracker.on_epoch_end()
    tracker.on_train_end()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(features).argmax(dim=1).numpy() == y).mean())
    return tracker.feature_importances_, accuracy


def compare(epochs: int = 50, seed: int = 42) -> tuple[Any, dict[str, float]]:
    """Run the comparison; return (per-feature table, Pearson correlations).

    Parameters
    ----------
    epochs : int, default=50
        Training epochs of both networks.
    seed : int, default=42
        Seed of the split, the networks and the forest.

    Returns
    -------
    table : pandas.DataFrame
        One row per Iris feature: ``keras_viann``, ``torch_viann`` (min-max
        normalised) and ``random_forest`` (sums to 1); ``attrs`` holds the
        networks' training accuracies.
    correlations : dict
        ``keras-rf``, ``torch-rf`` and ``keras-torch``.
    """
    import pandas as pd

    from neural_feature_importance.baselines import random_forest_importance
    from neural_feature_importance.experiments.paper import pearson

    data, X_train, _, y_train, _ = _iris_split(seed)
    keras_scores, keras_acc = keras_viann(X_train, y_train, epochs=epochs, seed=seed)
    torch_scores, torch_acc = torch_viann(X_train, y_train, epochs=epochs, seed=seed)
    rf_scores = random_forest_importance(X_train, y_train, n_estimators=100, random_state=seed)
    table = pd.DataFrame(
        {"keras_viann": keras_scores, "torch_viann": torch_scores, "random_forest": rf_scores},
        index=pd.Index(data.feature_names, name="feature"),
    )
    table.attrs["train_accuracy"] = {"keras": keras_acc, "torch": torch_acc}
    correlations = {
        "keras-rf": pearson(keras_scores, rf_scores),
        "torch-rf": pearson(torch_scores, rf_scores),
        "keras-torch": pearson(keras_scores, torch_scores),
    }
    return table, correlations


def main(argv: Sequence[str] | None = None) -> tuple[Any, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50, help="training epochs (default 50)")
    parser.add_argument("--seed", type=int, default=42, help="seed (default 42)")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (a variance needs two snapshots)")
    table, correlations = compare(epochs=args.epochs, seed=args.seed)
    accuracy = table.attrs["train_accuracy"]
    print(f"Iris, {args.epochs} epochs, seed {args.seed}")
    print(f"training accuracy: Keras {accuracy['keras']:.2f}, PyTorch {accuracy['torch']:.2f}\n")
    print(table.round(3).to_string())
    print()
    for name, value in correlations.items():
        print(f"Pearson correlation {name}: {value:.3f}")
    return table, correlations


if __name__ == "__main__":
    main()
