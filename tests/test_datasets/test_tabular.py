import numpy as np
import pytest

pytest.importorskip("sklearn")

from neural_feature_importance.datasets.tabular import (
    DATASET_TASKS,
    PAPER_DATASETS,
    canonical_name,
    load_dataset,
    load_paper_datasets,
    one_hot,
    standardize,
)

SHAPES = {
    "breastcancer": (569, 30, 2),
    "digits": (1797, 64, 10),
    "iris": (150, 4, 3),
    "wine": (178, 13, 3),
    "boston": (506, 13, 1),
    "diabetes": (442, 10, 1),
}


@pytest.mark.parametrize("name", PAPER_DATASETS)
def test_raw_shapes_tasks_and_names(name):
    data = load_dataset(name)
    n, p, outputs = SHAPES[name]
    assert (data.n_samples, data.n_features, data.n_outputs) == (n, p, outputs)
    assert data.task == DATASET_TASKS[name] and data.name == name
    assert len(data.feature_names) == p and not data.preprocessed
    np.testing.assert_array_equal(data.y, data.target)
    if data.task == "classification":
        assert data.y.dtype == np.int64
        assert set(np.unique(data.y)) == set(range(outputs))


@pytest.mark.parametrize("name", PAPER_DATASETS)
def test_paper_preprocessing(name):
    data = load_dataset(name, preprocess=True)
    raw = load_dataset(name)
    std = data.X.std(axis=0)
    np.testing.assert_allclose(data.X.mean(axis=0), 0.0, atol=1e-12)
    # Constant columns (digits' blank border pixels) stay 0; every other column has std 1.
    constant = raw.X.std(axis=0) == 0
    np.testing.assert_allclose(std[~constant], 1.0, rtol=1e-10)
    np.testing.assert_array_equal(data.X[:, constant], 0.0)
    np.testing.assert_array_equal(data.target, raw.target)
    if data.task == "classification":
        assert data.y.shape == (data.n_samples, data.n_outputs)
        np.testing.assert_array_equal(data.y.argmax(axis=1), raw.target)
        np.testing.assert_array_equal(data.y.sum(axis=1), 1.0)
    else:
        np.testing.assert_allclose(data.y, (raw.y - raw.y.mean()) / raw.y.std(), rtol=1e-10)


def test_boston_comes_from_mlxtend_with_the_uci_values():
    pytest.importorskip("mlxtend")
    data = load_dataset("boston_housing")
    assert data.source == "mlxtend.data.boston_housing_data"
    assert data.feature_names[5] == "RM" and data.feature_names[-1] == "LSTAT"
    # First row of the UCI file: CRIM 0.00632, RM 6.575, LSTAT 4.98, MEDV 24.0.
    np.testing.assert_allclose(data.X[0, [0, 5, 12]], [0.00632, 6.575, 4.98])
    assert data.y[0] == 24.0
    np.testing.assert_allclose(data.y.mean(), 22.532806, rtol=1e-6)


def test_aliases_and_unknown_names():
    assert canonical_name("Breast_Cancer") == "breastcancer"
    assert canonical_name(" IRIS ") == "iris"
    with pytest.raises(ValueError, match="breastcancer, digits"):
        load_dataset("mnist")
    with pytest.raises(TypeError, match="string"):
        load_dataset(3)


def test_load_paper_datasets_keeps_order_and_preprocesses():
    sets = load_paper_datasets(["wine", "iris"])
    assert list(sets) == ["wine", "iris"]
    assert sets["iris"].preprocessed and sets["iris"].y.shape == (150, 3)


def test_helpers_by_hand():
    np.testing.assert_allclose(
        standardize(np.array([1.0, 2.0, 3.0])), [-1.224745, 0, 1.224745], rtol=1e-6
    )
    np.testing.assert_array_equal(one_hot(np.array([1, 0]), 3), [[0, 1, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="n_classes=2"):
        one_hot(np.array([0, 2]), 2)
    with pytest.raises(ValueError, match="non-negative integers"):
        one_hot(np.array([0.5]))
