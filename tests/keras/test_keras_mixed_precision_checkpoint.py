"""Checkpoints saved during `fit()` with a gradient mode load without the library.

Under `mixed_float16` Keras wraps the optimizer in a `LossScaleOptimizer` and
the gradient tap goes inside it. A checkpoint written during `fit()` must
hold exactly the optimizer entries of an untracked run (14 variables here:
the loss scaler's 4 and Adam's 10, not the 30 they were with the tap's sums),
so that a process without the library loads the loss scale's state and
Adam's, instead of skipping the list with a warning.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
callbacks = pytest.importorskip("neural_feature_importance.keras")

from neural_feature_importance.keras._saving import saved_variables  # noqa: E402


@pytest.fixture
def mixed_policy():
    """`mixed_float16` for one test, then the policy that was set before."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy(previous)


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 5)).astype("float32")
    y = (3 * x[:, :1] - 2 * x[:, 1:2]).astype("float32")
    return x, y


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)]
    )
    # "adam" as a string: under mixed_float16 Keras wraps it in a LossScaleOptimizer.
    model.compile(optimizer="adam", loss="mse")
    return model


class _OptimizerState(keras.callbacks.Callback):
    """Records, at every epoch's end, the optimizer state a checkpoint must restore."""

    def __init__(self):
        super().__init__()
        self.state = {}
        self.n_saved = []

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        self.n_saved.append(len(saved_variables(optimizer)))
        self.state = {"iterations": int(keras.ops.convert_to_numpy(optimizer.iterations))}
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            self.state["dynamic_scale"] = float(keras.ops.convert_to_numpy(optimizer.dynamic_scale))
            self.state["step_counter"] = int(keras.ops.convert_to_numpy(optimizer.step_counter))


def _fit_with_checkpoints(directory, tracked):
    """Fit 2 epochs saving `.keras` and `.weights.h5` at each epoch's end; the recorder."""
    x, y = _data()
    model = _model()
    recorder = _OptimizerState()
    hooks = [
        keras.callbacks.ModelCheckpoint(os.path.join(directory, "model.keras")),
        keras.callbacks.ModelCheckpoint(
            os.path.join(directory, "model.weights.h5"), save_weights_only=True
        ),
        recorder,
    ]
    if tracked:
        hooks.insert(0, callbacks.VarianceImportanceKeras(scoring="steady_taylor"))
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=hooks)
    return model, recorder


def _optimizer_entries(path):
    """`{name: shape}` of every optimizer entry of a `.weights.h5` file."""
    entries = {}

    def visit(name, item):
        if isinstance(item, h5py.Dataset) and name.startswith("optimizer"):
            entries[name] = item.shape

    with h5py.File(path, "r") as file:
        file.visititems(visit)
    return entries


@pytest.mark.parametrize("policy", ["mixed_float16", "float32"])
def test_checkpoint_during_fit_holds_the_entries_of_an_untracked_fit(tmp_path, policy):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        entries = {}
        for tracked in (False, True):
            directory = tmp_path / ("tracked" if tracked else "plain")
            directory.mkdir()
            model, recorder = _fit_with_checkpoints(str(directory), tracked)
            entries[tracked] = _optimizer_entries(directory / "model.weights.h5")
            mixed = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
            assert mixed == (policy == "mixed_float16")
            if mixed:
                # The scaler's 4 variables and Adam's 10 (2 + 2 per weight of 4).
                assert recorder.n_saved == [14, 14]
                # After fit the tap is gone, and with it the override of the scaler's saving.
                assert "save_own_variables" not in vars(model.optimizer)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert entries[True] == entries[False]
    assert sum(name.startswith("optimizer/vars/") for name in entries[True]) == (
        14 if policy == "mixed_float16" else 10
    )


_LOAD_WITHOUT_THE_LIBRARY = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np
    import keras

    directory, expected = sys.argv[1], json.loads(sys.argv[2])
    keras.mixed_precision.set_global_policy("mixed_float16")
    warnings.simplefilter("always")

    def state(optimizer):
        return {
            "iterations": int(keras.ops.convert_to_numpy(optimizer.iterations)),
            "dynamic_scale": float(keras.ops.convert_to_numpy(optimizer.dynamic_scale)),
            "step_counter": int(keras.ops.convert_to_numpy(optimizer.step_counter)),
        }

    with warnings.catch_warnings(record=True) as caught:
        loaded = keras.models.load_model(directory + "/model.keras")
        model = keras.Sequential(
            [keras.Input((5,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)]
        )
        model.compile(optimizer="adam", loss="mse")
        model.optimizer.build(model.trainable_variables)
        model.load_weights(directory + "/model.weights.h5")
    skipped = [str(w.message) for w in caught if "Skipping variable loading" in str(w.message)]
    assert not skipped, skipped
    assert "neural_feature_importance" not in sys.modules
    for optimizer in (loaded.optimizer, model.optimizer):
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer), optimizer
        assert state(optimizer) == expected, (state(optimizer), expected)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.optimizer.inner_optimizer.variables[2]),
        keras.ops.convert_to_numpy(model.optimizer.inner_optimizer.variables[2]),
    )
    print("loaded", json.dumps(state(loaded.optimizer)))
    """
)


@pytest.mark.slow
def test_mixed_precision_checkpoint_loads_in_a_process_without_the_library(tmp_path, mixed_policy):
    _, recorder = _fit_with_checkpoints(str(tmp_path), tracked=True)
    expected = recorder.state
    # Two epochs of 6 steps (Adam counts those the scaler applied): the scaler's
    # counter has moved, and its scale too.
    assert 8 <= expected["iterations"] <= 12
    assert expected["step_counter"] > 0
    assert expected["dynamic_scale"] != 32768.0
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_WITHOUT_THE_LIBRARY, str(tmp_path), json.dumps(expected)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "loaded" in done.stdout
