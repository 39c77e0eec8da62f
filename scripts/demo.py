"""Demo: training-time importances of a small PyTorch network on Iris, beside a random forest's.

The tracker is built without ``scoring=``, so it uses the default, the recommended
mode (``neural_feature_importance.core.RECOMMENDED_MODE``, ``taylor``),
which reads the first layer's gradient after optimizer steps. ``scoring="viann"``
would give the paper's method.

Run with ``make demo`` (creates .venv and installs what it needs) or
``python scripts/demo.py``. Iris ships with scikit-learn: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import torch
from sklearn.datasets import load_iris
from sklearn.preprocessing import scale
from torch import nn

from neural_feature_importance import VarianceImportanceTorch
from neural_feature_importance.baselines import random_forest_importance


def train_iris(epochs: int = 60, seed: int = 0) -> tuple[np.ndarray, float, list[str], str]:
    """Train a 4-16-3 MLP on standardised Iris; return its importances, accuracy, names, mode."""
    torch.manual_seed(seed)
    iris = load_iris()
    x = torch.tensor(scale(iris.data), dtype=torch.float32)
    y = torch.tensor(iris.target)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    tracker = VarianceImportanceTorch(model)  # the default: the recommended mode
    tracker.on_train_begin()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(16):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
            tracker.on_step_end()  # reads the gradient: after step(), before zero_grad()
        tracker.on_epoch_end()
    scores = tracker.on_train_end()
    accuracy = float((model(x).argmax(dim=1) == y).float().mean())
    return scores, accuracy, list(iris.feature_names), tracker.scoring


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    scores, accuracy, names, scoring = train_iris(args.epochs, args.seed)
    iris = load_iris()
    forest = random_forest_importance(
        iris.data, iris.target, task="classification", random_state=args.seed
    )
    forest = (forest - forest.min()) / (forest.max() - forest.min())

    print(f"PyTorch MLP on Iris: {args.epochs} epochs, training accuracy {accuracy:.3f}\n")
    print(f"{'feature':<20} {scoring:>13} {'random forest':>14}")
    for index in np.argsort(scores)[::-1]:
        print(f"{names[index]:<20} {scores[index]:13.3f} {forest[index]:14.3f}")
    correlation = np.corrcoef(scores, forest)[0, 1]
    print(f"\nPearson correlation {scoring} vs random forest: {correlation:.2f}")
    print("(scores are min-max normalised: 1 = most important feature)")


if __name__ == "__main__":
    main()
