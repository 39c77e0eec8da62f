r"""Keras vs PyTorch ``taylor``: which difference between the two trainings moves the scores.

The planted-truth suite trains the "same" MLP 64-64 (ReLU, Adam 1e-3, batch 32)
in both frameworks, but the two trainings differ in three places:

- initialisation: Keras draws kernels Glorot-uniform (``U(+-sqrt(6 / (fan_in +
  fan_out)))``) and zero biases; PyTorch's ``nn.Linear`` draws kernels and
  biases ``U(+-1 / sqrt(fan_in))`` (for ``high_dim``'s first layer, fan_in 500:
  0.103 against 0.045);
- Adam's epsilon: 1e-7 in Keras, 1e-8 in PyTorch;
- the batch order: PyTorch draws a new permutation every epoch; Keras 3.15 on
  TensorFlow, after ``keras.utils.set_random_seed`` (as the suite does),
  repeats the *same* permutation every epoch (``fit(shuffle=True)`` on arrays;
  checked by recording the batches).

This probe trains each data set of the suite once per (variant, seed) for the
longest training length and reads the library's trackers (``viann``,
``growth``, ``taylor``; the same classes the suite uses) after 15, 60 and 200
epochs: with a constant learning rate the first 15 epochs of a 200-epoch run
are the 15-epoch run (``k_default`` on ``high_dim`` equals the suite's
separate 15- and 60-epoch runs to the last digit). Variants (``k_`` Keras, ``t_`` PyTorch):

========================  ==============================================================
``k_default``             the suite's Keras training (Glorot, zero bias, eps 1e-7)
``k_torch_init``          kernels and biases ``U(+-1/sqrt(fan_in))`` (PyTorch's scheme)
``k_torch_kernel``        PyTorch's kernels, Keras's zero biases
``k_torch_first``         PyTorch's scheme in the first layer only (the tracked one)
``k_eps8``                Adam epsilon 1e-8
``k_torch_init_eps8``     both
``k_torch_order``         PyTorch's batch order (a new permutation every epoch)
``k_torch_init_order``    PyTorch's init scheme (drawn by Keras) and PyTorch's batch order
``k_matched``             PyTorch's *own* initial weights (copied from the torch model
                          of the same seed), epsilon 1e-8 and PyTorch's batch order:
                          the PyTorch run, trained by Keras
``t_default``             the suite's PyTorch training
``t_glorot``              Glorot-uniform kernels, zero biases (Keras's scheme)
``t_glorot_eps7``         and Adam epsilon 1e-7
========================  ==============================================================

Usage (from the repository root, one core)::

    KERAS_BACKEND=tensorflow OMP_NUM_THREADS=1 .venv/bin/python \
        research/keras_taylor_gap_probe.py run --variants k_torch_init k_eps8 --seeds 3
    .venv/bin/python research/keras_taylor_gap_probe.py report
    KERAS_BACKEND=tensorflow OMP_NUM_THREADS=1 .venv/bin/python \
        research/keras_taylor_gap_probe.py check   # the tap against the torch tracker

``run`` appends to ``research/scoring_modes/keras_taylor_gap.csv`` (one row per
data set, seed, variant, tracker and read-out epoch; rows of a rerun variant
are replaced) and keeps the raw scores in ``keras_taylor_gap_scores.json.gz``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.metrics import ranking_metrics  # noqa: E402
from benchmarks.training import (  # noqa: E402
    holdout_score,
    limit_threads,
    n_outputs,
    torch_loss,
    torch_mlp,
    torch_predict,
    torch_target,
)
from benchmarks.truth import TEST_SIZE, _split  # noqa: E402
from neural_feature_importance.core.errors import NotFittedError  # noqa: E402
from neural_feature_importance.datasets.synthetic import (  # noqa: E402
    SYNTHETIC_DATASETS,
    make_synthetic,
)

OUT = ROOT / "research" / "scoring_modes"
TABLE = OUT / "keras_taylor_gap.csv"
SCORES = OUT / "keras_taylor_gap_scores.json.gz"
MODES = ("viann", "growth", "taylor")
READ_AT = (15, 60, 200)
BATCH, LR, HIDDEN = 32, 1e-3, (64, 64)

VARIANTS: dict[str, dict[str, Any]] = {
    "k_default": {"framework": "keras", "init": "keras", "eps": 1e-7, "order": "keras"},
    "k_torch_init": {"framework": "keras", "init": "torch", "eps": 1e-7, "order": "keras"},
    "k_torch_kernel": {"framework": "keras", "init": "torch_kernel", "eps": 1e-7, "order": "keras"},
    "k_torch_first": {"framework": "keras", "init": "torch_first", "eps": 1e-7, "order": "keras"},
    "k_eps8": {"framework": "keras", "init": "keras", "eps": 1e-8, "order": "keras"},
    "k_torch_init_eps8": {"framework": "keras", "init": "torch", "eps": 1e-8, "order": "keras"},
    "k_torch_order": {"framework": "keras", "init": "keras", "eps": 1e-7, "order": "torch"},
    "k_torch_init_order": {"framework": "keras", "init": "torch", "eps": 1e-7, "order": "torch"},
    "k_matched": {"framework": "keras", "init": "copy", "eps": 1e-8, "order": "torch"},
    "t_default": {"framework": "torch", "init": "torch", "eps": 1e-8, "order": "torch"},
    "t_glorot": {"framework": "torch", "init": "glorot", "eps": 1e-8, "order": "torch"},
    "t_glorot_eps7": {"framework": "torch", "init": "glorot", "eps": 1e-7, "order": "torch"},
}


# --------------------------------------------------------------------- models
def torch_model(n_features: int, n_out: int, seed: int, init: str) -> Any:
    """The suite's torch MLP (``torch.manual_seed(seed)`` first), optionally Glorot-initialised."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = torch_mlp(n_features, n_out, HIDDEN)
    if init == "glorot":
        for module in model:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
    return model


