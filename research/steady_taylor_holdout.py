"""Held-out check: ``steady_taylor`` against ``taylor`` on problems and networks outside the suite.

The scoring modes were chosen on the planted-truth suite of
:mod:`neural_feature_importance.datasets.synthetic`. This script draws
problems from *other* generators (scikit-learn's ``make_regression``,
``make_friedman2``/``3``, ``make_hastie_10_2``, ``make_classification``
with repeated features and more clusters, a sparse logistic model) and trains
*other* networks (wider and deeper, larger batches, SGD with momentum, AdamW
with weight decay, dropout), with the library's trackers attached
(``taylor``, ``steady_taylor``, ``growth``), and scores by hand the candidate
that multiplies them by the distance the first layer's weights moved from
their initialisation. Nothing here was tuned: each
problem and network was written down once, before the first run.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python research/steady_taylor_holdout.py --seeds 3 --epochs 60
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.metrics import ranking_metrics  # noqa: E402
from neural_feature_importance import VarianceImportanceTorch  # noqa: E402

OUT = ROOT / "research" / "selector_gap"
MODES = ("taylor", "steady_taylor", "growth")


def _pad(X: np.ndarray, n_noise: int, rng: np.random.Generator) -> np.ndarray:
    return np.hstack([X, rng.normal(size=(len(X), n_noise))])


def _standardise(a: np.ndarray) -> np.ndarray:
    return (a - a.mean(0)) / np.where(a.std(0) > 0, a.std(0), 1.0)


def problems() -> dict[str, Callable[[int], tuple]]:
    """Each returns ``(X, y, informative, task)`` for a seed."""
    from sklearn import datasets

    def sparse_linear(seed: int) -> tuple:
        # make_regression draws the informative columns at random: its coef says which.
        X, y, coef = datasets.make_regression(
            n_samples=2000,
            n_features=200,
            n_informative=10,
            noise=20.0,
            random_state=seed,
            coef=True,
        )
        return X, y, coef != 0, "regression"

    def friedman2(seed: int) -> tuple:
        rng = np.random.default_rng(seed)
        X, y = datasets.make_friedman2(n_samples=2000, noise=50.0, random_state=seed)
        return _pad(_standardise(X), 96, rng), y, np.r_[[True] * 4, [False] * 96], "regression"

    def friedman3(seed: int) -> tuple:
        rng = np.random.default_rng(seed)
        X, y = datasets.make_friedman3(n_samples=2000, noise=0.1, random_state=seed)
        # x0 enters only through a ratio with small weight; all four are informative.
        return _pad(_standardise(X), 46, rng), y, np.r_[[True] * 4, [False] * 46], "regression"

    def hastie(seed: int) -> tuple:
        rng = np.random.default_rng(seed)
        X, y = datasets.make_hastie_10_2(n_samples=3000, random_state=seed)
        return (
            _pad(X, 90, rng),
            (y > 0).astype(int),
            np.r_[[True] * 10, [False] * 90],
            "classification",
        )

    def repeated_clusters(seed: int) -> tuple:
        X, y = datasets.make_classification(
            n_samples=3000,
            n_features=200,
            n_informative=6,
            n_redundant=6,
            n_repeated=4,
            n_clusters_per_class=4,
            class_sep=1.5,
            flip_y=0.01,
            shuffle=False,
            random_state=seed,
        )
        rows = np.random.default_rng(seed).permutation(len(X))
        return X[rows], y[rows], np.r_[[True] * 16, [False] * 184], "classification"

    def sparse_logistic(seed: int) -> tuple:
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(3000, 300))
        beta = np.zeros(300)
        beta[:8] = rng.choice([-1, 1], 8) * rng.uniform(0.3, 1.0, 8)
        logit = X @ beta + 0.8 * X[:, 8] * X[:, 9]
        y = (logit + rng.logistic(size=3000) > 0).astype(int)
        return X, y, np.r_[[True] * 10, [False] * 290], "classification"

    return {
        "sparse_linear": sparse_linear,
        "friedman2_padded": friedman2,
        "friedman3_padded": friedman3,
        "hastie_padded": hastie,
        "repeated_clusters": repeated_clusters,
        "sparse_logistic": sparse_logistic,
    }


NETWORKS: dict[str, dict] = {
    "mlp_128x3_adam_b128": {"hidden": (128, 128, 128), "batch": 128, "opt": "adam", "lr": 1e-3},
    "mlp_256_sgd_momentum": {"hidden": (256,), "batch": 64, "opt": "sgd", "lr": 0.01},
    "mlp_64x2_adamw_dropout": {
        "hidden": (64, 64),
        "batch": 32,
        "opt": "adamw",
        "lr": 1e-3,
        "dropout": 0.2,
    },
}


def _network(n_in: int, n_out: int, spec: dict) -> nn.Module:
    layers: list[nn.Module] = []
    width = n_in
    for h in spec["hidden"]:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if spec.get("dropout"):
            layers.append(nn.Dropout(spec["dropout"]))
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def _optimizer(model: nn.Module, spec: dict) -> torch.optim.Optimizer:
    if spec["opt"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=spec["lr"], momentum=0.9)
    if spec["opt"] == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=spec["lr"], weight_decay=1e-2)
    return torch.optim.Adam(model.parameters(), lr=spec["lr"])


def run_one(problem: Callable[[int], tuple], spec: dict, seed: int, epochs: int) -> dict:
    """Train one network with the trackers attached; the modes' scores."""
    X, y, informative, task = problem(seed)
    X = _standardise(np.asarray(X, dtype=np.float64))
    n_train = int(0.75 * len(X))
    torch.manual_seed(seed)
    Xt = torch.tensor(X[:n_train], dtype=torch.float32)
    if task == "regression":
        y = _standardise(np.asarray(y, dtype=np.float64)[:, None])
        yt = torch.tensor(y[:n_train], dtype=torch.float32)
        loss_fn: Callable = nn.MSELoss()
        n_out = 1
    else:
        yt = torch.tensor(y[:n_train], dtype=torch.long)
        loss_fn = nn.CrossEntropyLoss()
        n_out = int(y.max()) + 1
    model = _network(X.shape[1], n_out, spec)
    optimizer = _optimizer(model, spec)
    trackers = {mode: VarianceImportanceTorch(model, scoring=mode) for mode in MODES}
    first = next(m for m in model.modules() if isinstance(m, nn.Linear))
    initial = first.weight.detach().double().clone()
    for tracker in trackers.values():
        tracker.on_train_begin()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(n_train, generator=generator)
        for begin in range(0, n_train, spec["batch"]):
            batch = order[begin : begin + spec["batch"]]
            optimizer.zero_grad()
            loss_fn(model(Xt[batch]), yt[batch]).backward()
            optimizer.step()
            for tracker in trackers.values():
                tracker.on_step_end()
        for tracker in trackers.values():
            tracker.on_epoch_end()
    for tracker in trackers.values():
        tracker.on_train_end()
    scores = {mode: tracker.raw_importances_ for mode, tracker in trackers.items()}
    # A candidate that was not shipped, by hand: the modes times how far each
    # feature's first-layer weights moved from their initialisation.
    moved = (first.weight.detach().double() - initial).norm(dim=0).numpy()
    scores["displacement"] = moved
    scores["taylor_times_displacement"] = scores["taylor"] * moved
    scores["steady_taylor_times_displacement"] = scores["steady_taylor"] * moved
    return {mode: ranking_metrics(s, informative, None) for mode, s in scores.items()}


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--out", default=str(OUT / "holdout.csv"))
    parser.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, problem in problems().items():
        for network in args.networks:
            spec = NETWORKS[network]
            for seed in range(args.seeds):
                start = time.perf_counter()
                for mode, metrics in run_one(problem, spec, seed, args.epochs).items():
                    rows.append(
                        {"problem": name, "network": network, "seed": seed, "mode": mode} | metrics
                    )
                print(
                    f"{name} / {network} seed {seed}: {time.perf_counter() - start:.1f} s",
                    flush=True,
                )
                pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
