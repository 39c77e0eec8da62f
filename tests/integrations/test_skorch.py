"""The skorch callback: importances on the net, for scikit-learn's selectors.

Planted truth: 4 informative columns (the label is the sign of +x0 - x1 + x2 - x3)
and 8 noise columns. ``SelectFromModel(net)`` and ``RFE(net)`` must keep exactly
the 4 informative ones, with no ``importance_getter``, on a stock
``NeuralNetClassifier``, cloned, and inside ``GridSearchCV``.
"""

import copy
import inspect
import logging
import pickle

import numpy as np
import pytest

skorch = pytest.importorskip("skorch")

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.feature_selection import RFE, SelectFromModel  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from skorch import NeuralNetClassifier, NeuralNetRegressor  # noqa: E402
from skorch.dataset import Dataset  # noqa: E402
from skorch.helper import predefined_split  # noqa: E402
from torch import nn  # noqa: E402

from neural_feature_importance import (  # noqa: E402
    NotFittedError,
    VarianceImportanceSkorch,
    VarianceImportanceTorch,
    importance_getter,
)

INFORMATIVE = [0, 1, 2, 3]
N_COLUMNS = 12
CALLBACK = "VarianceImportanceSkorch"


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)


def planted(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_COLUMNS)).astype(np.float32)
    y = (X[:, :4] @ np.array([1.0, -1.0, 1.0, -1.0]) > 0).astype(np.int64)
    return X, y


class MLP(nn.Module):
    """A lazy first layer: the same net fits any number of columns (RFE refits with fewer)."""

    def __init__(self, hidden=16):
        super().__init__()
        self.hidden = nn.LazyLinear(hidden)
        self.out = nn.Linear(hidden, 2)

    def forward(self, X):
        return self.out(torch.relu(self.hidden(X)))