def keras_model(n_features: int, n_out: int, seed: int, init: str) -> Any:
    """The suite's Keras MLP (``benchmarks.training.keras_mlp``) with a choice of initialiser."""
    import keras

    keras.utils.set_random_seed(seed)
    widths = [n_features, *HIDDEN, n_out]
    layers: list[Any] = [keras.Input((n_features,))]
    for i, units in enumerate(widths[1:]):
        last = i == len(widths) - 2
        activation = ("softmax" if n_out > 1 else None) if last else "relu"
        kwargs: dict[str, Any] = {}
        if init in ("torch", "torch_kernel") or (init == "torch_first" and i == 0):
            bound = 1.0 / math.sqrt(widths[i])
            # limit sqrt(3 * scale / fan_in) = 1 / sqrt(fan_in): nn.Linear's kernels.
            kwargs["kernel_initializer"] = keras.initializers.VarianceScaling(
                1.0 / 3.0, "fan_in", "uniform"
            )
            if init != "torch_kernel":
                kwargs["bias_initializer"] = keras.initializers.RandomUniform(-bound, bound)
        layers.append(keras.layers.Dense(units, activation=activation, **kwargs))
    model = keras.Sequential(layers)
    if init == "copy":
        from torch import nn

        linears = [
            m for m in torch_model(n_features, n_out, seed, "torch") if isinstance(m, nn.Linear)
        ]
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        for layer, linear in zip(dense, linears, strict=True):
            layer.set_weights(
                [linear.weight.detach().numpy().T.copy(), linear.bias.detach().numpy().copy()]
            )
    return model


