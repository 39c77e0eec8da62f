"""Training runs: one network on one data set and seed, and the whole grid of them.

Part of [`neural_feature_importance.experiments.paper`][].
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neural_feature_importance.baselines import (
    garson_importance,
    lofo_importance,
    random_forest_importance,
)
from neural_feature_importance.datasets.tabular import (
    PAPER_DATASETS,
    TabularDataset,
    canonical_name,
    load_dataset,
)
from neural_feature_importance.experiments.paper._protocol import (
    _PAIRS,
    PAPER_BUDGET,
    QUICK_BUDGET,
    Budget,
    _check_model_name,
    build_model,
)

logger = logging.getLogger(__name__)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation, NaN (with a warning) when either side is constant.

    Examples
    --------
    >>> pearson(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0]))
    0.9933992677987828
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.std() == 0 or b.std() == 0:
        logger.warning("a constant importance vector has no correlation; reporting NaN")
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class RunResult:
    """One model trained on one data set with one seed.

    Attributes
    ----------
    model, dataset : str
        Names.
    seed : int
        Seed of Keras, numpy, Python and the forest.
    epochs : int
        Epochs trained.
    seconds : float
        Wall time of the whole run (training and all importances).
    final_metric : float
        Last `val_accuracy` (classification) or `val_loss` (regression).
    correlations : dict
        One value per name in [`COMPARISONS`][].
    scores : dict
        `viann`, `garson`, `lofo`, `rf`: the importance vectors.
    """

    model: str
    dataset: str
    seed: int
    epochs: int
    seconds: float
    final_metric: float
    correlations: dict[str, float]
    scores: dict[str, np.ndarray] = field(repr=False)


def run_once(
    model_name: str,
    data: TabularDataset | str,
    seed: int = 0,
    budget: Budget = PAPER_BUDGET,
) -> RunResult:
    """Train one network with VIANN attached and compare the four importances.

    Parameters
    ----------
    model_name : {"NN1", "NN2", "DeepNN"}
        The network.
    data : TabularDataset or str
        A preprocessed data set (or its name, loaded with `preprocess=True`).
    seed : int, default=0
        Seeds Keras (`keras.utils.set_random_seed`: Python, numpy and the
        backend) and the random forest.
    budget : Budget, default=PAPER_BUDGET
        Epochs, DeepNN size and forest size.

    Returns
    -------
    RunResult
    """
    import keras

    from neural_feature_importance.keras import MetricThreshold, VarianceImportanceKeras

    _check_model_name(model_name)
    if isinstance(data, str):
        data = load_dataset(data, preprocess=True)
    if not data.preprocessed:
        raise ValueError(
            "the paper trains on preprocessed data; load it with "
            "load_dataset(name, preprocess=True)."
        )
    start = time.perf_counter()
    keras.utils.set_random_seed(int(seed))
    classification = data.task == "classification"
    model = build_model(
        model_name, data.n_features, data.n_outputs, data.task, width_scale=budget.width_scale
    )
    viann = VarianceImportanceKeras(scoring="viann")  # the paper's method, not the default
    callbacks: list[Any] = [viann]
    if classification:
        callbacks.append(
            MetricThreshold(
                monitor="val_accuracy",
                threshold=budget.accuracy_threshold,
                min_epochs=budget.min_epochs,
            )
        )
    history = model.fit(
        data.X,
        data.y,
        validation_split=0.05,
        epochs=budget.max_epochs if classification else budget.regression_epochs,
        batch_size=int(np.round(data.n_samples / 7)),
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )
    logs = history.history
    epochs = len(logs["loss"])
    final_metric = float(logs["val_accuracy" if classification else "val_loss"][-1])
    scores = {
        "viann": viann.feature_importances_,
        "garson": garson_importance(model, normalize=None),
        "lofo": lofo_importance(model, data.X, data.y, replace="zero"),
        "rf": random_forest_importance(
            data.X, data.y, task=data.task, n_estimators=budget.rf_trees, random_state=int(seed)
        ),
    }
    correlations = {name: pearson(scores[a], scores[b]) for name, (a, b) in _PAIRS.items()}
    seconds = time.perf_counter() - start
    logger.info(
        "%s on %s, seed %d: %d epochs, %.1fs, %s",
        model_name,
        data.name,
        seed,
        epochs,
        seconds,
        {k: round(v, 2) for k, v in correlations.items()},
    )
    keras.backend.clear_session()
    return RunResult(
        model=model_name,
        dataset=data.name,
        seed=int(seed),
        epochs=epochs,
        seconds=seconds,
        final_metric=final_metric,
        correlations=correlations,
        scores=scores,
    )


def _seed_list(seeds: int | Iterable[int]) -> list[int]:
    if isinstance(seeds, (int, np.integer)):
        if seeds < 1:
            raise ValueError(f"seeds={seeds}; pass a positive number of seeds or a list of seeds.")
        return list(range(int(seeds)))
    out = [int(s) for s in seeds]
    if not out:
        raise ValueError("seeds is empty; pass a positive number of seeds or a list of seeds.")
    return out


def run_experiment(
    models: Sequence[str] = ("NN1", "NN2"),
    datasets: Sequence[str] = PAPER_DATASETS,
    seeds: int | Iterable[int] = 3,
    *,
    quick: bool = False,
    budget: Budget | None = None,
    progress: bool = True,
    keep_scores: bool = False,
) -> Any:
    """Run the protocol for every model, data set and seed.

    Parameters
    ----------
    models : sequence of str, default=("NN1", "NN2")
        Any of [`MODELS`][].
    datasets : sequence of str, default=PAPER_DATASETS
        Any of the paper's data sets.
    seeds : int or iterable of int, default=3
        A number `n` (seeds `0 .. n-1`) or the seeds themselves.
    quick : bool, default=False
        Use [`QUICK_BUDGET`][] (for CI), unless `budget` is given.
    budget : Budget, optional
        Overrides the budget entirely.
    progress : bool, default=True
        Show a tqdm progress bar (when tqdm is installed).
    keep_scores : bool, default=False
        Add the columns `viann`, `garson`, `lofo`, `rf` holding each
        run's importance vectors (for scatter plots).

    Returns
    -------
    pandas.DataFrame
        One row per run: `model`, `dataset`, `seed`, `epochs`,
        `seconds`, `final_metric` and one column per [`COMPARISONS`][].
    """
    import pandas as pd

    models = [_check_model_name(m) for m in models]
    names = [canonical_name(d) for d in datasets]
    seed_list = _seed_list(seeds)
    if budget is None:
        budget = QUICK_BUDGET if quick else PAPER_BUDGET
    data = {name: load_dataset(name, preprocess=True) for name in names}
    tasks = [(m, d, s) for m in models for d in names for s in seed_list]
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(tasks), desc="paper experiment", unit="run")
        except ImportError:  # pragma: no cover - tqdm is in the experiments extra
            logger.info("tqdm is not installed; no progress bar")
    rows = []
    try:
        for model_name, name, seed in tasks:
            if bar is not None:
                bar.set_postfix_str(f"{model_name} {name} seed={seed}")
            result = run_once(model_name, data[name], seed, budget)
            row: dict[str, Any] = {
                "model": result.model,
                "dataset": result.dataset,
                "seed": result.seed,
                "epochs": result.epochs,
                "seconds": result.seconds,
                "final_metric": result.final_metric,
                **result.correlations,
            }
            if keep_scores:
                row.update(result.scores)
            rows.append(row)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return pd.DataFrame(rows)