class FixedMLP(nn.Module):
    """12 inputs, made at construction: a deep copy of one instance trains the same way twice."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(N_COLUMNS, 16)
        self.out = nn.Linear(16, 2)

    def forward(self, X):
        return self.out(torch.relu(self.hidden(X)))


def make_net(callback=None, **params):
    options = {
        "module": MLP,
        "max_epochs": 15,
        "lr": 0.01,
        "optimizer": torch.optim.Adam,
        "criterion": nn.CrossEntropyLoss,
        "batch_size": 32,
        "train_split": None,
        "verbose": 0,
        "callbacks": [callback or VarianceImportanceSkorch()],
    }
    return NeuralNetClassifier(**(options | params))


def fitted_callback(net):
    return dict(net.callbacks_)[CALLBACK]


def top(scores, k=4):
    return sorted(np.argsort(scores)[::-1][:k].tolist())


# --------------------------------------------------------------- the net's attributes
def test_fit_puts_the_importances_on_the_net():
    X, y = planted()
    callback = VarianceImportanceSkorch()
    net = make_net(callback).fit(X, y)

    assert fitted_callback(net) is callback  # skorch trains the instance it was given
    assert net.n_features_in_ == N_COLUMNS
    np.testing.assert_array_equal(net.feature_importances_, callback.feature_importances_)
    assert top(net.feature_importances_) == INFORMATIVE
    assert not hasattr(net, "feature_names_in_")  # a numpy X has no column names


def test_select_from_model_and_rfe_keep_the_planted_columns():
    X, y = planted()
    callback = VarianceImportanceSkorch()

    selector = SelectFromModel(make_net(callback)).fit(X, y)
    assert np.flatnonzero(selector.get_support()).tolist() == INFORMATIVE
    assert selector.transform(X).shape == (len(X), 4)

    rfe = RFE(make_net(callback), n_features_to_select=4, step=4).fit(X, y)
    assert np.flatnonzero(rfe.support_).tolist() == INFORMATIVE
    # The last refit, on the 4 kept columns, re-initialised the tracker for them.
    assert rfe.estimator_.feature_importances_.shape == (4,)
    assert fitted_callback(rfe.estimator_).tracker_.core.view.n_features == 4

    # scikit-learn fitted clones: the user's instance never trained, and says where they are.
    with pytest.raises(NotFittedError, match=r"net\.callbacks_.*importance_getter"):
        _ = callback.feature_importances_


class RegressionMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.LazyLinear(16)
        self.out = nn.Linear(16, 1)

    def forward(self, X):
        return self.out(torch.relu(self.hidden(X)))


def test_a_regressor_works_the_same_way():
    X, _ = planted()
    y = (X[:, :4] @ np.array([1.0, -1.0, 1.0, -1.0]))[:, None].astype(np.float32)
    net = NeuralNetRegressor(
        RegressionMLP,
        max_epochs=15,
        lr=0.01,
        optimizer=torch.optim.Adam,
        batch_size=32,
        train_split=None,
        verbose=0,
        callbacks=[VarianceImportanceSkorch(scoring="steady_taylor")],
    )
    rfe = RFE(net, n_features_to_select=4, step=4).fit(X, y)
    assert np.flatnonzero(rfe.support_).tolist() == INFORMATIVE


def test_importance_getter_reads_the_net_too():
    X, y = planted()
    selector = SelectFromModel(make_net(), importance_getter=importance_getter).fit(X, y)
    assert np.flatnonzero(selector.get_support()).tolist() == INFORMATIVE
    np.testing.assert_array_equal(
        importance_getter(selector.estimator_), selector.estimator_.feature_importances_
    )
    with pytest.raises(NotFittedError, match="NeuralNetClassifier is not fitted"):
        importance_getter(make_net())


def test_clone_keeps_the_parameters_and_drops_the_fit():
    X, y = planted()
    callback = VarianceImportanceSkorch(
        scoring="steady_taylor", gradient_every=2, feature_names=[f"c{i}" for i in range(12)]
    )
    net = make_net(callback, max_epochs=5).fit(X, y)

    copied = clone(net)
    copied_callback = copied.callbacks[0]
    assert copied_callback is not callback
    assert copied_callback.get_params() == callback.get_params()
    assert not hasattr(copied, "feature_importances_")
    assert not hasattr(copied_callback, "tracker_")  # set by initialize(), at fit

    copied.fit(X, y)
    assert copied.feature_importances_.shape == (N_COLUMNS,)
    assert fitted_callback(copied).feature_names_in_[0] == "c0"


def test_grid_search_over_a_pipeline_tunes_the_callback_through_skorch():
    X, y = planted()
    pipeline = Pipeline(
        [("select", SelectFromModel(make_net(max_epochs=10))), ("clf", LogisticRegression())]
    )
    grid = {f"select__estimator__callbacks__{CALLBACK}__scoring": ["viann", "steady_taylor"]}
    search = GridSearchCV(pipeline, grid, cv=2).fit(X, y)

    best = search.best_estimator_["select"]
    assert np.flatnonzero(best.get_support()).tolist() == INFORMATIVE
    chosen = search.best_params_[f"select__estimator__callbacks__{CALLBACK}__scoring"]
    assert fitted_callback(best.estimator_).tracker_.scoring == chosen


# ------------------------------------------------------------- when the tracker reads
def test_validation_batches_are_not_read(caplog):
    X, y = planted()
    X_valid, y_valid = planted(n=160, seed=1)
    options = {"scoring": "taylor", "gradient_every": 1}
    template = FixedMLP()

    with caplog.at_level(logging.INFO, logger="neural_feature_importance"):
        validated = make_net(
            VarianceImportanceSkorch(**options),
            module=copy.deepcopy(template),
            max_epochs=4,
            train_split=predefined_split(Dataset(X_valid, y_valid)),
        ).fit(X, y)
    assert "valid_loss" in validated.history[-1]
    # One read per training batch; the tracker logs calls with no update since the last
    # read (what a validation batch would be), and there were none.
    train_batches = sum(epoch["train_batch_count"] for epoch in validated.history)
    assert fitted_callback(validated).n_gradient_steps_ == train_batches == 4 * 13
    assert "were not counted" not in caplog.text

    alone = make_net(
        VarianceImportanceSkorch(**options), module=copy.deepcopy(template), max_epochs=4
    ).fit(X, y)
    np.testing.assert_array_equal(validated.feature_importances_, alone.feature_importances_)


def test_gradients_are_read_after_the_step_as_in_a_plain_loop():
    """``taylor`` reads the gradient and the weight after ``optimizer.step()``: as a loop."""
    X, y = planted(n=128)
    template = FixedMLP()
    epochs, batch = 3, 32

    model = copy.deepcopy(template)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    tracker = VarianceImportanceTorch(model, scoring="taylor", gradient_every=1)
    tracker.on_train_begin()
    for _ in range(epochs):
        for start in range(0, len(X), batch):
            inputs, targets = (
                torch.tensor(X[start : start + batch]),
                torch.tensor(y[start : start + batch]),
            )
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(inputs), targets).backward()
            optimizer.step()
            tracker.on_step_end()
        tracker.on_epoch_end()
    tracker.on_train_end()

    net = make_net(
        VarianceImportanceSkorch(scoring="taylor", gradient_every=1),
        module=copy.deepcopy(template),
        optimizer=torch.optim.SGD,
        lr=0.1,
        max_epochs=epochs,
    ).fit(X, y)
    callback = fitted_callback(net)
    assert callback.n_gradient_steps_ == tracker.n_gradient_steps_ == epochs * 4
    np.testing.assert_allclose(callback.raw_importances_, tracker.raw_importances_, rtol=1e-6)


# ------------------------------------------------------------------ per-fit state
def test_partial_fit_and_warm_start_continue_the_statistics():
    X, y = planted()
    template = FixedMLP()

    def net(**params):
        return make_net(module=copy.deepcopy(template), **({"max_epochs": 3} | params))

    whole = net(max_epochs=6).fit(X, y)

    partial = net().fit(X, y)
    first_tracker = fitted_callback(partial).tracker_
    partial.partial_fit(X, y)
    assert fitted_callback(partial).tracker_ is first_tracker
    assert fitted_callback(partial).n_updates_ == 6
    np.testing.assert_allclose(partial.feature_importances_, whole.feature_importances_)

    warm = net(warm_start=True).fit(X, y).fit(X, y)
    assert fitted_callback(warm).n_updates_ == 6
    np.testing.assert_allclose(warm.feature_importances_, whole.feature_importances_)


def test_fit_again_starts_afresh_with_the_new_columns():
    X, y = planted()
    net = make_net(max_epochs=3).fit(X, y)
    first_tracker = fitted_callback(net).tracker_

    net.fit(X[:, :5], y)  # RFE's refit: a new module of 5 inputs
    callback = fitted_callback(net)
    assert callback.tracker_ is not first_tracker
    assert callback.n_updates_ == 3
    assert net.feature_importances_.shape == (5,)
    assert net.n_features_in_ == 5


def test_state_dict_resumes_after_initialize(tmp_path):
    X, y = planted()
    template = FixedMLP()
    whole = make_net(module=copy.deepcopy(template), max_epochs=6).fit(X, y)

    first = make_net(module=copy.deepcopy(template), max_epochs=3).fit(X, y)
    first.save_params(f_params=tmp_path / "params.pt", f_optimizer=tmp_path / "opt.pt")
    state = fitted_callback(first).state_dict()

    resumed = make_net(module=FixedMLP(), max_epochs=3).initialize()
    resumed.load_params(f_params=tmp_path / "params.pt", f_optimizer=tmp_path / "opt.pt")
    fitted_callback(resumed).load_state_dict(state)
    resumed.partial_fit(X, y)
    assert fitted_callback(resumed).n_updates_ == 6
    np.testing.assert_allclose(resumed.feature_importances_, whole.feature_importances_)


def test_pickled_net_keeps_its_results():
    X, y = planted()
    net = make_net(max_epochs=3).fit(X, y)
    restored = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(restored.feature_importances_, net.feature_importances_)
    np.testing.assert_array_equal(
        fitted_callback(restored).feature_importances_, net.feature_importances_
    )


# ------------------------------------------------------------------- DataFrames
COLUMNS = ["a", "b", "c", "d"] + [f"noise{i}" for i in range(8)]


class ColumnsMLP(nn.Module):
    """skorch hands a DataFrame's columns to forward() as keyword arguments, (batch, 1) each."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(len(COLUMNS), 16)
        self.out = nn.Linear(16, 2)

    def forward(self, **columns):
        inputs = torch.cat([columns[name] for name in COLUMNS], dim=1)
        return self.out(torch.relu(self.hidden(inputs)))


