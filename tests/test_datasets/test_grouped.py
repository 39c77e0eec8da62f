"""The grouped-column data set: shapes, groups, and that the planted columns drive y."""

from __future__ import annotations

import numpy as np
import pytest

from neural_feature_importance.datasets import make_grouped_columns
from neural_feature_importance.datasets.grouped import GROUPED_COLUMNS, LEVEL_EFFECTS

SEEDS = [0, 1, 2, 3, 4]
INFORMATIVE = ["store", "price", "city", "temperature"]
NOISE = ["weekday", "colour", "humidity", "distance", "weight"]


def test_shapes_dtypes_and_names():
    data = make_grouped_columns(n_samples=300, random_state=3)
    assert data.X_numeric.shape == (300, 14) and data.X_numeric.dtype == np.float32
    assert data.codes.shape == (300, 2) and data.codes.dtype == np.int64
    assert data.y.shape == (300,) and data.y.dtype == np.float64
    assert data.task == "regression" and data.name == "grouped_columns"
    assert data.columns == [name for name, *_ in GROUPED_COLUMNS]
    assert data.embedded_columns == ["store", "weekday"]
    assert data.informative_columns == INFORMATIVE
    assert data.informative.tolist() == [c in INFORMATIVE for c in data.columns]
    assert data.n_informative == 4
    assert len(data.input_names) == data.X_numeric.shape[1] == len(set(data.input_names))
    # Codes are valid level indices, and every level occurs.
    for j, column in enumerate(data.embedded_columns):
        assert set(np.unique(data.codes[:, j])) == set(range(data.n_levels(column)))
    assert data.n_levels("store") == 8 and data.n_levels("weekday") == 7
    np.testing.assert_allclose(data.y.mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(data.y.std(), 1.0, atol=1e-12)


def test_groups_cover_the_one_hot_inputs_exactly():
    data = make_grouped_columns(n_samples=400, random_state=0)
    assert set(data.groups) == {"colour", "city"}
    assert data.groups["city"] == ["city_a", "city_b", "city_c", "city_d", "city_e"]
    covered = [name for names in data.groups.values() for name in names]
    assert len(covered) == len(set(covered)) == 9  # 4 + 5 levels, no overlap
    ungrouped = [n for n in data.input_names if n not in covered]
    assert ungrouped == ["price", "humidity", "temperature", "distance", "weight"]
    index = {n: i for i, n in enumerate(data.input_names)}
    for names in data.groups.values():
        block = data.X_numeric[:, [index[n] for n in names]]
        assert set(np.unique(block)) == {0.0, 1.0}
        np.testing.assert_array_equal(block.sum(axis=1), 1.0)  # exactly one level per row


def test_first_layer_columns_and_column_inputs():
    data = make_grouped_columns(n_samples=100, random_state=0)
    names, groups = data.first_layer_columns(3)
    assert len(names) == 2 * 3 + 14
    assert names[:6] == [
        "store[0]",
        "store[1]",
        "store[2]",
        "weekday[0]",
        "weekday[1]",
        "weekday[2]",
    ]
    assert groups["store"] == names[:3] and groups["city"] == data.groups["city"]
    assert list(groups) == ["store", "weekday", "colour", "city"]
    where = data.column_inputs()
    assert list(where) == data.columns
    assert where["weekday"] == ("codes", [1])
    assert where["city"] == ("X_numeric", [6, 7, 8, 9, 10])
    assert where["temperature"] == ("X_numeric", [11])
    with pytest.raises(ValueError, match="embedding_dim"):
        data.first_layer_columns(0)


def test_the_tracker_reports_one_score_per_column_in_columns_order():
    torch = pytest.importorskip("torch")
    from neural_feature_importance.torch import VarianceImportanceTorch

    data = make_grouped_columns(n_samples=100, random_state=0)
    names, groups = data.first_layer_columns(4)
    model = torch.nn.Sequential(torch.nn.Linear(len(names), 8), torch.nn.ReLU())
    tracker = VarianceImportanceTorch(model, scoring="viann", feature_names=names, groups=groups)
    tracker.on_train_begin()
    for step in range(3):
        with torch.no_grad():
            model[0].weight[:, names.index("price")] += 0.1 * (step + 1)
        tracker.on_epoch_end()
    assert tracker.feature_names_in_.tolist() == data.columns
    assert tracker.feature_importances_.shape == (9,)
    assert data.columns[int(tracker.feature_importances_.argmax())] == "price"


def test_frame_matches_the_arrays():
    pd = pytest.importorskip("pandas")
    data = make_grouped_columns(n_samples=200, random_state=5)
    frame = data.to_frame(include_target=True)
    assert list(frame.columns) == [*data.columns, "y"]
    np.testing.assert_array_equal(frame["y"], data.y)
    dummies = pd.get_dummies(frame[["colour", "city"]]).astype(np.float32)
    index = {n: i for i, n in enumerate(data.input_names)}
    for name in dummies.columns:
        np.testing.assert_array_equal(dummies[name].to_numpy(), data.X_numeric[:, index[name]])
    for j, column in enumerate(data.embedded_columns):
        np.testing.assert_array_equal(frame[column].cat.codes.to_numpy(), data.codes[:, j])
    np.testing.assert_allclose(frame["price"], data.X_numeric[:, index["price"]], rtol=1e-6)
    assert list(data.to_frame().columns) == data.columns


def test_seed_fixes_rows_not_structure():
    a = make_grouped_columns(n_samples=150, random_state=7)
    b = make_grouped_columns(n_samples=150, random_state=7)
    c = make_grouped_columns(n_samples=150, random_state=8)
    np.testing.assert_array_equal(a.X_numeric, b.X_numeric)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)
    assert a.columns == c.columns and a.input_names == c.input_names
    np.testing.assert_array_equal(a.informative, c.informative)


