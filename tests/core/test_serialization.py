import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neural_feature_importance.core.errors import StateDictError
from neural_feature_importance.core.serialization import (
    flatten_state,
    load_state,
    unflatten_state,
)
from neural_feature_importance.core.tracker import VarianceImportanceBase

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


@dataclass(frozen=True)
class SavedState:
    scoring: str
    tracker: VarianceImportanceBase
    data: bytes


def _trained_tracker(scoring: str) -> VarianceImportanceBase:
    tracker = VarianceImportanceBase(scoring=scoring)
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(5, 3))
    tracker.start(weights)
    for _ in range(4):
        weights = weights + rng.normal(scale=0.1, size=weights.shape)
        tracker.update(weights)
    return tracker


@pytest.fixture(scope="module", params=["viann", "growth"])
def saved(request, tmp_path_factory) -> SavedState:
    """A trained tracker and the bytes of its saved state, written once per module."""
    tracker = _trained_tracker(request.param)
    path = tmp_path_factory.mktemp(f"saved_{request.param}") / "state.npz"
    tracker.save_state(path)
    return SavedState(request.param, tracker, path.read_bytes())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _assert_unreadable(path: Path, match: str) -> StateDictError:
    """``load_state(path)`` fails with a message that names the file and the remedy."""
    with pytest.raises(StateDictError, match=match) as info:
        load_state(path)
    message = str(info.value)
    assert "allow_pickle" not in message
    assert str(path) in message
    assert "tracker.save_state(path)" in message
    assert "earlier checkpoint" in message
    return info.value


def _restored(path: Path, scoring: str) -> VarianceImportanceBase:
    tracker = VarianceImportanceBase(scoring=scoring)
    tracker.load_state(path)
    return tracker


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# --- valid files ----------------------------------------------------------------------


def test_round_trip_restores_raw_importances_exactly(saved, tmp_path):
    path = _write(tmp_path / "state.npz", saved.data)
    restored = _restored(path, saved.scoring)
    np.testing.assert_array_equal(restored.raw_importances_, saved.tracker.raw_importances_)
    np.testing.assert_array_equal(restored.feature_importances_, saved.tracker.feature_importances_)
    assert restored.n_updates_ == saved.tracker.n_updates_


def test_growth_state_keeps_its_nested_mode_dict(tmp_path):
    tracker = _trained_tracker("growth")
    path = tmp_path / "growth.npz"
    tracker.save_state(path)
    state = load_state(path)
    assert isinstance(state["mode"], dict)
    assert state["mode"].keys() == tracker.state_dict()["mode"].keys()
    assert state["format_version"] == tracker.state_dict()["format_version"]


def test_flatten_then_unflatten_restores_every_value_type():
    state = {
        "n": 3,
        "name": "dense_1",
        "shape": [5, 3],
        "empty": [],
        "nothing": None,
        "group": {"inner": np.arange(6.0).reshape(2, 3), "flag": True},
    }
    restored = unflatten_state(flatten_state(state))
    assert restored.keys() == state.keys()
    assert restored["n"] == 3 and type(restored["n"]) is int
    assert restored["name"] == "dense_1"
    assert restored["shape"] == [5, 3]
    assert restored["empty"] == []
    assert restored["nothing"] is None
    assert restored["group"]["flag"] == 1
    np.testing.assert_array_equal(restored["group"]["inner"], state["group"]["inner"])


# --- unreadable files -----------------------------------------------------------------


def test_missing_file_still_raises_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_state(tmp_path / "does_not_exist.npz")


def test_empty_file_is_reported_as_empty(tmp_path):
    _assert_unreadable(_write(tmp_path / "state.npz", b""), match="empty")


@pytest.mark.parametrize("cut", [1, 3, 4, 64, 1000, -22, -1])
def test_truncated_file_is_reported_as_truncated(saved, tmp_path, cut):
    length = cut if cut > 0 else len(saved.data) + cut
    assert 0 < length < len(saved.data)
    path = _write(tmp_path / "state.npz", saved.data[:length])
    error = _assert_unreadable(path, match="truncated or corrupted")
    if length >= 4:  # a whole zip signature: zipfile itself found the damage
        assert isinstance(error.__cause__, zipfile.BadZipFile)


