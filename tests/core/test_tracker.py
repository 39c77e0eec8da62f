import logging

import numpy as np
import pytest
from safetensors import safe_open

from neural_feature_importance.core import (
    ConvVarianceImportanceBase,
    EmbeddingVarianceImportanceBase,
    NonFiniteWeightsError,
    NoSignalError,
    NotFittedError,
    StateDictError,
    VarianceImportanceBase,
)


def _snapshots(shape, n=6, seed=0):
    rng = np.random.default_rng(seed)
    start = rng.normal(size=shape)
    return start, [
        start + np.cumsum(rng.normal(scale=0.1, size=(k + 1, *shape)), axis=0)[-1] for k in range(n)
    ]


def _run(tracker, start, snapshots):
    tracker.start(start, layer_name="dense_1")
    for snapshot in snapshots:
        tracker.update(snapshot)
    return tracker


def test_dense_importances_equal_hand_computation():
    start, snaps = _snapshots((5, 3))
    tracker = _run(VarianceImportanceBase(scoring="viann", normalize=None), start, snaps)
    variance = np.var(np.stack(snaps), axis=0, ddof=1)
    expected = (variance * np.abs(snaps[-1])).sum(axis=1)
    np.testing.assert_allclose(tracker.raw_importances_, expected, rtol=1e-12)
    np.testing.assert_allclose(tracker.feature_importances_, expected, rtol=1e-12)
    minmax = VarianceImportanceBase(scoring="viann")
    _run(minmax, start, snaps)
    np.testing.assert_allclose(
        minmax.var_scores, (expected - expected.min()) / np.ptp(expected), rtol=1e-12
    )
    assert minmax.feature_importances_.shape == (5,)
    assert minmax.n_updates_ == 6


def test_include_initial_counts_the_start_weights():
    start, snaps = _snapshots((4, 2))
    tracker = _run(
        VarianceImportanceBase(scoring="viann", normalize=None, include_initial=True), start, snaps
    )
    stacked = np.stack([start, *snaps])
    expected = (np.var(stacked, axis=0, ddof=1) * np.abs(snaps[-1])).sum(axis=1)
    np.testing.assert_allclose(tracker.raw_importances_, expected, rtol=1e-12)
    assert tracker.n_updates_ == 7


def test_torch_layout_scores_input_features_not_units():
    start, snaps = _snapshots((4, 16))  # Keras (in=4, out=16)
    keras = _run(VarianceImportanceBase(scoring="viann", normalize=None), start, snaps)
    torch_layout = _run(
        VarianceImportanceBase(scoring="viann", normalize=None, layout="torch"),
        start.T,
        [s.T for s in snaps],
    )
    assert torch_layout.raw_importances_.shape == (4,)
    np.testing.assert_allclose(torch_layout.raw_importances_, keras.raw_importances_, rtol=1e-12)


def test_embedding_scores_sum_variance_per_token():
    start, snaps = _snapshots((7, 3))
    tracker = _run(EmbeddingVarianceImportanceBase(scoring="viann", normalize=None), start, snaps)
    np.testing.assert_allclose(
        tracker.raw_importances_, np.var(np.stack(snaps), axis=0, ddof=1).sum(axis=1)
    )


def test_conv_heatmap_and_filter_ranking_by_hand():
    start, snaps = _snapshots((3, 3, 2, 4))  # Keras Conv2D (kh, kw, in, filters)
    tracker = _run(ConvVarianceImportanceBase(scoring="viann", normalize=None), start, snaps)
    weighted = np.var(np.stack(snaps), axis=0, ddof=1) * np.abs(snaps[-1])
    np.testing.assert_allclose(tracker.heatmap_, weighted.sum(axis=-1), rtol=1e-12)
    np.testing.assert_allclose(
        tracker.feature_importances_, weighted.sum(axis=-1).ravel(), rtol=1e-12
    )
    filters = weighted.sum(axis=(0, 1, 2))
    np.testing.assert_allclose(tracker.raw_filter_importances_, filters, rtol=1e-12)
    np.testing.assert_array_equal(tracker.filter_ranking_, np.argsort(filters)[::-1])
    torch_tracker = _run(
        ConvVarianceImportanceBase(scoring="viann", normalize=None, layout="torch"),
        start.transpose(3, 2, 0, 1),
        [s.transpose(3, 2, 0, 1) for s in snaps],
    )
    np.testing.assert_allclose(torch_tracker.heatmap_, tracker.heatmap_, rtol=1e-12)


