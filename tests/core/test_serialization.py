import io
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from legacy_states import legacy_npz
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save, save_file

from neural_feature_importance.core.errors import StateDictError
from neural_feature_importance.core.modes import SCORING_MODES
from neural_feature_importance.core.serialization import (
    flatten_state,
    load_state,
    save_state,
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
        for _ in range(3):  # optimizer steps: read by the gradient modes, ignored by the others
            gradient = rng.normal(size=weights.shape)
            weights = weights - 0.05 * gradient
            tracker.update_gradients(gradient, weights)
        tracker.update(weights)
    return tracker


@pytest.fixture(scope="module", params=sorted(SCORING_MODES))
def saved(request, tmp_path_factory) -> SavedState:
    """A trained tracker and the bytes of its saved state, written once per module."""
    tracker = _trained_tracker(request.param)
    path = tmp_path_factory.mktemp(f"saved_{request.param}") / "state.safetensors"
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


def _read(data: bytes, folder: Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """The metadata and tensors of a safetensors file's bytes, as safetensors reads them."""
    path = _write(folder / "original.safetensors", data)
    with safe_open(path, framework="numpy") as file:
        return file.metadata(), {key: file.get_tensor(key) for key in file.keys()}


# --- valid files ----------------------------------------------------------------------


def test_round_trip_restores_raw_importances_exactly(saved, tmp_path):
    path = _write(tmp_path / "state.safetensors", saved.data)
    restored = _restored(path, saved.scoring)
    np.testing.assert_array_equal(restored.raw_importances_, saved.tracker.raw_importances_)
    np.testing.assert_array_equal(restored.feature_importances_, saved.tracker.feature_importances_)
    assert restored.n_updates_ == saved.tracker.n_updates_


def test_round_trip_restores_the_state_dict_bit_for_bit(saved, tmp_path):
    path = _write(tmp_path / "state.safetensors", saved.data)
    original = flatten_state(saved.tracker.state_dict())
    restored = flatten_state(_restored(path, saved.scoring).state_dict())
    assert list(restored) == list(original)  # the same entries, in the same order
    for key, value in original.items():
        again = restored[key]
        if isinstance(value, np.ndarray):
            assert again.dtype == value.dtype and again.tobytes() == value.tobytes(), key
        else:
            assert again == value and type(again) is type(value), key


def test_growth_state_keeps_its_nested_mode_dict(tmp_path):
    tracker = _trained_tracker("growth")
    path = tmp_path / "growth.npz"
    tracker.save_state(path)
    state = load_state(path)
    assert isinstance(state["mode"], dict)
    assert state["mode"].keys() == tracker.state_dict()["mode"].keys()
    assert state["format_version"] == tracker.state_dict()["format_version"]


def test_state_of_several_layers_with_a_trainer_entry_round_trips(tmp_path):
    rng = np.random.default_rng(2)
    tracker = VarianceImportanceBase(scoring="viann")
    tracker.start_layers(
        {"a": ("dense", rng.normal(size=(4, 3))), "b": ("dense", rng.normal(size=(2, 3)))}
    )
    for _ in range(3):
        for layer in tracker.layers_.values():
            layer.update(rng.normal(size=layer.view.weight_shape))
    state = {**tracker.state_dict(), "trainer": {"global_step": 7}}
    path = tmp_path / "checkpoint-7" / "tracker_state.safetensors"
    path.parent.mkdir()
    save_state(state, path)
    loaded = load_state(path)
    assert list(loaded) == list(state)
    assert loaded["trainer"] == {"global_step": 7}
    assert list(loaded["layers"]) == ["a", "b"]
    restored = VarianceImportanceBase(scoring="viann")
    restored.load_state_dict(loaded)
    np.testing.assert_array_equal(restored.raw_importances_, tracker.raw_importances_)


def test_arrays_and_plain_values_round_trip_exactly(tmp_path):
    arrays = {
        "transposed": np.arange(6.0).reshape(2, 3).T,  # not C-contiguous
        "big_endian": np.arange(3, dtype=">f4"),
        "scalar": np.array(np.pi),
        "empty": np.zeros((0, 4)),
        "mask": np.array([True, False]),
        "counts": np.arange(4, dtype=np.int32),
        "nan": np.array([np.nan, -np.inf, -0.0]),
    }
    plain = {"format_version": 1, "x": 0.1, "inf": float("inf"), "name": "dénse\n2", "none": None}
    path = tmp_path / "state"  # no suffix: the file keeps the name it was given
    save_state({**plain, "shape": (5, 3), "empty_list": [], "group": arrays, "nothing": {}}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["state"]
    state = load_state(path)
    assert {key: state[key] for key in plain} == plain
    assert state["shape"] == [5, 3] and state["empty_list"] == [] and state["nothing"] == {}
    for key, array in arrays.items():
        again = state["group"][key]
        assert again.dtype == array.dtype.newbyteorder("<") and again.shape == array.shape, key
        assert again.tobytes() == array.astype(again.dtype).tobytes(), key


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


def test_flatten_state_rejects_a_key_with_the_separator():
    with pytest.raises(ValueError, match="'a/b' may not contain '/'"):
        flatten_state({"a/b": 1})


# --- unreadable files -----------------------------------------------------------------


def test_missing_file_still_raises_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_state(tmp_path / "does_not_exist.npz")


def test_empty_file_is_reported_as_empty(tmp_path):
    _assert_unreadable(_write(tmp_path / "state.safetensors", b""), match="empty")


@pytest.mark.parametrize("cut", [1, 7, 8, 9, 64, 500, -100, -1])
def test_truncated_file_is_reported_as_truncated(saved, tmp_path, cut):
    length = cut if cut > 0 else len(saved.data) + cut
    assert 0 < length < len(saved.data)
    path = _write(tmp_path / "state.safetensors", saved.data[:length])
    error = _assert_unreadable(path, match="truncated or corrupted")
    assert isinstance(error.__cause__, SafetensorError)  # safetensors itself found the damage


def test_tracker_load_state_reports_truncated_file_as_state_dict_error(saved, tmp_path):
    path = _write(tmp_path / "state.safetensors", saved.data[: len(saved.data) // 2])
    with pytest.raises(StateDictError, match="truncated or corrupted"):
        VarianceImportanceBase(scoring=saved.scoring).load_state(path)


def test_random_bytes_are_not_a_state_file_and_get_no_pickle_hint(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, size=512, dtype=np.uint8).tobytes()
    assert data[8:9] != b"{"  # not even the start of a safetensors header
    path = _write(tmp_path / "state.safetensors", data)
    error = _assert_unreadable(path, match="not a state file written by save_state")
    assert "pickle" not in str(error)


def test_text_file_is_not_a_state_file(tmp_path):
    path = tmp_path / "state.safetensors"
    path.write_text("format_version = 1\nkind = dense\n")
    _assert_unreadable(path, match="not a state file written by save_state")


@pytest.mark.parametrize("scoring", ["viann", "steady_taylor"])
def test_npz_state_of_version_1_0_still_loads(tmp_path, scoring):
    tracker = _trained_tracker(scoring)
    buffer = io.BytesIO()
    np.savez(buffer, **legacy_npz(tracker.state_dict()))
    path = _write(tmp_path / "state.npz", buffer.getvalue())
    restored = VarianceImportanceBase(scoring=scoring)
    restored.load_state(path)
    np.testing.assert_array_equal(restored.raw_importances_, tracker.raw_importances_)
    assert restored.n_updates_ == tracker.n_updates_


def test_npz_archive_that_is_not_a_state_is_unreadable(tmp_path):
    buffer = io.BytesIO()
    np.savez(buffer, **{"format_version::int": np.arange(3), "last": np.zeros((5, 3))})
    path = _write(tmp_path / "state.npz", buffer.getvalue())
    _assert_unreadable(path, match="not a readable .npz state of version 1.0")
    data = bytearray(_write(tmp_path / "ok.npz", buffer.getvalue()).read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte in a member: its CRC-32 no longer matches
    _assert_unreadable(_write(tmp_path / "flipped.npz", bytes(data)), match="version 1.0")


def test_pickle_is_not_a_state_file_and_is_never_unpickled(tmp_path):
    class Trap:
        def __reduce__(self):
            return pytest.fail, ("load_state unpickled the file",)

    data = pickle.dumps({"format_version": 1, "last": Trap()})
    path = _write(tmp_path / "state.pt", data)
    _assert_unreadable(path, match="not a state file written by save_state")


def test_foreign_safetensors_file_is_not_a_tracker_state(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"a": np.arange(3)}, path, metadata={"format": "pt"})
    error = _assert_unreadable(path, match="safetensors file but not a tracker state")
    assert "'a'" in str(error)


def test_safetensors_file_without_tensors_or_metadata_is_not_a_tracker_state(tmp_path):
    path = _write(tmp_path / "state.safetensors", save({}))
    _assert_unreadable(path, match="safetensors file but not a tracker state")


def test_checksummed_file_without_integer_format_version_is_not_a_tracker_state(tmp_path):
    path = tmp_path / "state.safetensors"
    save_state({"format_version": "1", "last": np.zeros(2)}, path)
    error = _assert_unreadable(path, match=r"not a tracker state.*integer 'format_version'")
    assert isinstance(error.__cause__, StateDictError)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"shape":[5,3]', b'"shape":[3,5]'),
        (b'"dtype":"F64"', b'"dtype":"I64"'),
        (b'"moments/mean"', b'"moments/maen"'),
    ],
    ids=["shape", "dtype", "name"],
)
def test_header_edit_that_safetensors_accepts_fails_the_checksum(tmp_path, old, new):
    path = tmp_path / "state.safetensors"
    _trained_tracker("viann").save_state(path)
    data = path.read_bytes().replace(old, new, 1)
    assert data != path.read_bytes()
    _read(data, tmp_path)  # still a valid safetensors file
    _write(path, data)
    _assert_unreadable(path, match="truncated or corrupted: its checksum does not match")


def test_changed_byte_of_tensor_data_fails_the_checksum(saved, tmp_path):
    data = bytearray(saved.data)
    data[-1] ^= 0x01  # the last byte of the data region: safetensors reads any bytes there
    path = _write(tmp_path / "state.safetensors", bytes(data))
    _assert_unreadable(path, match="truncated or corrupted: its checksum does not match")


def _edit_entry(metadata, tensors):
    edited = {key: value.replace('"dense"', '"embedding"') for key, value in metadata.items()}
    assert edited != metadata
    return edited, tensors


def _change_tensor(metadata, tensors):
    name = sorted(tensors)[0]
    return metadata, {**tensors, name: tensors[name] + 1}


def _drop_tensor(metadata, tensors):
    return metadata, {key: value for key, value in tensors.items() if key != sorted(tensors)[0]}


def _add_tensor(metadata, tensors):
    return metadata, {**tensors, "extra": np.zeros(2)}


def _drop_checksum(metadata, tensors):
    return {key: value for key, value in metadata.items() if "sha256" not in key}, tensors


@pytest.mark.parametrize(
    "edit", [_edit_entry, _change_tensor, _drop_tensor, _add_tensor, _drop_checksum]
)
def test_valid_safetensors_file_with_edited_contents_fails_the_checksum(saved, tmp_path, edit):
    metadata, tensors = edit(*_read(saved.data, tmp_path))
    path = tmp_path / "edited.safetensors"
    save_file(tensors, path, metadata=metadata)
    _assert_unreadable(path, match="truncated or corrupted: its checksum does not match")


@pytest.mark.parametrize(
    "flat",
    [
        {"a": np.zeros(2), "a/b": np.zeros(2)},
        {"a/b": 1, "a": 2},
        {"shape": [1.5, 2.0]},
        {"shape": [[1, 2]]},
        {"value": b"bytes"},
        {"group": {"a": 1}},
        {"value": 1j},
    ],
    ids=[
        "nested-under-value",
        "repeated-key",
        "list-float",
        "list-nested",
        "bytes",
        "non-empty-dict",
        "complex",
    ],
)
def test_unflatten_state_rejects_entries_flatten_state_never_writes(flat):
    with pytest.raises(StateDictError, match=re.escape(repr(list(flat)[-1]))):
        unflatten_state(flat)


# --- every truncation and every byte ----------------------------------------------------


def test_every_truncation_is_reported_as_truncated(saved, tmp_path):
    for length in range(1, len(saved.data)):
        _assert_unreadable(_write(tmp_path / "cut.safetensors", saved.data[:length]), "truncated")


def test_every_single_byte_flip_is_rejected_or_loads_the_same_state(saved, tmp_path):
    xors = np.random.default_rng(3).integers(1, 256, size=len(saved.data))
    path = tmp_path / "flip.safetensors"
    for position, xor in enumerate(xors):
        flipped = bytearray(saved.data)
        flipped[position] ^= int(xor)
        _write(path, bytes(flipped))
        try:
            restored = _restored(path, saved.scoring)
        except StateDictError as error:
            assert str(path) in str(error) and "earlier checkpoint" in str(error)
        else:  # header padding turned into other JSON whitespace: nothing was lost
            assert saved.data[position : position + 1] == b" "
            np.testing.assert_array_equal(restored.raw_importances_, saved.tracker.raw_importances_)


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
    else:  # the flip turned header padding into other JSON whitespace (a tab, a newline)
        np.testing.assert_array_equal(restored.raw_importances_, saved.tracker.raw_importances_)


@PROPERTY_SETTINGS
@given(
    data=st.one_of(
        st.binary(),
        st.binary().map(lambda tail: b"PK\x03\x04" + tail),
        st.binary().map(lambda tail: (len(tail) + 1).to_bytes(8, "little") + b"{" + tail),
        st.dictionaries(st.text(), st.text()).map(lambda metadata: save({}, metadata=metadata)),
    )
)
def test_arbitrary_bytes_raise_state_dict_error(tmp_path_factory, data):
    path = _write(tmp_path_factory.getbasetemp() / "arbitrary.npz", data)
    with pytest.raises(StateDictError) as info:
        load_state(path)
    assert "allow_pickle" not in str(info.value)
