"""Named columns: which tracked inputs encode which column of the user's data.

A tracker scores the *inputs* of one layer. Real tabular models feed that
layer with more inputs than the data has columns: a one-hot encoded column
spreads over one input per level, an embedded categorical over the
embedding's output dimensions inside a concatenation. `feature_names=`
names the inputs and `groups=` maps a column name to the inputs that encode
it, so that the result has one score per column of the data.

A group's raw score is the *sum* of its members' raw scores, before
normalisation. For `scoring="taylor"` a member's raw score is that input's
gradient x input, so the sum is the column's gradient x input (summed over
its encodings), on the same scale as a numeric column's.

Order of the result: one entry per group plus one per input that no group
covers, ordered by the first input each one covers. A data frame whose one-hot
levels sit side by side therefore keeps its column order.

Examples
--------
>>> columns = FeatureColumns(["age", "red", "green", "blue"], {"colour": ["red", "green", "blue"]})
>>> resolved = columns.resolve(4)
>>> resolved.names.tolist(), [m.tolist() for m in resolved.members]
(['age', 'colour'], [[0], [1, 2, 3]])
>>> resolved.aggregate(np.array([0.5, 0.1, 0.2, 0.3])).tolist()
[0.5, 0.6000000000000001]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Member = int | str
"""A group member: an input's index, or its name from `feature_names`."""


class InputNames(list[str]):
    """Names of a tracked layer's inputs that remember where they came from.

    A plain list of str (pass it wherever `feature_names=` is taken) with a
    `source`: a description of what produced the names, such as
    `"columns_from(ColumnTransformer)"`. When the tracked layer has another
    number of inputs, the error names that source beside the layer, so a
    preprocessor that does not feed the tracked layer is told apart from a
    typo in a hand-written list.

    Parameters
    ----------
    names : iterable of str
        One name per tracked input.
    source : str
        What described these inputs, as the subject of a sentence.

    Examples
    --------
    >>> names = InputNames(["age", "colour_red", "colour_blue"], source="my_encoder")
    >>> names, names.source
    (['age', 'colour_red', 'colour_blue'], 'my_encoder')
    """

    def __init__(self, names: Iterable[str] = (), source: str = "feature_names") -> None:
        super().__init__(names)
        self.source = source


def default_feature_names(n_inputs: int) -> np.ndarray:
    """`x0, x1, ...`: scikit-learn's names for unnamed inputs."""
    return np.array([f"x{i}" for i in range(n_inputs)], dtype=str)


@dataclass(frozen=True)
class ResolvedColumns:
    """The columns of one tracked layer with a known number of inputs.

    Attributes
    ----------
    input_names : ndarray of str, shape (n_inputs,)
        Name of every tracked input.
    names : ndarray of str, shape (n_columns,)
        Name of every column of the result, in the documented order.
    members : list of ndarray of int
        The inputs each column sums, one array per column.
    """

    input_names: np.ndarray
    names: np.ndarray
    members: list[np.ndarray]

    @property
    def grouped(self) -> bool:
        """Whether any column covers more or other inputs than one of its own."""
        return len(self.members) != self.input_names.size or any(
            m.size != 1 or int(m[0]) != i for i, m in enumerate(self.members)
        )

    def aggregate(self, raw: np.ndarray) -> np.ndarray:
        """Sum per-input raw scores into per-column raw scores, `(n_columns,)`."""
        raw = np.asarray(raw, dtype=np.float64)
        if raw.shape != self.input_names.shape:
            raise ValueError(
                f"got {raw.shape[0] if raw.ndim else 0} input scores for "
                f"{self.input_names.size} inputs"
            )
        return np.array([raw[m].sum() for m in self.members], dtype=np.float64)