def test_last_weights_are_a_copy_not_an_alias():
    live = np.zeros((3, 2))
    tracker = VarianceImportanceBase(scoring="viann", normalize=None)
    tracker.start(live)
    live[0] += 1.0
    tracker.update(live)
    live[0] += 1.0
    tracker.update(live)
    live[:] = 1000.0  # keeps training after the last snapshot
    # var of feature 0 = var([1, 2]) = 0.5 per unit; |w_last| = 2 -> 2 units * 0.5 * 2 = 2
    np.testing.assert_allclose(tracker.raw_importances_, [2.0, 0.0, 0.0])


def test_reading_before_two_updates_raises_clear_error():
    tracker = VarianceImportanceBase(scoring="viann")
    with pytest.raises(NotFittedError, match="0 weight snapshot"):
        _ = tracker.feature_importances_
    assert not hasattr(tracker, "feature_importances_")
    tracker.start(np.zeros((2, 2)))
    tracker.update(np.ones((2, 2)))
    with pytest.raises(
        NotFittedError, match=r"1 weight snapshot\(s\); a variance needs at least 2"
    ):
        _ = tracker.var_scores


def test_nan_update_names_layer_and_update_number():
    tracker = VarianceImportanceBase(scoring="viann")
    tracker.start(np.zeros((2, 2)), layer_name="dense_7")
    tracker.update(np.ones((2, 2)))
    bad = np.ones((2, 2))
    bad[1, 0] = np.inf
    with pytest.raises(
        NonFiniteWeightsError, match="layer 'dense_7': weight update 2 contains NaN or Inf"
    ):
        tracker.update(bad)
    assert tracker.n_updates_ == 1  # the bad snapshot never reached the statistics


def test_deferred_check_reports_the_span_of_updates():
    tracker = VarianceImportanceBase(scoring="viann", finite_check="deferred")
    tracker.start(np.zeros(3).reshape(3, 1), layer_name="fc")
    tracker.update(np.zeros((3, 1)))
    tracker.check_finite()
    tracker.update(np.ones((3, 1)))
    tracker.update(np.full((3, 1), np.nan))
    tracker.update(np.ones((3, 1)))
    with pytest.raises(NonFiniteWeightsError, match="layer 'fc': one of updates 2-4 contained NaN"):
        _ = tracker.feature_importances_


def test_constant_weights_are_no_signal_not_equal_scores():
    tracker = VarianceImportanceBase(scoring="viann")
    tracker.start(np.ones((3, 2)), layer_name="fc")
    tracker.update(np.ones((3, 2)))
    tracker.update(np.ones((3, 2)))
    message = r"every raw feature score of layer 'fc' is 0 \(the weights did not change"
    with pytest.raises(NoSignalError, match=message) as info:
        _ = tracker.feature_importances_
    for cause in ("frozen", "not used in the forward pass", "learning rate is 0"):
        assert cause in str(info.value)
    with pytest.raises(NoSignalError):
        _ = tracker.raw_importances_
    with pytest.raises(NoSignalError):
        tracker.finalize()


def test_equal_nonzero_scores_stay_equal(caplog):
    tracker = VarianceImportanceBase(scoring="viann")
    tracker.start(np.ones((3, 2)))
    tracker.update(np.ones((3, 2)))
    tracker.update(np.full((3, 2), 2.0))  # every weight moved by the same amount
    with caplog.at_level(logging.WARNING):
        scores = tracker.feature_importances_
    np.testing.assert_array_equal(scores, np.ones(3))
    np.testing.assert_allclose(tracker.raw_importances_, np.full(3, 2 * 0.5 * 2.0))
    assert "did the tracked weights change" in caplog.text


def test_conv_filters_without_signal_raise():
    tracker = ConvVarianceImportanceBase(scoring="viann")
    tracker.start(np.zeros((3, 3, 2, 4)))
    tracker.update(np.zeros((3, 3, 2, 4)))
    tracker.update(np.zeros((3, 3, 2, 4)))
    with pytest.raises(NoSignalError, match="every raw filter score"):
        _ = tracker.filter_importances_


def test_history_records_scores_after_each_update():
    start, snaps = _snapshots((3, 2))
    tracker = _run(
        VarianceImportanceBase(scoring="viann", normalize=None, record_history=True), start, snaps
    )
    assert tracker.history_.shape == (5, 3)
    np.testing.assert_allclose(tracker.history_[-1], tracker.raw_importances_)
    partial = _run(VarianceImportanceBase(scoring="viann", normalize=None), start, snaps[:3])
    np.testing.assert_allclose(tracker.history_[1], partial.raw_importances_)
    with pytest.raises(NotFittedError, match="record_history=True"):
        _ = VarianceImportanceBase(scoring="viann").history_


