"""Gradient modes on models that `fit()` builds only at their first batch.

A subclassed `keras.Model`, or a `keras.Sequential` of layers without
`keras.Input`, has no weights until it sees data. Keras's JAX and PyTorch
`fit()` build it before `on_train_begin`; its TensorFlow `fit()` only while
tracing the first train step, so the callback installs the gradient tap at
that first call, after building the model from the batch's shapes: every
step is read and the train step is compiled once.
"""

import keras
import numpy as np
import pytest

pytest.importorskip("sklearn")
callbacks = pytest.importorskip("neural_feature_importance.keras")

from sklearn.metrics import roc_auc_score  # noqa: E402

from neural_feature_importance.keras import _tap_control  # noqa: E402

N_SAMPLES, BATCH, EPOCHS = 512, 32, 20
UPDATES = EPOCHS * N_SAMPLES // BATCH  # every batch is full: one trace of the train step


def _planted(n_features=8, seed=0):
    """x standard normal; y = 3 x0 - 2 x1 + noise: features 0 and 1 are planted."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_SAMPLES, n_features)).astype("float32")
    y = 3 * x[:, 0] - 2 * x[:, 1] + 0.1 * rng.normal(size=N_SAMPLES)
    informative = np.zeros(n_features, dtype=int)
    informative[:2] = 1
    return x, y[:, None].astype("float32"), informative


class CountingMLP(keras.Model):
    """A subclassed MLP that counts how often its train step is traced (or run)."""

    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(32, activation="tanh", name="hidden")
        self.out = keras.layers.Dense(1, name="out")
        self.train_step_calls = 0

    def call(self, x):
        return self.out(self.hidden(x))

    def train_step(self, *args, **kwargs):
        # Python runs this once per trace (TensorFlow, JAX), or at every step (torch).
        self.train_step_calls += 1
        return super().train_step(*args, **kwargs)


def _model(kind):
    keras.utils.set_random_seed(0)
    if kind == "subclassed":
        model = CountingMLP()
    else:
        model = keras.Sequential(
            [keras.layers.Dense(32, activation="tanh", name="hidden"), keras.layers.Dense(1)]
        )
    model.compile(keras.optimizers.Adam(0.01), "mse")
    assert not model.built
    return model


@pytest.mark.parametrize("kind", ["subclassed", "sequential"])
def test_steady_taylor_finds_the_planted_features_of_a_model_built_at_its_first_batch(kind):
    x, y, informative = _planted()
    model = _model(kind)
    tracker = callbacks.VarianceImportanceKeras(scoring="steady_taylor", gradient_every=1)
    model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0, callbacks=[tracker])
    assert tracker.tracked_layer_name_ == "hidden"
    # Every applied update was read, the first one included.
    assert tracker.state_dict()["gradient_steps"] == UPDATES
    assert tracker.core.statistics.mode.n_steps == UPDATES
    auc = roc_auc_score(informative, tracker.feature_importances_)
    assert auc >= 0.95, (auc, tracker.feature_importances_)
    # The optimizer is the user's again.
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    if kind == "subclassed" and keras.backend.backend() != "torch":
        # The tap was in before the train step was first traced: no second compile.
        assert model.train_step_calls == 1


def test_two_trackers_on_a_model_built_at_its_first_batch_read_every_step():
    x, y, _ = _planted()
    model = _model("subclassed")
    trackers = [
        callbacks.VarianceImportanceKeras(scoring=scoring, gradient_every=1)
        for scoring in ("taylor", "steady_taylor")
    ]
    model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0, callbacks=trackers)
    for tracker in trackers:
        assert tracker.core.statistics.mode.n_steps == 2 * N_SAMPLES // BATCH
        assert np.argmax(tracker.feature_importances_) == 0
    if keras.backend.backend() != "torch":
        assert model.train_step_calls == 1


def _tensorflow_only():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("only TensorFlow's fit() builds the model in its first train step")


def test_a_model_that_cannot_be_built_from_shapes_gets_the_tap_after_its_first_step(
    monkeypatch, caplog
):
    _tensorflow_only()
    monkeypatch.setattr(_tap_control, "_build_from_batch_spec", lambda model, it: "a reason")
    x, y, _ = _planted()
    model = _model("subclassed")
    tracker = callbacks.VarianceImportanceKeras(scoring="steady_taylor", gradient_every=1)
    with caplog.at_level("INFO", logger="neural_feature_importance.keras.callbacks"):
        model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0, callbacks=[tracker])
    assert "could not be built from the first batch's shapes (a reason)" in caplog.text
    # The first step built the model without the tap; every later one was read.
    updates = 2 * N_SAMPLES // BATCH
    assert tracker.core.statistics.mode.n_steps == updates - 1
    assert np.argmax(tracker.feature_importances_) == 0
    # Traced for the first step (twice, as TensorFlow traces a step that creates
    # variables), then again once the tap was in.
    assert model.train_step_calls >= 2


def test_a_fit_that_runs_no_batch_gives_keras_its_train_function_back():
    _tensorflow_only()
    x, y, _ = _planted()
    model = _model("subclassed")
    tracker = callbacks.VarianceImportanceKeras(scoring="taylor")
    model.fit(x, y, epochs=0, verbose=0, callbacks=[tracker])
    assert not getattr(model.train_function, _tap_control._FIRST_BATCH_MARK, False)
    # The next fit builds the model at its first batch as usual.
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0, callbacks=[tracker])
    assert tracker.core.statistics.mode.n_steps > 0
