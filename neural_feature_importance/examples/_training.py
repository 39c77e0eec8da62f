"""The training loops the examples share: one per framework, the same for every model.

[`conv`][] and [`tokens`][] build their own models and trackers; these
functions train them with Adam, let the tracker watch, and report the loss and
training accuracy after every epoch as `{"epoch", "loss", "train_accuracy"}`.
Each framework is imported inside the function that needs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

FRAMEWORKS: tuple[str, ...] = ("keras", "torch")


def check_framework(framework: str) -> None:
    """Raise a `ValueError` naming the choices unless `framework` is in `FRAMEWORKS`."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework={framework!r} is not known; use one of {FRAMEWORKS}.")


@dataclass(frozen=True)
class FitOptions:
    """How long and how fast to train, the same in every framework.

    `seed` is the run's: `fit_torch()` draws its batch orders from it, and
    the callers seed the initial weights with it before they build a model
    (`torch.manual_seed`, `keras.utils.set_random_seed`).
    """

    epochs: int
    batch_size: int
    learning_rate: float
    seed: int


def fit_torch(
    model: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    tracker: Any,
    options: FitOptions,
    *,
    loss_fn: Callable[[Any, Any], Any],
    n_correct: Callable[[Any, Any], int],
) -> list[dict[str, float]]:
    """Train a `torch.nn.Module` with Adam while `tracker` watches; leave it in eval mode.

    `x_train` and `y_train` come in the dtypes the model and `loss_fn`
    take; each epoch visits them in a fresh order drawn from `options.seed`.
    `loss_fn(logits, targets)` is the batch's mean loss and
    `n_correct(logits, targets)` counts its right predictions. Returns
    `{"epoch", "loss", "train_accuracy"}` after each epoch.
    """
    import torch

    inputs = torch.from_numpy(x_train)
    targets = torch.from_numpy(y_train)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate)
    generator = torch.Generator().manual_seed(options.seed)
    metrics: list[dict[str, float]] = []
    tracker.on_train_begin()
    for epoch in range(options.epochs):
        model.train()
        order = torch.randperm(len(targets), generator=generator)
        total_loss, correct = 0.0, 0
        for start in range(0, len(order), options.batch_size):
            index = order[start : start + options.batch_size]
            optimizer.zero_grad()
            logits = model(inputs[index])
            loss = loss_fn(logits, targets[index])
            loss.backward()
            optimizer.step()
            tracker.on_step_end()
            total_loss += float(loss.detach()) * len(index)
            correct += n_correct(logits, targets[index])
        tracker.on_epoch_end()
        metrics.append(
            {
                "epoch": epoch + 1,
                "loss": total_loss / len(order),
                "train_accuracy": correct / len(order),
            }
        )
        logger.info("torch epoch %d: %s", epoch + 1, metrics[-1])
    tracker.on_train_end()
    model.eval()
    return metrics


def fit_keras(
    model: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    tracker: Any,
    options: FitOptions,
    *,
    loss: Any,
) -> list[dict[str, float]]:
    """Compile a Keras model with Adam, `loss` and accuracy, and fit it with `tracker`.

    Returns `{"epoch", "loss", "train_accuracy"}` after each epoch.
    """
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(options.learning_rate),
        loss=loss,
        metrics=["accuracy"],
    )
    fit = model.fit(
        x_train,
        y_train,
        epochs=options.epochs,
        batch_size=options.batch_size,
        callbacks=[tracker],
        verbose=0,
    )
    return [
        {"epoch": i + 1, "loss": float(epoch_loss), "train_accuracy": float(accuracy)}
        for i, (epoch_loss, accuracy) in enumerate(
            zip(fit.history["loss"], fit.history["accuracy"], strict=True)
        )
    ]
