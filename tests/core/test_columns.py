"""feature_names= and groups=: named columns, summed raw scores, and every bad entry named."""

import numpy as np
import pytest

from neural_feature_importance.core import VarianceImportanceBase
from neural_feature_importance.core.columns import FeatureColumns
from neural_feature_importance.core.result import FeatureImportances

NAMES = ["age", "colour_red", "colour_green", "colour_blue", "income", "emb_0", "emb_1"]
GROUPS = {"colour": ["colour_red", "colour_green", "colour_blue"], "city": [5, 6]}


def _tracker(**options):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(7, 3))  # Keras layout: 7 inputs x 3 units
    tracker = VarianceImportanceBase(scoring="viann", normalize=None, **options)
    tracker.start(w, layer_name="dense")
    for _ in range(5):
        w = w + rng.normal(scale=0.1, size=w.shape) * np.arange(1, 8)[:, None]
        tracker.update(w)
    return tracker


def test_groups_sum_raw_scores_in_the_order_of_their_first_input():
    plain = _tracker()
    grouped = _tracker(feature_names=NAMES, groups=GROUPS)
    raw = plain.raw_importances_
    assert grouped.feature_names_in_.tolist() == ["age", "colour", "income", "city"]
    expected = [raw[0], raw[1:4].sum(), raw[4], raw[5:7].sum()]
    np.testing.assert_allclose(grouped.raw_importances_, expected, rtol=1e-15)
    assert isinstance(grouped.feature_names_in_, np.ndarray)


def test_normalisation_comes_after_summing():
    grouped = _tracker(feature_names=NAMES, groups=GROUPS)
    raw = grouped.raw_importances_
    grouped.normalize = "minmax"
    np.testing.assert_allclose(
        grouped.feature_importances_, (raw - raw.min()) / (raw.max() - raw.min())
    )


def test_default_names_are_x0_x1_and_ungrouped_results_are_unchanged():
    plain = _tracker()
    assert plain.feature_names_in_.tolist() == [f"x{i}" for i in range(7)]
    named = _tracker(feature_names=NAMES)
    np.testing.assert_array_equal(named.raw_importances_, plain.raw_importances_)
    assert named.feature_names_in_.tolist() == NAMES
    by_default_names = _tracker(groups={"pair": ["x1", "x2"]})
    assert by_default_names.feature_names_in_.tolist() == ["x0", "pair", "x3", "x4", "x5", "x6"]


def test_importances_result_holds_names_scores_and_members():
    tracker = _tracker(feature_names=NAMES, groups=GROUPS)
    result = tracker.importances_
    assert isinstance(result, FeatureImportances)
    assert result.feature_names.tolist() == ["age", "colour", "income", "city"]
    np.testing.assert_array_equal(result.raw_importances, tracker.raw_importances_)
    assert result.members == {"age": [0], "colour": [1, 2, 3], "income": [4], "city": [5, 6]}
    assert result["scoring"] == result.scoring == "viann"


def test_to_frame_is_sorted_by_importance():
    pytest.importorskip("pandas")
    tracker = _tracker(feature_names=NAMES, groups=GROUPS)
    tracker.normalize = "minmax"
    frame = tracker.importances_.to_frame()
    assert list(frame.columns) == ["feature", "importance", "raw_importance", "n_inputs"]
    assert frame["importance"].is_monotonic_decreasing
    assert frame["importance"].iloc[0] == 1.0 and frame["importance"].iloc[-1] == 0.0
    assert dict(zip(frame["feature"], frame["n_inputs"], strict=True)) == {
        "age": 1,
        "colour": 3,
        "income": 1,
        "city": 2,
    }


def test_plot_returns_a_figure_with_one_bar_per_column():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    tracker = _tracker(feature_names=NAMES, groups=GROUPS)
    figure = tracker.importances_.plot()
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert sorted(labels) == ["age", "city", "colour", "income"]
    top = tracker.feature_names_in_[np.argmax(tracker.raw_importances_)]
    assert labels[0] == top  # most important on top


@pytest.mark.parametrize(
    ("feature_names", "groups", "message"),
    [
        (NAMES[:3], None, r"feature_names has 3 names, but layer 'dense' has 7 inputs"),
        (NAMES, {"colour": ["colour_red", "purple"]}, r"names the input 'purple'"),
        (None, {"pair": [2, 7]}, r"groups\['pair'\] has the index 7.*indices 0 to 6"),
        (NAMES, {"a": [1, 2], "b": [2, 3]}, r"groups\['b'\] and groups\['a'\] both cover input 2"),
        (NAMES, {"a": [1, 1]}, r"groups\['a'\] lists input 1 \('colour_red'\) twice"),
        (NAMES, {"age": [1, 2]}, r"column 'age', which is also the name of input 0"),
    ],
)
def test_bad_groups_name_the_bad_entry(feature_names, groups, message):
    tracker = VarianceImportanceBase(scoring="viann", feature_names=feature_names, groups=groups)
    with pytest.raises(ValueError, match=message):
        tracker.start(np.zeros((7, 3)), layer_name="dense")


@pytest.mark.parametrize(
    ("feature_names", "groups", "message"),
    [
        ("age", None, "feature_names must be a sequence of str"),
        (["a", 1], None, r"feature_names\[1\] is 1, not a str"),
        (["a", "a"], None, "feature_names has 'a' more than once"),
        (None, [1, 2], "groups must be a mapping"),
        (None, {"a": 3}, r"groups\['a'\] is 3; give a list"),
        (None, {"a": []}, r"groups\['a'\] is empty"),
        (None, {"a": [1.5]}, r"groups\['a'\] contains 1.5"),
    ],
)
def test_malformed_names_and_groups_fail_at_construction(feature_names, groups, message):
    with pytest.raises(ValueError, match=message):
        VarianceImportanceBase(scoring="viann", feature_names=feature_names, groups=groups)
    with pytest.raises(ValueError, match=message):
        FeatureColumns(feature_names, groups)


def test_grouped_state_resumes_with_the_same_columns(tmp_path):
    tracker = _tracker(feature_names=NAMES, groups=GROUPS)
    tracker.save_state(tmp_path / "state.safetensors")
    resumed = VarianceImportanceBase(
        scoring="viann", normalize=None, feature_names=NAMES, groups=GROUPS
    )
    resumed.load_state(tmp_path / "state.safetensors")
    assert resumed.feature_names_in_.tolist() == tracker.feature_names_in_.tolist()
    np.testing.assert_array_equal(resumed.raw_importances_, tracker.raw_importances_)
