"""`importance_getter`: scikit-learn's selectors read the tracker inside a fitted estimator.

`SelectFromModel`, `RFE` and `RFECV` take `importance_getter=`, a callable that
receives the fitted estimator and returns one importance per column it was
fitted on. This one finds this package's tracker among the estimator's fitted
callbacks:

- a skorch net: `net.callbacks_`, the callbacks of the last `fit()`
  ([`VarianceImportanceSkorch`][neural_feature_importance.integrations.skorch.VarianceImportanceSkorch]);
- a scikeras `KerasClassifier` / `KerasRegressor`: the callback instances its
  last `fit()` passed to `model.fit()` (those of `callbacks=` and
  `fit__callbacks=`, a Keras tracker such as
  [`VarianceImportanceKeras`][neural_feature_importance.keras.VarianceImportanceKeras]).
  scikit-learn's `clone()` deep-copies the callbacks given to `callbacks=`, so
  the fitted copy is the estimator's, never the instance the user made;
- a `Pipeline` whose last step is one of these (the steps before it must keep
  the columns, checked with `get_feature_names_out()`), and a fitted search
  (`GridSearchCV`...) through its `best_estimator_`;
- a tracker itself.

```pycon
>>> from scikeras.wrappers import KerasClassifier
>>> from neural_feature_importance import VarianceImportanceKeras, importance_getter
>>> model = KerasClassifier(build, loss="binary_crossentropy", epochs=20,
...                         callbacks=[VarianceImportanceKeras()])
>>> SelectFromModel(model, importance_getter=importance_getter).fit(X, y)
```

This module imports no framework and no scikit-learn: it recognises the estimators
by the attributes they keep.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from neural_feature_importance.core.errors import NotFittedError
from neural_feature_importance.core.surface import HeldTrackerResults

__all__ = ["importance_getter"]

HOW_TO_ADD = (
    "add a tracker to its callbacks: NeuralNetClassifier(..., "
    "callbacks=[VarianceImportanceSkorch()]) for skorch, KerasClassifier(..., "
    "callbacks=[VarianceImportanceKeras()]) for scikeras"
)


def importance_getter(estimator: Any) -> np.ndarray:
    """The importances of the fitted tracker inside `estimator`, one per column it was fitted on.

    Pass it as `importance_getter=` to scikit-learn's `SelectFromModel`, `RFE`
    or `RFECV`; they call it with their fitted estimator.

    Parameters
    ----------
    estimator : estimator
        A fitted skorch net, scikeras estimator, `Pipeline` ending in one, search
        (`best_estimator_`), or a tracker.

    Returns
    -------
    ndarray of shape (n_features_in_,)
        The tracker's `feature_importances_`, in the order of the columns the
        estimator was fitted on. When the tracker names its columns with the
        same names as the estimator's `feature_names_in_` in another order (a
        module that reads the columns of a DataFrame in its own order, named by
        `feature_names=`), they are put in the estimator's order.

    Raises
    ------
    ValueError
        When `estimator` holds no tracker, or several, or a tracker whose
        columns are not the estimator's (the message names the estimator and
        what to change).
    NotFittedError
        When the estimator is not fitted, or its tracker has no importances
        (the message says why).

    Examples
    --------
    >>> from sklearn.feature_selection import RFE
    >>> rfe = RFE(model, n_features_to_select=4, importance_getter=importance_getter)
    """
    tracked = _tracked_estimator(estimator)
    trackers = _trackers(tracked)
    name = type(tracked).__name__
    if not trackers:
        unfitted = [cb for cb in _flatten(getattr(tracked, "callbacks", None)) if _is_tracker(cb)]
        if unfitted:
            raise NotFittedError(
                f"{name} is not fitted: fit it first (SelectFromModel, RFE and RFECV fit a clone "
                "and call importance_getter with that clone)."
            )
        raise ValueError(
            f"{name} has no neural_feature_importance tracker among its fitted callbacks; "
            f"{HOW_TO_ADD}. importance_getter reads skorch nets, scikeras estimators, "
            "Pipelines ending in one of them and fitted searches (best_estimator_)."
        )
    if len(trackers) > 1:
        raise ValueError(
            f"{name} has {len(trackers)} trackers among its callbacks "
            f"({', '.join(type(cb).__name__ for cb in trackers)}); importance_getter cannot "
            "tell which to read. Pass importance_getter=lambda estimator: ... reading the one "
            "you want, or keep one tracker."
        )
    tracker = trackers[0]
    try:
        importances = np.asarray(tracker.feature_importances_)
        names = [str(column) for column in tracker.feature_names_in_]
    except NotFittedError as error:
        raise NotFittedError(
            f"the {type(tracker).__name__} of {name} has no importances: {error}"
        ) from error
    return _in_fitted_order(importances, names, estimator, tracker)


def _is_tracker(value: Any) -> bool:
    return isinstance(value, HeldTrackerResults)


def _tracked_estimator(estimator: Any) -> Any:
    """The estimator whose callbacks hold the tracker: through searches and Pipelines."""
    if hasattr(estimator, "best_estimator_"):
        return _tracked_estimator(estimator.best_estimator_)
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list) and steps and hasattr(estimator, "named_steps"):
        _check_steps_keep_columns(estimator)
        return _tracked_estimator(steps[-1][1])
    return estimator


def _check_steps_keep_columns(pipeline: Any) -> None:
    """Raise unless the steps before the last one hand it the pipeline's columns, in order."""
    if len(pipeline.steps) < 2:
        return
    final = type(pipeline.steps[-1][1]).__name__
    fix = (
        "Put the selector inside the Pipeline instead, after those steps: Pipeline([..., "
        f"('select', SelectFromModel({final}(...), importance_getter=importance_getter)), ...])."
    )
    names_in = getattr(pipeline, "feature_names_in_", None)
    if names_in is None:
        n_in = getattr(pipeline, "n_features_in_", None)
        names_in = None if n_in is None else [f"x{i}" for i in range(n_in)]
    try:
        names_out = pipeline[:-1].get_feature_names_out()
    except (AttributeError, ValueError, TypeError) as error:
        raise ValueError(
            f"the steps of the Pipeline before its {final} cannot say which columns they "
            f"hand it ({error}), so its importances cannot be mapped to the Pipeline's "
            f"columns. {fix}"
        ) from error
    if names_in is None or [str(n) for n in names_out] != [str(n) for n in names_in]:
        shown = [] if names_in is None else [str(n) for n in names_in][:6]
        raise ValueError(
            f"the steps of the Pipeline before its {final} change the columns ({shown} -> "
            f"{[str(n) for n in names_out][:6]}...), so its importances are not one per "
            f"column of the Pipeline's input. {fix}"
        )