def _oracle_design(data, columns):
    """Each column as the features that express its planted effect exactly."""
    frame = data.to_frame()
    parts = []
    for column in columns:
        kind = data.kinds[column]
        if kind == "numeric":
            values = frame[column].to_numpy()
            parts.append(np.column_stack([values, values**2]))
        else:
            parts.append(np.eye(data.n_levels(column))[frame[column].cat.codes.to_numpy()])
    return np.hstack(parts)


@pytest.mark.parametrize("seed", SEEDS)
def test_an_oracle_regression_recovers_the_attainable_r2(seed):
    pytest.importorskip("sklearn")
    pytest.importorskip("pandas")
    from sklearn.linear_model import LinearRegression

    data = make_grouped_columns(n_samples=4000, random_state=seed)
    half = 2000
    X = _oracle_design(data, INFORMATIVE)
    fit = LinearRegression().fit(X[:half], data.y[:half])
    r2 = fit.score(X[half:], data.y[half:])
    assert 0.77 < r2 < 0.83  # 1 / (1 + 0.5**2) = 0.8 attainable
    # The noise columns add nothing on held-out rows.
    X_all = _oracle_design(data, data.columns)
    r2_all = LinearRegression().fit(X_all[:half], data.y[:half]).score(X_all[half:], data.y[half:])
    assert abs(r2_all - r2) < 0.01
    # Without one informative column the fit loses about its quarter of the signal.
    for column in INFORMATIVE:
        rest = [c for c in INFORMATIVE if c != column]
        X_rest = _oracle_design(data, rest)
        r2_rest = (
            LinearRegression().fit(X_rest[:half], data.y[:half]).score(X_rest[half:], data.y[half:])
        )
        assert 0.12 < r2 - r2_rest < 0.28, (column, r2, r2_rest)


def test_temperature_has_no_linear_trace_and_levels_are_not_a_trend():
    data = make_grouped_columns(n_samples=20000, random_state=0)
    index = {n: i for i, n in enumerate(data.input_names)}
    temperature = data.X_numeric[:, index["temperature"]]
    assert abs(np.corrcoef(temperature, data.y)[0, 1]) < 0.03
    assert np.corrcoef(temperature**2, data.y)[0, 1] > 0.35
    for column in LEVEL_EFFECTS:
        effects = np.asarray(LEVEL_EFFECTS[column])
        assert not (np.all(np.diff(effects) > 0) or np.all(np.diff(effects) < 0))


@pytest.mark.parametrize("seed", SEEDS)
def test_a_random_forest_ranks_the_informative_columns_first(seed):
    pytest.importorskip("sklearn")
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    data = make_grouped_columns(n_samples=2000, random_state=seed)
    frame = data.to_frame()
    train = np.arange(2000) < 1500
    # One feature per column: numeric values; a categorical's levels replaced by their mean
    # target on the training rows (target encoding, so that the trees can split on them).
    features = []
    for column in data.columns:
        if data.kinds[column] == "numeric":
            features.append(frame[column].to_numpy())
            continue
        codes = frame[column].cat.codes.to_numpy()
        means = np.array([data.y[train & (codes == k)].mean() for k in range(codes.max() + 1)])
        features.append(means[codes])
    X = np.column_stack(features)
    forest = RandomForestRegressor(n_estimators=60, min_samples_leaf=5, random_state=seed, n_jobs=1)
    forest.fit(X[:1500], data.y[:1500])
    result = permutation_importance(
        forest, X[1500:], data.y[1500:], n_repeats=3, random_state=seed, n_jobs=1
    )
    scores = result.importances_mean
    informative = scores[data.informative]
    noise = scores[~data.informative]
    assert informative.min() > 0.15 and noise.max() < 0.03, dict(
        zip(data.columns, scores, strict=True)
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        make_grouped_columns(n_samples=10)
    with pytest.raises(ValueError, match="n_samples"):
        make_grouped_columns(n_samples=100.0)
    with pytest.raises(ValueError, match="noise"):
        make_grouped_columns(n_samples=100, noise=-1.0)
