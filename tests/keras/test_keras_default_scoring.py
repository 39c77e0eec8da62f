"""The Keras callbacks built without ``scoring=`` use the recommended mode, on every backend.

The default is a gradient mode, read by the optimizer tap: it must work wherever
the old default (VIANN, weight snapshots only) worked and the tap can read the
gradient (a model built by ``fit()``, ``jit_compile``, a ``LossScaleOptimizer``, a
custom ``train_step`` that updates through ``self.optimizer``, two callbacks on one
model, scikeras), and where it cannot (a train step or loop that updates the weights
by other means) fail at the first epoch's end naming ``scoring="viann"`` /
``"growth"``, never switch modes silently. A VIANN state restores as VIANN.
"""

import inspect

import keras
import numpy as np
import pytest

from neural_feature_importance import StateDictError, VarianceImportanceBase
from neural_feature_importance.core import RECOMMENDED_MODE
from neural_feature_importance.keras import (
    ConvVarianceImportanceKeras,
    EmbeddingVarianceImportanceKeras,
    GradientTapOptimizer,
    VarianceImportanceKeras,
)

BACKEND = keras.backend.backend()
N_ROWS, N_FEATURES, INFORMATIVE = 512, 8, {0, 1, 2}


def planted(n=N_ROWS, seed=0):
    """Eight standardised columns; the target is a function of the first three only."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype("float32")
    y = 2.0 * x[:, 0] - 1.5 * x[:, 1] + np.sin(2.0 * x[:, 2]) + 0.05 * rng.normal(size=n)
    return x, y[:, None].astype("float32")


def mlp(with_input=True):
    layers = [keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(1)]
    return keras.Sequential([keras.Input((N_FEATURES,)), *layers] if with_input else layers)


def assert_informative_on_top(importances):
    """Finite, not constant, and the three informative columns are the top 3."""
    scores = np.asarray(importances, dtype=np.float64)
    assert scores.shape == (N_FEATURES,)
    assert np.isfinite(scores).all() and np.ptp(scores) > 0, scores
    assert set(np.argsort(scores)[::-1][:3].tolist()) == INFORMATIVE, scores


# ------------------------------------------------------------------ the default itself
def test_every_callback_defaults_to_the_recommended_mode():
    for cls in (
        VarianceImportanceKeras,
        ConvVarianceImportanceKeras,
        EmbeddingVarianceImportanceKeras,
    ):
        assert inspect.signature(cls).parameters["scoring"].default == RECOMMENDED_MODE
        callback = cls()
        assert callback.scoring == RECOMMENDED_MODE
        assert callback.get_config()["scoring"] == RECOMMENDED_MODE


def test_default_callback_ranks_the_planted_columns():
    x, y = planted()
    model = mlp()
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    tracker = VarianceImportanceKeras()
    model.fit(x, y, epochs=10, batch_size=32, verbose=0, callbacks=[tracker])
    assert tracker.n_gradient_steps_ == 10 * N_ROWS // 32 // 4  # one update in 4 read
    assert_informative_on_top(tracker.feature_importances_)
    assert not isinstance(model.optimizer, GradientTapOptimizer)  # given back after fit()


# ------------------------------------------------ where VIANN worked, the tap works too
def _custom_step_model(update):
    """A subclassed model whose train_step updates through self.optimizer or by hand."""
    rate = 0.05

    class Model(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(32, activation="tanh")
            self.out = keras.layers.Dense(1)

        def call(self, x, training=False):
            return self.out(self.hidden(x))

    if BACKEND == "tensorflow":
        import tensorflow as tf

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                loss = keras.ops.mean((self(x, training=True) - y) ** 2)
            grads = tape.gradient(loss, self.trainable_variables)
            if update == "optimizer":
                self.optimizer.apply(grads, self.trainable_variables)
            else:
                for variable, grad in zip(self.trainable_variables, grads, strict=True):
                    variable.assign_sub(rate * grad)
            return {"loss": loss}

    elif BACKEND == "torch":
        import torch

        def train_step(self, data):
            x, y = data
            self.zero_grad()
            loss = ((self(x, training=True) - y) ** 2).mean()
            loss.backward()
            grads = [variable.value.grad for variable in self.trainable_variables]
            with torch.no_grad():
                if update == "optimizer":
                    self.optimizer.apply(grads, self.trainable_variables)
                else:
                    for variable, grad in zip(self.trainable_variables, grads, strict=True):
                        variable.assign(variable.value - rate * grad)
            return {"loss": loss}

    else:
        import jax

        def train_step(self, state, data):
            trainable, non_trainable, optimizer_variables, metrics = state
            x, y = data

            def loss_fn(values):
                prediction, updated = self.stateless_call(values, non_trainable, x, training=True)
                return keras.ops.mean((prediction - y) ** 2), updated

            (loss, non_trainable), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
            if update == "optimizer":
                trainable, optimizer_variables = self.optimizer.stateless_apply(
                    optimizer_variables, grads, trainable
                )
            else:
                trainable = [v - rate * g for v, g in zip(trainable, grads, strict=True)]
            return {"loss": loss}, (trainable, non_trainable, optimizer_variables, metrics)

    Model.train_step = train_step
    model = Model()
    model(np.zeros((2, N_FEATURES), dtype="float32"))  # built: the layer is found before fit
    return model


def _compiled(builder, optimizer=None, **compile_options):
    """A function that builds a fresh model and compiles it (Adam 1e-2 unless given)."""

    def make():
        model = builder()
        model.compile(
            optimizer() if optimizer else keras.optimizers.Adam(1e-2), "mse", **compile_options
        )
        return model

    return make


SITUATIONS = {
    "built by fit (no Input)": _compiled(lambda: mlp(with_input=False)),
    "jit_compile": _compiled(mlp, jit_compile=True),
    "run_eagerly": _compiled(mlp, run_eagerly=True),
    "LossScaleOptimizer": _compiled(
        mlp, lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-2))
    ),
    "gradient accumulation": _compiled(
        mlp, lambda: keras.optimizers.Adam(1e-2, gradient_accumulation_steps=2)
    ),
    "custom train_step through self.optimizer": _compiled(lambda: _custom_step_model("optimizer")),
}


@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_the_default_reads_the_gradient_where_viann_worked(situation):
    if situation == "jit_compile" and BACKEND == "torch":
        pytest.skip("jit_compile on the torch backend is torch.compile (minutes on a CPU)")
    x, y = planted(n=256)
    model = SITUATIONS[situation]()
    tracker = VarianceImportanceKeras()
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[tracker])
    assert tracker.scoring == RECOMMENDED_MODE
    assert tracker.n_gradient_steps_ >= 2, situation
    scores = tracker.feature_importances_
    assert np.isfinite(scores).all() and np.ptp(scores) > 0, scores
    assert not isinstance(model.optimizer, GradientTapOptimizer)


def test_two_default_callbacks_on_one_model_read_the_same_steps():
    x, y = planted(n=256)
    model = mlp()
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    first, second = VarianceImportanceKeras(), VarianceImportanceKeras()
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[first, second])
    assert first.n_gradient_steps_ == second.n_gradient_steps_ >= 2
    np.testing.assert_allclose(first.raw_importances_, second.raw_importances_, rtol=1e-6)


def test_scikeras_with_the_default_callback():
    scikeras = pytest.importorskip("scikeras.wrappers")
    x, y = planted(n=256)
    tracker = VarianceImportanceKeras()
    regressor = scikeras.KerasRegressor(
        model=mlp,
        optimizer="adam",
        loss="mse",
        epochs=3,
        batch_size=32,
        verbose=0,
        callbacks=[tracker],
    )
    regressor.fit(x, y[:, 0])
    fitted = regressor.callbacks[0]
    assert fitted.scoring == RECOMMENDED_MODE and fitted.n_gradient_steps_ >= 2
    assert np.isfinite(fitted.feature_importances_).all()


# ---------------------------------------- where the tap cannot read: an actionable error
def test_a_train_step_that_updates_by_other_means_raises_naming_viann():
    x, y = planted(n=128)
    model = _compiled(lambda: _custom_step_model("by hand"))()
    with pytest.raises(ValueError) as info:
        model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[VarianceImportanceKeras()])
    message = str(info.value)
    assert "no update went through it" in message and "self.optimizer" in message
    assert "scoring='viann'" in message and "scoring='growth'" in message
    # The fix the message names: VIANN needs weight snapshots only.
    model = _compiled(lambda: _custom_step_model("by hand"))()
    viann = VarianceImportanceKeras(scoring="viann")
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[viann])
    assert viann.n_updates_ == 3 and np.isfinite(viann.feature_importances_).all()


def test_a_custom_loop_without_a_wrapped_optimizer_raises_at_the_first_epochs_end():
    model = mlp()  # not compiled: no optimizer for the tap to go into
    tracker = VarianceImportanceKeras()
    tracker.set_model(model)
    tracker.on_train_begin()
    kernel = model.layers[0].kernel
    kernel.assign(kernel + 0.1)  # a hand-written update
    with pytest.raises(ValueError) as info:
        tracker.on_epoch_end(0)
    message = str(info.value)
    assert "wrap_optimizer" in message and "not compiled" in message
    assert "scoring='viann'" in message and "scoring='growth'" in message
    # The same loop with scoring="viann" scores.
    viann = VarianceImportanceKeras(scoring="viann")
    viann.set_model(model)
    viann.on_train_begin()
    for epoch in range(3):
        kernel.assign(kernel + 0.1 * (epoch + 1) * np.eye(N_FEATURES, 32, dtype="float32"))
        viann.on_epoch_end(epoch)
    viann.on_train_end()
    assert np.isfinite(viann.feature_importances_).all()


# ------------------------------------------------------- a VIANN state restores as VIANN
def test_a_saved_viann_state_restores_as_viann_never_as_the_default(tmp_path):
    x, y = planted(n=128)
    model = mlp()
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    viann = VarianceImportanceKeras(scoring="viann")
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[viann])
    state = viann.state_dict()
    assert "scoring" not in state
    viann.save_state(tmp_path / "viann.safetensors")

    assert VarianceImportanceBase.from_state(state).scoring == "viann"
    resumed = VarianceImportanceKeras(scoring="viann")
    resumed.load_state(tmp_path / "viann.safetensors")
    np.testing.assert_allclose(resumed.raw_importances_, viann.raw_importances_, rtol=1e-12)

    default = VarianceImportanceKeras()
    with pytest.raises(StateDictError) as info:
        default.load_state(tmp_path / "viann.safetensors")
    assert "construct the tracker with scoring='viann'" in str(info.value)
    assert "built without scoring=" in str(info.value)
