"""Save and load tracker states as ``.npz`` files, without pickle.

A tracker's :meth:`~.tracker.VarianceImportanceBase.state_dict` is a nested
dict of numbers, strings, lists of ints and arrays. These helpers flatten it to
``"moments/m2"``-style keys and store it with :func:`numpy.savez`, which
:func:`numpy.load` reads back with ``allow_pickle=False``: a checkpoint from an
untrusted source cannot run code. (PyTorch users can also use ``torch.save``
and ``torch.load(..., weights_only=True)`` on the torch state directly.)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

_SEPARATOR = "/"
_NONE_MARKER = "__none__"
_KIND_SUFFIX = {"int": "::int", "str": "::str", "list": "::list", "none": "::none"}


def flatten_state(state: dict[str, Any], to_numpy: Any = np.asarray) -> dict[str, np.ndarray]:
    """Flatten a nested state into ``{"a/b": ndarray}``, tagging non-array types."""
    flat: dict[str, np.ndarray] = {}
    for key, value in state.items():
        if _SEPARATOR in key or "::" in key:
            raise ValueError(f"state key {key!r} may not contain '/' or '::'")
        if isinstance(value, dict):
            for sub_key, sub_value in flatten_state(value, to_numpy).items():
                flat[f"{key}{_SEPARATOR}{sub_key}"] = sub_value
        elif value is None:
            flat[key + _KIND_SUFFIX["none"]] = np.array(_NONE_MARKER)
        elif isinstance(value, bool | int | np.integer):
            flat[key + _KIND_SUFFIX["int"]] = np.array(int(value), dtype=np.int64)
        elif isinstance(value, str):
            flat[key + _KIND_SUFFIX["str"]] = np.array(value)
        elif isinstance(value, list | tuple):
            flat[key + _KIND_SUFFIX["list"]] = np.array(value, dtype=np.int64)
        else:
            flat[key] = np.asarray(to_numpy(value))
    return flat


def unflatten_state(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    """Invert :func:`flatten_state`."""
    state: dict[str, Any] = {}
    for flat_key, array in flat.items():
        key, _, tag = flat_key.partition("::")
        if tag == "int":
            value: Any = int(array)
        elif tag == "str":
            value = str(array)
        elif tag == "list":
            value = [int(v) for v in np.atleast_1d(array)]
        elif tag == "none":
            value = None
        else:
            value = np.array(array)
        *parents, leaf = key.split(_SEPARATOR)
        node = state
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return state


def save_state(
    state: dict[str, Any], path: str | os.PathLike[str], to_numpy: Any = np.asarray
) -> None:
    """Write a tracker state to ``path`` (``.npz``); arrays go through ``to_numpy``."""
    with open(path, "wb") as handle:
        np.savez(handle, **flatten_state(state, to_numpy))


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state written by :func:`save_state` (never unpickles)."""
    with np.load(path, allow_pickle=False) as archive:
        return unflatten_state({key: archive[key] for key in archive.files})