def test_npz_state_resume_equals_uninterrupted(tmp_path):
    start, snaps = _snapshots((4, 3), n=8)
    whole = _run(VarianceImportanceBase(scoring="viann", record_history=True), start, snaps)
    first = _run(VarianceImportanceBase(scoring="viann", record_history=True), start, snaps[:5])
    path = tmp_path / "viann_state.safetensors"
    first.save_state(path)
    resumed = VarianceImportanceBase(scoring="viann", record_history=True)
    resumed.load_state(path)
    for snapshot in snaps[5:]:
        resumed.update(snapshot)
    np.testing.assert_array_equal(resumed.feature_importances_, whole.feature_importances_)
    np.testing.assert_array_equal(resumed.history_, whole.history_)
    assert resumed.layer_name == "dense_1"
    with safe_open(path, framework="numpy") as archive:  # tensors and JSON, no pickle
        assert "moments/m2" in archive.keys()


def test_load_state_into_wrong_tracker_is_rejected():
    start, snaps = _snapshots((4, 3))
    state = _run(VarianceImportanceBase(scoring="viann"), start, snaps).state_dict()
    with pytest.raises(StateDictError, match="kind='dense'"):
        EmbeddingVarianceImportanceBase(scoring="viann").load_state_dict(state)
    other = _run(VarianceImportanceBase(scoring="viann"), np.zeros((5, 3)), [np.ones((5, 3))] * 2)
    with pytest.raises(StateDictError, match=r"shape \(4, 3\)"):
        other.load_state_dict(state)
    with pytest.raises(StateDictError, match="format version"):
        VarianceImportanceBase(scoring="viann").load_state_dict({"format_version": 99})


def test_merge_of_two_trackers_equals_one_stream():
    start, snaps = _snapshots((4, 3), n=9)
    whole = _run(VarianceImportanceBase(scoring="viann", normalize=None), start, snaps)
    left = _run(VarianceImportanceBase(scoring="viann", normalize=None), start, snaps[:4])
    right = _run(VarianceImportanceBase(scoring="viann", normalize=None), start, snaps[4:])
    left.merge(right)
    np.testing.assert_allclose(left.raw_importances_, whole.raw_importances_, rtol=1e-12)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"normalize": "max"}, r"normalize='max' is not supported; use 'minmax'"),
        ({"dtype": "float16"}, r"dtype='float16' is not supported; use one of"),
        ({"finite_check": "never"}, r"finite_check='never' is not supported; use 'update'"),
        ({"scoring": "tayler"}, r"scoring='tayler' is not a scoring mode"),
    ],
)
def test_options_are_checked_at_construction(options, message):
    with pytest.raises(ValueError, match=message):
        VarianceImportanceBase(**options)


def test_reset_forgets_statistics_so_another_layer_can_be_tracked():
    start, snaps = _snapshots((4, 3))
    tracker = _run(VarianceImportanceBase(scoring="viann"), start, snaps)
    with pytest.raises(ValueError, match=r"shape \(5, 3\) was passed.*call reset\(\) first"):
        tracker.update(np.ones((5, 3)))
    assert tracker.n_updates_ == len(snaps)  # the rejected snapshot changed nothing
    tracker.reset()
    assert tracker.n_updates_ == 0
    start, snaps = _snapshots((5, 3))
    _run(tracker, start, snaps)
    assert tracker.feature_importances_.shape == (5,)


def test_rejected_state_leaves_the_tracker_as_it_was():
    start, snaps = _snapshots((4, 3))
    tracker = _run(VarianceImportanceBase(scoring="viann"), start, snaps)
    before = tracker.raw_importances_
    other = _run(
        VarianceImportanceBase(scoring="viann"),
        np.zeros((5, 3)),
        [np.ones((5, 3)), np.zeros((5, 3))],
    )
    with pytest.raises(StateDictError, match=r"shape \(5, 3\).*shape \(4, 3\)"):
        tracker.load_state_dict(other.state_dict())
    corrupted = tracker.state_dict()
    corrupted["last"] = np.ones((2, 2))
    with pytest.raises(StateDictError, match="'last' array has shape"):
        VarianceImportanceBase(scoring="viann").load_state_dict(corrupted)
    np.testing.assert_array_equal(tracker.raw_importances_, before)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"a": np.arange(3)}, "no 'format_version'"),
        ({"format_version": 99}, "format version 99 is not supported"),
        ({"format_version": 1, "kind": "dense"}, r"missing \['layout'"),
        ([1, 2], "not list"),
    ],
)
def test_states_that_are_not_tracker_states_are_rejected(state, message):
    with pytest.raises(StateDictError, match=message):
        VarianceImportanceBase(scoring="viann").load_state_dict(state)
