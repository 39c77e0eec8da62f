"""Accuracy against planted truth: do the importances find the informative features?

For every synthetic data set of :mod:`neural_feature_importance.datasets.synthetic`
(the informative features are known) and every seed, one MLP is trained per
framework with the VIANN trackers attached; the post-hoc methods then explain
the trained PyTorch network, and a random forest is fitted on the same rows.
The training-time feature-selection peers (family ``selector``: LassoNet and
Stochastic Gates, :mod:`benchmarks.selectors`) train their own network with a
selection penalty on the same training rows. Each method's scores are compared
with the truth (ROC-AUC of informative vs other features, precision@k with k =
number of informative features) and its cost is recorded (seconds beyond
training; for a tracker the time spent inside its hooks, measured directly, as a
percentage of training; for a selector its whole run, as a multiple of one
training run of the benchmark's PyTorch MLP on the same data and seed).

Run ``python -m benchmarks.truth`` (the full table, tens of minutes on one core) or
``python -m benchmarks.truth --quick`` (a smoke run). From Python::

    from benchmarks.truth import run_truth
    table = run_truth(["xor"], ["viann_epoch_torch", "permutation"], seeds=range(3), epochs=20)

``python -m benchmarks.truth --grouped`` runs the grouped-column problem
instead (:func:`run_grouped`): columns that span several inputs (one-hot
levels, an embedding's dimensions), scored per *column* by the trackers with
``groups=`` and by grouped permutation importance, at several training
lengths (``--epochs 15,60,200``)::

    from benchmarks.truth import run_grouped
    table = run_grouped(seeds=range(5), epochs=[15, 60], methods=["taylor", "grouped_permutation"])
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import report
from benchmarks.methods import GROUPED_METHODS, Method, Trained, resolve_methods
from benchmarks.metrics import precision_at_k, ranking_metrics, roc_auc
from benchmarks.selectors import Selection
from benchmarks.training import (
    KERAS_HOOKS,
    TORCH_HOOKS,
    holdout_score,
    keras_embedding_mlp,
    keras_mlp,
    keras_predict,
    limit_threads,
    n_outputs,
    time_hooks,
    timed_read,
    torch_embedding_mlp,
    torch_mlp,
    torch_predict,
    train_keras,
    train_torch,
)
from neural_feature_importance.datasets.grouped import GROUPED_COLUMNS as GROUPED_COLUMN_SPECS
from neural_feature_importance.datasets.grouped import make_grouped_columns
from neural_feature_importance.datasets.synthetic import SYNTHETIC_DATASETS, make_synthetic

logger = logging.getLogger(__name__)

DEFAULT_EPOCHS = 30
DEFAULT_SEEDS = 5
TEST_SIZE = 0.25
QUICK = {"seeds": 1, "epochs": 4, "n_samples": 300}
WARM_UP_ROWS = 260
"""Rows of the throw-away warm-up run: half of them train, 5 batches of 32 per
epoch, so that every tracker (``steady_taylor`` needs two gradient reads at
one step in 4) has something to score."""
WARM_UP_LASSONET = {"lambda_start": 1.0, "n_iters": (5, 2), "path_multiplier": 2.0}
"""LassoNet's arguments in the throw-away warm-up run: a short path (imports, first calls).

