"""The paper's protocol: its networks, the training budgets and the published correlations.

Part of [`neural_feature_importance.experiments.paper`][].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MODELS: tuple[str, ...] = ("NN1", "NN2", "DeepNN")
"""The paper's three networks."""

COMPARISONS: tuple[str, ...] = ("VIANN-LOFO", "VIANN-RF", "Garson-LOFO", "Garson-VIANN")
"""The correlations the paper reports, in its column order."""

_PAIRS = {
    "VIANN-LOFO": ("viann", "lofo"),
    "VIANN-RF": ("viann", "rf"),
    "Garson-LOFO": ("garson", "lofo"),
    "Garson-VIANN": ("garson", "viann"),
}

PUBLISHED: dict[tuple[str, str], tuple[float, float, float, float]] = {
    ("NN1", "breastcancer"): (0.43, 0.85, 0.17, 0.20),
    ("NN1", "digits"): (0.96, 0.66, 0.90, 0.87),
    ("NN1", "iris"): (0.99, 0.88, 0.73, 0.62),
    ("NN1", "wine"): (0.93, 0.64, 0.91, 0.85),
    ("NN1", "boston"): (0.95, 0.79, 0.84, 0.80),
    ("NN1", "diabetes"): (0.86, 0.68, 0.85, 0.79),
    ("NN2", "breastcancer"): (0.78, 0.76, 0.43, 0.61),
    ("NN2", "digits"): (0.94, 0.76, 0.92, 0.84),
    ("NN2", "iris"): (0.92, 0.87, 0.97, 0.81),
    ("NN2", "wine"): (0.88, 0.50, 0.95, 0.93),
    ("NN2", "boston"): (0.96, 0.81, 0.76, 0.60),
    ("NN2", "diabetes"): (0.98, 0.90, 0.64, 0.60),
    ("DeepNN", "breastcancer"): (0.60, 0.45, 0.22, 0.37),
    ("DeepNN", "digits"): (0.83, 0.80, 0.60, 0.46),
    ("DeepNN", "iris"): (0.90, 0.98, 0.73, 0.49),
    ("DeepNN", "wine"): (0.41, 0.43, 0.74, 0.51),
    ("DeepNN", "boston"): (0.76, 0.86, 0.76, 0.79),
    ("DeepNN", "diabetes"): (0.86, 0.88, 0.64, 0.80),
}
"""Published correlations (Discovery Science 2019), columns as [`COMPARISONS`][]."""

DEEP_WIDTHS: tuple[int, ...] = (500, 1024, 2048, 4096, 2048, 1024, 500)


@dataclass(frozen=True)
class Budget:
    """How long to train and how big to build.

    Attributes
    ----------
    max_epochs : int
        Epoch cap for classification (stopped earlier by the accuracy threshold).
    regression_epochs : int
        Epochs for regression (no early stop).
    width_scale : float
        Multiplier of DeepNN's layer widths (1 = the paper's 21M weights).
    rf_trees : int
        Trees of the random forest.
    accuracy_threshold : float
        `val_accuracy` at which classification stops.
    min_epochs : int
        Earliest epoch (1-based) at which classification may stop.
    """

    max_epochs: int = 1000
    regression_epochs: int = 100
    width_scale: float = 1.0
    rf_trees: int = 100
    accuracy_threshold: float = 0.95
    min_epochs: int = 7

    def __post_init__(self) -> None:
        for name in ("max_epochs", "regression_epochs", "min_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(
                    f"Budget.{name}={value!r}; use an integer of at least 2 (VIANN's "
                    "variance needs two epoch-end snapshots)."
                )
        if not self.width_scale > 0:
            raise ValueError(f"Budget.width_scale={self.width_scale!r}; use a positive number.")
        if (
            isinstance(self.rf_trees, bool)
            or not isinstance(self.rf_trees, int)
            or self.rf_trees < 1
        ):
            raise ValueError(f"Budget.rf_trees={self.rf_trees!r}; use a positive integer.")


PAPER_BUDGET = Budget()
"""The paper's protocol."""

QUICK_BUDGET = Budget(max_epochs=12, regression_epochs=8, width_scale=1 / 16, rf_trees=20)
"""A tiny budget for CI and smoke tests: same code path, a few seconds per run."""


def _check_model_name(name: str) -> str:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}.")
    return name


def build_model(
    name: str,
    n_inputs: int,
    n_outputs: int,
    task: str,
    *,
    width_scale: float = 1.0,
) -> Any:
    """Build and compile one of the paper's Keras networks.

    Parameters
    ----------
    name : {"NN1", "NN2", "DeepNN"}
        The network (see the module docstring).
    n_inputs, n_outputs : int
        Input features; classes (softmax output) or 1 (regression).
    task : {"classification", "regression"}
        Chooses the output layer and the loss.
    width_scale : float, default=1.0
        Multiplier of DeepNN's widths (`QUICK_BUDGET` uses 1/16). The first
        and last hidden widths stay equal, as Garson's algorithm needs.

    Returns
    -------
    keras.Model
        Compiled; classification models report `accuracy`.
    """
    import keras
    from keras import layers, regularizers

    _check_model_name(name)
    if task not in ("classification", "regression"):
        raise ValueError(f"task={task!r}; use 'classification' or 'regression'.")
    model = keras.Sequential(name=name)
    model.add(keras.Input((n_inputs,)))
    if name in ("NN1", "NN2"):
        activation = "linear" if name == "NN1" else "relu"
        for units in (50, 100, 50):
            model.add(
                layers.Dense(
                    units,
                    activation=activation,
                    kernel_initializer="normal",
                    kernel_regularizer=regularizers.l2(0.01),
                )
            )
        optimizer = "sgd"
    else:
        widths = [max(2, round(w * width_scale)) for w in DEEP_WIDTHS]
        initializers = ["normal", "normal", "normal", "random_uniform", "random_uniform"]
        initializers += ["normal", "normal"]
        regularized = [False, False, True, True, True, True, False]
        for i, units in enumerate(widths):
            model.add(
                layers.Dense(
                    units,
                    activation="relu" if i == 0 else None,
                    kernel_initializer=initializers[i],
                    kernel_regularizer=regularizers.l2(0.1) if regularized[i] else None,
                )
            )
            model.add(layers.BatchNormalization())
            model.add(layers.Dropout(0.2 if i == len(widths) - 1 else 0.5))
        model.add(layers.PReLU())
        optimizer = "adam"
    if task == "classification":
        model.add(layers.Dense(n_outputs, activation="softmax", kernel_initializer="normal"))
        model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    else:
        model.add(layers.Dense(1, kernel_initializer="normal"))
        model.compile(loss="mean_squared_error", optimizer=optimizer)
    return model
