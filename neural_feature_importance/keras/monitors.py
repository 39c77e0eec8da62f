"""`MetricThreshold`: stop training once a metric reaches a target value.

The original package's `MetricThreshold` stopped when `metric >= threshold`
whatever the metric, so `monitor="loss"` stopped at the first epoch whose
loss was *high*. Here the direction is inferred from the metric's name, as
Keras's `EarlyStopping` does with `mode="auto"`, or given with `mode`.
"""

from __future__ import annotations

import logging
import math
import numbers
from typing import Any

import keras

logger = logging.getLogger(__name__)

__all__ = ["LOSS_LIKE", "MetricThreshold", "infer_mode"]

MODES = ("auto", "min", "max")

LOSS_LIKE = (
    "loss",
    "error",
    "crossentropy",
    "mse",
    "mae",
    "mape",
    "msle",
    "rmse",
    "hinge",
    "divergence",
    "kld",
    "logcosh",
    "log_cosh",
    "poisson",
    "huber",
)
"""Name fragments of metrics that improve by decreasing (`mode="auto"`)."""


def infer_mode(monitor: str) -> str:
    """`"min"` for loss- and error-like metric names, `"max"` otherwise.

    The `val_` prefix is ignored; a name is loss-like when it contains one of
    `LOSS_LIKE` (`"loss"`, `"mean_squared_error"`, `"mae"`,
    `"categorical_crossentropy"`, ...).

    Examples
    --------
    >>> infer_mode("val_loss"), infer_mode("mae"), infer_mode("val_accuracy"), infer_mode("auc")
    ('min', 'min', 'max', 'max')
    """
    name = monitor.lower().removeprefix("val_")
    return "min" if any(fragment in name for fragment in LOSS_LIKE) else "max"


class MetricThreshold(keras.callbacks.Callback):
    """Stop training when a monitored metric reaches `threshold`.

    Parameters
    ----------
    monitor : str, default="val_accuracy"
        Key of the metric in the epoch logs (`"loss"`, `"val_loss"`,
        `"accuracy"`, ...). Validation metrics need validation data.
    threshold : float, default=0.95
        Training stops at the end of the first epoch where the metric is at
        least `threshold` (`mode="max"`) or at most `threshold`
        (`mode="min"`).
    min_epochs : int, default=5
        Never stop before this many epochs have run (counted as Keras counts
        epochs, so `initial_epoch` counts too).
    mode : {"auto", "min", "max"}, default="auto"
        `"auto"` uses `"min"` for loss- and error-like names and `"max"`
        otherwise (see `infer_mode()`).

    Attributes
    ----------
    stopped_epoch : int or None
        Index of the epoch at whose end training was stopped, or `None` if
        this callback did not stop the last `fit()`.
    mode_ : {"min", "max"}
        The direction in use (`mode` with `"auto"` resolved).

    Examples
    --------
    >>> stop = MetricThreshold(monitor="val_loss", threshold=0.1, min_epochs=3)
    >>> stop.mode  # "auto": resolved to "min" when training begins
    'auto'
    """

    def __init__(
        self,
        monitor: str = "val_accuracy",
        threshold: float = 0.95,
        min_epochs: int = 5,
        mode: str = "auto",
    ) -> None:
        super().__init__()
        self.monitor = monitor
        self.threshold = threshold
        self.min_epochs = min_epochs
        self.mode = mode
        self.stopped_epoch: int | None = None
        self.mode_: str | None = None
        self._warned_missing = False

    def get_config(self) -> dict[str, Any]:
        """The constructor parameters."""
        return {
            "monitor": self.monitor,
            "threshold": self.threshold,
            "min_epochs": self.min_epochs,
            "mode": self.mode,
        }

    def _validate(self) -> None:
        if not isinstance(self.monitor, str) or not self.monitor:
            raise ValueError(
                f"monitor={self.monitor!r}; pass the name of a logged metric, e.g. "
                "'val_accuracy' or 'loss'."
            )
        if self.mode not in MODES:
            raise ValueError(
                f"mode={self.mode!r} is not supported; use 'auto' (infer from the metric "
                "name), 'min' (stop when the metric falls to the threshold) or 'max' "
                "(stop when it rises to the threshold)."
            )
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, numbers.Real):
            raise ValueError(f"threshold={self.threshold!r}; pass a number.")
        if (
            isinstance(self.min_epochs, bool)
            or not isinstance(self.min_epochs, numbers.Integral)
            or self.min_epochs < 0
        ):
            raise ValueError(
                f"min_epochs={self.min_epochs!r}; pass a non-negative int (the fewest "
                "epochs to train before stopping is allowed)."
            )

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Validate the parameters and reset the per-run state."""
        self._validate()
        self.mode_ = infer_mode(self.monitor) if self.mode == "auto" else self.mode
        self.stopped_epoch = None
        self._warned_missing = False

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Stop the model's training if the monitored metric reached the threshold."""
        value = (logs or {}).get(self.monitor)
        if value is None:
            if not self._warned_missing:
                self._warned_missing = True
                logger.warning(
                    "MetricThreshold: metric %r is not in the epoch logs (available: %s), "
                    "so training will not stop early. Check the name, compile the model "
                    "with that metric, and pass validation data for 'val_' metrics.",
                    self.monitor,
                    sorted(logs or {}),
                )
            return
        value = float(value)
        if epoch + 1 < self.min_epochs or math.isnan(value):
            return
        reached = value <= self.threshold if self.mode_ == "min" else value >= self.threshold
        if reached:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            relation = "<=" if self.mode_ == "min" else ">="
            logger.info(
                "MetricThreshold: %s = %.6g %s %g at epoch %d; stopping training.",
                self.monitor,
                value,
                relation,
                self.threshold,
                epoch + 1,
            )
