r"""Save and load tracker states as ``.npz`` files, without pickle.

A tracker's :meth:`~.tracker.VarianceImportanceBase.state_dict` is a nested
dict of numbers, strings, lists of ints and arrays. These helpers flatten it to
``"moments/m2"``-style keys and store it with :func:`numpy.savez`; it is read
back with ``allow_pickle=False``, so a checkpoint from an untrusted source
cannot run code. (PyTorch users can also use ``torch.save`` and
``torch.load(..., weights_only=True)`` on the torch state directly.)

:func:`load_state` treats the file as untrusted bytes. A file that is empty,
truncated, corrupted, not an ``.npz`` archive at all, or an ``.npz`` archive
that is not a tracker state raises :class:`~.errors.StateDictError` with a
message that names the file, says what is wrong with it and what to do; the
raw library error is chained as its cause. The checks, in order:

1. the file must start with a zip signature (``PK\x03\x04``, or
   ``PK\x05\x06`` for an empty archive). Checking this here, before numpy
   sees the file, keeps numpy from reporting foreign bytes as "pickled data"
   and suggesting to load them unsafely;
2. the zip directory must list as many members as the archive's end record
   counts (a damaged length field can make zipfile skip members silently),
   and the CRC-32 of every member must match its data. :func:`numpy.savez`
   stores members uncompressed, so without this check a flipped byte in an
   ``.npy`` header would be parsed as a shape or dtype;
3. every member must be an ``.npy`` array of non-object dtype whose header
   describes exactly the bytes the member holds, so no header can make numpy
   allocate more memory than the file contains;
4. the flattened keys must form a state: the ``::int``, ``::str`` and
   ``::none`` tags hold 0-d arrays of the matching dtype, ``::list`` an integer
   array of at most one dimension, and there is an integer ``format_version``
   entry.

A missing file still raises :class:`FileNotFoundError`: it is not corrupted.
"""

from __future__ import annotations

import math
import os
import struct
import zipfile
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from neural_feature_importance.core.errors import StateDictError

_SEPARATOR = "/"
_NONE_MARKER = "__none__"
_KIND_SUFFIX = {"int": "::int", "str": "::str", "list": "::list", "none": "::none"}

# A zip archive starts with a local file header, or with the end-of-central-
# directory record when it has no members.
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
# The end-of-central-directory record that closes a zip archive: signature,
# two disk numbers, entries on this disk, entries in total, directory size and
# offset, archive comment length. np.savez writes no archive comment, so the
# record is the last 22 bytes of the file.
_END_RECORD = struct.Struct("<4s4H2LH")
_ZIP64_COUNT = 0xFFFF  # the count is in the zip64 record instead (> 65534 members)
_NPY_SUFFIX = ".npy"
_SHOWN_ENTRIES = 8  # entry names an error message lists before it elides the rest
_REMEDY = "Re-save it with tracker.save_state(path), or load an earlier checkpoint."


def flatten_state(state: dict[str, Any], to_numpy: Any = np.asarray) -> dict[str, np.ndarray]:
    """Flatten a nested state into ``{"a/b": ndarray}``, tagging non-array types.

    Parameters
    ----------
    state : dict
        Nested state of dicts, ``None``, ints, strings, lists of ints and
        arrays, as returned by a tracker's ``state_dict``.
    to_numpy : callable, default=numpy.asarray
        Converts an array of the tracker's library to numpy.

    Returns
    -------
    dict of str to ndarray
        Nested keys joined with ``"/"``. Values that are not arrays are stored
        as arrays and their key is tagged with their type (``"::int"``,
        ``"::str"``, ``"::list"``, ``"::none"``) so that
        :func:`unflatten_state` can restore them.

    Raises
    ------
    ValueError
        If a key contains ``"/"`` or ``"::"``, which would make the flat keys
        ambiguous.
    """
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


def _check_tagged(flat_key: str, array: np.ndarray, *, scalar: bool, kinds: str, what: str) -> None:
    """Raise :class:`StateDictError` unless ``array`` can hold a tagged value."""
    shape_ok = array.ndim == 0 if scalar else array.ndim <= 1
    if not shape_ok or array.dtype.kind not in kinds:
        raise StateDictError(
            f"entry {flat_key!r} should hold {what}, but holds an array of shape "
            f"{array.shape} and dtype {array.dtype}"
        )