def torch_orders(n: int, seed: int, epochs: int) -> list[np.ndarray]:
    """The batch order of ``benchmarks.training.train_torch`` (one permutation per epoch)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=generator).numpy() for _ in range(epochs)]


# ------------------------------------------------------------------ training
def train_keras_variant(
    spec: dict[str, Any], data: Any, split: tuple, seed: int, epochs: int, reader: Callable
) -> None:
    """Fit with the library's callbacks; ``reader(epoch, trackers, predict, kernel)`` per epoch.

    ``reader`` is called after every epoch and once with epoch 0 before training;
    ``predict()`` gives the held-out outputs and ``kernel()`` the first layer's
    kernel as ``(n_features, units)``.
    """
    import keras

    from neural_feature_importance.keras import VarianceImportanceKeras

    X_train, X_test, y_train, _ = split
    n_out = n_outputs(data.task, data.y)
    model = keras_model(data.X.shape[1], n_out, seed, spec["init"])
    trackers = {mode: VarianceImportanceKeras(scoring=mode) for mode in MODES}
    loss = "sparse_categorical_crossentropy" if data.task == "classification" else "mse"
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=LR, epsilon=spec["eps"]), loss=loss)
    X = np.asarray(X_train, dtype=np.float32)
    y = np.asarray(y_train) if data.task == "classification" else np.asarray(y_train, np.float32)

    def predict() -> np.ndarray:
        return np.asarray(model.predict(np.asarray(X_test, np.float32), verbose=0), np.float64)

    def kernel() -> np.ndarray:
        return np.asarray(keras.ops.convert_to_numpy(model.layers[0].kernel), np.float64)

    class Reader(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            reader(0, trackers, predict, kernel)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            reader(epoch + 1, trackers, predict, kernel)

    callbacks = [*trackers.values(), Reader()]
    if spec["order"] == "torch":
        orders = torch_orders(len(X), seed, epochs)
        steps = math.ceil(len(X) / BATCH)

        def batches():
            for order in orders:
                for begin in range(0, len(X), BATCH):
                    idx = order[begin : begin + BATCH]
                    yield X[idx], y[idx]

        model.fit(
            batches(),
            epochs=epochs,
            steps_per_epoch=steps,
            shuffle=False,
            verbose=0,
            callbacks=callbacks,
        )
    else:
        model.fit(
            X, y, epochs=epochs, batch_size=BATCH, shuffle=True, verbose=0, callbacks=callbacks
        )


def train_torch_variant(
    spec: dict[str, Any], data: Any, split: tuple, seed: int, epochs: int, reader: Callable
) -> None:
    """``benchmarks.training.train_torch``'s loop with a choice of init and epsilon.

    ``reader`` as in :func:`train_keras_variant`.
    """
    import torch

    from neural_feature_importance.torch import VarianceImportanceTorch

    X_train, X_test, y_train, _ = split
    model = torch_model(data.X.shape[1], n_outputs(data.task, data.y), seed, spec["init"])
    trackers = {mode: VarianceImportanceTorch(model, scoring=mode) for mode in MODES}
    inputs = torch.as_tensor(np.asarray(X_train), dtype=torch.float32)
    target = torch_target(data.task, y_train)
    loss_fn = torch_loss(data.task)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, eps=spec["eps"])

    def kernel() -> np.ndarray:
        return model[0].weight.detach().double().numpy().T.copy()

    model.train()
    for tracker in trackers.values():
        tracker.on_train_begin()
    reader(0, trackers, lambda: torch_predict(model, X_test), kernel)
    for epoch, order in enumerate(torch_orders(len(inputs), seed, epochs), start=1):
        order = torch.as_tensor(order)
        for begin in range(0, len(inputs), BATCH):
            idx = order[begin : begin + BATCH]
            optimizer.zero_grad()
            loss_fn(model(inputs[idx]), target[idx]).backward()
            optimizer.step()
            for tracker in trackers.values():
                tracker.on_step_end()
        for tracker in trackers.values():
            tracker.on_epoch_end()
        reader(epoch, trackers, lambda: torch_predict(model, X_test), kernel)
    for tracker in trackers.values():
        tracker.on_train_end()


def run_one(
    variant: str,
    name: str,
    seed: int,
    epochs: int,
    read_at: Sequence[int],
    extra: Callable | None = None,
) -> tuple:
    """Rows and raw scores of one (variant, data set, seed).

    ``extra(epoch, trackers, predict, kernel, data, split)``, if given, is
    called at every epoch too (``keras_high_dim_probe`` records the kernel).
    """
    spec = VARIANTS[variant]
    data = make_synthetic(name, random_state=seed)
    split = _split(data, seed, TEST_SIZE)
    rows, raw = [], {}

    def reader(epoch: int, trackers: dict[str, Any], predict: Callable, kernel: Callable) -> None:
        if extra is not None:
            extra(epoch, trackers, predict, kernel, data, split)
        if epoch not in read_at:
            return
        score = holdout_score(data.task, predict(), split[3])
        for mode, tracker in trackers.items():
            try:
                scores = np.asarray(tracker.feature_importances_, dtype=np.float64)
            except NotFittedError:  # viann needs 2 snapshots: none after epoch 1
                continue
            metrics = ranking_metrics(scores, data.informative, data.decoys)
            rows.append(
                dict(
                    variant=variant,
                    dataset=name,
                    seed=seed,
                    mode=mode,
                    epochs=epoch,
                    test_score=score,
                    **metrics,
                )
            )
            raw[f"{variant}|{name}|{seed}|{mode}|{epoch}"] = [float(f"{s:.5g}") for s in scores]

    train = train_keras_variant if spec["framework"] == "keras" else train_torch_variant
    train(spec, data, split, seed, epochs, reader)
    backend = os.environ.get("KERAS_BACKEND", "tensorflow") if spec["framework"] == "keras" else ""
    for row in rows:
        row["backend"] = backend or "torch"
    return rows, raw


def save(rows: list[dict[str, Any]], raw: dict[str, list[float]]) -> None:
    """Add rows and raw scores to the files; a rerun (variant, data set, seed) replaces its rows."""
    table = pd.DataFrame(rows)
    if TABLE.exists():
        old = pd.read_csv(TABLE)
        keep = ~old.set_index(["variant", "dataset", "seed"]).index.isin(
            table.set_index(["variant", "dataset", "seed"]).index
        )
        table = pd.concat([old[keep], table], ignore_index=True)
    table.to_csv(TABLE, index=False)
    old_raw = json.loads(gzip.decompress(SCORES.read_bytes())) if SCORES.exists() else {}
    old_raw.update(raw)
    SCORES.write_bytes(gzip.compress(json.dumps(old_raw).encode(), 9))


def run(args: argparse.Namespace) -> None:
    """Train every variant on every data set and seed; save after each variant."""
    limit_threads(1)
    if any(VARIANTS[v]["framework"] == "keras" for v in args.variants):
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    read_at = tuple(sorted(args.read_at))
    rows, raw = [], {}
    for variant in args.variants:
        start = time.perf_counter()
        for name in args.datasets or SYNTHETIC_DATASETS:
            for seed in range(args.seeds):
                new_rows, new_raw = run_one(variant, name, seed, max(read_at), read_at)
                rows += new_rows
                raw.update(new_raw)
            # Saved per variant, so an interrupted run keeps what it finished.
            save(rows, raw)
            rows, raw = [], {}
        print(f"{variant}: {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    print(f"wrote {TABLE} and {SCORES}")


# -------------------------------------------------------------------- report
def load() -> pd.DataFrame:
    """The probe's rows, with ``k_default`` completed from the suite's Keras CSVs.

    ``k_default`` is the suite's own Keras training; where the probe did not
    rerun it (data sets other than ``high_dim``), its rows come from
    ``truth_keras_{15,60,200}.csv``. On ``high_dim`` the probe's read-outs
    equal the suite's to the last digit, AUC and test score, at all three lengths.
    """
    table = pd.read_csv(TABLE)
    have = set(table.loc[table["variant"] == "k_default", "dataset"])
    extra = []
    for epochs in READ_AT:
        path = OUT / f"truth_keras_{epochs}.csv"
        if not path.exists():
            continue
        suite = pd.read_csv(path)
        suite = suite[suite["method"].isin([f"{m}_keras" for m in MODES])]
        suite = suite[~suite["dataset"].isin(have) & (suite["seed"] < table["seed"].max() + 1)]
        extra.append(
            suite.assign(
                variant="k_default",
                mode=suite["method"].str.removesuffix("_keras"),
                backend="tensorflow",
            )[[c for c in table.columns if c in suite.columns or c in ("variant", "mode")]]
        )
    return pd.concat([table, *extra], ignore_index=True)


def summary(table: pd.DataFrame, mode: str, datasets: Sequence[str]) -> pd.DataFrame:
    """Mean AUC and P@k over ``datasets`` (of the means over seeds) per variant and epoch.

    Only variants run on every one of ``datasets`` are kept.
    """
    sub = table[(table["mode"] == mode) & table["dataset"].isin(datasets)]
    complete = sub.groupby("variant")["dataset"].nunique() == len(datasets)
    sub = sub[sub["variant"].isin(complete[complete].index)]
    per = sub.groupby(["variant", "epochs", "dataset"])[["auc", "precision_at_k"]].mean()
    return per.groupby(["variant", "epochs"]).mean().unstack("epochs")


def report(args: argparse.Namespace) -> None:
    """Print suite means (variants run on every data set) and the ``high_dim`` tables."""
    table = load()
    order = [v for v in VARIANTS if v in set(table["variant"])]
    pd.set_option("display.width", 250)
    table = table[table["epochs"].isin(READ_AT)]
    for mode in MODES:
        print(f"\n== {mode}: suite mean (AUC, P@k), variants run on all data sets")
        result = summary(table, mode, SYNTHETIC_DATASETS)
        print(result.reindex([v for v in order if v in result.index]).round(3).to_string())
    high = table[table["dataset"] == "high_dim"]
    for mode in MODES:
        print(f"\n== {mode} on high_dim: AUC, P@k (mean over seeds)")
        print(
            high[high["mode"] == mode]
            .pivot_table(index="variant", columns="epochs", values=["auc", "precision_at_k"])
            .reindex(order)
            .round(3)
            .to_string()
        )
    print("\n== high_dim: held-out R² (mean over seeds)")
    print(
        high[high["mode"] == "taylor"]
        .pivot_table(index="variant", columns="epochs", values="test_score")
        .reindex(order)
        .round(3)
        .to_string()
    )


def check(args: argparse.Namespace) -> None:
    """Compare ``k_matched`` with ``t_default`` in the first epochs (the tap vs the torch tracker).

    Same initial weights, batch order and epsilon: any difference is float32
    rounding of two frameworks' kernels. Prints, per read-out epoch, the largest
    difference of the raw taylor scores relative to their largest value, their
    rank correlation, and the held-out scores. Nothing is saved.
    """
    limit_threads(1)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    read_at = tuple(sorted(args.read_at))
    for name in args.datasets or ["friedman1", "high_dim"]:
        raw = {}
        for variant in ("k_matched", "t_default"):
            spec = VARIANTS[variant]
            data = make_synthetic(name, random_state=0)
            split = _split(data, 0, TEST_SIZE)

            def reader(
                epoch, trackers, predict, kernel, variant=variant, data=data, split=split, raw=raw
            ):
                if epoch in read_at:
                    raw[variant, epoch] = (
                        np.asarray(trackers["taylor"].raw_importances_, np.float64),
                        holdout_score(data.task, predict(), split[3]),
                    )

            train = train_keras_variant if spec["framework"] == "keras" else train_torch_variant
            train(spec, data, split, 0, max(read_at), reader)
        for epoch in read_at:
            (k, k_score), (t, t_score) = raw["k_matched", epoch], raw["t_default", epoch]
            ranks = np.corrcoef(np.argsort(np.argsort(k)), np.argsort(np.argsort(t)))[0, 1]
            print(
                f"{name}, epoch {epoch}: max |taylor diff| / max = "
                f"{np.abs(k - t).max() / np.abs(t).max():.2e}, rank correlation {ranks:.5f}, "
                f"held-out score {k_score:.5f} (Keras) vs {t_score:.5f} (PyTorch)"
            )


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    r.add_argument("--seeds", type=int, default=3)
    r.add_argument("--datasets", nargs="+", choices=list(SYNTHETIC_DATASETS))
    r.add_argument("--read-at", type=int, nargs="+", default=list(READ_AT))
    sub.add_parser("report")
    c = sub.add_parser("check", help="k_matched against t_default, first epochs (seed 0)")
    c.add_argument("--datasets", nargs="+", choices=list(SYNTHETIC_DATASETS))
    c.add_argument("--read-at", type=int, nargs="+", default=[1, 2, 5])
    args = parser.parse_args()
    {"run": run, "report": report, "check": check}[args.command](args)


if __name__ == "__main__":
    main()