A fixed ``lambda_start`` skips LassoNet's automatic estimate, which alone takes
seconds (up to 10,000 proximal iterations per candidate value)."""

COLUMNS = [
    "dataset",
    "seed",
    "method",
    "family",
    "framework",
    "auc",
    "precision_at_k",
    "auc_vs_decoys",
    "test_score",
    "method_seconds",
    "train_seconds",
    "overhead_pct",
    "n_snapshots",
    "n_features",
    "n_informative",
    "n_train",
    "epochs",
    "error",
]


def _split(data: Any, seed: int, test_size: float) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    stratify = data.y if data.task == "classification" else None
    return train_test_split(
        data.X, data.y, test_size=test_size, random_state=seed, stratify=stratify
    )


def _row(data: Any, seed: int, method: Method, epochs: int, n_train: int) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS, np.nan)
    row.update(
        dataset=data.name,
        seed=seed,
        method=method.name,
        family=method.family,
        framework=method.framework,
        n_features=data.X.shape[1],
        n_informative=data.n_informative,
        n_train=n_train,
        epochs=epochs,
        error="",
    )
    return row


def _score(row: dict[str, Any], scores: np.ndarray, data: Any) -> None:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape != (data.X.shape[1],):
        raise ValueError(f"{row['method']} returned {scores.shape} scores for {data.X.shape[1]}")
    row.update(ranking_metrics(scores, data.informative, data.decoys))


def _viann_run(
    framework: str,
    trackers: list[Method],
    data: Any,
    split: tuple[np.ndarray, ...],
    seed: int,
    settings: dict[str, Any],
) -> tuple[list[dict[str, Any]], Any]:
    """Train one network of ``framework`` with all its trackers; rows and the model."""
    X_train, X_test, y_train, y_test = split
    out = n_outputs(data.task, data.y)
    if framework == "torch":
        import torch

        torch.manual_seed(seed)
        model = torch_mlp(data.X.shape[1], out, settings["hidden"])
    else:
        import keras

        keras.utils.set_random_seed(seed)
        model = keras_mlp(data.X.shape[1], out, settings["hidden"])
    built = [(m, m.make_tracker(model if framework == "torch" else None)) for m in trackers]
    hooks = TORCH_HOOKS if framework == "torch" else KERAS_HOOKS
    timers = [time_hooks(tracker, hooks) for _, tracker in built]
    common = {"epochs": settings["epochs"], "batch_size": settings["batch_size"], "seed": seed}
    if framework == "torch":
        train_s = train_torch(
            model,
            X_train,
            y_train,
            data.task,
            lr=settings["lr"],
            hooks=[t for _, t in built],
            **common,
        )
        score = holdout_score(data.task, torch_predict(model, X_test), y_test)
    else:
        train_s = train_keras(
            model,
            X_train,
            y_train,
            data.task,
            lr=settings["lr"],
            callbacks=[t for _, t in built],
            **common,
        )
        score = holdout_score(data.task, keras_predict(model, X_test), y_test)
    net_train_s = train_s - sum(timer.seconds for timer in timers)
    rows = _tracker_rows(
        built,
        timers,
        new_row=lambda method: _row(data, seed, method, settings["epochs"], len(X_train)),
        score_row=lambda row, tracker, timer: _score(row, timed_read(tracker, timer), data),
        where=f"{data.name} (seed {seed})",
        test_score=score,
        train_seconds=net_train_s,
    )
    return rows, (model, score, net_train_s)


def _tracker_rows(
    built: list[tuple[Method, Any]],
    timers: list[Any],
    new_row: Callable[[Method], dict[str, Any]],
    score_row: Callable[[dict[str, Any], Any, Any], None],
    where: str,
    test_score: float,
    train_seconds: float,
) -> list[dict[str, Any]]:
    """One result row per tracker of a training run, with its cost; failures are recorded."""
    rows = []
    for (method, tracker), timer in zip(built, timers, strict=True):
        row = new_row(method)
        try:
            score_row(row, tracker, timer)
            row["n_snapshots"] = tracker.n_updates_
        except Exception as exc:  # a benchmark records failures and goes on
            logger.warning("%s on %s failed: %s", method.name, where, exc)
            row["error"] = f"{type(exc).__name__}: {exc}"
        row.update(
            test_score=test_score,
            method_seconds=timer.seconds,
            train_seconds=train_seconds,
            overhead_pct=100.0 * timer.seconds / train_seconds,
        )
        rows.append(row)
    return rows


def run_truth(
    datasets: Iterable[str] = SYNTHETIC_DATASETS,
    methods: Iterable[str | Method] | None = None,
    seeds: Iterable[int] | int = DEFAULT_SEEDS,
    epochs: int = DEFAULT_EPOCHS,
    *,
    n_samples: int | None = None,
    hidden: Sequence[int] = (64, 64),
    batch_size: int = 32,
    lr: float = 1e-3,
    test_size: float = TEST_SIZE,
    progress: Callable[[str], None] | None = None,
    warm_up: bool = True,
) -> pd.DataFrame:
    """Run every method on every data set and seed; one row per (data set, seed, method).

    Parameters
    ----------
    datasets : iterable of str
        Names from :data:`~neural_feature_importance.datasets.synthetic.SYNTHETIC_DATASETS`.
    methods : iterable of str or Method, optional
        Built-in names (:data:`benchmarks.methods.METHODS`) and/or methods made
        with :func:`benchmarks.methods.viann_variant`. Default: all built-ins.
    seeds : int or iterable of int, default=5
        A count (``range(seeds)``) or the seeds themselves. The seed fixes the
        data, the split, the network's initialisation, the batch order and the
        peers' randomness.
    epochs : int, default=30
        Training epochs of every network.
    n_samples : int, optional
        Rows per data set (default: each data set's own default).
    hidden, batch_size, lr
        The MLP's hidden widths and Adam's settings.
    test_size : float, default=0.25
        Held-out share: the test score and the data-driven post-hoc methods use it.
    progress : callable, optional
        Called with one line per finished (data set, seed), e.g. ``print``.
    warm_up : bool, default=True
        First run every method once on 60 rows and throw the result away, so
        that imports and first-call set-up are not timed.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`. ``method_seconds`` is the time the method
        needs beyond training (for VIANN: inside the tracker, including reading
        the importances; for a selector: its whole run, training its own
        network); ``train_seconds`` is the network's training time without the
        trackers (for a selector: the PyTorch MLP's, same data and seed);
        ``overhead_pct`` = 100 * method / training for VIANN and selectors.
        ``test_score`` is the explained network's, or a selector's own network's.
        A method that raised has its message in ``error`` and NaN scores.
    """
    seed_list = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else list(seeds)
    dataset_list = [datasets] if isinstance(datasets, str) else list(datasets)
    unknown = [d for d in dataset_list if d not in SYNTHETIC_DATASETS]
    if unknown:
        raise ValueError(
            f"unknown data set(s) {unknown}; use names from {', '.join(SYNTHETIC_DATASETS)}."
        )
    if not seed_list or not dataset_list:
        raise ValueError("run_truth needs at least one data set and one seed.")
    if not isinstance(epochs, (int, np.integer)) or epochs < 2:
        raise ValueError(f"epochs={epochs!r}; VIANN needs at least 2 epochs (2 snapshots).")
    method_list = resolve_methods(methods)
    settings = {"hidden": tuple(hidden), "batch_size": batch_size, "lr": lr, "epochs": int(epochs)}
    if warm_up:
        # One throw-away run on a tiny problem, so that the timed runs do not pay
        # for imports and first-call initialisation (captum, shap, Keras graphs).
        # LassoNet ignores "epochs" (it has its own stopping rules): a short path here.
        _one_run(
            dataset_list[0],
            seed_list[0],
            method_list,
            WARM_UP_ROWS,
            0.5,
            {**settings, "epochs": 2, "lassonet": WARM_UP_LASSONET},
        )
    rows: list[dict[str, Any]] = []
    for name in dataset_list:
        for seed in seed_list:
            start = time.perf_counter()
            rows.extend(_one_run(name, seed, method_list, n_samples, test_size, settings))
            if progress is not None:
                progress(f"{name} seed {seed}: {time.perf_counter() - start:.1f} s")
    return pd.DataFrame(rows, columns=COLUMNS)


def _one_run(
    name: str,
    seed: int,
    methods: list[Method],
    n_samples: int | None,
    test_size: float,
    settings: dict[str, Any],
) -> list[dict[str, Any]]:
    data = make_synthetic(name, n_samples=n_samples, random_state=seed)
    split = _split(data, seed, test_size)
    X_train, X_test, y_train, y_test = split
    rows: list[dict[str, Any]] = []
    torch_model = None
    torch_score = net_train_s = np.nan
    for framework in ("torch", "keras"):
        trackers = [m for m in methods if m.family == "viann" and m.framework == framework]
        # Post-hoc methods explain the torch network; selectors' cost is measured
        # against its training time.
        needs_model = framework == "torch" and any(
            m.family in ("posthoc", "selector") for m in methods
        )
        if not trackers and not needs_model:
            continue
        new_rows, (model, score, train_s) = _viann_run(
            framework, trackers, data, split, seed, settings
        )
        rows.extend(new_rows)
        if framework == "torch":
            torch_model, torch_score, net_train_s = model, score, train_s
    trained = Trained(
        torch_model, data.task, X_train, y_train, X_test, y_test, seed, settings=settings
    )
    for method in methods:
        if method.family == "viann":
            continue
        row = _row(data, seed, method, settings["epochs"], len(X_train))
        if method.family == "posthoc":
            row.update(test_score=torch_score, train_seconds=net_train_s)
        elif method.family == "selector":
            row["train_seconds"] = net_train_s
        start = time.perf_counter()
        try:
            if method.explain is None:
                raise TypeError(f"method {method.name!r} ({method.family}) has no explain().")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores = method.explain(trained)
            row["method_seconds"] = time.perf_counter() - start
            if method.family == "selector":
                row["overhead_pct"] = 100.0 * row["method_seconds"] / net_train_s
            if isinstance(scores, Selection):
                row["test_score"] = scores.test_score
                scores = scores.importances
            _score(row, scores, data)
        except Exception as exc:  # a benchmark records failures and goes on
            logger.warning("%s on %s (seed %d) failed: %s", method.name, name, seed, exc)
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows


# ------------------------------------------------------------------ summary
def failed(table: pd.DataFrame) -> pd.Series:
    """Rows whose method raised (an ``error`` message; empty or NaN when read from CSV)."""
    errors = table["error"]
    return errors.notna() & (errors.astype(str) != "")


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per (data set, method)."""
    ok = table[~failed(table)]
    grouped = ok.groupby(["dataset", "method"], sort=False)
    summary = grouped.agg(
        auc_mean=("auc", "mean"),
        auc_std=("auc", "std"),
        precision_at_k_mean=("precision_at_k", "mean"),
        precision_at_k_std=("precision_at_k", "std"),
        auc_vs_decoys_mean=("auc_vs_decoys", "mean"),
        test_score_mean=("test_score", "mean"),
        method_seconds_median=("method_seconds", "median"),
        overhead_pct_median=("overhead_pct", "median"),
        train_seconds_median=("train_seconds", "median"),
        seeds=("seed", "nunique"),
    )
    return summary.reset_index()


def _pivot(table: pd.DataFrame, column: str, methods: list[str], datasets: list[str]) -> list:
    rows = []
    for method in methods:
        cells = [method]
        means = []
        for dataset in datasets:
            values = table.loc[
                (table["method"] == method) & (table["dataset"] == dataset), column
            ].to_numpy(dtype=float)
            cells.append(report.fmt_mean_std(values))
            finite = values[np.isfinite(values)]
            if finite.size:
                means.append(finite.mean())
        cells.append(f"{np.mean(means):.2f}" if means else "n/a")
        rows.append(cells)
    return rows


def markdown(table: pd.DataFrame, plots: Sequence[Path] = ()) -> str:
    """The Markdown tables of a :func:`run_truth` result."""
    ok = table[~failed(table)]
    datasets = list(dict.fromkeys(table["dataset"]))
    methods = list(dict.fromkeys(table["method"]))
    seeds = sorted(table["seed"].unique())
    epochs = int(table["epochs"].iloc[0])
    parts = [
        f"Seeds {seeds[0]}-{seeds[-1]} ({len(seeds)}), {epochs} epochs, MLP 64-64 (ReLU, Adam "
        "1e-3, batch 32), 75/25 train/test split. Cells: mean ± std over seeds. "
        "`mean` = mean over data sets."
        + (
            " Selectors (family `selector`) train their own network on the same training "
            "rows: LassoNet (its own path and stopping rules, 64-64 hidden) and stochastic "
            f"gates in front of the same MLP ({epochs} epochs)."
            if (table["family"] == "selector").any()
            else ""
        ),
        "",
        "**ROC-AUC, informative vs all other features** (1 = perfect, 0.5 = chance)",
        "",
        report.markdown_table(["method", *datasets, "mean"], _pivot(ok, "auc", methods, datasets)),
        "",
        "**Precision@k** (k = number of informative features)",
        "",
        report.markdown_table(
            ["method", *datasets, "mean"], _pivot(ok, "precision_at_k", methods, datasets)
        ),
    ]
    decoy_sets = [d for d in datasets if ok.loc[ok["dataset"] == d, "auc_vs_decoys"].notna().any()]
    if decoy_sets:
        parts += [
            "",
            "**ROC-AUC, informative vs correlated decoys only**",
            "",
            report.markdown_table(
                ["method", *decoy_sets, "mean"],
                _pivot(ok, "auc_vs_decoys", methods, decoy_sets),
            ),
        ]
    # Test scores: one line per framework's network, then each selector's own network.
    score_rows = []
    explained = ok[ok["family"] != "selector"]
    for framework in ("torch", "keras"):
        sub = explained[(explained["framework"] == framework) & explained["test_score"].notna()]
        if sub.empty:
            continue
        cells = [f"MLP ({framework})"]
        for dataset in datasets:
            per_seed = sub[sub["dataset"] == dataset].groupby("seed")["test_score"].first()
            cells.append(report.fmt_mean_std(per_seed.to_numpy()))
        score_rows.append(cells)
    selectors = [m for m in methods if (ok.loc[ok["method"] == m, "family"] == "selector").any()]
    for method in selectors:
        sub = ok[(ok["method"] == method) & ok["test_score"].notna()]
        if sub.empty:
            continue
        cells = [f"{method} (own network)"]
        for dataset in datasets:
            cells.append(report.fmt_mean_std(sub.loc[sub["dataset"] == dataset, "test_score"]))
        score_rows.append(cells)
    if score_rows:
        parts += [
            "",
            "**Test score of the trained network** (accuracy for classification, R² for "
            "regression; shows that it learned"
            + ("; selectors: the network each trained for itself" if selectors else "")
            + ")",
            "",
            report.markdown_table(["network", *datasets], score_rows),
        ]
    parts += ["", *_cost_markdown(ok, methods, datasets)]
    errors = table[failed(table)]
    if not errors.empty:
        parts += ["", "**Failures**", ""]
        for _, row in errors.drop_duplicates(["method", "error"]).iterrows():
            parts.append(f"- {row['method']} on {row['dataset']}: {row['error']}")
    for plot in plots:
        parts += ["", f"![{plot.stem}]({report.relative(plot)})"]
    return "\n".join(parts)


def _times(ratio: float) -> str:
    """A cost as a multiple of one training run: ``"0.8x"``, ``"12.3x"``, ``"350x"``."""
    return f"{ratio:.1f}x" if ratio < 100 else f"{ratio:.0f}x"


def _cost_markdown(ok: pd.DataFrame, methods: list[str], datasets: list[str]) -> list[str]:
    rows = []
    any_selector = False
    for method in methods:
        sub = ok[ok["method"] == method]
        cells = [method]
        for dataset in datasets:
            seconds = sub.loc[sub["dataset"] == dataset, "method_seconds"].median()
            cells.append(report.fmt_seconds(float(seconds)))
        overhead = sub["overhead_pct"].median()
        if not np.isfinite(overhead):
            cells.append("")
        elif (sub["family"] == "selector").any():
            any_selector = True
            cells.append(f"{_times(overhead / 100.0)} training")
        else:
            cells.append(f"{overhead:.2f} %")
        rows.append(cells)
    train_cells = ["(training, no tracker)"]
    for dataset in datasets:
        torch_rows = ok[(ok["dataset"] == dataset) & (ok["framework"] == "torch")]
        train_cells.append(report.fmt_seconds(float(torch_rows["train_seconds"].median())))
    rows.append([*train_cells, ""])
    selector_note = (
        "; selectors (LassoNet, STG) train their own network: their seconds are that whole "
        "run, and the last column gives it in units of one training run of the PyTorch MLP "
        "(same data set and seed), median over data sets and seeds"
        if any_selector
        else ""
    )
    last = "tracker overhead / selector cost" if any_selector else "tracker overhead"
    return [
        "**Cost: seconds beyond training** (median over seeds; for a tracker the time inside "
        "its hooks plus reading the importances, measured with `perf_counter` (the Keras "
        "gradient modes' per-step work runs inside the compiled train step, which hook timing "
        "does not see: their cost is in the `cost_keras_gradients` section); "
        "overhead = that time / training time without it, median over data sets and seeds"
        f"{selector_note}; the last line is the PyTorch network's own training time)",
        "",
        report.markdown_table(["method", *datasets, last], rows),
    ]


def plot(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Two PNGs: AUC per method and data set, and mean AUC against cost."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = table[~failed(table)]
    datasets = list(dict.fromkeys(ok["dataset"]))
    methods = list(dict.fromkeys(ok["method"]))
    paths = []

    fig, ax = plt.subplots(figsize=(max(9, 1.3 * len(datasets) + 4), 4.5))
    width = 0.8 / max(len(methods), 1)
    cmap = plt.get_cmap("tab20")
    for i, method in enumerate(methods):
        sub = ok[ok["method"] == method].groupby("dataset")["auc"]
        means = sub.mean().reindex(datasets)
        stds = sub.std().reindex(datasets).fillna(0.0)
        x = np.arange(len(datasets)) + (i - (len(methods) - 1) / 2) * width
        ax.bar(x, means, width, yerr=stds, label=method, color=cmap(i % 20), capsize=1.5)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(datasets)), datasets, rotation=15)
    lowest = ok.groupby(["method", "dataset"])["auc"].mean().min()
    ax.set_ylim(min(0.3, float(np.floor(lowest * 10) / 10)) if np.isfinite(lowest) else 0.3, 1.02)
    ax.set_ylabel("ROC-AUC (informative vs rest)")
    ax.set_title("Recovery of planted informative features (mean ± std over seeds)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = out_dir / "truth_auc.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, method in enumerate(methods):
        sub = ok[ok["method"] == method]
        seconds = sub["method_seconds"].median()
        auc = sub.groupby("dataset")["auc"].mean().mean()
        ax.scatter(seconds, auc, color=cmap(i % 20), s=40)
        ax.annotate(method, (seconds, auc), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("seconds beyond training (median over runs, log)")
    ax.set_ylabel("ROC-AUC, mean over data sets")
    ax.set_title("Accuracy against extra cost")
    fig.tight_layout()
    path = out_dir / "truth_cost_vs_auc.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    return paths


# ------------------------------------------------------------ grouped columns
GROUPED_EPOCHS: tuple[int, ...] = (15, 60, 200)
"""Training lengths of the grouped-column runs (one network per seed and length)."""
GROUPED_EMBEDDING_DIM = 4
GROUPED_QUICK = {"seeds": 1, "epochs": [3], "n_samples": 300}
GROUPED_TABLE_COLUMNS = [
    "dataset",
    "seed",
    "epochs",
    "method",
    "family",
    "framework",
    "auc",
    "precision_at_k",
    "test_score",
    "method_seconds",
    "train_seconds",
    "overhead_pct",
    "n_snapshots",
    "n_columns",
    "n_informative",
    "n_inputs",
    "n_train",
    "embedding_dim",
    "noise",
    "error",
    *(f"score_{name}" for name, *_ in GROUPED_COLUMN_SPECS),
]
"""Columns of :func:`run_grouped`'s table; ``score_<column>`` is that column's importance."""


def _grouped_inputs(data: Any) -> tuple[np.ndarray, list[list[int]]]:
    """The model's input ``[codes, X_numeric]`` and each data column's inputs in it."""
    X = np.hstack([data.codes.astype(np.float32), data.X_numeric])
    offset = data.codes.shape[1]
    members = []
    for where, inputs in data.column_inputs().values():
        members.append(list(inputs) if where == "codes" else [offset + i for i in inputs])
    return X, members


def _grouped_row(data: Any, seed: int, method: Method, epochs: int, n_train: int) -> dict:
    row: dict[str, Any] = dict.fromkeys(GROUPED_TABLE_COLUMNS, np.nan)
    row.update(
        dataset=data.name,
        seed=seed,
        epochs=epochs,
        method=method.name,
        family=method.family,
        framework=method.framework,
        n_columns=len(data.columns),
        n_informative=data.n_informative,
        n_train=n_train,
        noise=data.noise,
        error="",
    )
    return row


def _grouped_score(row: dict[str, Any], scores: np.ndarray, data: Any) -> None:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape != (len(data.columns),):
        raise ValueError(f"{row['method']} returned {scores.shape} scores for {data.columns}")
    row.update(
        auc=roc_auc(scores, data.informative),
        precision_at_k=precision_at_k(scores, data.informative),
    )
    for column, value in zip(data.columns, scores, strict=True):
        row[f"score_{column}"] = value


def _tracker_columns(tracker: Any, timer: Any, data: Any) -> np.ndarray:
    """The tracker's per-column scores, in ``data.columns`` order (checked by name)."""
    scores = timed_read(tracker, timer)
    names = [str(n) for n in tracker.feature_names_in_]
    if sorted(names) != sorted(data.columns):
        raise ValueError(f"the tracker reports columns {names}, expected {data.columns}")
    return scores[[names.index(column) for column in data.columns]]


def _grouped_network(
    framework: str,
    trackers: list[Method],
    data: Any,
    split: tuple[np.ndarray, ...],
    seed: int,
    epochs: int,
    settings: dict[str, Any],
) -> tuple[list[dict[str, Any]], Any, float, float]:
    """Train one embedding MLP of ``framework`` with its trackers: rows, model, score, seconds."""
    X_train, X_test, y_train, y_test = split
    dim = settings["embedding_dim"]
    shape = (
        [data.n_levels(c) for c in data.embedded_columns],
        dim,
        data.X_numeric.shape[1],
        n_outputs(data.task, data.y),
        settings["hidden"],
    )
    feature_names, groups = data.first_layer_columns(dim)
    columns = {"feature_names": feature_names, "groups": groups}
    common = {
        "epochs": epochs,
        "batch_size": settings["batch_size"],
        "lr": settings["lr"],
        "seed": seed,
    }
    if framework == "torch":
        import torch

        torch.manual_seed(seed)
        model = torch_embedding_mlp(*shape)
        built = [(m, m.make_tracker(model, layer="mlp.0", **columns)) for m in trackers]
        timers = [time_hooks(tracker, TORCH_HOOKS) for _, tracker in built]
        train_s = train_torch(
            model, X_train, y_train, data.task, hooks=[t for _, t in built], **common
        )
        score = holdout_score(data.task, torch_predict(model, X_test), y_test)
    else:
        import keras

        keras.utils.set_random_seed(seed)
        model = keras_embedding_mlp(*shape)
        built = [(m, m.make_tracker(None, layer="mlp_0", **columns)) for m in trackers]
        timers = [time_hooks(tracker, KERAS_HOOKS) for _, tracker in built]
        train_s = train_keras(
            model, X_train, y_train, data.task, callbacks=[t for _, t in built], **common
        )
        score = holdout_score(data.task, keras_predict(model, X_test), y_test)
    net_train_s = train_s - sum(timer.seconds for timer in timers)

    def new_row(method: Method) -> dict[str, Any]:
        row = _grouped_row(data, seed, method, epochs, len(X_train))
        row.update(n_inputs=len(feature_names), embedding_dim=dim)
        return row

    rows = _tracker_rows(
        built,
        timers,
        new_row=new_row,
        score_row=lambda row, tracker, timer: _grouped_score(
            row, _tracker_columns(tracker, timer, data), data
        ),
        where=f"{data.name} (seed {seed})",
        test_score=score,
        train_seconds=net_train_s,
    )
    return rows, model, score, net_train_s


def _grouped_one_run(
    seed: int,
    epochs: int,
    methods: list[Method],
    n_samples: int,
    test_size: float,
    settings: dict[str, Any],
) -> list[dict[str, Any]]:
    """One data set and split; a network per framework with its trackers; then the post-hoc."""
    from sklearn.model_selection import train_test_split

    data = make_grouped_columns(n_samples, random_state=seed, noise=settings["noise"])
    X, members = _grouped_inputs(data)
    split = train_test_split(X, data.y, test_size=test_size, random_state=seed)
    rows: list[dict[str, Any]] = []
    torch_model = None
    torch_score = torch_train_s = np.nan
    for framework in ("torch", "keras"):
        trackers = [m for m in methods if m.family == "viann" and m.framework == framework]
        needs_model = framework == "torch" and any(m.family != "viann" for m in methods)
        if not trackers and not needs_model:
            continue
        new_rows, model, score, train_s = _grouped_network(
            framework, trackers, data, split, seed, epochs, settings
        )
        rows.extend(new_rows)
        if framework == "torch":
            torch_model, torch_score, torch_train_s = model, score, train_s
    X_train, X_test, y_train, y_test = split
    trained = Trained(
        torch_model, data.task, X_train, y_train, X_test, y_test, seed, column_members=members
    )
    for method in methods:
        if method.family == "viann":
            continue
        row = _grouped_row(data, seed, method, epochs, len(X_train))
        row.update(
            n_inputs=X.shape[1],
            embedding_dim=settings["embedding_dim"],
            test_score=torch_score,
            train_seconds=torch_train_s,
        )
        start = time.perf_counter()
        try:
            scores = method.explain(trained)
            row["method_seconds"] = time.perf_counter() - start
            if isinstance(scores, Selection):
                scores = scores.importances
            _grouped_score(row, scores, data)
        except Exception as exc:  # a benchmark records failures and goes on
            logger.warning("%s on %s (seed %d) failed: %s", method.name, data.name, seed, exc)
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows


def run_grouped(
    seeds: Iterable[int] | int = DEFAULT_SEEDS,
    epochs: Iterable[int] | int = GROUPED_EPOCHS,
    methods: Iterable[str | Method] | None = None,
    *,
    n_samples: int = 2000,
    noise: float = 0.5,
    embedding_dim: int = GROUPED_EMBEDDING_DIM,
    hidden: Sequence[int] = (64, 64),
    batch_size: int = 32,
    lr: float = 1e-3,
    test_size: float = TEST_SIZE,
    progress: Callable[[str], None] | None = None,
    warm_up: bool = True,
) -> pd.DataFrame:
    """The grouped-column problem: importances per *column* of one-hot and embedded data.

    Data: :func:`~neural_feature_importance.datasets.grouped.make_grouped_columns`
    (9 columns, 4 informative: an embedded and a one-hot categorical, a
    linear and a quadratic numeric). Model: an ``nn.Embedding`` of
    ``embedding_dim`` per embedded column, concatenated with the numeric and
    one-hot inputs, then an MLP (``hidden``). The trackers watch the first
    Linear (``mlp.0``) with ``groups=`` mapping each embedding's dimensions and
    each one-hot column's levels to their column, so they report one score per
    column; grouped permutation shuffles whole columns of the trained network's
    held-out rows. Metrics: ROC-AUC and precision@k of the informative columns
    against the others (k = 4).

    Parameters
    ----------
    seeds : int or iterable of int, default=5
        A count or the seeds; the seed fixes the rows, the split, the
        initialisation, the batch order and the permutations.
    epochs : int or iterable of int, default=(15, 60, 200)
        One network per seed and training length (each at least 2).
    methods : iterable of str or Method, optional
        Names from :data:`benchmarks.methods.GROUPED_METHODS` (default: all) or
        torch ``viann``-family methods made with
        :func:`~benchmarks.methods.viann_variant` (they get ``layer``,
        ``feature_names`` and ``groups``).
    n_samples, noise
        Passed to ``make_grouped_columns``.
    embedding_dim : int, default=4
    hidden, batch_size, lr
        The MLP's hidden widths and Adam's settings.
    test_size : float, default=0.25
    progress : callable, optional
        Called with one line per finished (seed, epochs).
    warm_up : bool, default=True
        First run every method once on 60 rows for 2 epochs and discard it
        (imports and first-call set-up are not timed).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`GROUPED_TABLE_COLUMNS`, one row per (seed, epochs,
        method); ``score_<column>`` holds each column's importance.
    """
    seed_list = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else list(seeds)
    epoch_list = [epochs] if isinstance(epochs, (int, np.integer)) else list(epochs)
    if not seed_list or not epoch_list:
        raise ValueError("run_grouped needs at least one seed and one training length.")
    bad = [e for e in epoch_list if not isinstance(e, (int, np.integer)) or e < 2]
    if bad:
        raise ValueError(f"epochs {bad}; every run needs at least 2 epochs (2 snapshots).")
    method_list = resolve_methods(methods, GROUPED_METHODS)
    foreign = [m.name for m in method_list if m.family == "posthoc" and m.framework != "torch"]
    if foreign:
        raise ValueError(f"post-hoc methods explain the PyTorch network; {foreign} do not.")
    settings = {
        "hidden": tuple(hidden),
        "batch_size": batch_size,
        "lr": lr,
        "noise": noise,
        "embedding_dim": embedding_dim,
    }
    if warm_up:
        _grouped_one_run(seed_list[0], 2, method_list, WARM_UP_ROWS, 0.5, settings)
    rows: list[dict[str, Any]] = []
    for seed in seed_list:
        for n_epochs in epoch_list:
            start = time.perf_counter()
            rows.extend(
                _grouped_one_run(seed, int(n_epochs), method_list, n_samples, test_size, settings)
            )
            if progress is not None:
                progress(
                    f"grouped seed {seed}, {n_epochs} epochs: {time.perf_counter() - start:.1f} s"
                )
    return pd.DataFrame(rows, columns=GROUPED_TABLE_COLUMNS)


def _grouped_pivot(ok: pd.DataFrame, column: str, methods: list[str], epochs: list[int]) -> list:
    rows = []
    for method in methods:
        cells = [method]
        for n in epochs:
            values = ok.loc[(ok["method"] == method) & (ok["epochs"] == n), column]
            cells.append(report.fmt_mean_std(values.to_numpy(dtype=float)))
        rows.append(cells)
    return rows


def grouped_markdown(table: pd.DataFrame) -> str:
    """The Markdown tables of a :func:`run_grouped` result."""
    ok = table[~failed(table)]
    methods = list(dict.fromkeys(table["method"]))
    epochs = sorted(int(e) for e in table["epochs"].unique())
    seeds = sorted(table["seed"].unique())
    informative = {name for name, _, _, keep in GROUPED_COLUMN_SPECS if keep}
    columns = [name for name, *_ in GROUPED_COLUMN_SPECS]
    header = ["method", *(f"{n} epochs" for n in epochs)]
    n_train = int(table["n_train"].iloc[0])
    dim = int(table["embedding_dim"].iloc[0])
    n_numeric = sum(
        1 if kind == "numeric" else levels
        for _, kind, levels, _ in GROUPED_COLUMN_SPECS
        if kind != "embedded"
    )
    n_embedded = sum(kind == "embedded" for _, kind, _, _ in GROUPED_COLUMN_SPECS)
    described = ", ".join(
        f"`{name}`{'*' if keep else ''} ({kind.replace('_', '-')}"
        + (f", {levels} levels)" if levels else ")")
        for name, kind, levels, keep in GROUPED_COLUMN_SPECS
    )
    noise = float(table["noise"].iloc[0])
    frameworks = [f for f in ("torch", "keras") if (table["framework"] == f).any()]
    parts = [
        f"Seeds {seeds[0]}-{seeds[-1]} ({len(seeds)}), {n_train} training rows (75/25 split). "
        f"Data: `make_grouped_columns(noise={noise:g})`, regression, {len(columns)} columns "
        f"in the trackers' order, * = informative: {described}; `temperature`'s effect is "
        "quadratic, `price`'s linear, the categoricals' per level. Model: an embedding of "
        f"width {dim} per embedded column, concatenated with the {n_numeric} numeric and "
        "one-hot inputs, then an MLP 64-64 (ReLU, Adam 1e-3, batch 32), in "
        f"{' and '.join(frameworks)}; the trackers watch its first dense layer "
        f"({n_embedded * dim + n_numeric} inputs) with `groups=` mapping each embedding's "
        "dimensions and each one-hot column's levels to their column. `grouped_permutation` "
        "explains the PyTorch network. Cells: mean ± std over seeds.",
        "",
        f"**ROC-AUC per column, informative vs noise columns** ({len(informative)} vs "
        f"{len(columns) - len(informative)}; 1 = perfect, 0.5 = chance)",
        "",
        report.markdown_table(header, _grouped_pivot(ok, "auc", methods, epochs)),
        "",
        f"**Precision@{len(informative)} per column** (share of informative columns among "
        "the top ones)",
        "",
        report.markdown_table(header, _grouped_pivot(ok, "precision_at_k", methods, epochs)),
        "",
        f"**Test R² of the trained network** (best attainable {1 / (1 + noise**2):.2f})",
        "",
    ]
    score_rows = []
    for framework in ("torch", "keras"):
        nets = ok[ok["framework"] == framework].drop_duplicates(["seed", "epochs"])
        if nets.empty:
            continue
        cells = [f"MLP ({framework})"]
        for n in epochs:
            cells.append(report.fmt_mean_std(nets.loc[nets["epochs"] == n, "test_score"]))
        score_rows.append(cells)
    parts += [report.markdown_table(["network", *header[1:]], score_rows), ""]
    # Ranks: which columns each method puts on top (1 = most important).
    rank_rows = []
    for method in methods:
        for n in epochs:
            sub = ok[(ok["method"] == method) & (ok["epochs"] == n)]
            if sub.empty:
                continue
            # Ties (growth clips at zero) share their mean rank.
            ranks = sub[[f"score_{c}" for c in columns]].rank(axis=1, ascending=False)
            rank_rows.append([f"{method}, {n}", *(f"{v:g}" for v in ranks.median(axis=0))])
    parts += [
        "**Rank of every column** (1 = most important; median over seeds; * = informative)",
        "",
        report.markdown_table(
            ["method, epochs", *(f"{c}*" if c in informative else c for c in columns)],
            rank_rows,
        ),
        "",
    ]
    cost_rows = []
    for method in methods:
        cells = [method]
        for n in epochs:
            seconds = ok.loc[(ok["method"] == method) & (ok["epochs"] == n), "method_seconds"]
            cells.append(report.fmt_seconds(float(seconds.median())))
        overhead = ok.loc[ok["method"] == method, "overhead_pct"].median()
        cells.append(f"{overhead:.2f} %" if np.isfinite(overhead) else "")
        cost_rows.append(cells)
    for framework in ("torch", "keras"):
        nets = ok[ok["framework"] == framework].drop_duplicates(["seed", "epochs"])
        if nets.empty:
            continue
        cells = [f"(training, {framework} network)"]
        for n in epochs:
            seconds = nets.loc[nets["epochs"] == n, "train_seconds"].median()
            cells.append(report.fmt_seconds(float(seconds)))
        cost_rows.append([*cells, ""])
    parts += [
        "**Cost: seconds beyond training** (median over seeds; trackers: time inside their "
        "hooks plus reading the importances; overhead = that time / training time, median "
        "over runs; the last lines are the networks' own training times, without trackers)",
        "",
        report.markdown_table([*header, "tracker overhead"], cost_rows),
    ]
    errors = table[failed(table)]
    if not errors.empty:
        parts += ["", "**Failures**", ""]
        for _, row in errors.drop_duplicates(["method", "error"]).iterrows():
            parts.append(f"- {row['method']} ({row['epochs']} epochs): {row['error']}")
    return "\n".join(parts)


# ---------------------------------------------------------------------- CLI
def _seeds(text: str) -> list[int]:
    if "," in text or "-" in text.strip("-"):
        values: list[int] = []
        for part in text.split(","):
            if "-" in part:
                lo, hi = part.split("-")
                values.extend(range(int(lo), int(hi) + 1))
            elif part:
                values.append(int(part))
        return values
    return list(range(int(text)))


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _command(argv: Sequence[str] | None) -> str:
    args = argv if argv is not None else sys.argv[1:]
    return ("python -m benchmarks.truth " + " ".join(args)).rstrip()


def _main_grouped(args: argparse.Namespace, argv: Sequence[str] | None, out: Path) -> pd.DataFrame:
    """``--grouped``: the grouped-column problem, its CSV, Markdown and RESULTS.md section."""
    quick = GROUPED_QUICK if args.quick else {}
    seeds = args.seeds if args.seeds is not None else quick.get("seeds", DEFAULT_SEEDS)
    epochs = args.epochs or quick.get("epochs", list(GROUPED_EPOCHS))
    n_samples = args.n_samples or quick.get("n_samples", 2000)
    start = time.perf_counter()
    table = run_grouped(
        seeds,
        epochs,
        _names(args.methods),
        n_samples=n_samples,
        progress=lambda line: print(line, flush=True),
    )
    elapsed = time.perf_counter() - start
    table.to_csv(out / "truth_grouped.csv", index=False)
    _publish(grouped_markdown(table), "truth_grouped", "grouped", out, args, argv, elapsed)
    return table


def _publish(
    text: str,
    stem: str,
    section: str,
    out: Path,
    args: argparse.Namespace,
    argv: Sequence[str] | None,
    elapsed: float,
) -> None:
    """Write ``<stem>.md`` with the command and machine, print it, update RESULTS.md."""
    body = (
        f"Command: `{_command(argv)}` ({elapsed / 60:.1f} min).\n\n{report.machine_info()}"
        f"\n\n{text}"
    )
    (out / f"{stem}.md").write_text(body + "\n", encoding="utf-8")
    print(body)
    print(f"\nwrote {out / (stem + '.md')} and its CSV files")
    if not args.quick and not args.no_update and out.resolve() == report.RESULTS_DIR.resolve():
        report.update_section(section, body)
        print(f"updated {report.RESULTS_MD}")


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    """Command line: ``python -m benchmarks.truth [--quick] [--grouped] [--seeds 5] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.truth", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 seed, few epochs, 300 rows"
    )
    parser.add_argument(
        "--grouped",
        action="store_true",
        help="run the grouped-column problem (one-hot and embedded categoricals) instead",
    )
    parser.add_argument("--seeds", type=_seeds, help="a count (5) or a list (0,3,7 or 0-4)")
    parser.add_argument(
        "--epochs",
        type=_ints,
        help=f"training epochs (default {DEFAULT_EPOCHS}); with --grouped a comma list "
        f"(default {','.join(map(str, GROUPED_EPOCHS))})",
    )
    parser.add_argument("--datasets", help=f"comma list of {', '.join(SYNTHETIC_DATASETS)}")
    parser.add_argument(
        "--methods",
        help="comma list of method names (default: all; with --grouped: "
        f"{', '.join(GROUPED_METHODS)})",
    )
    parser.add_argument("--n-samples", type=int, help="rows per data set")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results)")
    parser.add_argument("--no-update", action="store_true", help="do not edit RESULTS.md")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (default 1)")
    args = parser.parse_args(argv)
    if args.grouped and args.datasets:
        parser.error("--datasets does not apply to --grouped (it has its own data set).")
    if not args.grouped and args.epochs is not None and len(args.epochs) != 1:
        parser.error("--epochs takes one number (a list only with --grouped).")

    limit_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = args.out
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="viann-truth-")) if args.quick else report.RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    if args.grouped:
        return _main_grouped(args, argv, out)

    quick = QUICK if args.quick else {}
    seeds = args.seeds if args.seeds is not None else quick.get("seeds", DEFAULT_SEEDS)
    epochs = args.epochs[0] if args.epochs else quick.get("epochs", DEFAULT_EPOCHS)
    n_samples = args.n_samples or quick.get("n_samples")
    start = time.perf_counter()
    table = run_truth(
        _names(args.datasets) or SYNTHETIC_DATASETS,
        _names(args.methods),
        seeds,
        epochs,
        n_samples=n_samples,
        progress=lambda line: print(line, flush=True),
    )
    elapsed = time.perf_counter() - start
    table.to_csv(out / "truth.csv", index=False)
    summarise(table).to_csv(out / "truth_summary.csv", index=False)
    plots = plot(table, out)
    _publish(markdown(table, plots), "truth", "truth", out, args, argv, elapsed)
    return table


if __name__ == "__main__":
    main()
