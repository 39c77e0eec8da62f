"""The real-data runs: one network per (data set, seed, epochs), every method, two metrics.

For each data set of :data:`~benchmarks.real_data.data.REAL_DATASETS` and
seed, the appended columns are drawn (:func:`~benchmarks.real_data.data.make_real_problem`),
the rows split 70/30 and standardised; for each training length a PyTorch MLP
64-64 (Adam 1e-3, batch 32) is trained with the trackers attached, and the
post-hoc methods explain that trained network. The random forest and LassoNet
do not depend on the training length: they run once per (data set, seed) and
their scores serve every length. The Keras trackers watch a Keras network of
the same architecture, trained in a subprocess
(:mod:`benchmarks.real_data.keras_run`), and the Keras peers
(:mod:`benchmarks.real_data.keras_peers`) explain that Keras network.

Metrics per method (:func:`~benchmarks.real_data.data.appended_metrics`):
ROC-AUC of the real columns against the appended irrelevant ones, and the
*selection score*: a fresh PyTorch MLP (same settings, seed and training
length) is trained on the method's top columns and scored on held-out rows
(accuracy or R²). The number of columns kept is 25 % and 50 % of the *real*
columns' count, so a method that keeps only real columns is possible at both
sizes. Next to the methods, three references: the same number of real columns
drawn at random (``random_real``, the mean of 3 draws), all real columns (``real_only``, the data
set as it came) and all columns (``all_columns``: the explained network's own
score).

Methods that read held-out rows (permutation importance, Integrated
Gradients, SHAP) are cross-fitted: the held-out rows are cut in two halves,
the method's importances are computed on each half, and the columns chosen
with one half's importances are scored on the other half (the selection score
is the mean of the two); their AUC uses the mean of the two halves'
importances. The other methods' selection is scored on both halves alike.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.methods import METHODS, Method, Trained, resolve_methods
from benchmarks.real_data.data import (
    REAL_DATASETS,
    RealData,
    Split,
    appended_metrics,
    kind_counts,
    make_real_problem,
    selection_size,
    split_standardise,
    top_columns,
)
from benchmarks.real_data.keras_peers import KERAS_PEERS
from benchmarks.selectors import Selection
from benchmarks.training import (
    TORCH_HOOKS,
    holdout_score,
    n_outputs,
    time_hooks,
    timed_read,
    torch_mlp,
    torch_predict,
    train_torch,
)

logger = logging.getLogger(__name__)

DEFAULT_EPOCHS: tuple[int, ...] = (20, 100)
DEFAULT_SEEDS = 3
TEST_SIZE = 0.3
FRACTIONS: tuple[float, ...] = (0.25, 0.5)
"""Columns kept by the selection metric, as a share of the real columns' count."""
HELD_OUT_FAMILIES = ("posthoc",)
"""Families whose methods read held-out rows, hence are cross-fitted."""
ONCE_PER_SEED = ("model_free", "selector")
"""Families that do not depend on the training length: run once per (data set, seed)."""
RANDOM_DRAWS = 3
"""Draws of ``random_real`` per network (its score is their mean)."""
REFERENCES: dict[str, str] = {
    "random_real": "as many real columns, drawn at random (mean of 3 draws)",
    "real_only": "all real columns (the data set as it came)",
    "all_columns": "all columns, real and appended (the explained network)",
}
WARM_UP_ROWS = 260
"""Rows of the throw-away warm-up run (half of them train: 5 batches of 32 an epoch, 4
epochs, so that ``steady_taylor`` reads the gradient at 5 steps)."""
WARM_UP_LASSONET = {"lambda_start": 1.0, "n_iters": (5, 2), "path_multiplier": 2.0}
"""LassoNet's arguments in the throw-away warm-up run (a short path)."""


def _tracker(name: str, framework: str, scoring: str, what: str) -> Method:
    return Method(  # type: ignore[arg-type]
        name, "viann", framework, f"{what} ({framework})", tracker_kwargs={"scoring": scoring}
    )