def unflatten_state(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Invert :func:`flatten_state`.

    Parameters
    ----------
    flat : mapping of str to ndarray
        Flat keys and arrays as written by :func:`flatten_state`.

    Returns
    -------
    dict
        The nested state, with tagged entries turned back into ``int``,
        ``str``, ``list`` of ``int`` and ``None``.

    Raises
    ------
    StateDictError
        If an entry does not fit its tag (an ``::int``, ``::str`` or ``::none``
        entry that is not a 0-d array of that type, an ``::list`` entry that is
        not an integer array of at most one dimension), a tag is unknown, or
        two keys collide (the same key twice, or a key nested under a value).
        :func:`flatten_state` never writes such entries, so the input was not
        written by it.
    """
    state: dict[str, Any] = {}
    for flat_key, raw in flat.items():
        array = np.asarray(raw)
        key, _, tag = flat_key.partition("::")
        if tag == "int":
            _check_tagged(flat_key, array, scalar=True, kinds="iu", what="one integer")
            value: Any = int(array)
        elif tag == "str":
            _check_tagged(flat_key, array, scalar=True, kinds="U", what="one string")
            value = str(array)
        elif tag == "list":
            _check_tagged(flat_key, array, scalar=False, kinds="iu", what="a list of integers")
            value = [int(v) for v in np.atleast_1d(array)]
        elif tag == "none":
            _check_tagged(flat_key, array, scalar=True, kinds="U", what="the None marker")
            value = None
        elif tag:
            raise StateDictError(
                f"entry {flat_key!r} has the unknown type tag {tag!r}; "
                f"known tags are {sorted(_KIND_SUFFIX.values())}"
            )
        else:
            value = np.array(array)
        *parents, leaf = key.split(_SEPARATOR)
        node = state
        for parent in parents:
            child = node.setdefault(parent, {})
            if not isinstance(child, dict):
                raise StateDictError(
                    f"entry {flat_key!r} is nested under {parent!r}, which is a value, "
                    "not a group of entries"
                )
            node = child
        if leaf in node:
            raise StateDictError(f"entry {flat_key!r} repeats the key {key!r}")
        node[leaf] = value
    return state


def save_state(
    state: dict[str, Any], path: str | os.PathLike[str], to_numpy: Any = np.asarray
) -> None:
    """Write a tracker state to ``path`` as an ``.npz`` file, without pickle.

    Parameters
    ----------
    state : dict
        Nested state, as returned by a tracker's ``state_dict``.
    path : str or path-like
        File to write; it is overwritten. numpy does not add an ``.npz``
        suffix here, so the file has exactly this name.
    to_numpy : callable, default=numpy.asarray
        Converts an array of the tracker's library to numpy.

    See Also
    --------
    load_state : Read the file back.
    """
    # Typed as Any values: numpy's stub reads a str-keyed ``**`` as possibly ``allow_pickle``.
    arrays: dict[str, Any] = flatten_state(state, to_numpy)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _unreadable(path: str, problem: str) -> StateDictError:
    """Build the error for a file ``load_state`` cannot read: what, why, what to do."""
    return StateDictError(f"cannot load a tracker state from {path}: {problem}. {_REMEDY}")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """Read one ``.npy`` member whose CRC is already verified.

    The header is parsed first and must describe exactly the bytes the member
    holds, so that :func:`numpy.lib.format.read_array` never allocates more
    than the file contains; object arrays are refused before numpy would.
    """
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(f".npy format version {version} is not one numpy.savez writes here")
        if dtype.hasobject:
            raise ValueError(f"it holds Python objects (dtype {dtype}), which no state contains")
        data_size = math.prod(shape) * dtype.itemsize
        if member.tell() + data_size != info.file_size:
            raise ValueError(
                f"its header describes {data_size} bytes of data, but the member holds "
                f"{info.file_size - member.tell()} bytes"
            )
        member.seek(0)
        return np.lib.format.read_array(member, allow_pickle=False)


def _check_member_count(handle: IO[bytes], archive: zipfile.ZipFile, path: str) -> None:
    """Check that zipfile read every member the archive's end record counts.

    zipfile walks the central directory by its size in bytes and ignores the
    member count, so a damaged length field (a member comment length) can
    make it skip the members after it without an error; their CRCs are then
    never checked and the state would load with entries missing.
    """
    handle.seek(-_END_RECORD.size, os.SEEK_END)
    signature, _, _, _, n_members, _, _, _ = _END_RECORD.unpack(handle.read(_END_RECORD.size))
    if signature != _ZIP_SIGNATURES[1]:
        raise _unreadable(
            path,
            "it is not a state file written by save_state: the zip archive has a comment "
            "or trailing bytes after its end record",
        )
    n_read = len(archive.infolist())
    if n_members not in (n_read, _ZIP64_COUNT):
        raise _unreadable(
            path,
            f"the file is truncated or corrupted: its zip end record counts {n_members} "
            f"members, but the zip directory describes {n_read}",
        )


def _read_archive(handle: IO[bytes], path: str) -> dict[str, np.ndarray]:
    """Read every member of the zip archive in ``handle`` as a flat state.

    zipfile and numpy report damaged or foreign bytes with many exception
    types (``BadZipFile``, ``EOFError``, ``ValueError``, ``struct.error``,
    ``zlib.error``, ``NotImplementedError``, ``OverflowError``,
    ``MemoryError``, ...), and which one depends on which byte is wrong. All
    mean that the file cannot be read, so any exception raised while parsing
    becomes a :class:`StateDictError` that chains it.
    """
    try:
        archive = zipfile.ZipFile(handle)
    except Exception as err:
        raise _unreadable(
            path,
            f"the file is truncated or corrupted: it starts like an .npz (zip) archive, but "
            f"its zip directory cannot be read ({type(err).__name__})",
        ) from err
    with archive:
        _check_member_count(handle, archive, path)
        try:
            bad_member = archive.testzip()
        except Exception as err:
            raise _unreadable(
                path,
                "the file is truncated or corrupted: its members cannot be read back "
                f"({type(err).__name__})",
            ) from err
        if bad_member is not None:
            raise _unreadable(
                path,
                f"the file is truncated or corrupted: the checksum (CRC-32) of member "
                f"{bad_member!r} does not match its data",
            )
        flat: dict[str, np.ndarray] = {}
        for info in archive.infolist():
            key = info.filename.removesuffix(_NPY_SUFFIX)
            if key == info.filename or key in flat:
                raise _unreadable(
                    path,
                    f"it is not a state file written by save_state: member {info.filename!r} "
                    f"is {'repeated' if key in flat else 'not an .npy array'}",
                )
            try:
                flat[key] = _read_member(archive, info)
            except Exception as err:
                raise _unreadable(
                    path,
                    "the file is corrupted or not a state file written by save_state: member "
                    f"{info.filename!r} is not a numpy array as save_state writes it: {err}",
                ) from err
    return flat


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state written by :func:`save_state`; never unpickles.

    The file is treated as untrusted bytes: it must be a zip archive whose
    members' checksums match, whose members are plain ``.npy`` arrays, and
    whose entries form a tracker state with an integer ``format_version``.
    Whether that version and the rest of the state fit a tracker is checked by
    the tracker's ``load_state_dict``.

    Parameters
    ----------
    path : str or path-like
        File written by :func:`save_state` (or a tracker's ``save_state``).

    Returns
    -------
    dict
        The nested state, ready for a tracker's ``load_state_dict``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (other errors from opening the file, such
        as :class:`PermissionError`, also pass through unchanged).
    StateDictError
        If the file is empty, truncated or corrupted, not a zip/``.npz``
        archive, or an ``.npz`` archive that is not a tracker state. The
        message names the file and what is wrong with it; the library error
        that revealed the problem, if any, is chained as ``__cause__``.

    See Also
    --------
    save_state : Write the file.
    """
    name = os.fspath(path)
    with open(path, "rb") as handle:  # a missing file is not a corrupted one: let it raise
        head = handle.read(len(_ZIP_SIGNATURES[0]))
        if not head:
            raise _unreadable(name, "the file is empty (0 bytes)")
        if not head.startswith(_ZIP_SIGNATURES):
            if len(head) < len(_ZIP_SIGNATURES[0]) and any(
                signature.startswith(head) for signature in _ZIP_SIGNATURES
            ):
                problem = (
                    f"the file is truncated or corrupted: it ends after {len(head)} byte(s) "
                    "of the zip signature an .npz file starts with"
                )
            else:
                problem = (
                    "it is not a state file written by save_state: an .npz file starts with "
                    f"the zip signature b'PK\\x03\\x04', this one starts with {head!r}"
                )
            raise _unreadable(name, problem)
        handle.seek(0)
        flat = _read_archive(handle, name)
    entries = sorted(flat)
    shown = ", ".join(map(repr, entries[:_SHOWN_ENTRIES]))
    if len(entries) > _SHOWN_ENTRIES:
        shown += f", ... ({len(entries)} in all)"
    not_a_state = (
        f"the file is an .npz archive but not a tracker state (its entries: {shown or 'none'})"
    )
    try:
        state = unflatten_state(flat)
    except Exception as err:  # untrusted entries: any failure means "not a state"
        raise _unreadable(name, f"{not_a_state}: {err}") from err
    if not isinstance(state.get("format_version"), int):
        raise _unreadable(name, f"{not_a_state}: it has no integer 'format_version' entry")
    return state
