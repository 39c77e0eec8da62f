"""A tabular problem with *columns* that span several inputs: one-hot and embedded categoricals.

Real tabular networks do not see one input per column of the data: a
categorical column is one-hot encoded over one input per level, or looked up
in an embedding table whose output dimensions enter the first dense layer
inside a concatenation. An importance method is useful on such data when it
ranks the *columns*, so this generator plants the truth per column:

| column | encoding | levels | informative | effect on `y` |
| --- | --- | --- | --- | --- |
| store | embedded | 8 | yes | one fixed effect per level (no order) |
| weekday | embedded | 7 | no | -- |
| price | numeric | -- | yes | linear |
| colour | one-hot | 4 | no | -- |
| humidity | numeric | -- | no | -- |
| city | one-hot | 5 | yes | one fixed effect per level (no order) |
| temperature | numeric | -- | yes | quadratic, `(t**2 - 1) / sqrt(2)`: no linear trace, so it is invisible to a linear model |
| distance | numeric | -- | no | -- |
| weight | numeric | -- | no | -- |

The task is **regression**: `y` is the sum of the four informative effects,
each scaled to unit variance, plus Gaussian noise of standard deviation
`noise * 2` (2 is the signal's standard deviation), then standardised. With
the default `noise=0.5` the best attainable R² is 0.8. Regression makes the
held-out R² a direct reading of how much of the planted signal a network
learned, and every informative column carries the same share of it (a
quarter), so a good method should find all four.

The structure is the same for every seed: the level effects are constants of
this module, the columns keep their order and the categories are drawn
uniformly. The seed only draws the rows and the noise. The column order is
fixed but interleaves informative and noise columns, so a method that
favours the first (or last) columns gains nothing.

`columns` is in the order a tracker reports them for the model the
benchmark builds: the embedded columns' vectors first (in `embedded_columns`
order), then the inputs of `X_numeric`.

Examples
--------
>>> data = make_grouped_columns(n_samples=200, random_state=0)
>>> data.X_numeric.shape, data.codes.shape, data.task
((200, 14), (200, 2), 'regression')
>>> data.groups["city"]
['city_a', 'city_b', 'city_c', 'city_d', 'city_e']
"""  # noqa: E501

from __future__ import annotations

import logging
import string
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from neural_feature_importance._optional import import_optional

logger = logging.getLogger(__name__)

ColumnKind = Literal["numeric", "one_hot", "embedded"]

GROUPED_COLUMNS: tuple[tuple[str, ColumnKind, int, bool], ...] = (
    ("store", "embedded", 8, True),
    ("weekday", "embedded", 7, False),
    ("price", "numeric", 0, True),
    ("colour", "one_hot", 4, False),
    ("humidity", "numeric", 0, False),
    ("city", "one_hot", 5, True),
    ("temperature", "numeric", 0, True),
    ("distance", "numeric", 0, False),
    ("weight", "numeric", 0, False),
)
"""`(name, encoding, levels, informative)` of every column, in result order.

Embedded columns come first because the benchmark's model concatenates the
embedding vectors before the numeric and one-hot inputs.
"""

LEVEL_EFFECTS: dict[str, tuple[float, ...]] = {
    # Deliberately not monotone in the level's index: a level effect, not a trend.
    "store": (0.9, -1.4, 0.3, 1.1, -0.2, -0.9, 1.6, -0.5),
    "city": (-1.2, 0.8, 0.1, 1.5, -0.6),
}
"""Effect of every level of the informative categoricals (rescaled to mean 0, variance 1)."""


def _unit_effects(effects: tuple[float, ...]) -> np.ndarray:
    """Level effects with mean 0 and variance 1 under uniformly drawn levels."""
    values = np.asarray(effects, dtype=np.float64)
    values = values - values.mean()
    return values / values.std()


