"""Columns of a layer that reads embedded categoricals beside numeric columns.

pytorch-tabular's `CategoryEmbeddingModel` embeds each categorical column
(`nn.Embedding(cardinality, dim)`, one per column of `categorical_cols`),
concatenates the embeddings in that order, joins them with the continuous
columns and feeds the result to the first `Linear` of its backbone. Since
pytorch-tabular 1.0 (`Embedding1dLayer.forward`) the continuous columns come
first: `torch.cat([continuous, embeddings])`; before 1.0 the embeddings came
first. Its model keeps the sizes as `embedding_dims`, a list of
`(cardinality, dim)` in `categorical_cols` order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ORDERS = ("continuous_first", "embeddings_first")


def embedding_columns(
    embedding_sizes: Any,
    categorical: Sequence[str] | None,
    continuous: Sequence[str],
    order: str | None,
) -> tuple[list[str], list[str | None], str]:
    """Names and owners of `[continuous..., embeddings...]` (or the other way round)."""
    source = "columns_from(embedding_sizes=...)"
    embedded = _embedding_dims(embedding_sizes, categorical)
    numeric = _names(continuous, "continuous")
    clash = sorted(set(numeric) & {name for name, _ in embedded})
    if clash:
        raise ValueError(f"columns_from: {clash} are given as both continuous and embedded.")
    if order is None and embedded and numeric:
        raise ValueError(
            "columns_from(embedding_sizes=..., continuous=...) needs order= to say which part "
            "the layer reads first: 'continuous_first' (pytorch-tabular 1.x's "
            "CategoryEmbeddingModel) or 'embeddings_first' (pytorch-tabular before 1.0, or a "
            "model doing torch.cat([embeddings, numeric])). The widths add up either way, so a "
            "wrong guess could not be caught."
        )
    if order is not None and order not in ORDERS:
        raise ValueError(f"order must be one of {list(ORDERS)}, not {order!r}.")
    embedding_part = [(f"{name}_{d}", name) for name, dim in embedded for d in range(dim)]
    numeric_part = [(name, name) for name in numeric]
    parts = (
        embedding_part + numeric_part
        if order == "embeddings_first"
        else numeric_part + embedding_part
    )
    return [name for name, _ in parts], [owner for _, owner in parts], source


def _embedding_dims(sizes: Any, categorical: Sequence[str] | None) -> list[tuple[str, int]]:
    """`(column, embedding dim)` of each embedded column, in the layer's order."""
    if isinstance(sizes, Mapping):
        if categorical is not None:
            raise ValueError(
                "columns_from: embedding_sizes is a mapping, which names its columns already; "
                "categorical= names the (cardinality, dim) pairs of a list."
            )
        rows = [(name, *_tuple(size)) for name, size in sizes.items()]
    elif isinstance(sizes, str) or not hasattr(sizes, "__iter__"):
        raise ValueError(
            "columns_from: embedding_sizes is {name: (cardinality, dim)}, a list of "
            f"(name, cardinality, dim), or a list of (cardinality, dim) with categorical=; "
            f"got {type(sizes).__name__}."
        )
    else:
        entries = [_tuple(entry) for entry in sizes]
        if all(len(entry) == 2 for entry in entries):
            names = _names(categorical, "categorical") if categorical is not None else []
            if len(names) != len(entries):
                raise ValueError(
                    f"columns_from: embedding_sizes holds {len(entries)} (cardinality, dim) "
                    f"pairs; categorical= must name each of them, in the same order (got "
                    f"{len(names)} names)."
                )
            rows = [(name, *entry) for name, entry in zip(names, entries, strict=True)]
        else:
            rows = entries
    checked: list[tuple[str, int]] = []
    for row in rows:
        name, *numbers = row
        if not isinstance(name, str) or len(numbers) not in (1, 2):
            raise ValueError(
                f"columns_from: the embedding_sizes entry {tuple(row)!r} is not (name, "
                "cardinality, dim), (name, dim), or with categorical= (cardinality, dim)."
            )
        for number in numbers:
            if isinstance(number, bool) or int(number) != number or number < 1:
                raise ValueError(
                    f"columns_from: embedding_sizes[{name!r}] = {tuple(numbers)!r}; a "
                    "cardinality and a dimension are positive integers."
                )
        checked.append((name, int(numbers[-1])))
    _names([name for name, _ in checked], "embedding_sizes")
    return checked


def _tuple(size: Any) -> tuple[Any, ...]:
    """An entry as a tuple: `dim`, `(cardinality, dim)`, `(name, cardinality, dim)`."""
    if isinstance(size, str) or not hasattr(size, "__iter__"):
        return (size,)
    return tuple(size)


def _names(names: Sequence[str], what: str) -> list[str]:
    listed = [names] if isinstance(names, str) else list(names)
    for name in listed:
        if not isinstance(name, str):
            raise ValueError(f"columns_from: {what} holds {name!r}, not a column name (str).")
    if len(set(listed)) != len(listed):
        raise ValueError(f"columns_from: {what} names a column more than once: {listed}.")
    return listed