REAL_METHODS: dict[str, Method] = {}
for _suffix, _framework in (("", "torch"), ("_keras", "keras")):
    for _method in (
        _tracker(
            f"descent_taylor{_suffix}",
            _framework,
            "descent_taylor",
            "scoring='descent_taylor', the recommended mode: what a tracker built without "
            "scoring= uses",
        ),
        _tracker(
            f"taylor{_suffix}",
            _framework,
            "taylor",
            "scoring='taylor', gradient x input",
        ),
        _tracker(
            f"steady_taylor{_suffix}",
            _framework,
            "steady_taylor",
            "scoring='steady_taylor', taylor times its signal-to-noise ratio over the steps",
        ),
        _tracker(
            f"viann{_suffix}",
            _framework,
            "viann",
            "scoring='viann', the paper's VIANN, per epoch (the default before 1.1)",
        ),
    ):
        REAL_METHODS[_method.name] = _method
REAL_METHODS.update(KERAS_PEERS)
for _name in ("permutation", "integrated_gradients", "shap_deep", "random_forest", "lassonet"):
    REAL_METHODS[_name] = METHODS[_name]

DEFAULT_METHODS: tuple[str, ...] = tuple(REAL_METHODS)
"""Every method of :data:`REAL_METHODS`, in table order."""

COLUMNS = [
    "dataset",
    "task",
    "seed",
    "epochs",
    "method",
    "family",
    "framework",
    "auc",
    "auc_permuted",
    "auc_gaussian",
    "auc_copies",
    "copy_below_original",
    *(f"select_{round(100 * f)}" for f in FRACTIONS),
    *(f"real_share_{round(100 * f)}" for f in FRACTIONS),
    *(f"copy_share_{round(100 * f)}" for f in FRACTIONS),
    "test_score",
    "method_seconds",
    "train_seconds",
    "n_real",
    "n_columns",
    "n_train",
    "error",
]
"""Columns of :func:`run_real`'s table (``select_25``: the selection score at 25 %, ...)."""


def _row(
    data: RealData, split: Split, seed: int, epochs: int, method: str, family: str, framework: str
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS, np.nan)
    row.update(
        dataset=data.name,
        task=data.task,
        seed=seed,
        epochs=epochs,
        method=method,
        family=family,
        framework=framework,
        n_real=data.n_real,
        n_columns=len(data.columns),
        n_train=len(split.X_train),
        error="",
    )
    return row


class Retrainer:
    """Trains a fresh MLP on a subset of columns and scores it on both held-out halves.

    One per (data set, seed, epochs): identical subsets are trained once
    (``cache``), and every subset of one size starts from the same
    initialisation and batch order (the seed).
    """

    def __init__(self, data: RealData, split: Split, seed: int, settings: Mapping[str, Any]):
        self.data, self.split, self.seed, self.settings = data, split, seed, settings
        self.cache: dict[tuple[int, ...], tuple[float, float]] = {}
        self.seconds = 0.0

    def scores(self, columns: Sequence[int] | np.ndarray) -> tuple[float, float]:
        """Held-out scores (half a, half b) of a network trained on ``columns``."""
        import torch

        key = tuple(int(c) for c in np.sort(columns))
        if key not in self.cache:
            start = time.perf_counter()
            cols, s = list(key), self.split
            torch.manual_seed(self.seed)
            out = n_outputs(self.data.task, self.data.y)
            model = torch_mlp(len(cols), out, self.settings["hidden"])
            train_torch(
                model,
                s.X_train[:, cols],
                s.y_train,
                self.data.task,
                epochs=self.settings["epochs"],
                batch_size=self.settings["batch_size"],
                lr=self.settings["lr"],
                seed=self.seed,
            )
            self.cache[key] = (
                holdout_score(self.data.task, torch_predict(model, s.X_a[:, cols]), s.y_a),
                holdout_score(self.data.task, torch_predict(model, s.X_b[:, cols]), s.y_b),
            )
            self.seconds += time.perf_counter() - start
        return self.cache[key]


