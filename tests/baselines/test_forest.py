import numpy as np
import pytest

from neural_feature_importance.baselines import infer_task, random_forest_importance


def test_planted_regression_feature_dominates(rng):
    X = rng.normal(size=(300, 4))
    y = np.sin(2 * X[:, 1]) + 0.05 * rng.normal(size=300)
    scores = random_forest_importance(X, y, n_estimators=30, random_state=0)
    assert scores.shape == (4,)
    np.testing.assert_allclose(scores.sum(), 1.0)
    assert scores[1] > 0.8


def test_labels_and_one_hot_targets_classify_on_the_planted_feature(rng):
    X = rng.normal(size=(300, 3))
    labels = (X[:, 2] > 0).astype(int) + (X[:, 2] > 1).astype(int)
    by_label = random_forest_importance(X, labels, n_estimators=30, random_state=0)
    by_one_hot = random_forest_importance(X, np.eye(3)[labels], n_estimators=30, random_state=0)
    assert by_label[2] > 0.8 and by_one_hot[2] > 0.8
    again = random_forest_importance(X, labels, n_estimators=30, random_state=0)
    np.testing.assert_array_equal(by_label, again)


def test_infer_task():
    assert infer_task(np.array([0, 1, 2])) == "classification"
    assert infer_task(np.array(["a", "b"])) == "classification"
    assert infer_task(np.eye(3)) == "classification"
    assert infer_task(np.array([0.5, 1.5])) == "regression"
    assert infer_task(np.array([[0.2, 0.8]])) == "regression"


def test_bad_task(rng):
    with pytest.raises(ValueError, match="'classification'"):
        random_forest_importance(rng.normal(size=(5, 2)), np.arange(5), task="ranking")
