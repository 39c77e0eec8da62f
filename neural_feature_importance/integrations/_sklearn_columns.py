"""The original column of each output of a fitted scikit-learn preprocessor.

A `ColumnTransformer` is read from `transformers_` (which columns each
transformer read) and `output_indices_` (where its outputs lie); a `Pipeline`
composes its steps, the next step's `n_features_in_` giving each step's width;
a single transformer is read from its own fitted attributes
([`_sklearn_transformers`][neural_feature_importance.integrations._sklearn_transformers]).
Names are used only to name things: which column an output belongs to comes
from the structure, so `city_zone` never lands in `city`.

An output that depends on one original column belongs to it. An output that
depends on several (an interaction of `PolynomialFeatures`, a component of a
`PCA` over several columns) or on none (the bias column) cannot be split: it is
reported as a column of its own, under the name `get_feature_names_out()`
gives it.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np

from neural_feature_importance.integrations._sklearn_transformers import (
    Trace,
    identity,
    leaf_trace,
)

logger = logging.getLogger(__name__)


def sklearn_columns(preprocessor: Any) -> tuple[list[str], list[str | None], str]:
    """Describe the output of a fitted scikit-learn preprocessor.

    Returns
    -------
    names : list of str
        One name per output column (`get_feature_names_out()`, or names made
        from the original columns when a transformer gives none).
    owners : list of (str or None)
        The original column of each output; `None` for an output of several.
    source : str
        `"columns_from(<class name>)"`, for messages.
    """
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    kind = type(preprocessor).__name__
    source = f"columns_from({kind})"
    stages = preprocessor
    if isinstance(stages, Pipeline) and not _transforms(stages.steps[-1][1]):
        # The final step predicts: the model reads what the steps before it make.
        if len(stages.steps) == 1:
            model = type(stages.steps[-1][1]).__name__
            raise ValueError(f"{source}: the pipeline has no step before its model ({model}).")
        stages = stages[:-1]
    try:
        check_is_fitted(stages)
    except NotFittedError as error:
        raise NotFittedError(
            f"{source} reads what the fitted {kind} learned (its categories, its columns); "
            f"fit it first. {error}"
        ) from error
    first = _first_step(stages)
    n_inputs = getattr(first, "n_features_in_", None)
    if n_inputs is None:
        raise ValueError(f"{source}: the {kind} does not say how many columns it reads.")
    originals = [str(name) for name in getattr(first, "feature_names_in_", [])] or [
        f"x{i}" for i in range(n_inputs)
    ]
    found = trace(stages, n_inputs, None, kind)
    owners = [originals[next(iter(inputs))] if len(inputs) == 1 else None for inputs in found]
    names = _output_names(stages, owners, source)
    mixed = [name for name, owner in zip(names, owners, strict=True) if owner is None]
    if mixed:
        logger.info(
            "%s: %d of %d outputs depend on several original columns (or none) and are "
            "columns of their own: %s",
            source,
            len(mixed),
            len(names),
            ", ".join(mixed[:10]) + (", ..." if len(mixed) > 10 else ""),
        )
    return names, owners, source


def trace(transformer: Any, n_inputs: int, n_outputs: int | None, name: str) -> Trace:
    """The inputs each output of a fitted transformer (or container) depends on.

    Parameters
    ----------
    transformer : estimator or {"passthrough", None}
        What a `ColumnTransformer` or `Pipeline` holds.
    n_inputs : int
        How many columns it reads.
    n_outputs : int, optional
        How many it makes, when the container knows (checked against the trace).
    name : str
        Its name in the container, for messages.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if _passes_through(transformer):
        found = identity(n_inputs)
    elif isinstance(transformer, ColumnTransformer):
        found = _trace_column_transformer(transformer, n_inputs)
    elif isinstance(transformer, Pipeline):
        found = _trace_pipeline(transformer, n_inputs, n_outputs)
    else:
        fitted_inputs = getattr(transformer, "n_features_in_", n_inputs)
        if fitted_inputs != n_inputs:
            raise ValueError(
                f"columns_from: {name!r} ({type(transformer).__name__}) was fitted on "
                f"{fitted_inputs} columns, but is given {n_inputs} here."
            )
        known = leaf_trace(transformer, n_inputs)
        found = _opaque(transformer, n_inputs, n_outputs, name) if known is None else known
    if n_outputs is not None and len(found) != n_outputs:
        raise ValueError(
            f"columns_from: {name!r} ({type(transformer).__name__}) makes {n_outputs} columns, "
            f"but its fitted attributes account for {len(found)}; columns_from cannot map it."
        )
    return found


def _first_step(estimator: Any) -> Any:
    """What read the original columns: a pipeline's first step that is not "passthrough"."""
    from sklearn.pipeline import Pipeline

    while isinstance(estimator, Pipeline):
        steps = [step for _, step in estimator.steps if not _passes_through(step)]
        if not steps:
            break
        estimator = steps[0]
    return estimator


def _passes_through(transformer: Any) -> bool:
    return transformer is None or (isinstance(transformer, str) and transformer == "passthrough")


