"""Save and load tracker states as safetensors files that carry a checksum.

Arrays go in as tensors named by their `"moments/m2"` path; the plain values (ints,
floats, strings, `None`, lists of ints) and the order of all entries as JSON metadata,
with a SHA-256 checksum of that JSON and of each tensor's name, dtype, shape and bytes.
Why safetensors (huggingface/safetensors): a bounded JSON header before raw bytes, so
loading runs no code (unlike pickle) and allocates no more than the file holds, and its
parser is fuzzed and audited. Why the checksum: safetensors accepts any bytes in the data
region and any metadata, so it would load a flipped byte there or a cut file padded back
to length; the checksum rejects them, and safetensors files that [`save_state()`][save_state] did
not write. Any file name works (`.safetensors` is the usual suffix).

States that version 1.0 wrote as `.npz` archives still load ([`load_state()`][load_state]
recognises a zip file), through numpy's loader with `allow_pickle=False` and the zip
members' CRC-32 checks; [`save_state()`][save_state] always writes safetensors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from neural_feature_importance.core.errors import StateDictError

logger = logging.getLogger(__name__)

_STATE_KEY = "neural_feature_importance.state"  # JSON: [[key, value] or [key] for a tensor]
_CHECKSUM_KEY = "neural_feature_importance.sha256"
_REMEDY = "Re-save it with tracker.save_state(path), or load an earlier checkpoint."


def flatten_state(state: Mapping[str, Any], to_numpy: Any = np.asarray) -> dict[str, Any]:
    """Flatten a nested state to `{"a/b": array or JSON value}`; no key may contain "/"."""
    flat: dict[str, Any] = {}
    for key, value in state.items():
        if "/" in key:
            raise ValueError(f"state key {key!r} may not contain '/'")
        if isinstance(value, Mapping):
            nested = flatten_state(value, to_numpy)
            flat.update({f"{key}/{sub}": v for sub, v in nested.items()} if nested else {key: {}})
        elif value is None or isinstance(value, str | float):
            flat[key] = value
        elif isinstance(value, bool | int | np.integer):
            flat[key] = int(value)
        elif isinstance(value, list | tuple):
            flat[key] = [int(v) for v in value]
        else:
            array = np.asarray(to_numpy(value))  # safetensors writes memory: make it "<", C order
            flat[key] = np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")
    return flat


def unflatten_state(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Invert [`flatten_state()`][flatten_state]; a foreign entry raises [`StateDictError`][]."""
    state: dict[str, Any] = {}
    for flat_key, value in flat.items():
        plain = isinstance(value, np.ndarray | int | float | str) or value is None or value == {}
        if not (plain or (isinstance(value, list) and all(type(v) is int for v in value))):
            raise StateDictError(f"entry {flat_key!r} holds {value!r:.60}, not a state value")
        *parents, leaf = flat_key.split("/")
        node = state
        for parent in parents:
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise StateDictError(f"entry {flat_key!r} is nested under the value {parent!r}")
        if leaf in node:
            raise StateDictError(f"entry {flat_key!r} repeats the key {leaf!r}")
        node[leaf] = {} if isinstance(value, dict) else value
    return state