@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable:UserWarning")
def test_a_dataframe_gives_feature_names_in():
    X, y = planted(n=200)
    frame = pd.DataFrame(X, columns=COLUMNS)
    # skorch converts the whole DataFrame for every row it reads: keep it small.
    net = make_net(VarianceImportanceSkorch(layer="hidden"), module=ColumnsMLP, batch_size=20)
    selector = SelectFromModel(net).fit(frame, y)

    assert selector.estimator_.feature_names_in_.tolist() == COLUMNS
    assert selector.estimator_.feature_names_in_.dtype == object
    assert selector.feature_names_in_.tolist() == COLUMNS
    assert selector.get_feature_names_out().tolist() == ["a", "b", "c", "d"]
    kept = selector.set_output(transform="pandas").transform(frame)
    assert kept.columns.tolist() == ["a", "b", "c", "d"]


# ------------------------------------------------------------ no one score per column
def test_grouped_columns_are_not_put_on_the_net(caplog):
    X, y = planted()
    callback = VarianceImportanceSkorch(groups={"first": [0, 1]})
    with caplog.at_level(logging.WARNING, logger="neural_feature_importance"):
        net = make_net(callback, max_epochs=3).fit(X, y)
    assert not hasattr(net, "feature_importances_")
    assert net.n_features_in_ == N_COLUMNS
    assert callback.feature_importances_.shape == (N_COLUMNS - 1,)
    assert "11 columns of importances" in caplog.text and "X has 12 columns" in caplog.text
    with pytest.raises(ValueError, match="fitted on 12 columns"):
        importance_getter(net)


