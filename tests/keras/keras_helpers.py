"""Shared helpers for the Keras tests (imported by the test modules)."""

import keras
import numpy as np


class KernelRecorder(keras.callbacks.Callback):
    """Records a layer's weight after every epoch, or after every training batch."""

    def __init__(self, layer_name, attribute="kernel", per_batch=False):
        super().__init__()
        self.layer_name = layer_name
        self.attribute = attribute
        self.per_batch = per_batch
        self.weights = []

    def _record(self):
        layer = self.model.get_layer(self.layer_name)  # self.model syncs the JAX state
        value = keras.ops.convert_to_numpy(getattr(layer, self.attribute))
        self.weights.append(np.asarray(value, dtype=np.float64))

    def on_epoch_end(self, epoch, logs=None):
        if not self.per_batch:
            self._record()

    def on_train_batch_end(self, batch, logs=None):
        if self.per_batch:
            self._record()


def variance(weights):
    """Two-pass sample variance (ddof=1) of a list of same-shaped arrays."""
    return np.stack(weights).var(axis=0, ddof=1)


def viann_by_hand(weights):
    """VIANN raw scores of Keras-layout kernels ``(..., in, out)``, flattened per feature."""
    var = variance(weights)
    last = weights[-1]
    return np.sum((var * np.abs(last)).reshape(-1, last.shape[-1]), axis=1)


def minmax(scores):
    return (scores - scores.min()) / (scores.max() - scores.min())


def iris_mlp(hidden=8, first=None, name="hidden"):
    """A small Iris classifier: [first layers...] -> Dense(hidden) -> Dense(3)."""
    layers = [
        keras.Input((4,)),
        *(first or []),
        keras.layers.Dense(hidden, activation="relu", name=name),
    ]
    model = keras.Sequential([*layers, keras.layers.Dense(3, activation="softmax", name="out")])
    model.compile(
        keras.optimizers.Adam(0.02),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def regression_data(n=80, n_features=5, seed=0):
    """x: standard normal except the last column (all zeros); y = 3 x0 - 2 x1."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features)).astype("float32")
    x[:, -1] = 0.0
    y = (3 * x[:, 0] - 2 * x[:, 1])[:, None].astype("float32")
    return x, y


def regression_model(n_features=5, hidden=6, lr=0.05):
    model = keras.Sequential(
        [
            keras.Input((n_features,)),
            keras.layers.Dense(hidden, activation="tanh", name="hidden"),
            keras.layers.Dense(1, name="out"),
        ]
    )
    model.compile(keras.optimizers.SGD(lr), "mse")
    return model


def twin(model, lr=0.05):
    """A second model with the same architecture and the same weights (SGD, fresh)."""
    other = keras.models.clone_model(model)
    other.set_weights(model.get_weights())
    other.compile(keras.optimizers.SGD(lr), "mse")
    return other