def _checksum(entries: str, tensors: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256(entries.encode())
    for name, tensor in sorted(tensors.items()):  # the JSON arrays delimit themselves
        digest.update(json.dumps([name, tensor.dtype.name, tensor.shape]).encode())
        digest.update(tensor.tobytes())
    return digest.hexdigest()


def save_state(
    state: Mapping[str, Any], path: str | os.PathLike[str], to_numpy: Any = np.asarray
) -> None:
    """Write a tracker state to `path` as a checksummed safetensors file, without pickle.

    Parameters
    ----------
    state : mapping
        Nested state, as returned by a tracker's `state_dict`.
    path : str or path-like
        File to write; it is overwritten, under exactly this name.
    to_numpy : callable, default=numpy.asarray
        Converts an array of the tracker's library to numpy.
    """
    flat = flatten_state(state, to_numpy)
    tensors = {key: value for key, value in flat.items() if isinstance(value, np.ndarray)}
    entries = json.dumps([[key] if key in tensors else [key, value] for key, value in flat.items()])
    save_file(tensors, path, {_STATE_KEY: entries, _CHECKSUM_KEY: _checksum(entries, tensors)})
    logger.debug("saved a state of %d entries (%d arrays) to %s", len(flat), len(tensors), path)


def _unreadable(path: str | os.PathLike[str], problem: str) -> StateDictError:
    return StateDictError(f"cannot load a tracker state from {path}: {problem}. {_REMEDY}")


_LEGACY_TAGS = {
    "int": lambda a: int(a) if a.ndim == 0 and a.dtype.kind in "iu" else None,
    "str": lambda a: str(a) if a.ndim == 0 and a.dtype.kind == "U" else None,
    "list": lambda a: [int(v) for v in a] if a.ndim == 1 and a.dtype.kind in "iu" else None,
    "none": lambda a: None,
}
"""How version 1.0's `.npz` states tagged their non-array values (`"steps::int"`)."""


def _load_legacy_npz(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state that version 1.0 wrote as an `.npz` archive (no pickle)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            flat: dict[str, Any] = {}
            for name in archive.files:
                array = archive[name]  # read in full: the zip member's CRC-32 is checked
                base, _, tag = name.partition("::")
                if tag and (
                    tag not in _LEGACY_TAGS or (tag != "none" and _LEGACY_TAGS[tag](array) is None)
                ):
                    raise StateDictError(f"entry {name!r} does not hold its tagged type")
                flat[base] = _LEGACY_TAGS[tag](array) if tag else array
        state = unflatten_state(flat)
        if not isinstance(state.get("format_version"), int):
            raise StateDictError("it has no integer 'format_version' entry")
    except Exception as err:  # untrusted bytes: anything numpy or zipfile refuses is unreadable
        # numpy suggests allow_pickle for what it cannot parse: never pass that advice on.
        reason = "not an .npz archive" if "allow_pickle" in str(err) else str(err)
        problem = (
            f"the file is a zip archive but not a readable .npz state of version 1.0 ({reason})"
        )
        raise _unreadable(path, problem) from err
    logger.info("read a version 1.0 .npz state from %s; save_state() writes safetensors", path)
    return state


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state written by [`save_state()`][save_state] (FileNotFoundError if none).

    Raises
    ------
    StateDictError
        If the file is empty, truncated, corrupted or not written by [`save_state()`][save_state]
        (it is untrusted bytes); the message names the file and the remedy, and the
        library error, if any, is chained as `__cause__`.
    """
    with open(path, "rb") as handle:  # a missing file is not a corrupted one: let it raise
        head, size = handle.read(9), os.fstat(handle.fileno()).st_size
    if size == 0:
        raise _unreadable(path, "the file is empty (0 bytes)")
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip archive: an .npz state of 1.0
        return _load_legacy_npz(path)
    try:
        with safe_open(path, framework="numpy") as file:
            metadata = file.metadata() or {}
            tensors = {key: file.get_tensor(key) for key in file.keys()}
    except Exception as err:  # untrusted bytes: anything safetensors refuses is unreadable
        damaged = size < 9 or head.endswith(b"{")  # safetensors: 8-byte header length, "{"
        what = "truncated or corrupted" if damaged else "not a state file written by save_state"
        raise _unreadable(path, f"the file is {what} (safetensors: {err})") from err
    if _STATE_KEY not in metadata:
        problem = f"it has no {_STATE_KEY!r} metadata; its tensors: {sorted(tensors)[:8]}"
        raise _unreadable(path, f"it is a safetensors file but not a tracker state: {problem}")
    if metadata.get(_CHECKSUM_KEY) != _checksum(metadata[_STATE_KEY], tensors):
        raise _unreadable(path, "the file is truncated or corrupted: its checksum does not match")
    try:
        entries = json.loads(metadata[_STATE_KEY])
        state = unflatten_state({key: v[0] if v else tensors.pop(key) for key, *v in entries})
        if not isinstance(state.get("format_version"), int):
            raise StateDictError("it has no integer 'format_version' entry")
    except Exception as err:  # checksummed, but written by another program: not a state
        raise _unreadable(path, f"its entries are not a tracker state: {err}") from err
    return state