class FeatureColumns:
    """`feature_names=` and `groups=` of a tracker, checked and resolved.

    Parameters
    ----------
    feature_names : sequence of str, optional
        One name per tracked input (default `x0, x1, ...`). Names must be
        unique. An [`InputNames`][] (what `columns_from()` returns) also
        says what produced them, and a count that does not fit the layer is
        reported against that source.
    groups : mapping of str to sequence of (int or str), optional
        Column name -> the tracked inputs that encode it: indices, or names
        from `feature_names`. Groups may not overlap, and a group's name may
        not be the name of an input outside it.

    Raises
    ------
    ValueError
        For malformed names or groups (checked at construction); the inputs'
        count, indices and names are checked by [`resolve()`][resolve], once the
        tracked layer is known. Each message names the bad entry.
    """

    def __init__(
        self,
        feature_names: Sequence[str] | None = None,
        groups: Mapping[str, Sequence[Member]] | None = None,
    ) -> None:
        self.feature_names = self._check_names(feature_names)
        self.groups = self._check_groups(groups)
        # What produced the names (columns_from() says which preprocessor), for messages.
        self.source: str | None = getattr(feature_names, "source", None)

    @staticmethod
    def _check_names(feature_names: Sequence[str] | None) -> np.ndarray | None:
        if feature_names is None:
            return None
        if isinstance(feature_names, str) or not isinstance(feature_names, Sequence | np.ndarray):
            raise ValueError(
                f"feature_names must be a sequence of str (one per tracked input), not "
                f"{type(feature_names).__name__}; e.g. feature_names=list(df.columns)."
            )
        names = list(feature_names)
        for index, name in enumerate(names):
            if not isinstance(name, str | np.str_):
                raise ValueError(
                    f"feature_names[{index}] is {name!r}, not a str; pass one name per input."
                )
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(
                    f"feature_names has {name!r} more than once; names must be unique."
                )
            seen.add(str(name))
        return np.array([str(n) for n in names], dtype=str)

    @staticmethod
    def _check_groups(
        groups: Mapping[str, Sequence[Member]] | None,
    ) -> dict[str, list[Member]] | None:
        if groups is None:
            return None
        if not isinstance(groups, Mapping):
            raise ValueError(
                f"groups must be a mapping from a column name to the inputs that encode it, "
                f"not {type(groups).__name__}; e.g. groups={{'colour': [3, 4, 5]}}."
            )
        checked: dict[str, list[Member]] = {}
        for name, members in groups.items():
            if not isinstance(name, str):
                raise ValueError(f"groups: the column name {name!r} is not a str.")
            if isinstance(members, str | int | np.integer) or not isinstance(
                members, Sequence | np.ndarray | range
            ):
                raise ValueError(
                    f"groups[{name!r}] is {members!r}; give a list of the input indices or "
                    "names it covers, e.g. [3, 4, 5]."
                )
            listed = list(members)
            if not listed:
                raise ValueError(f"groups[{name!r}] is empty; a column covers at least one input.")
            for member in listed:
                if isinstance(member, bool) or not isinstance(member, int | np.integer | str):
                    raise ValueError(
                        f"groups[{name!r}] contains {member!r}; members are input indices (int) "
                        "or names from feature_names (str)."
                    )
            checked[name] = [m if isinstance(m, str) else int(m) for m in listed]
        return checked

    def resolve(
        self, n_inputs: int, layer: str | None = None, default_names: np.ndarray | None = None
    ) -> ResolvedColumns:
        """Check the names and groups against `n_inputs` tracked inputs and resolve them.

        Parameters
        ----------
        n_inputs : int
            Number of inputs of the tracked layer.
        layer : str, optional
            The layer's name, for messages.
        default_names : ndarray of str, optional
            The inputs' names when `feature_names` is not given (default
            `x0, x1, ...`; several input layers name theirs after the layer).

        Raises
        ------
        ValueError
            If `feature_names` has another length, a group names an unknown
            input or an index out of range, two groups overlap, or a group's
            name is that of an input outside it.
        """
        where = f"layer {layer!r}" if layer else "the tracked layer"
        if self.feature_names is not None and self.feature_names.size != n_inputs:
            if self.source is not None:
                raise ValueError(
                    f"{self.source} describes {self.feature_names.size} inputs; {where} reads "
                    f"{n_inputs}. Track the layer that reads the preprocessor's output "
                    "(layer=...), and describe the preprocessor the model's data went through."
                )
            raise ValueError(
                f"feature_names has {self.feature_names.size} names, but {where} has "
                f"{n_inputs} inputs; pass one name per input."
            )
        input_names = self.feature_names
        if input_names is None:
            input_names = (
                default_feature_names(n_inputs) if default_names is None else default_names
            )
        if not self.groups:
            singles = [np.array([i]) for i in range(n_inputs)]
            return ResolvedColumns(input_names, input_names.copy(), singles)
        index_of = {str(name): i for i, name in enumerate(input_names)}
        owner: dict[int, str] = {}
        columns: list[tuple[int, str, np.ndarray]] = []
        for group, members in self.groups.items():
            indices: list[int] = []
            for member in members:
                if isinstance(member, str):
                    if member not in index_of:
                        known = "feature_names" if self.feature_names is not None else "x0, x1, ..."
                        raise ValueError(
                            f"groups[{group!r}] names the input {member!r}, which is not one of "
                            f"the {n_inputs} input names ({known})."
                        )
                    index = index_of[member]
                else:
                    if not -n_inputs <= member < n_inputs:
                        raise ValueError(
                            f"groups[{group!r}] has the index {member}, but {where} has "
                            f"{n_inputs} inputs (indices 0 to {n_inputs - 1})."
                        )
                    index = member % n_inputs
                if index in owner:
                    other, named = owner[index], f"input {index} ({str(input_names[index])!r})"
                    raise ValueError(
                        f"groups[{group!r}] and groups[{other!r}] both cover {named}; groups "
                        "may not overlap."
                        if other != group
                        else f"groups[{group!r}] lists {named} twice."
                    )
                owner[index] = group
                indices.append(index)
            columns.append((min(indices), group, np.array(sorted(indices))))
        for index in range(n_inputs):
            if index not in owner:
                name = str(input_names[index])
                if name in self.groups:
                    raise ValueError(
                        f"groups has a column {name!r}, which is also the name of input "
                        f"{index} outside it; rename the group or add the input to it."
                    )
                columns.append((index, name, np.array([index])))
        columns.sort(key=lambda column: column[0])
        names = np.array([name for _, name, _ in columns], dtype=str)
        return ResolvedColumns(input_names, names, [members for _, _, members in columns])
