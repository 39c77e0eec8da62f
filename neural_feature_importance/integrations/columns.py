"""One score per original column: `feature_names=` and `groups=` read off the preprocessor.

A tabular network's first layer reads what a preprocessor made of the table:
one-hot levels, scaled numbers, embedding dimensions. The trackers score the
inputs of that layer and sum them per column with `feature_names=` (one name
per input) and `groups=` (column -> its inputs; see
[`columns`][neural_feature_importance.core.columns]). Writing those by hand
means knowing the preprocessor's layout, which is easy to get wrong without
anything saying so: Keras's `FeatureSpace` concatenates its features sorted by
name, not in the order of its `features` dict; a prefix match on
`ColumnTransformer` names puts `city_zone` inside `city`; `drop="first"`
changes the names. [`columns_from()`][columns_from] reads the fitted structure
instead.

Examples
--------
>>> layout = columns_from(embedding_sizes={"city": (5, 2)}, continuous=["price"],
...                       order="continuous_first")
>>> layout["feature_names"], layout["groups"]
(['price', 'city_0', 'city_1'], {'price': [0], 'city': [1, 2]})
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Literal, TypedDict

from neural_feature_importance.core.columns import FeatureColumns, InputNames

__all__ = ["TrackerColumns", "columns_from"]

Order = Literal["continuous_first", "embeddings_first"]
"""Which part a layer reads first: the continuous columns or the embeddings."""


class TrackerColumns(TypedDict):
    """What [`columns_from()`][columns_from] returns: a tracker's `feature_names=` and `groups=`."""

    feature_names: InputNames
    """One name per input of the tracked layer, with the preprocessor as `source`."""
    groups: dict[str, list[int]]
    """Original column -> the indices of the tracked layer's inputs that encode it."""