def _selection(
    row: dict[str, Any], score_a: np.ndarray, score_b: np.ndarray, retrain: Retrainer
) -> None:
    """Selection scores: columns chosen with half a's scores are scored on half b, and back."""
    data = retrain.data
    for fraction in FRACTIONS:
        k, tag = selection_size(fraction, data.n_real), round(100 * fraction)
        chosen_a, chosen_b = top_columns(score_a, k), top_columns(score_b, k)
        row[f"select_{tag}"] = 0.5 * (retrain.scores(chosen_a)[1] + retrain.scores(chosen_b)[0])
        counts = [kind_counts(c, data) for c in (chosen_a, chosen_b)]
        row[f"real_share_{tag}"] = np.mean([c["real"] for c in counts]) / k
        row[f"copy_share_{tag}"] = np.mean([c["near_copy"] for c in counts]) / k


def _explain(method: Method, trained: Trained) -> tuple[np.ndarray, float, float]:
    """Scores, seconds and a selector's own held-out score (NaN for the others)."""
    if method.explain is None:
        raise TypeError(f"method {method.name!r} ({method.family}) has no explain().")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = method.explain(trained)
    seconds = time.perf_counter() - start
    if isinstance(scores, Selection):
        return np.asarray(scores.importances, dtype=np.float64), seconds, scores.test_score
    return np.asarray(scores, dtype=np.float64), seconds, float("nan")


def _once_per_seed(
    methods: list[Method], data: RealData, split: Split, seed: int, settings: Mapping[str, Any]
) -> dict[str, Any]:
    """The forest and the selectors: scores (or the exception), seconds, own score."""
    trained = Trained(
        None,
        data.task,
        split.X_train,
        split.y_train,
        split.X_test,
        split.y_test,
        seed,
        settings=settings,
    )
    out: dict[str, Any] = {}
    for method in methods:
        try:
            out[method.name] = _explain(method, trained)
        except Exception as exc:  # a benchmark records failures and goes on
            logger.warning("%s on %s (seed %d) failed: %s", method.name, data.name, seed, exc)
            out[method.name] = exc
    return out


def _network(
    data: RealData, split: Split, seed: int, settings: Mapping[str, Any], trackers: list[Method]
) -> tuple[Any, list[tuple[Method, Any, Any]], float]:
    """Train the PyTorch MLP with ``trackers``: the model, (method, tracker, timer), seconds."""
    import torch

    torch.manual_seed(seed)
    model = torch_mlp(data.X.shape[1], n_outputs(data.task, data.y), settings["hidden"])
    built = [(m, m.make_tracker(model)) for m in trackers]
    timed = [(m, t, time_hooks(t, TORCH_HOOKS)) for m, t in built]
    train_s = train_torch(
        model,
        split.X_train,
        split.y_train,
        data.task,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        lr=settings["lr"],
        seed=seed,
        hooks=[t for _, t in built],
    )
    return model, timed, train_s - sum(timer.seconds for _, _, timer in timed)


