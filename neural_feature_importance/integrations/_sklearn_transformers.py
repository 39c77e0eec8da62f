"""Which of its inputs each output of one fitted scikit-learn transformer comes from.

A trace is one frozenset of input positions per output column, in output order.
Each transformer below is read from its fitted attributes (scikit-learn's own
account of what it did), never from the names of its outputs:

- `OneHotEncoder`: per input, its categories, less the dropped one
  (`drop_idx_`), with its infrequent ones as one (`infrequent_categories_`);
- `KBinsDiscretizer`: per input, one (`encode="ordinal"`) or `n_bins_[i]`;
- `SplineTransformer`: per input, `n_features_out_ / n_features_in_` splines;
- `TargetEncoder`: per input, one, or one per class (`classes_`) for a
  multiclass target;
- `PolynomialFeatures`: each term depends on the inputs with a nonzero power in
  `powers_` (an interaction on several, the bias on none);
- `SimpleImputer`: the inputs it kept (`statistics_`), then one indicator per
  `indicator_.features_`; `MissingIndicator`: one per `features_`;
- a feature selector (`SelectorMixin`): the selected inputs (`get_support()`);
- `FunctionTransformer`: one per input if `feature_names_out="one-to-one"` or
  it is the identity;
- `OneToOneFeatureMixin` (`StandardScaler`, `OrdinalEncoder`...): one per input.

Any other transformer gives `None`: the caller knows its width only, and it
cannot tell which output comes from which input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

Trace = list[frozenset[int]]
"""One frozenset of input positions per output column."""


def identity(n_inputs: int) -> Trace:
    """Output `i` is input `i`."""
    return [frozenset((i,)) for i in range(n_inputs)]


def blocks(widths: Sequence[int]) -> Trace:
    """Input `i` spreads over `widths[i]` outputs, side by side, in input order."""
    return [frozenset((i,)) for i, width in enumerate(widths) for _ in range(int(width))]


def one_hot_widths(encoder: Any) -> list[int]:
    """Output columns of each input of a fitted `OneHotEncoder`.

    A feature with infrequent categories gets one column for all of them; a
    feature with a dropped category (`drop="first"`, `"if_binary"`, an array)
    one column less. `handle_unknown` changes no width.
    """
    widths = [len(categories) for categories in encoder.categories_]
    # The property raises AttributeError when infrequent categories are not enabled.
    infrequent = getattr(encoder, "infrequent_categories_", None)
    for i, rare in enumerate(infrequent or ()):
        if rare is not None:
            widths[i] -= len(rare) - 1
    if encoder.drop_idx_ is not None:
        for i, dropped in enumerate(encoder.drop_idx_):
            if dropped is not None:
                widths[i] -= 1
    return widths


def _kept_by_imputer(imputer: Any, n_inputs: int) -> list[int]:
    """Inputs a fitted `SimpleImputer` keeps: all but those it had no statistic for."""
    if getattr(imputer, "keep_empty_features", False):
        return list(range(n_inputs))
    return [
        i
        for i, statistic in enumerate(imputer.statistics_)
        if not (isinstance(statistic, float) and math.isnan(statistic))
    ]


def leaf_trace(transformer: Any, n_inputs: int) -> Trace | None:
    """The trace of a fitted transformer that is not a container, or `None` if unknown.

    Parameters
    ----------
    transformer : estimator
        A fitted scikit-learn transformer.
    n_inputs : int
        How many columns it reads.
    """
    from sklearn.base import OneToOneFeatureMixin
    from sklearn.feature_selection import SelectorMixin
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.preprocessing import (
        FunctionTransformer,
        KBinsDiscretizer,
        OneHotEncoder,
        PolynomialFeatures,
        SplineTransformer,
        TargetEncoder,
    )

    if isinstance(transformer, OneHotEncoder):
        return blocks(one_hot_widths(transformer))
    if isinstance(transformer, KBinsDiscretizer):
        if transformer.encode == "ordinal":
            return identity(n_inputs)
        return blocks(transformer.n_bins_)
    if isinstance(transformer, SplineTransformer):
        per_input, rest = divmod(int(transformer.n_features_out_), n_inputs)
        return blocks([per_input] * n_inputs) if rest == 0 else None
    if isinstance(transformer, TargetEncoder):  # before OneToOneFeatureMixin, which it uses
        if transformer.target_type_ == "multiclass":
            return blocks([len(transformer.classes_)] * n_inputs)
        return identity(n_inputs)
    if isinstance(transformer, PolynomialFeatures):
        return [frozenset(int(i) for i in np.flatnonzero(row)) for row in transformer.powers_]
    if isinstance(transformer, SimpleImputer):
        kept = [frozenset((i,)) for i in _kept_by_imputer(transformer, n_inputs)]
        indicator = getattr(transformer, "indicator_", None)
        flagged = [] if indicator is None else [frozenset((int(i),)) for i in indicator.features_]
        return kept + flagged
    if isinstance(transformer, MissingIndicator):
        return [frozenset((int(i),)) for i in transformer.features_]
    if isinstance(transformer, SelectorMixin):
        return [frozenset((int(i),)) for i in transformer.get_support(indices=True)]
    if isinstance(transformer, FunctionTransformer):
        if transformer.feature_names_out == "one-to-one" or transformer.func is None:
            return identity(n_inputs)
        return None
    if isinstance(transformer, OneToOneFeatureMixin):
        return identity(n_inputs)
    return None
