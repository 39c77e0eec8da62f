"""Accuracy against planted truth: do the importances find the informative features?

For every synthetic data set of :mod:`neural_feature_importance.datasets.synthetic`
(the informative features are known) and every seed, one MLP is trained per
framework with the VIANN trackers attached; the post-hoc methods then explain
the trained PyTorch network, and a random forest is fitted on the same rows.
Each method's scores are compared with the truth (ROC-AUC of informative vs
other features, precision@k with k = number of informative features) and its
cost is recorded (seconds beyond training; for VIANN the time spent inside the
tracker, measured directly, as a percentage of training).

Run ``python -m benchmarks.truth`` (the full table, ~10 minutes on one core) or
``python -m benchmarks.truth --quick`` (a smoke run). From Python::

    from benchmarks.truth import run_truth
    table = run_truth(["xor"], ["viann_epoch_torch", "permutation"], seeds=range(3), epochs=20)
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import report
from benchmarks.methods import Method, Trained, resolve_methods
from benchmarks.metrics import ranking_metrics
from benchmarks.training import (
    KERAS_HOOKS,
    TORCH_HOOKS,
    holdout_score,
    keras_mlp,
    keras_predict,
    limit_threads,
    n_outputs,
    time_hooks,
    timed_read,
    torch_mlp,
    torch_predict,
    train_keras,
    train_torch,
)
from neural_feature_importance.datasets.synthetic import SYNTHETIC_DATASETS, make_synthetic

logger = logging.getLogger(__name__)

DEFAULT_EPOCHS = 30
DEFAULT_SEEDS = 5
TEST_SIZE = 0.25
QUICK = {"seeds": 1, "epochs": 4, "n_samples": 300}

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
    common = {"epochs": settings["epochs"], "batch_size": settings["batch_size"]}
    if framework == "torch":
        train_s = train_torch(
            model,
            X_train,
            y_train,
            data.task,
            lr=settings["lr"],
            seed=seed,
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
    rows = []
    for (method, tracker), timer in zip(built, timers, strict=True):
        row = _row(data, seed, method, settings["epochs"], len(X_train))
        try:
            _score(row, timed_read(tracker, timer), data)
            row["n_snapshots"] = tracker.n_updates_
        except Exception as exc:  # a benchmark records failures and goes on
            logger.warning("%s on %s (seed %d) failed: %s", method.name, data.name, seed, exc)
            row["error"] = f"{type(exc).__name__}: {exc}"
        row.update(
            test_score=score,
            method_seconds=timer.seconds,
            train_seconds=net_train_s,
            overhead_pct=100.0 * timer.seconds / net_train_s,
        )
        rows.append(row)
    return rows, (model, score, net_train_s)


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
        the importances); ``train_seconds`` is the network's training time
        without the trackers; ``overhead_pct`` = 100 * method / training for
        VIANN. A method that raised has its message in ``error`` and NaN scores.
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
        _one_run(dataset_list[0], seed_list[0], method_list, 60, 0.5, {**settings, "epochs": 2})
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
        needs_model = framework == "torch" and any(m.family == "posthoc" for m in methods)
        if not trackers and not needs_model:
            continue
        new_rows, (model, score, train_s) = _viann_run(
            framework, trackers, data, split, seed, settings
        )
        rows.extend(new_rows)
        if framework == "torch":
            torch_model, torch_score, net_train_s = model, score, train_s
    trained = Trained(torch_model, data.task, X_train, y_train, X_test, y_test, seed)
    for method in methods:
        if method.family == "viann":
            continue
        row = _row(data, seed, method, settings["epochs"], len(X_train))
        if method.family == "posthoc":
            row.update(test_score=torch_score, train_seconds=net_train_s)
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores = method.explain(trained)
            row["method_seconds"] = time.perf_counter() - start
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
        "`mean` = mean over data sets.",
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
    # Test scores: one line per framework's network.
    score_rows = []
    for framework in ("torch", "keras"):
        sub = ok[(ok["framework"] == framework) & ok["test_score"].notna()]
        if sub.empty:
            continue
        cells = [f"MLP ({framework})"]
        for dataset in datasets:
            per_seed = sub[sub["dataset"] == dataset].groupby("seed")["test_score"].first()
            cells.append(report.fmt_mean_std(per_seed.to_numpy()))
        score_rows.append(cells)
    if score_rows:
        parts += [
            "",
            "**Test score of the trained network** (accuracy for classification, R² for "
            "regression; shows that it learned)",
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


def _cost_markdown(ok: pd.DataFrame, methods: list[str], datasets: list[str]) -> list[str]:
    rows = []
    for method in methods:
        sub = ok[ok["method"] == method]
        cells = [method]
        for dataset in datasets:
            seconds = sub.loc[sub["dataset"] == dataset, "method_seconds"].median()
            cells.append(report.fmt_seconds(float(seconds)))
        overhead = sub["overhead_pct"].median()
        cells.append(f"{overhead:.2f} %" if np.isfinite(overhead) else "")
        rows.append(cells)
    train_cells = ["(training, no tracker)"]
    for dataset in datasets:
        torch_rows = ok[(ok["dataset"] == dataset) & (ok["framework"] == "torch")]
        train_cells.append(report.fmt_seconds(float(torch_rows["train_seconds"].median())))
    rows.append([*train_cells, ""])
    return [
        "**Cost: seconds beyond training** (median over seeds; for VIANN the time inside the "
        "tracker's hooks plus reading the importances, measured with `perf_counter`; "
        "overhead = that time / training time without it, median over data sets and seeds; "
        "the last line is the PyTorch network's own training time)",
        "",
        report.markdown_table(["method", *datasets, "VIANN overhead"], rows),
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


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    """Command line: ``python -m benchmarks.truth [--quick] [--seeds 5] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.truth", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 seed, 4 epochs, 300 rows"
    )
    parser.add_argument("--seeds", type=_seeds, help="a count (5) or a list (0,3,7 or 0-4)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--datasets", help=f"comma list of {', '.join(SYNTHETIC_DATASETS)}")
    parser.add_argument("--methods", help="comma list of method names (default: all)")
    parser.add_argument("--n-samples", type=int, help="rows per data set")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results)")
    parser.add_argument("--no-update", action="store_true", help="do not edit RESULTS.md")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (default 1)")
    args = parser.parse_args(argv)

    limit_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quick = QUICK if args.quick else {}
    seeds = args.seeds if args.seeds is not None else quick.get("seeds", DEFAULT_SEEDS)
    epochs = args.epochs or quick.get("epochs", DEFAULT_EPOCHS)
    n_samples = args.n_samples or quick.get("n_samples")
    out = args.out
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="viann-truth-")) if args.quick else report.RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)

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
    text = markdown(table, plots)
    command = (
        "python -m benchmarks.truth"
        + (" " + " ".join(argv if argv is not None else __import__("sys").argv[1:])).rstrip()
    )
    body = f"Command: `{command}` ({elapsed / 60:.1f} min).\n\n{report.machine_info()}\n\n{text}"
    (out / "truth.md").write_text(body + "\n", encoding="utf-8")
    print(body)
    print(f"\nwrote {out / 'truth.csv'}, {out / 'truth.md'} and {len(plots)} plot(s)")
    if not args.quick and not args.no_update and out.resolve() == report.RESULTS_DIR.resolve():
        report.update_section("truth", body)
        print(f"updated {report.RESULTS_MD}")
    return table


if __name__ == "__main__":
    main()
