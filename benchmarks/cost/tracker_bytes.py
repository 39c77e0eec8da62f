"""The bytes a tracker keeps: the arrays of its state, and those it holds besides it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from benchmarks.cost.internals import is_columns_path


def _buffer(value: Any) -> tuple[int, int] | None:
    """(address, bytes) of the memory behind a tensor or an ndarray, else ``None``."""
    if isinstance(value, np.ndarray):
        base = value
        while isinstance(base.base, np.ndarray):
            base = base.base
        return int(base.__array_interface__["data"][0]), int(base.nbytes)
    if hasattr(value, "untyped_storage"):
        storage = value.untyped_storage()
        return int(storage.data_ptr()), int(storage.nbytes())
    return None


def _arrays_in(
    value: Any,
    path: str = "",
    found: dict[int, tuple[int, str]] | None = None,
    seen: set[int] | None = None,
) -> dict[int, tuple[int, str]]:
    """Every tensor or ndarray reachable from ``value``: buffer address -> (bytes, path).

    Walks dicts, lists and tuples, and the attributes of this library's objects
    (a tracker, its scoring mode, its running moments, its array library);
    framework objects (modules, process groups) are not entered. A buffer
    reached twice counts once: a state dict holds the accumulators
    themselves, not copies. The path names where the walk first met it, list
    positions as ``[*]`` (``_columns.members[*]``).
    """
    found = {} if found is None else found
    seen = set() if seen is None else seen
    buffer = _buffer(value)
    if buffer is not None:
        address, nbytes = buffer
        if address not in found or found[address][0] < nbytes:
            found[address] = (nbytes, path)
        return found
    if id(value) in seen:
        return found
    seen.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            _arrays_in(item, f"{path}[{key!r}]", found, seen)
    elif isinstance(value, list | tuple | set):
        for item in value:
            _arrays_in(item, f"{path}[*]", found, seen)
    elif type(value).__module__.startswith("neural_feature_importance") and hasattr(
        value, "__dict__"
    ):
        for key, item in vars(value).items():
            _arrays_in(item, f"{path}.{key}" if path else key, found, seen)
    return found


def tracker_bytes(tracker: Any, exclude: Iterable[Any] = ()) -> tuple[int, dict[str, int]]:
    """Bytes a tracker keeps: in its ``state_dict()``, and held besides it (by attribute).

    The first is the sum over the arrays of ``tracker.state_dict()``,
    recursively. The second maps each attribute path to the bytes of the
    arrays reachable from the tracker's attributes that the state does not
    hold: the gradient modes' reads held since the last fold
    (:data:`~benchmarks.cost.internals.PENDING_SUMS`, folded into the state
    when it is read), and the resolved feature columns
    (:data:`~benchmarks.cost.internals.COLUMNS_ATTRIBUTE`: the feature names
    and one index array per column). ``exclude`` are arrays that are not the
    tracker's (the model's weights and gradients). Array bytes only
    (``nbytes``), not the Python objects around them.

    Examples
    --------
    >>> import numpy as np
    >>> from neural_feature_importance import VarianceImportanceBase
    >>> core = VarianceImportanceBase(scoring="viann")
    >>> core.start(np.zeros((10, 8), dtype=np.float32))
    >>> core.update(np.ones((10, 8), dtype=np.float32))
    >>> state, extra = tracker_bytes(core)
    >>> state  # shift, mean, M2 and the last weights: 4 x 80 float64
    2560
    >>> sorted(extra)
    ['_columns.input_names', '_columns.members[*]', '_columns.names']
    """
    buffers = (_buffer(array) for array in exclude)
    skip = {buffer[0] for buffer in buffers if buffer is not None}
    # Held arrays first: reading the state flushes taylor's pending sums.
    held = _arrays_in(tracker)
    state = _arrays_in(tracker.state_dict())
    state_bytes = sum(n for address, (n, _) in state.items() if address not in skip)
    extra: dict[str, int] = {}
    for address, (nbytes, path) in held.items():
        if address not in state and address not in skip:
            extra[path] = extra.get(path, 0) + nbytes
    return state_bytes, extra


def split_extra(extra: dict[str, int]) -> dict[str, Any]:
    """Held-besides-the-state bytes: statistics, and the feature columns' metadata.

    The feature columns (the feature names and one index array per column,
    resolved from the options and the weight's shape) are not a statistic of
    training, so they are reported apart and left out of the ratio to the
    weight.
    """
    columns = {p: n for p, n in extra.items() if is_columns_path(p)}
    rest = {p: n for p, n in extra.items() if p not in columns}
    return {
        "extra_bytes": sum(rest.values()),
        "extra_arrays": "; ".join(f"{path} {n}" for path, n in sorted(rest.items())),
        "columns_bytes": sum(columns.values()),
    }