def _transforms(step: Any) -> bool:
    return _passes_through(step) or hasattr(step, "transform")


def _opaque(transformer: Any, n_inputs: int, n_outputs: int | None, name: str) -> Trace:
    """A transformer whose attributes do not say which output comes from which input."""
    if n_outputs is None:
        try:
            n_outputs = len(transformer.get_feature_names_out())
        except (AttributeError, ValueError) as error:
            raise ValueError(
                f"columns_from: cannot tell how many columns {name!r} "
                f"({type(transformer).__name__}) makes: {error}"
            ) from error
    if n_inputs == 1:
        return [frozenset((0,))] * n_outputs  # whatever it does, it read one column
    logger.warning(
        "columns_from: %r (%s) reads %d columns and does not say which of its %d outputs comes "
        "from which, so each output is a column of its own. If it works column by column, give "
        "each column a transformer of its own, or use FunctionTransformer(..., "
        "feature_names_out='one-to-one').",
        name,
        type(transformer).__name__,
        n_inputs,
        n_outputs,
    )
    return [frozenset(range(n_inputs))] * n_outputs


def _trace_column_transformer(transformer: Any, n_inputs: int) -> Trace:
    names = getattr(transformer, "feature_names_in_", None)
    parts = transformer.output_indices_
    found: list[frozenset[int] | None] = [None] * max((p.stop for p in parts.values()), default=0)
    for name, part_transformer, columns in transformer.transformers_:
        part = parts[name]
        if part.stop == part.start:
            continue  # "drop", an empty selection, or nothing left over
        positions = column_positions(columns, names, n_inputs, name)
        local = trace(part_transformer, len(positions), part.stop - part.start, name)
        found[part] = [frozenset(positions[i] for i in inputs) for inputs in local]
    if any(inputs is None for inputs in found):
        raise ValueError("columns_from: the ColumnTransformer's output_indices_ leave a gap.")
    return [inputs for inputs in found if inputs is not None]


def _trace_pipeline(pipeline: Any, n_inputs: int, n_outputs: int | None) -> Trace:
    steps = [(name, step) for name, step in pipeline.steps if not _passes_through(step)]
    found, width = identity(n_inputs), n_inputs
    for k, (name, step) in enumerate(steps):
        # The next step was fitted on this one's output: its n_features_in_ is this one's width.
        last = k == len(steps) - 1
        width_out = n_outputs if last else getattr(steps[k + 1][1], "n_features_in_", None)
        local = trace(step, width, width_out, name)
        found = [frozenset().union(*(found[i] for i in inputs)) for inputs in local]
        width = len(local)
    return found


def column_positions(
    columns: Any, names: np.ndarray | None, n_inputs: int, transformer: str
) -> list[int]:
    """Positions of the columns a `ColumnTransformer` gave one transformer.

    `columns` is as the fitted `transformers_` holds it: a name, an index, a
    list of either, a slice (of names: both ends included, as pandas does),
    or a boolean mask. A callable (`make_column_selector`) was called at
    `fit()`, and `transformers_` holds what it returned.
    """
    if isinstance(columns, slice):
        start, stop = columns.start, columns.stop
        if isinstance(start, str):
            start = _label_positions(names, [start], transformer)[0]
        if isinstance(stop, str):
            stop = _label_positions(names, [stop], transformer)[0] + 1
        return list(range(n_inputs))[slice(start, stop, columns.step)]
    key = np.asarray(columns)
    key = key.reshape(1) if key.ndim == 0 else key
    if key.dtype == bool:
        return [int(i) for i in np.flatnonzero(key)]
    if key.size == 0:
        return []
    if key.dtype.kind in "iu":
        return [int(i) % n_inputs for i in key]
    return _label_positions(names, key.tolist(), transformer)


def _label_positions(names: np.ndarray | None, labels: list[Any], transformer: str) -> list[int]:
    if names is None:
        raise ValueError(
            f"columns_from: transformer {transformer!r} selects columns by name, but the "
            "ColumnTransformer was fitted without column names (feature_names_in_)."
        )
    index = {str(name): i for i, name in enumerate(names)}
    return [index[str(label)] for label in labels]


def _output_names(stages: Any, owners: list[str | None], source: str) -> list[str]:
    """`get_feature_names_out()`, or names made from the owners when a transformer has none."""
    try:
        names = [str(name) for name in stages.get_feature_names_out()]
    except (AttributeError, ValueError) as error:
        logger.info(
            "%s: no output names (%s); the inputs are named after their columns.", source, error
        )
        totals, seen = Counter(owners), Counter[str]()
        names = []
        for j, owner in enumerate(owners):
            if owner is None:
                names.append(f"output_{j}")
            elif totals[owner] == 1:
                names.append(owner)
            else:
                names.append(f"{owner}_{seen[owner]}")
                seen[owner] += 1
    if len(names) != len(owners):
        raise ValueError(
            f"{source}: get_feature_names_out() lists {len(names)} outputs, but the fitted "
            f"attributes account for {len(owners)}; columns_from cannot map it."
        )
    return names