def _one_length(
    data: RealData,
    split: Split,
    seed: int,
    settings: Mapping[str, Any],
    methods: list[Method],
    per_seed: Mapping[str, Any],
    keras_rows: Mapping[str, Mapping[str, Any]],
    select: bool,
) -> list[dict[str, Any]]:
    """All rows of one (data set, seed, epochs): methods, then the references."""
    epochs = int(settings["epochs"])
    trackers = [m for m in methods if m.family == "viann" and m.framework == "torch"]
    model, timed, train_s = _network(data, split, seed, settings, trackers)
    score_a = holdout_score(data.task, torch_predict(model, split.X_a), split.y_a)
    score_b = holdout_score(data.task, torch_predict(model, split.X_b), split.y_b)
    retrain = Retrainer(data, split, seed, settings) if select else None
    rows: list[dict[str, Any]] = []

    def finish(row: dict[str, Any], a: np.ndarray, b: np.ndarray) -> None:
        try:
            row.update(appended_metrics(0.5 * (a + b), data))
            if retrain is not None:
                _selection(row, a, b, retrain)
        except Exception as exc:  # a benchmark records failures and goes on
            logger.warning("%s on %s (seed %d) failed: %s", row["method"], data.name, seed, exc)
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)

    for method, tracker, timer in timed:
        row = _row(data, split, seed, epochs, method.name, "viann", "torch")
        row.update(test_score=0.5 * (score_a + score_b), train_seconds=train_s)
        try:
            scores = timed_read(tracker, timer)
        except Exception as exc:  # a benchmark records failures and goes on
            row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
            continue
        row["method_seconds"] = timer.seconds
        finish(row, scores, scores)
    for method in methods:
        if method.framework != "keras":
            continue
        row = _row(data, split, seed, epochs, method.name, method.family, "keras")
        found = keras_rows.get(method.name)
        if found is None:
            row["error"] = "no Keras result (the Keras subprocess did not run this network)"
            rows.append(row)
            continue
        row.update({k: found[k] for k in ("test_score", "method_seconds", "train_seconds")})
        if found.get("error"):
            row["error"] = found["error"]
            rows.append(row)
            continue
        # A Keras peer's importances come per held-out half (cross-fitted).
        finish(row, found.get("scores_a", found["scores"]), found.get("scores_b", found["scores"]))
    for method in methods:
        if method.family == "viann" or method.framework == "keras":
            continue
        row = _row(data, split, seed, epochs, method.name, method.family, method.framework)
        if method.family in ONCE_PER_SEED:
            result = per_seed[method.name]
            if isinstance(result, Exception):
                row["error"] = f"{type(result).__name__}: {result}"
                rows.append(row)
                continue
            scores, row["method_seconds"], row["test_score"] = result
            finish(row, scores, scores)
            continue
        row.update(test_score=0.5 * (score_a + score_b), train_seconds=train_s)
        halves = []
        try:
            for X, y in ((split.X_a, split.y_a), (split.X_b, split.y_b)):
                trained = Trained(
                    model, data.task, split.X_train, split.y_train, X, y, seed, settings=settings
                )
                halves.append(_explain(method, trained))
        except Exception as exc:  # a benchmark records failures and goes on
            logger.warning("%s on %s (seed %d) failed: %s", method.name, data.name, seed, exc)
            row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
            continue
        row["method_seconds"] = halves[0][1] + halves[1][1]
        finish(row, halves[0][0], halves[1][0])
    rows.extend(_references(data, split, seed, epochs, (score_a, score_b), retrain))
    return rows


def _references(
    data: RealData,
    split: Split,
    seed: int,
    epochs: int,
    network: tuple[float, float],
    retrain: Retrainer | None,
) -> list[dict[str, Any]]:
    """The rows ``random_real``, ``real_only`` and ``all_columns`` (selection scores only)."""
    if retrain is None:
        return []
    real = np.flatnonzero(data.real)
    rng = np.random.default_rng([seed, epochs])
    rows = []
    for name in REFERENCES:
        row = _row(data, split, seed, epochs, name, "reference", "torch")
        for fraction in FRACTIONS:
            tag = round(100 * fraction)
            if name == "random_real":
                size = selection_size(fraction, len(real))
                draws = [rng.choice(real, size=size, replace=False) for _ in range(RANDOM_DRAWS)]
                row[f"select_{tag}"] = float(np.mean([retrain.scores(d) for d in draws]))
                row[f"real_share_{tag}"], row[f"copy_share_{tag}"] = 1.0, 0.0
            elif name == "real_only":
                row[f"select_{tag}"] = float(np.mean(retrain.scores(real)))
            else:
                row[f"select_{tag}"] = float(np.mean(network))
        rows.append(row)
    return rows