def columns_from(
    preprocessor: Any = None,
    *,
    embedding_sizes: Any = None,
    categorical: Sequence[str] | None = None,
    continuous: Sequence[str] = (),
    order: Order | None = None,
) -> TrackerColumns:
    """`feature_names=` and `groups=` for the layer that reads a preprocessor's output.

    Splat the result into any tracker, or into `from_state()` after training:
    `VarianceImportanceTorch(model, layer="fc1", **columns_from(ct))`,
    `VarianceImportanceKeras(**columns_from(feature_space))`,
    `VarianceImportanceBase.from_state(state, **columns_from(ct))`. The result
    then has one score per original column, named as in your table.

    Parameters
    ----------
    preprocessor : object, optional
        What turned the table into the tracked layer's input:

        - a **fitted scikit-learn** `ColumnTransformer`, `Pipeline` (a final
          step that predicts rather than transforms, your model, is left out)
          or transformer such as `OneHotEncoder`. Each output is given to the
          original column it comes from, read from the fitted attributes
          (`transformers_`, `output_indices_`, `categories_`, `drop_idx_`,
          `infrequent_categories_`...), never from name prefixes. An output of
          several columns (a `PolynomialFeatures` interaction, a `PCA`
          component over several columns) or of none (a bias) cannot be
          split: it stays a column of its own, under its
          `get_feature_names_out()` name. Columns that were dropped are not
          inputs and do not appear.
        - an **adapted Keras 3 `FeatureSpace`** with `output_mode="concat"`:
          one group per feature and one per cross (`"a_X_b"`), laid out as
          Keras concatenates them (sorted by name, crosses last).
    embedding_sizes : mapping or sequence, optional
        Instead of `preprocessor`: the layer reads embedded categoricals and
        numeric columns side by side, as pytorch-tabular's
        `CategoryEmbeddingModel` does. Give `{name: (cardinality, dim)}` or
        `{name: dim}`, a sequence of `(name, cardinality, dim)`, or
        pytorch-tabular's own `embedding_dims` (a list of
        `(cardinality, dim)`) with `categorical=` naming them. An embedded
        column's inputs are named `<name>_0`, `<name>_1`, ...
    categorical : sequence of str, optional
        With `embedding_sizes` as `(cardinality, dim)` pairs: the column of
        each pair, in the same order (pytorch-tabular's `categorical_cols`).
    continuous : sequence of str, default=()
        With `embedding_sizes`: the numeric columns, in the order the layer
        reads them.
    order : {"continuous_first", "embeddings_first"}, optional
        With `embedding_sizes` and `continuous`: which part comes first.
        pytorch-tabular 1.x (`Embedding1dLayer`) concatenates the continuous
        columns, then the embeddings in `categorical_cols` order:
        `"continuous_first"`. pytorch-tabular before 1.0, and models that
        write `torch.cat([embedding, numeric])`, put the embeddings first.
        Required when both parts are there: the widths add up either way, so
        a wrong order could not be caught.

    Returns
    -------
    TrackerColumns
        `{"feature_names": [...], "groups": {...}}`. The names are those of
        the tracked layer's inputs (what the trackers' `feature_names=`
        takes), and remember the preprocessor: a tracked layer with another
        number of inputs raises, before training, an error that names both
        ("columns_from(ColumnTransformer) describes 23 inputs; layer 'fc1'
        reads 22").

    Raises
    ------
    sklearn.exceptions.NotFittedError
        For a scikit-learn preprocessor that was not fitted.
    ValueError
        For a `FeatureSpace` that is not adapted or has `output_mode="dict"`,
        malformed `embedding_sizes`, or a layout that cannot be mapped; the
        message says what to change.
    TypeError
        For a preprocessor of another kind.
    """
    if preprocessor is None:
        if embedding_sizes is None:
            raise TypeError(
                "columns_from() needs a fitted preprocessor (a scikit-learn ColumnTransformer, "
                "Pipeline or OneHotEncoder, a Keras FeatureSpace) or embedding_sizes=."
            )
        from neural_feature_importance.integrations._embedding_columns import embedding_columns

        names, owners, source = embedding_columns(embedding_sizes, categorical, continuous, order)
    elif embedding_sizes is not None or categorical is not None or continuous or order:
        raise TypeError(
            "columns_from() takes either a preprocessor or embedding_sizes= (with categorical=, "
            "continuous=, order=), not both."
        )
    elif _is_feature_space(preprocessor):
        from neural_feature_importance.integrations._feature_space_columns import (
            feature_space_columns,
        )

        names, owners, source = feature_space_columns(preprocessor)
    elif _is_sklearn_estimator(preprocessor):
        from neural_feature_importance.integrations._sklearn_columns import sklearn_columns

        names, owners, source = sklearn_columns(preprocessor)
    else:
        raise TypeError(
            f"columns_from() reads a fitted scikit-learn ColumnTransformer, Pipeline or "
            f"transformer, or an adapted Keras FeatureSpace, not {type(preprocessor).__name__}; "
            "for embedded categoricals pass embedding_sizes= and continuous=."
        )
    return assemble(names, owners, source)


def assemble(names: Sequence[str], owners: Sequence[str | None], source: str) -> TrackerColumns:
    """Build (and check) the tracker options from one name and owner per input.

    An input whose owner is `None` is left out of the groups: the result
    reports it under its own name.
    """
    groups: dict[str, list[int]] = {}
    for index, owner in enumerate(owners):
        if owner is not None:
            groups.setdefault(owner, []).append(index)
    feature_names = InputNames(names, source=source)
    try:
        FeatureColumns(feature_names, groups).resolve(len(feature_names))
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error
    return {"feature_names": feature_names, "groups": groups}


def _is_feature_space(obj: Any) -> bool:
    keras = sys.modules.get("keras")  # a FeatureSpace exists only once Keras is imported
    return keras is not None and isinstance(obj, keras.utils.FeatureSpace)


def _is_sklearn_estimator(obj: Any) -> bool:
    if "sklearn" not in sys.modules:  # nor does an estimator before scikit-learn is
        return False
    from sklearn.base import BaseEstimator

    return isinstance(obj, BaseEstimator)