@dataclass(frozen=True)
class GroupedColumnsData:
    """A generated grouped-column problem (see [`make_grouped_columns()`][make_grouped_columns]).

    Attributes
    ----------
    X_numeric : ndarray of float32, shape (n_samples, n_inputs)
        Numeric columns and one-hot levels (0/1), in `input_names` order.
    codes : ndarray of int64, shape (n_samples, n_embedded)
        Integer codes `0 .. n_levels - 1` of the embedded columns, in
        `embedded_columns` order.
    y : ndarray of float64, shape (n_samples,)
        Standardised regression target.
    input_names : list of str
        One name per column of `X_numeric`; a one-hot level is named
        `"<column>_<level>"` (what `pandas.get_dummies` gives).
    groups : dict of str to list of str
        One-hot column -> its inputs' names (the `groups=` of a tracker that
        watches `X_numeric` only).
    columns : list of str
        Every column, in result order (embedded first, then `X_numeric`'s).
    informative : ndarray of bool, shape (n_columns,)
        True for the columns that enter `y`, aligned with `columns`.
    kinds : dict of str to {"numeric", "one_hot", "embedded"}
        The encoding of every column.
    levels : dict of str to list of str
        Level labels of every categorical column (`"a"`, `"b"`, ...).
    embedded_columns : list of str
        The columns in `codes`, in order.
    task : str
        `"regression"`.
    noise : float
        Noise standard deviation relative to the signal's.
    random_state : int or None
        The seed the rows were drawn with.
    name : str
        `"grouped_columns"`.
    raw : dict of str to ndarray
        Every column's raw values: floats for numeric columns, integer level
        codes for categoricals (what [`to_frame()`][to_frame] shows).
    """

    X_numeric: np.ndarray
    codes: np.ndarray
    y: np.ndarray
    input_names: list[str]
    groups: dict[str, list[str]]
    columns: list[str]
    informative: np.ndarray
    kinds: dict[str, ColumnKind]
    levels: dict[str, list[str]]
    embedded_columns: list[str]
    task: str = "regression"
    noise: float = 0.5
    random_state: int | None = None
    name: str = "grouped_columns"
    raw: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def n_samples(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_informative(self) -> int:
        return int(self.informative.sum())

    @property
    def informative_columns(self) -> list[str]:
        """Names of the informative columns, in result order."""
        return [c for c, keep in zip(self.columns, self.informative, strict=True) if keep]

    def n_levels(self, column: str) -> int:
        """Number of levels of a categorical column."""
        return len(self.levels[column])

    def first_layer_columns(self, embedding_dim: int) -> tuple[list[str], dict[str, list[str]]]:
        """`feature_names` and `groups` of a tracker on the first dense layer.

        For the model that concatenates one `embedding_dim`-wide embedding
        per embedded column (in `embedded_columns` order) with
        `X_numeric`: the dense layer's inputs are named
        `"<column>[<d>]"` for embedding dimensions, then `input_names`;
        the groups map every embedded and one-hot column to its inputs. A
        tracker given these reports one score per column, in `columns` order.

        Parameters
        ----------
        embedding_dim : int
            Width of every embedding.
        """
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim={embedding_dim!r}; use a positive integer.")
        names: list[str] = []
        groups: dict[str, list[str]] = {}
        for column in self.embedded_columns:
            dims = [f"{column}[{d}]" for d in range(embedding_dim)]
            names += dims
            groups[column] = dims
        names += self.input_names
        groups.update(self.groups)
        return names, groups

    def column_inputs(self) -> dict[str, tuple[str, list[int]]]:
        """Where every column lives: `("codes", [j])` or `("X_numeric", [inputs])`.

        Used by grouped permutation importance, which shuffles all of a
        column's inputs together.
        """
        where: dict[str, tuple[str, list[int]]] = {}
        index = {name: i for i, name in enumerate(self.input_names)}
        for column in self.columns:
            if self.kinds[column] == "embedded":
                where[column] = ("codes", [self.embedded_columns.index(column)])
            elif self.kinds[column] == "one_hot":
                where[column] = ("X_numeric", [index[n] for n in self.groups[column]])
            else:
                where[column] = ("X_numeric", [index[column]])
        return where

    def to_frame(self, include_target: bool = False) -> Any:
        """The raw columns as a pandas DataFrame (categoricals as `pandas.Categorical`).

        `pandas.get_dummies(frame[[c]])` of a one-hot column gives exactly
        its inputs of `X_numeric`, and `frame[c].cat.codes` of an embedded
        column gives its `codes`.

        Parameters
        ----------
        include_target : bool, default=False
            Add `y` as a last column named `"y"`.
        """
        pd = import_optional("pandas", "GroupedColumnsData.to_frame")
        data: dict[str, Any] = {}
        for column in self.columns:
            raw = self.raw[column]
            if self.kinds[column] == "numeric":
                data[column] = raw
            else:
                data[column] = pd.Categorical.from_codes(raw, categories=self.levels[column])
        frame = pd.DataFrame(data)
        if include_target:
            frame["y"] = self.y
        return frame


def make_grouped_columns(
    n_samples: int = 2000,
    random_state: int | None = None,
    *,
    noise: float = 0.5,
) -> GroupedColumnsData:
    """Generate the grouped-column regression problem described in this module.

    Parameters
    ----------
    n_samples : int, default=2000
        Number of rows (at least 20).
    random_state : int, optional
        Seed of the rows and the noise; the planted structure (columns, level
        effects, which columns are informative) does not depend on it.
    noise : float, default=0.5
        Standard deviation of the noise relative to the signal's (the four
        effects have unit variance each, so the signal's is 2); the best
        attainable R² is `1 / (1 + noise**2)`.

    Returns
    -------
    GroupedColumnsData
        `X_numeric`, `codes`, `y`, `input_names`, `groups`,
        `columns`, `informative` and the helpers
        [`first_layer_columns()`][GroupedColumnsData.first_layer_columns],
        [`column_inputs()`][GroupedColumnsData.column_inputs] and
        [`to_frame()`][GroupedColumnsData.to_frame].

    Raises
    ------
    ValueError
        For `n_samples` below 20 or a negative `noise`.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
        raise ValueError(f"n_samples={n_samples!r}; use an integer of at least 20.")
    if n_samples < 20:
        raise ValueError(f"n_samples={n_samples!r}; use an integer of at least 20.")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise={noise!r}; use a non-negative number.")
    n = int(n_samples)
    rng = np.random.default_rng(random_state)

    raw: dict[str, np.ndarray] = {}
    kinds: dict[str, ColumnKind] = {}
    levels: dict[str, list[str]] = {}
    for name, kind, n_levels, _ in GROUPED_COLUMNS:
        kinds[name] = kind
        if kind == "numeric":
            raw[name] = rng.normal(size=n)
        else:
            levels[name] = list(string.ascii_lowercase[:n_levels])
            raw[name] = rng.integers(0, n_levels, size=n)

    effects = [
        _unit_effects(LEVEL_EFFECTS["store"])[raw["store"]],
        raw["price"],
        _unit_effects(LEVEL_EFFECTS["city"])[raw["city"]],
        (raw["temperature"] ** 2 - 1.0) / np.sqrt(2.0),
    ]
    signal = np.sum(effects, axis=0)
    y = signal + noise * 2.0 * rng.normal(size=n)
    y = (y - y.mean()) / y.std()

    columns = [name for name, *_ in GROUPED_COLUMNS]
    embedded = [name for name in columns if kinds[name] == "embedded"]
    inputs: list[np.ndarray] = []
    input_names: list[str] = []
    groups: dict[str, list[str]] = {}
    for name in columns:
        if kinds[name] == "numeric":
            inputs.append(raw[name][:, None])
            input_names.append(name)
        elif kinds[name] == "one_hot":
            one_hot = np.eye(len(levels[name]))[raw[name]]
            inputs.append(one_hot)
            names = [f"{name}_{level}" for level in levels[name]]
            input_names += names
            groups[name] = names
    data = GroupedColumnsData(
        X_numeric=np.hstack(inputs).astype(np.float32),
        codes=np.column_stack([raw[name] for name in embedded]).astype(np.int64),
        y=y.astype(np.float64),
        input_names=input_names,
        groups=groups,
        columns=columns,
        informative=np.array([keep for *_, keep in GROUPED_COLUMNS], dtype=bool),
        kinds=kinds,
        levels=levels,
        embedded_columns=embedded,
        noise=float(noise),
        random_state=random_state,
        raw=raw,
    )
    logger.debug(
        "make_grouped_columns: %d rows, %d numeric/one-hot inputs, %d embedded columns",
        n,
        data.X_numeric.shape[1],
        len(embedded),
    )
    return data