def test_tracker_load_state_reports_truncated_file_as_state_dict_error(saved, tmp_path):
    path = _write(tmp_path / "state.npz", saved.data[: len(saved.data) // 2])
    with pytest.raises(StateDictError, match="truncated or corrupted"):
        VarianceImportanceBase(scoring=saved.scoring).load_state(path)


def test_random_bytes_are_not_a_state_file_and_get_no_pickle_hint(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, size=512, dtype=np.uint8).tobytes()
    assert not data.startswith(b"PK")
    path = _write(tmp_path / "state.npz", data)
    error = _assert_unreadable(path, match="not a state file written by save_state")
    assert "pickle" not in str(error)


def test_text_file_is_not_a_state_file(tmp_path):
    path = tmp_path / "state.npz"
    path.write_text("format_version = 1\nkind = dense\n")
    _assert_unreadable(path, match="not a state file written by save_state")


def test_npz_of_unrelated_arrays_is_not_a_tracker_state(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.arange(3))
    error = _assert_unreadable(path, match=r"\.npz archive but not a tracker state")
    assert "'a'" in str(error)
    assert "format_version" in str(error)


def test_empty_npz_is_not_a_tracker_state(tmp_path):
    path = _write(tmp_path / "state.npz", _npz_bytes())
    assert path.read_bytes().startswith(b"PK\x05\x06")
    _assert_unreadable(path, match=r"\.npz archive but not a tracker state")


def test_format_version_member_that_is_not_a_scalar_is_not_a_tracker_state(tmp_path):
    data = _npz_bytes(**{"format_version::int": np.arange(3)})
    path = _write(tmp_path / "state.npz", data)
    error = _assert_unreadable(
        path, match=r"not a tracker state.*'format_version::int'.*shape \(3,\)"
    )
    assert isinstance(error.__cause__, StateDictError)


def test_object_array_member_is_refused_without_pickle_hint(tmp_path):
    data = _npz_bytes(
        **{"format_version::int": np.array(1), "last": np.array([None, 1], dtype=object)}
    )
    path = _write(tmp_path / "state.npz", data)
    _assert_unreadable(path, match="'last.npy' is not a numpy array.*Python objects")


def test_member_that_is_not_an_npy_array_is_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "not an array")
    path = _write(tmp_path / "state.npz", buffer.getvalue())
    _assert_unreadable(path, match="'notes.txt' is not an .npy array")


def test_npy_header_claiming_more_data_than_stored_is_refused_before_allocating(tmp_path):
    # A valid CRC but a header for 8 TB of float64: numpy would try to allocate it.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("format_version::int.npy", _npy_bytes(np.array(1, dtype=np.int64)))
        archive.writestr("last.npy", header.getvalue() + bytes(8))
    path = _write(tmp_path / "state.npz", buffer.getvalue())
    _assert_unreadable(path, match="'last.npy'.*header describes 8000000000000 bytes")


def test_flipped_byte_in_npy_header_fails_the_checksum(saved, tmp_path):
    shape = b"'shape': (5, 3)"
    position = saved.data.index(shape) + len(b"'shape': (")
    data = bytearray(saved.data)
    data[position : position + 1] = b"9"  # the header would now claim shape (9, 3)
    path = _write(tmp_path / "state.npz", bytes(data))
    _assert_unreadable(path, match=r"truncated or corrupted: the checksum \(CRC-32\)")


def test_central_directory_that_skips_members_is_detected(saved, tmp_path):
    # The high byte of the first central directory entry's comment length: zipfile
    # would read the following entries as that comment and silently drop them.
    comment_length_high_byte = saved.data.index(b"PK\x01\x02") + 33
    data = bytearray(saved.data)
    data[comment_length_high_byte] ^= 0x80
    path = _write(tmp_path / "state.npz", bytes(data))
    _assert_unreadable(path, match="truncated or corrupted: its zip end record counts")


@pytest.mark.parametrize(
    "flat",
    [
        {"format_version::int": np.arange(3)},
        {"format_version::int": np.array(1.5)},
        {"name::str": np.array(["a", "b"])},
        {"name::str": np.array(3)},
        {"last::none": np.zeros(2)},
        {"shape::list": np.array([1.5, 2.0])},
        {"shape::list": np.zeros((2, 2), dtype=np.int64)},
        {"value::float": np.array(1.0)},
        {"a": np.zeros(2), "a/b": np.zeros(2)},
        {"a::int": np.array(1), "a::str": np.array("x")},
    ],
    ids=[
        "int-array",
        "int-float",
        "str-array",
        "str-int",
        "none-array",
        "list-float",
        "list-2d",
        "unknown-tag",
        "nested-under-value",
        "repeated-key",
    ],
)
def test_unflatten_state_rejects_entries_that_do_not_fit_their_tag(flat):
    with pytest.raises(StateDictError, match=re.escape(repr(list(flat)[-1]))):
        unflatten_state(flat)


# --- properties -----------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(data=st.data())
def test_any_truncation_raises_state_dict_error(saved, tmp_path_factory, data):
    length = data.draw(st.integers(0, len(saved.data) - 1), label="length")
    path = _write(tmp_path_factory.getbasetemp() / f"cut_{saved.scoring}.npz", saved.data[:length])
    with pytest.raises(StateDictError) as info:
        load_state(path)
    assert "allow_pickle" not in str(info.value)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_single_byte_flip_raises_state_dict_error_or_loads_the_same_state(
    saved, tmp_path_factory, data
):
    position = data.draw(st.integers(0, len(saved.data) - 1), label="position")
    xor = data.draw(st.integers(1, 255), label="xor")
    flipped = bytearray(saved.data)
    flipped[position] ^= xor
    path = _write(tmp_path_factory.getbasetemp() / f"flip_{saved.scoring}.npz", bytes(flipped))
    try:
        restored = _restored(path, saved.scoring)
    except StateDictError as error:
        assert "allow_pickle" not in str(error)
    else:  # the flip hit zip metadata that reading ignores (a time stamp, a local CRC copy)
        np.testing.assert_array_equal(restored.raw_importances_, saved.tracker.raw_importances_)


@PROPERTY_SETTINGS
@given(
    data=st.one_of(
        st.binary(),
        st.binary().map(lambda tail: b"PK\x03\x04" + tail),
        st.binary().map(lambda tail: b"PK\x05\x06" + tail),
    )
)
def test_arbitrary_bytes_raise_state_dict_error(tmp_path_factory, data):
    path = _write(tmp_path_factory.getbasetemp() / "arbitrary.npz", data)
    with pytest.raises(StateDictError) as info:
        load_state(path)
    assert "allow_pickle" not in str(info.value)
