"""``importance_getter``: where it finds the tracker, the column order, and its errors.

No framework: the trackers are core trackers fed by hand (input j's weights move
with scale ``scales[j]``, so the ranking is known), held by stand-ins that keep
their callbacks where a fitted skorch net (``callbacks_``) or a fitted scikeras
estimator (``_fit_callbacks``) keeps them.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.decomposition import PCA
from sklearn.feature_selection import RFE, SelectFromModel
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from neural_feature_importance import NotFittedError, VarianceImportanceBase, importance_getter
from neural_feature_importance.core.surface import HeldCore


class Held(HeldCore):
    """An adapter holding a core tracker (as the Keras and skorch callbacks do)."""

    def __init__(self, core):
        self.core = core


def tracker(scales, feature_names=None, snapshots=4):
    """Input j's weights grow linearly with slope `scales[j]`: its score grows with it."""
    core = VarianceImportanceBase(scoring="viann", feature_names=feature_names)
    for step in range(1, snapshots + 1):
        core.update(step * np.outer(scales, [1.0, 2.0, 3.0]))
    return Held(core)


class FittedNet:
    """What importance_getter reads of a fitted skorch net."""

    def __init__(self, callbacks, n_features_in_=None, feature_names_in_=None):
        self.callbacks_ = [(type(cb).__name__, cb) for cb in callbacks]
        if n_features_in_ is not None:
            self.n_features_in_ = n_features_in_
        if feature_names_in_ is not None:
            self.feature_names_in_ = np.asarray(feature_names_in_, dtype=object)


class FittedKerasClassifier:
    """What importance_getter reads of a fitted scikeras estimator."""

    def __init__(self, fit_callbacks, n_features_in_):
        self.callbacks = None
        self._fit_callbacks = fit_callbacks
        self.n_features_in_ = n_features_in_


class UnfittedKerasClassifier:
    def __init__(self, callbacks):
        self.callbacks = callbacks


class PlantedNet(BaseEstimator):
    """A fittable stand-in: the first `informative` columns' weights move, the rest barely."""

    def __init__(self, informative=2):
        self.informative = informative

    def fit(self, X, y=None):
        n_columns = np.shape(X)[1]
        scales = [1.0] * self.informative + [0.01] * (n_columns - self.informative)
        self.callbacks_ = [("tracker", tracker(scales))]
        self.n_features_in_ = n_columns
        return self

    def score(self, X, y=None):
        return float(self.informative)


SCALES = [0.01, 1.0, 0.3, 0.02]


def test_reads_the_tracker_of_a_skorch_net_a_scikeras_estimator_or_itself():
    held = tracker(SCALES)
    expected = held.feature_importances_
    assert np.argsort(expected).tolist() == [0, 3, 2, 1]  # as the slopes

    for estimator in (
        FittedNet([object(), held], n_features_in_=4),
        FittedKerasClassifier([object(), [held]], n_features_in_=4),  # scikeras nests lists
        FittedKerasClassifier({"early": object(), "viann": held}, n_features_in_=4),
        held,
    ):
        np.testing.assert_array_equal(importance_getter(estimator), expected)


def test_puts_named_columns_in_the_estimators_order():
    held = tracker(SCALES, feature_names=["b", "d", "a", "c"])
    by_name = dict(zip(held.feature_names_in_, held.feature_importances_, strict=True))
    net = FittedNet([held], n_features_in_=4, feature_names_in_=["a", "b", "c", "d"])
    np.testing.assert_array_equal(
        importance_getter(net), [by_name["a"], by_name["b"], by_name["c"], by_name["d"]]
    )
    # Names that are not the estimator's: the tracker's inputs are its columns, in order.
    other = FittedNet([held], n_features_in_=4, feature_names_in_=["p", "q", "r", "s"])
    np.testing.assert_array_equal(importance_getter(other), held.feature_importances_)


def test_a_tracker_with_other_columns_than_the_estimator_raises():
    net = FittedNet([tracker(SCALES)], n_features_in_=5)
    with pytest.raises(ValueError, match="fitted on 5 columns") as error:
        importance_getter(net)
    assert "FittedNet" in str(error.value) and "without groups=" in str(error.value)


def test_no_tracker_names_the_estimator_and_what_to_add():
    with pytest.raises(ValueError, match="FittedNet has no neural_feature_importance tracker") as e:
        importance_getter(FittedNet([object()]))
    assert "callbacks=[VarianceImportanceSkorch()]" in str(e.value)
    assert "callbacks=[VarianceImportanceKeras()]" in str(e.value)
    with pytest.raises(ValueError, match="PCA has no neural_feature_importance tracker"):
        importance_getter(PCA())


def test_an_unfitted_estimator_or_tracker_raises_not_fitted():
    with pytest.raises(NotFittedError, match="UnfittedKerasClassifier is not fitted"):
        importance_getter(UnfittedKerasClassifier([tracker(SCALES)]))
    one_snapshot = FittedNet([tracker(SCALES, snapshots=1)], n_features_in_=4)
    with pytest.raises(NotFittedError, match="of FittedNet has no importances: VIANN has 1"):
        importance_getter(one_snapshot)


def test_several_trackers_raise():
    net = FittedNet([tracker(SCALES), tracker(SCALES)], n_features_in_=4)
    with pytest.raises(ValueError, match="2 trackers"):
        importance_getter(net)


def planted_table(n=60, n_columns=6):
    rng = np.random.default_rng(1)
    columns = [f"col{i}" for i in range(n_columns)]
    return pd.DataFrame(rng.normal(size=(n, n_columns)), columns=columns), rng.integers(0, 2, n)


def test_selectors_read_a_pipeline_ending_in_the_net_and_a_search():
    X, y = planted_table()
    pipeline = Pipeline([("scale", StandardScaler()), ("net", PlantedNet())])
    selector = SelectFromModel(pipeline, importance_getter=importance_getter).fit(X, y)
    assert selector.get_feature_names_out().tolist() == ["col0", "col1"]

    search = GridSearchCV(PlantedNet(), {"informative": [2, 3]}, cv=2)
    rfe = RFE(search, n_features_to_select=3, importance_getter=importance_getter).fit(X, y)
    assert rfe.get_feature_names_out().tolist() == ["col0", "col1", "col2"]


def test_a_pipeline_whose_steps_change_the_columns_raises():
    X, y = planted_table()
    reduced = Pipeline([("pca", PCA(n_components=6)), ("net", PlantedNet())]).fit(X, y)
    with pytest.raises(ValueError, match="change the columns") as error:
        importance_getter(reduced)
    assert "Put the selector inside the Pipeline" in str(error.value)

    opaque = Pipeline([("tanh", FunctionTransformer(np.tanh)), ("net", PlantedNet())]).fit(X, y)
    with pytest.raises(ValueError, match="cannot say which columns"):
        importance_getter(opaque)
