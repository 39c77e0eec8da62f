"""scikeras: scikit-learn's selectors read a Keras tracker through ``importance_getter``.

Runs once per Keras backend (scikeras 0.13 builds on Keras 3 and runs on the
TensorFlow, JAX and PyTorch backends). Planted truth: 4 informative columns (the
label is the sign of +x0 - x1 + x2 - x3) and 8 noise columns.
"""

import keras
import numpy as np
import pandas as pd
import pytest

scikeras_wrappers = pytest.importorskip("scikeras.wrappers")

from sklearn.base import clone  # noqa: E402
from sklearn.feature_selection import RFE, SelectFromModel  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from neural_feature_importance import (  # noqa: E402
    NotFittedError,
    VarianceImportanceKeras,
    importance_getter,
)

INFORMATIVE = [0, 1, 2, 3]


def planted(n=400):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 12)).astype("float32")
    y = (X[:, :4] @ np.array([1.0, -1.0, 1.0, -1.0]) > 0).astype(np.int64)
    return X, y


def build(meta):
    """A model for the number of columns it is fitted on (RFE refits with fewer)."""
    return keras.Sequential(
        [
            keras.Input((meta["n_features_in_"],)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


def classifier(callbacks=None, **params):
    options = {
        "loss": "binary_crossentropy",
        "optimizer": "adam",
        "optimizer__learning_rate": 0.01,
        "epochs": 10,
        "batch_size": 32,
        "verbose": 0,
        "callbacks": callbacks if callbacks is not None else [VarianceImportanceKeras()],
    }
    return scikeras_wrappers.KerasClassifier(build, **(options | params))


def test_select_from_model_keeps_the_planted_columns_and_the_user_instance_stays_empty():
    X, y = planted()
    callback = VarianceImportanceKeras()
    selector = SelectFromModel(classifier([callback]), importance_getter=importance_getter)
    selector.fit(X, y)
    assert np.flatnonzero(selector.get_support()).tolist() == INFORMATIVE

    # SelectFromModel fitted a clone, whose callbacks are deep copies: the fitted one is there.
    fitted = selector.estimator_.callbacks[0]
    assert fitted is not callback and fitted.n_updates_ == 10
    np.testing.assert_array_equal(
        importance_getter(selector.estimator_), fitted.feature_importances_
    )
    with pytest.raises(NotFittedError, match=r"scikeras: `estimator\.callbacks`"):
        _ = callback.feature_importances_


def test_rfe_refits_with_fewer_columns():
    X, y = planted()
    rfe = RFE(classifier(), n_features_to_select=4, step=4, importance_getter=importance_getter)
    rfe.fit(X, y)
    assert np.flatnonzero(rfe.support_).tolist() == INFORMATIVE
    assert importance_getter(rfe.estimator_).shape == (4,)


def test_a_clone_of_a_fitted_estimator_and_a_callback_given_as_a_class():
    X, y = planted()
    fitted = classifier().fit(X, y)
    again = clone(fitted).fit(X, y)
    assert again.callbacks[0] is not fitted.callbacks[0]
    assert again.callbacks[0].n_updates_ == 10

    # A class in callbacks=: scikeras makes the instance at fit(); the getter reads that one.
    by_class = classifier([VarianceImportanceKeras], callbacks__0__scoring="growth").fit(X, y)
    scores = importance_getter(by_class)
    assert by_class._fit_callbacks[0].scoring == "growth"
    assert sorted(np.argsort(scores)[::-1][:4].tolist()) == INFORMATIVE


def test_grid_search_over_a_pipeline_with_the_selector():
    X, y = planted()
    pipeline = Pipeline(
        [
            ("select", SelectFromModel(classifier(), importance_getter=importance_getter)),
            ("clf", LogisticRegression()),
        ]
    )
    search = GridSearchCV(pipeline, {"select__estimator__epochs": [6, 10]}, cv=2).fit(X, y)
    best = search.best_estimator_["select"]
    assert np.flatnonzero(best.get_support()).tolist() == INFORMATIVE


def test_a_dataframe_keeps_its_column_names():
    X, y = planted()
    columns = ["a", "b", "c", "d"] + [f"noise{i}" for i in range(8)]
    frame = pd.DataFrame(X, columns=columns)
    selector = SelectFromModel(classifier(), importance_getter=importance_getter).fit(frame, y)
    assert selector.get_feature_names_out().tolist() == ["a", "b", "c", "d"]


def test_an_estimator_without_a_tracker_says_what_to_add():
    X, y = planted(n=64)
    fitted = classifier(callbacks=[], epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="KerasClassifier has no neural_feature_importance"):
        importance_getter(fitted)
    with pytest.raises(NotFittedError, match="KerasClassifier is not fitted"):
        importance_getter(classifier())
