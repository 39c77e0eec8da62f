"""Random forest impurity importance, the paper's model-free reference.

A thin wrapper over scikit-learn's `RandomForestClassifier` /
`RandomForestRegressor` (100 trees, as in the paper) that returns
`feature_importances_` (mean decrease in impurity, summing to 1).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from neural_feature_importance._optional import import_optional

TaskArg = Literal["auto", "classification", "regression"]


def infer_task(y: np.ndarray) -> Literal["classification", "regression"]:
    """Guess the task from a target.

    Integer, boolean or string labels, and 2-D 0/1 one-hot matrices, are
    classification; anything else (floats) is regression.

    Examples
    --------
    >>> infer_task(np.array([0, 1, 1])), infer_task(np.array([0.5, 1.2]))
    ('classification', 'regression')
    """
    y = np.asarray(y)
    if y.dtype.kind in "biuUSO":
        return "classification"
    if y.ndim == 2 and y.shape[1] > 1 and np.isin(y, (0.0, 1.0)).all():
        return "classification"
    return "regression"


def random_forest_importance(
    X: np.ndarray,
    y: np.ndarray,
    *,
    task: TaskArg = "auto",
    n_estimators: int = 100,
    random_state: int | np.random.RandomState | None = None,
    n_jobs: int | None = None,
    **forest_params: Any,
) -> np.ndarray:
    """Impurity-based importance of a random forest fitted on `(X, y)`.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        Labels or values. A one-hot matrix fits a multi-output classifier, as
        the paper's notebook did with its one-hot targets.
    task : {"auto", "classification", "regression"}, default="auto"
        `"auto"` uses [`infer_task()`][infer_task].
    n_estimators : int, default=100
        Number of trees (the paper's 100).
    random_state : int, RandomState or None
        Seed of the forest.
    n_jobs : int, optional
        Trees fitted in parallel.
    **forest_params
        Passed on to the scikit-learn forest (`max_depth`, ...).

    Returns
    -------
    ndarray of shape (n_features,)
        `feature_importances_`: non-negative, sums to 1.
    """
    ensemble = import_optional("sklearn.ensemble", "random_forest_importance")
    RandomForestClassifier, RandomForestRegressor = (
        ensemble.RandomForestClassifier,
        ensemble.RandomForestRegressor,
    )
    X = np.asarray(X)
    y = np.asarray(y)
    if task == "auto":
        task = infer_task(y)
    if task == "classification":
        forest_cls = RandomForestClassifier
    elif task == "regression":
        forest_cls = RandomForestRegressor
    else:
        raise ValueError(
            f"task={task!r} is not supported; use 'auto', 'classification' or 'regression'."
        )
    forest = forest_cls(
        n_estimators=n_estimators, random_state=random_state, n_jobs=n_jobs, **forest_params
    )
    forest.fit(X, y)
    return np.asarray(forest.feature_importances_, dtype=np.float64)