def _trackers(estimator: Any) -> list[HeldTrackerResults]:
    """The trackers among the callbacks `estimator` was last fitted with."""
    if _is_tracker(estimator):
        return [estimator]
    if hasattr(estimator, "callbacks_"):  # skorch: [(name, callback), ...] of the last fit
        fitted: Any = estimator.callbacks_
    elif hasattr(estimator, "_fit_callbacks"):  # scikeras: the instances model.fit() received
        fitted = estimator._fit_callbacks
    else:
        return []
    return [cb for cb in _flatten(fitted) if _is_tracker(cb)]


def _flatten(callbacks: Any) -> Iterator[Any]:
    """Every object in nested lists, tuples and mappings of callbacks."""
    if isinstance(callbacks, Mapping):
        callbacks = list(callbacks.values())
    if isinstance(callbacks, list | tuple):
        for item in callbacks:
            yield from _flatten(item)
    elif callbacks is not None:
        yield callbacks


def _in_fitted_order(
    importances: np.ndarray, names: list[str], estimator: Any, tracker: Any
) -> np.ndarray:
    """`importances` in the order of the estimator's columns; raise if they are not its columns."""
    fitted_names = getattr(estimator, "feature_names_in_", None)
    if fitted_names is not None:
        fitted = [str(column) for column in fitted_names]
        if sorted(fitted) == sorted(names) and len(set(names)) == len(names):
            position = {column: i for i, column in enumerate(names)}
            return importances[[position[column] for column in fitted]]
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is not None and importances.size != n_features:
        raise ValueError(
            f"{type(tracker).__name__} in {type(estimator).__name__} has {importances.size} "
            f"columns of importances ({', '.join(names[:6])}...), but the estimator was fitted "
            f"on {n_features} columns, so they are not one per column. Track the layer that "
            "reads the inputs, without groups= (one score per input), for feature selection."
        )
    return importances