def run_real(
    datasets: Iterable[str] = tuple(REAL_DATASETS),
    methods: Iterable[str | Method] | None = None,
    seeds: Iterable[int] | int = DEFAULT_SEEDS,
    epochs: Iterable[int] | int = DEFAULT_EPOCHS,
    *,
    hidden: Sequence[int] = (64, 64),
    batch_size: int = 32,
    lr: float = 1e-3,
    test_size: float = TEST_SIZE,
    select: bool = True,
    keras_scores: Mapping[tuple[str, int, int, str], Mapping[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
    warm_up: bool = True,
) -> pd.DataFrame:
    """Every method on every (data set, seed, epochs); one row per method and reference.

    Parameters
    ----------
    datasets : iterable of str
        Names from :data:`~benchmarks.real_data.data.REAL_DATASETS`.
    methods : iterable of str or Method, optional
        Names from :data:`REAL_METHODS` (default: all of them), or torch
        trackers made with :func:`benchmarks.methods.viann_variant`.
    seeds : int or iterable of int, default=3
        A count or the seeds; a seed fixes the appended columns, the split, the
        initialisations, the batch order and the peers' randomness.
    epochs : int or iterable of int, default=(20, 100)
        Training lengths, one network per length (each at least 2).
    hidden, batch_size, lr
        The MLP's hidden widths and Adam's settings (every network, retrained
        ones included).
    test_size : float, default=0.3
        Held-out share, cut in two halves for cross-fitting.
    select : bool, default=True
        Compute the selection scores (retrains); ``False`` gives the AUCs only.
    keras_scores : mapping, optional
        ``(dataset, seed, epochs, method) -> {"scores", "test_score",
        "method_seconds", "train_seconds", "error"}`` from
        :func:`benchmarks.real_data.keras_run.run_keras`; needed for the
        ``*_keras`` methods (missing ones are recorded as failures). A Keras
        peer's record also has ``scores_a`` and ``scores_b`` (one per half).
    progress : callable, optional
        Called with one line per finished (data set, seed).
    warm_up : bool, default=True
        First run every method once on 260 rows (at most) for 4 epochs and discard it.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`. ``method_seconds``: the method's time beyond
        training (trackers: inside their hooks plus reading the importances;
        post-hoc: both halves; forest and LassoNet: their whole fit).
    """
    seed_list = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else list(seeds)
    epoch_list = [epochs] if isinstance(epochs, (int, np.integer)) else list(epochs)
    dataset_list = [datasets] if isinstance(datasets, str) else list(datasets)
    unknown = [d for d in dataset_list if d not in REAL_DATASETS]
    if unknown:
        raise ValueError(
            f"unknown data set(s) {unknown}; use names from {', '.join(REAL_DATASETS)}."
        )
    if not seed_list or not dataset_list or not epoch_list:
        raise ValueError("run_real needs at least one data set, one seed and one training length.")
    bad = [e for e in epoch_list if not isinstance(e, (int, np.integer)) or e < 2]
    if bad:
        raise ValueError(f"epochs {bad}; every network needs at least 2 epochs.")
    method_list = resolve_methods(methods, REAL_METHODS)
    base = {"hidden": tuple(hidden), "batch_size": batch_size, "lr": lr}
    keras_scores = keras_scores or {}
    if warm_up:
        settings = {**base, "epochs": 4, "lassonet": WARM_UP_LASSONET}
        data = make_real_problem(dataset_list[0], seed_list[0])
        keep = np.random.default_rng(0).permutation(len(data.y))[:WARM_UP_ROWS]
        data.X, data.y = data.X[keep], data.y[keep]
        split = split_standardise(data, seed_list[0], 0.5)
        per_seed = _once_per_seed(
            [m for m in method_list if m.family in ONCE_PER_SEED], data, split, 0, settings
        )
        torch_methods = [m for m in method_list if m.framework != "keras"]
        _one_length(data, split, 0, settings, torch_methods, per_seed, {}, select=False)
    rows: list[dict[str, Any]] = []
    for name in dataset_list:
        for seed in seed_list:
            start = time.perf_counter()
            data = make_real_problem(name, seed)
            split = split_standardise(data, seed, test_size)
            once = [m for m in method_list if m.family in ONCE_PER_SEED]
            per_seed = _once_per_seed(once, data, split, seed, {**base, "epochs": epoch_list[0]})
            for n_epochs in epoch_list:
                settings = {**base, "epochs": int(n_epochs)}
                keras_rows = {
                    m.name: keras_scores[(name, seed, int(n_epochs), m.name)]
                    for m in method_list
                    if (name, seed, int(n_epochs), m.name) in keras_scores
                }
                rows.extend(
                    _one_length(
                        data, split, seed, settings, method_list, per_seed, keras_rows, select
                    )
                )
            if progress is not None:
                progress(f"{name} seed {seed}: {time.perf_counter() - start:.1f} s")
    return pd.DataFrame(rows, columns=COLUMNS)