def test_two_trackers_put_nothing_on_the_net(caplog):
    X, y = planted()
    callbacks = [
        ("viann", VarianceImportanceSkorch()),
        ("taylor", VarianceImportanceSkorch(scoring="taylor")),
    ]
    with caplog.at_level(logging.WARNING, logger="neural_feature_importance"):
        net = make_net(max_epochs=3, callbacks=callbacks).fit(X, y)
    assert not hasattr(net, "feature_importances_")
    assert caplog.text.count("2 tracker callbacks (viann, taylor)") == 1
    with pytest.raises(ValueError, match="2 trackers"):
        importance_getter(net)
    assert dict(net.callbacks_)["taylor"].feature_importances_.shape == (N_COLUMNS,)


def test_a_refit_removes_the_last_fits_importances():
    X, y = planted()
    net = make_net(VarianceImportanceSkorch(scoring="viann"), max_epochs=3).fit(X, y)
    assert hasattr(net, "feature_importances_")
    net.set_params(max_epochs=1).fit(X, y)  # VIANN needs 2 snapshots: no importances
    assert not hasattr(net, "feature_importances_")
    with pytest.raises(NotFittedError, match="has no importances"):
        importance_getter(net)


# ------------------------------------------------------------------------ options
def test_options_are_checked_at_construction_and_when_training_begins():
    with pytest.raises(ValueError, match="scoring"):
        VarianceImportanceSkorch(scoring="nope")
    with pytest.raises(ValueError, match="kind='nope'"):
        VarianceImportanceSkorch(kind="nope")
    X, y = planted(n=64)
    net = make_net(max_epochs=1)
    net.set_params(**{f"callbacks__{CALLBACK}__scoring": "nope"})
    with pytest.raises(ValueError, match="scoring"):
        net.fit(X, y)


def test_parameters_are_the_torch_trackers_options():
    own = set(inspect.signature(VarianceImportanceSkorch).parameters)
    tracker = set(inspect.signature(VarianceImportanceTorch).parameters) - {"model"}
    assert own == tracker | {"kind"}
    assert set(VarianceImportanceSkorch().get_params()) == own


def test_logged_importances_are_recorded_in_the_net_history():
    X, y = planted(n=256)  # 8 steps, 2 gradient reads per epoch
    net = make_net(
        VarianceImportanceSkorch(scoring="steady_taylor", log_importances=True), max_epochs=3
    )
    net.fit(X, y)
    callback = dict(net.callbacks_)[CALLBACK]
    n_columns = X.shape[1]
    keys = [f"importance/x{i}" for i in range(n_columns)]
    logged = np.array([[row[key] for key in keys] for row in net.history])
    # Each epoch's row holds the importances at that epoch's end, as the tracker recorded them.
    expected = np.stack([callback.tracker_.importances_at(e).importances for e in range(3)])
    np.testing.assert_allclose(logged, expected)
    np.testing.assert_allclose(logged[-1], callback.feature_importances_)
