"""Synthetic data sets: shapes, masks, and that the planted features really drive y."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("mlxtend")

from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import cross_val_score

from neural_feature_importance.datasets.synthetic import (
    DEFAULT_N_SAMPLES,
    SYNTHETIC_DATASETS,
    make_synthetic,
)

SHAPES = {
    "classification": (40, 6),
    "friedman1": (20, 5),
    "xor": (20, 3),
    "correlated_decoys": (20, 4),
    "multiplexer": (20, 6),
    "high_dim": (500, 10),
    "effect_shapes": (30, 9),
    "redundant_clusters": (300, 15),
    "redundant_regression": (300, 12),
}


def test_names_match_the_documented_tuple():
    assert SYNTHETIC_DATASETS == (
        "classification",
        "friedman1",
        "xor",
        "correlated_decoys",
        "multiplexer",
        "high_dim",
        "effect_shapes",
        "redundant_clusters",
        "redundant_regression",
    )
    assert set(DEFAULT_N_SAMPLES) == set(SYNTHETIC_DATASETS)


@pytest.mark.parametrize("name", SYNTHETIC_DATASETS)
def test_shapes_masks_and_standardisation(name):
    data = make_synthetic(name, n_samples=300, random_state=3)
    n_features, n_informative = SHAPES[name]
    assert data.X.shape == (300, n_features)
    assert data.X.dtype == np.float64
    assert data.y.shape == (300,)
    assert data.informative.dtype == bool and data.informative.shape == (n_features,)
    assert data.n_informative == n_informative == int(data.informative.sum())
    assert not (data.decoys & data.informative).any()
    assert data.name == name
    assert data.feature_names == [f"x{i}" for i in range(n_features)]
    np.testing.assert_allclose(data.X.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(data.X.std(axis=0), 1.0, atol=1e-10)
    if data.task == "classification":
        assert data.y.dtype == np.int64
        assert set(np.unique(data.y)) == {0, 1}
    else:
        assert data.task == "regression"
        assert abs(data.y.mean()) < 1e-10 and abs(data.y.std() - 1) < 1e-10


@pytest.mark.parametrize("name", SYNTHETIC_DATASETS)
def test_default_size_seeded_and_informative_columns_shuffled(name):
    a = make_synthetic(name, random_state=0)
    b = make_synthetic(name, random_state=0)
    c = make_synthetic(name, random_state=1)
    assert len(a.X) == DEFAULT_N_SAMPLES[name]
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.informative, b.informative)
    assert not np.array_equal(a.X, c.X)
    # The planted columns are not simply the first ones.
    assert not a.informative[: a.n_informative].all()


# Cross-validated random-forest score on the informative columns must reach
# these (accuracy or R^2); on the noise columns it must stay near chance.
MIN_SCORE = {
    "classification": 0.75,
    "friedman1": 0.75,
    "correlated_decoys": 0.8,
    "multiplexer": 0.95,
    "effect_shapes": 0.4,
    "redundant_clusters": 0.75,
    "redundant_regression": 0.3,
}


@pytest.mark.parametrize("name", sorted(MIN_SCORE))
def test_informative_features_drive_y_and_the_rest_do_not(name):
    data = make_synthetic(name, n_samples=800, random_state=0)
    if data.task == "classification":
        forest = RandomForestClassifier(n_estimators=40, random_state=0, n_jobs=1)
        chance = 0.5
    else:
        forest = RandomForestRegressor(n_estimators=40, random_state=0, n_jobs=1)
        chance = 0.0
    others = ~data.informative & ~data.decoys
    on_informative = cross_val_score(forest, data.X[:, data.informative], data.y, cv=3).mean()
    on_noise = cross_val_score(forest, data.X[:, others], data.y, cv=3).mean()
    assert on_informative > MIN_SCORE[name]
    assert on_noise < chance + 0.08


def test_xor_pair_has_no_marginal_effect_but_its_product_has():
    data = make_synthetic("xor", n_samples=4000, random_state=0)
    idx = np.flatnonzero(data.informative)
    corr = np.array([abs(np.corrcoef(data.X[:, i], data.y)[0, 1]) for i in idx])
    pair = idx[np.argsort(corr)[:2]]
    linear = idx[np.argmax(corr)]
    assert np.sort(corr)[:2].max() < 0.05  # interaction partners: no marginal trace
    assert 0.08 < corr.max() < 0.3  # the weak linear feature
    product = data.X[:, pair[0]] * data.X[:, pair[1]]
    assert abs(np.corrcoef(product, data.y)[0, 1]) > 0.5
    assert linear not in pair


def test_correlated_decoys_correlate_but_do_not_enter_the_target():
    data = make_synthetic("correlated_decoys", n_samples=5000, random_state=0)
    assert int(data.decoys.sum()) == 8
    corr = np.corrcoef(data.X, rowvar=False)
    informative, decoys = np.flatnonzero(data.informative), np.flatnonzero(data.decoys)
    best = np.abs(corr[np.ix_(decoys, informative)]).max(axis=1)
    np.testing.assert_allclose(best, 0.8, atol=0.03)
    fit = LinearRegression().fit(data.X, data.y)
    assert np.abs(fit.coef_[data.decoys]).max() < 0.03
    assert np.abs(fit.coef_[data.informative]).min() > 0.15
    assert fit.score(data.X, data.y) > 0.9


def test_multiplexer_label_is_a_function_of_the_informative_bits():
    data = make_synthetic("multiplexer", n_samples=1000, random_state=0)
    assert np.unique(data.X, axis=0).shape[0] > 64  # noise bits vary too
    for column in data.X.T:
        assert len(np.unique(column)) == 2
    keys = [tuple(row) for row in np.round(data.X[:, data.informative], 6)]
    labels: dict[tuple, set] = {}
    for key, label in zip(keys, data.y, strict=True):
        labels.setdefault(key, set()).add(int(label))
    assert all(len(v) == 1 for v in labels.values())
    assert len(labels) == 64  # 6 bits, every pattern seen


def test_high_dim_has_low_signal_to_noise_and_many_decoys():
    data = make_synthetic("high_dim", random_state=0)
    assert int(data.decoys.sum()) == 50
    Xi = data.X[:, data.informative]
    i, j = np.triu_indices(10, k=1)
    design = np.hstack([Xi, Xi**2, Xi[:, i] * Xi[:, j]])
    r2 = LinearRegression().fit(design, data.y).score(design, data.y)
    assert 0.42 < r2 < 0.6  # SNR 1: half the variance is noise
    linear_only = LinearRegression().fit(Xi, data.y).score(Xi, data.y)
    assert linear_only < r2 - 0.1  # the non-linear terms matter


def test_effect_shapes_each_feature_has_its_own_dependence():
    from sklearn.feature_selection import mutual_info_regression

    data = make_synthetic("effect_shapes", n_samples=4000, random_state=0)
    informative = np.flatnonzero(data.informative)
    info = mutual_info_regression(data.X, data.y, random_state=0)
    corr = np.abs([np.corrcoef(column, data.y)[0, 1] for column in data.X.T])
    noise = ~data.informative
    # Seven single-feature effects stand out of the noise one by one; the
    # multiplicative pair has no marginal effect (like xor's).
    singles = informative[np.argsort(info[informative])[2:]]
    assert info[singles].min() > 2 * info[noise].max()
    assert np.sort(info[informative])[:2].max() < 0.03
    # Even effects (|x|, the bump) leave no linear trace: some informative
    # features are invisible to a correlation screen.
    assert (corr[informative] < 0.05).sum() >= 3


def test_redundant_clusters_follow_madelon_exact_linear_combinations():
    data = make_synthetic("redundant_clusters", n_samples=1000, random_state=0)
    relevant = data.X[:, data.informative]
    assert np.linalg.matrix_rank(relevant, tol=1e-6) == 5  # 15 columns, 5 directions
    noise = data.X[:, ~data.informative]
    assert np.linalg.matrix_rank(np.hstack([relevant[:, :1], noise]), tol=1e-6) == 286
    # The rows are shuffled (make_classification without shuffle sorts them by class).
    assert 0.4 < data.y[:100].mean() < 0.6


def test_redundant_regression_combines_the_sources_with_noise_of_its_own():
    data = make_synthetic("redundant_regression", n_samples=4000, random_state=0)
    relevant = data.X[:, data.informative]
    # Six sources and six noisy linear combinations of them: 12 directions, of
    # which 6 carry nearly all the variance.
    values = np.linalg.svd(relevant - relevant.mean(0), compute_uv=False) ** 2
    assert values[6:].sum() / values.sum() < 0.1
    assert np.linalg.matrix_rank(relevant, tol=1e-6) == 12
    forest = RandomForestRegressor(n_estimators=40, random_state=0, n_jobs=1)
    r2 = cross_val_score(forest, relevant, data.y, cv=3).mean()
    assert 0.35 < r2 < 0.67  # SNR 2: a third of the variance is noise


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="unknown synthetic data set 'nope'; use one of"):
        make_synthetic("nope")
    with pytest.raises(ValueError, match="at least 20"):
        make_synthetic("xor", n_samples=5)
    with pytest.raises(ValueError, match="at least 20"):
        make_synthetic("xor", n_samples=True)
