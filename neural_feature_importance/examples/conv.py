"""Convolution example: train a small Conv2D classifier, rank its filters, check the ranking.

Used by `scripts/conv_visualization_example.py` and the notebook of the same
name. One model per framework, the same architecture in both:

```text
Conv2D(n_filters, kernel, ReLU) -> MaxPool(2) -> Flatten -> Dense(n_classes)
```

The VIANN tracker (`ConvVarianceImportanceKeras` or `ConvVarianceImportanceTorch`) watches the
convolution while it trains. Its
[`filter_ranking_`][neural_feature_importance.core.tracker.ConvVarianceImportanceBase.filter_ranking_]
is then put to a test that does not trust it: keep only the top-`k` filters (zero the others'
kernels and biases), measure test accuracy, and compare with keeping the bottom-`k` and with random
`k`-subsets ([`filter_ablation()`][filter_ablation]).

Scores come from the trackers and the core; this module only trains, ablates
and reshapes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neural_feature_importance.core.scoring import viann_scores
from neural_feature_importance.datasets.images import ImageDataset
from neural_feature_importance.examples._training import FRAMEWORKS as FRAMEWORKS
from neural_feature_importance.examples._training import (
    FitOptions,
    check_framework,
    fit_keras,
    fit_torch,
)

DEFAULT_KERNEL = {"digits": 3, "mnist": 8}


@dataclass
class ConvRun:
    """A trained convolution model, its tracker and framework-neutral accessors.

    Attributes
    ----------
    framework : {"keras", "torch"}
        Which framework trained it.
    model : object
        The Keras model or `torch.nn.Module`.
    tracker : object
        The fitted `ConvVarianceImportanceKeras` / `ConvVarianceImportanceTorch`.
    data : ImageDataset
        The data it was trained on (channels last).
    test_accuracy : float
        Accuracy of the full model on `data.x_test`.
    epoch_metrics : list of dict
        `{"epoch", "loss", "train_accuracy"}` after each epoch.
    """

    framework: str
    model: Any
    tracker: Any
    data: ImageDataset
    test_accuracy: float
    epoch_metrics: list[dict[str, float]] = field(default_factory=list)
    _accuracy_keeping: Callable[[np.ndarray], float] | None = None
    _feature_maps: Callable[[np.ndarray], np.ndarray] | None = None
    _kernel: Callable[[], np.ndarray] | None = None

    def accuracy_keeping(self, filters: Sequence[int] | np.ndarray) -> float:
        """Test accuracy with only `filters` active (all other filters zeroed).

        The model's weights are restored afterwards.
        """
        keep = np.zeros(self.n_filters, dtype=bool)
        keep[np.asarray(filters, dtype=np.int64)] = True
        assert self._accuracy_keeping is not None
        return float(self._accuracy_keeping(keep))

    def feature_maps(self, image: np.ndarray) -> np.ndarray:
        """Every filter's ReLU output on one `(height, width, 1)` image: `(n_filters, h, w)`."""
        assert self._feature_maps is not None
        return self._feature_maps(np.asarray(image, dtype=np.float32))

    @property
    def kernel(self) -> np.ndarray:
        """Final convolution kernel in the framework's own layout."""
        assert self._kernel is not None
        return self._kernel()

    @property
    def n_filters(self) -> int:
        """Number of convolution filters (output channels)."""
        return int(self.tracker.view.n_units)

    @property
    def filter_weights(self) -> np.ndarray:
        """Final kernel per filter, `(n_filters, *kernel_size, in_channels)`."""
        matrix = self.tracker.view.to_matrix(self.kernel)  # (features, filters)
        return matrix.T.reshape(self.n_filters, *self.tracker.view.feature_shape)

    @property
    def filter_heatmaps(self) -> np.ndarray:
        """VIANN score of every kernel position, per filter: `(n_filters, *kernel, in)`.

        The tracker's
        [`heatmap_`][neural_feature_importance.core.tracker.ConvVarianceImportanceBase.heatmap_]
        sums these over filters; here each filter's column of the `(features, filters)` variance and
        weight matrices is scored on its own with the core's [`viann_scores()`][viann_scores]. The
        weights are the model's final ones, which are the tracker's last snapshot with the default
        one-snapshot-per-epoch schedule.
        """
        view = self.tracker.view
        variance = view.to_matrix(self.tracker.variance_)
        weights = view.to_matrix(self.kernel)
        maps = [
            viann_scores(variance[:, [f]], weights[:, [f]]).reshape(view.feature_shape)
            for f in range(self.n_filters)
        ]
        return np.stack(maps)


# ------------------------------------------------------------------- PyTorch
def build_torch_model(
    image_shape: tuple[int, int], n_filters: int, kernel_size: int, n_classes: int
) -> Any:
    """`Conv2d -> ReLU -> MaxPool2d(2) -> Flatten -> Linear` for `(1, h, w)` images."""
    from torch import nn

    height, width = image_shape
    pooled = ((height - kernel_size + 1) // 2) * ((width - kernel_size + 1) // 2)
    if pooled < 1:
        raise ValueError(
            f"kernel_size={kernel_size} is too large for {height}x{width} images; "
            f"use at most {min(height, width) - 1}."
        )
    return nn.Sequential(
        nn.Conv2d(1, n_filters, kernel_size),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(n_filters * pooled, n_classes),
    )


def _train_torch(
    data: ImageDataset,
    model_options: dict[str, int],
    fit: FitOptions,
    tracker_options: dict[str, Any],
) -> ConvRun:
    """Train the PyTorch model with a `ConvVarianceImportanceTorch` tracker."""
    import torch
    from torch import nn

    from neural_feature_importance import ConvVarianceImportanceTorch

    torch.manual_seed(fit.seed)
    first = data.channels_first()
    x_test = torch.from_numpy(first.x_test)
    model = build_torch_model(data.image_shape, n_classes=data.n_classes, **model_options)
    conv = model[0]
    tracker = ConvVarianceImportanceTorch(model, **tracker_options)
    metrics = fit_torch(
        model,
        first.x_train,
        first.y_train,
        tracker,
        fit,
        loss_fn=nn.CrossEntropyLoss(),
        n_correct=lambda logits, y: int((logits.argmax(1) == y).sum()),
    )
    y_test = first.y_test

    def predict_accuracy() -> float:
        with torch.no_grad():
            return float((model(x_test).argmax(1).numpy() == y_test).mean())

    def accuracy_keeping(keep: np.ndarray) -> float:
        saved_w, saved_b = conv.weight.detach().clone(), conv.bias.detach().clone()
        mask = torch.from_numpy(keep.astype(np.float32))
        try:
            with torch.no_grad():
                conv.weight.mul_(mask[:, None, None, None])
                conv.bias.mul_(mask)
            return predict_accuracy()
        finally:
            with torch.no_grad():
                conv.weight.copy_(saved_w)
                conv.bias.copy_(saved_b)

    def feature_maps(image: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.moveaxis(image, -1, 0)[None])
        with torch.no_grad():
            return torch.relu(conv(x))[0].numpy()

    return ConvRun(
        "torch",
        model,
        tracker,
        data,
        predict_accuracy(),
        metrics,
        accuracy_keeping,
        feature_maps,
        lambda: conv.weight.detach().numpy().copy(),
    )


# --------------------------------------------------------------------- Keras
def build_keras_model(
    image_shape: tuple[int, int], n_filters: int, kernel_size: int, n_classes: int
) -> Any:
    """`Conv2D(ReLU) -> MaxPooling2D(2) -> Flatten -> Dense` for `(h, w, 1)` images."""
    import keras

    height, width = image_shape
    if min(height, width) - kernel_size + 1 < 2:
        raise ValueError(
            f"kernel_size={kernel_size} is too large for {height}x{width} images; "
            f"use at most {min(height, width) - 1}."
        )
    return keras.Sequential(
        [
            keras.Input((height, width, 1)),
            keras.layers.Conv2D(n_filters, kernel_size, activation="relu", name="conv"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(n_classes, name="classifier"),
        ]
    )


def _train_keras(
    data: ImageDataset,
    model_options: dict[str, int],
    fit: FitOptions,
    tracker_options: dict[str, Any],
) -> ConvRun:
    """Train the Keras model with a `ConvVarianceImportanceKeras` callback."""
    import keras

    from neural_feature_importance import ConvVarianceImportanceKeras

    keras.utils.set_random_seed(fit.seed)
    model = build_keras_model(data.image_shape, n_classes=data.n_classes, **model_options)
    tracker = ConvVarianceImportanceKeras(**tracker_options)
    metrics = fit_keras(
        model,
        data.x_train,
        data.y_train,
        tracker,
        fit,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    conv = model.get_layer("conv")
    feature_model = keras.Model(model.inputs[0], conv.output)

    def predict_accuracy() -> float:
        # A direct call: model.predict() builds a data pipeline per call, ~20x slower
        # for the many small evaluations of the ablation.
        logits = keras.ops.convert_to_numpy(model(data.x_test, training=False))
        return float((np.argmax(logits, axis=1) == data.y_test).mean())

    def accuracy_keeping(keep: np.ndarray) -> float:
        kernel, bias = conv.get_weights()
        try:
            conv.set_weights([kernel * keep, bias * keep])
            return predict_accuracy()
        finally:
            conv.set_weights([kernel, bias])

    def feature_maps(image: np.ndarray) -> np.ndarray:
        out = keras.ops.convert_to_numpy(feature_model(image[None], training=False))[0]
        return np.moveaxis(out, -1, 0)

    return ConvRun(
        "keras",
        model,
        tracker,
        data,
        predict_accuracy(),
        metrics,
        accuracy_keeping,
        feature_maps,
        lambda: np.asarray(conv.get_weights()[0]).copy(),
    )


# ------------------------------------------------------------------ training
def train_conv(
    framework: str,
    data: ImageDataset,
    *,
    n_filters: int = 16,
    kernel_size: int = 3,
    epochs: int = 10,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    update_every: int | None = None,
    include_initial: bool = False,
    record_history: bool = True,
    seed: int = 0,
) -> ConvRun:
    """Train the model in `framework` while a VIANN tracker watches its convolution.

    Parameters
    ----------
    framework : {"keras", "torch"}
        `"keras"` trains with a
        [`ConvVarianceImportanceKeras`][neural_feature_importance.keras.ConvVarianceImportanceKeras]
        callback, `"torch"` with a
        [`ConvVarianceImportanceTorch`][neural_feature_importance.torch.ConvVarianceImportanceTorch]
        tracker.
    data : ImageDataset
        Channels-last images (PyTorch gets them channels first).
    n_filters : int, default=16
        Convolution filters.
    kernel_size : int, default=3
        Side of the square kernels.
    epochs : int, default=10
        Passes over the training images.
    batch_size : int, default=32
        Images per Adam step.
    learning_rate : float, default=3e-3
        Adam's learning rate.
    update_every, include_initial, record_history
        The tracker's options (default: one snapshot per epoch, history kept); the
        tracker scores with `scoring="viann"`, the paper's method.
    seed : int, default=0
        Seed of the initial weights and of the batch order.

    Returns
    -------
    ConvRun

    Examples
    --------
    >>> from neural_feature_importance.datasets.images import load_digits_images
    >>> run = train_conv("torch", load_digits_images(), n_filters=8)
    >>> run.tracker.filter_ranking_
    """
    check_framework(framework)
    trainer = _train_torch if framework == "torch" else _train_keras
    return trainer(
        data,
        {"n_filters": n_filters, "kernel_size": kernel_size},
        FitOptions(epochs, batch_size, learning_rate, seed),
        {
            # VIANN, the paper's method, whatever the trackers' default (filter_heatmaps reads
            # its variance).
            "scoring": "viann",
            "update_every": update_every,
            "include_initial": include_initial,
            "record_history": record_history,
        },
    )


def train_torch(data: ImageDataset, **kwargs: Any) -> ConvRun:
    """[`train_conv()`][train_conv] with PyTorch; the keyword arguments are `train_conv()`'s."""
    return train_conv("torch", data, **kwargs)


def train_keras(data: ImageDataset, **kwargs: Any) -> ConvRun:
    """[`train_conv()`][train_conv] with Keras; the keyword arguments are `train_conv()`'s."""
    return train_conv("keras", data, **kwargs)


# ------------------------------------------------------------------ ablation
@dataclass(frozen=True)
class AblationResult:
    """Test accuracy keeping only `k` filters, by how they were chosen.

    Attributes
    ----------
    ks : ndarray of int
        The numbers of filters kept.
    top, bottom : ndarray of float
        Accuracy keeping the `k` highest / lowest ranked filters.
    random_mean, random_std : ndarray of float
        Mean and standard deviation over `n_random` random `k`-subsets.
    full : float
        Accuracy with every filter.
    n_random : int
        Random subsets per `k`.
    """

    ks: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    random_mean: np.ndarray
    random_std: np.ndarray
    full: float
    n_random: int

    def rows(self) -> list[dict[str, float]]:
        """One dict per `k`, for printing or a CSV."""
        return [
            {
                "k": int(k),
                "top_k": float(t),
                "bottom_k": float(b),
                "random_k_mean": float(m),
                "random_k_std": float(s),
                "all_filters": self.full,
            }
            for k, t, b, m, s in zip(
                self.ks, self.top, self.bottom, self.random_mean, self.random_std, strict=True
            )
        ]

    def to_text(self) -> str:
        """The table as aligned text."""
        random_header = f"random-k (mean +- std, n={self.n_random})"
        lines = [f"{'k':>3} {'top-k':>7} {'bottom-k':>9} {random_header:>34}"]
        for row in self.rows():
            random = f"{row['random_k_mean']:.3f} +- {row['random_k_std']:.3f}"
            lines.append(f"{row['k']:>3} {row['top_k']:>7.3f} {row['bottom_k']:>9.3f} {random:>34}")
        lines.append(f"all {self.full:>7.3f}")
        return "\n".join(lines)


def filter_ablation(
    accuracy_keeping: Callable[[np.ndarray], float],
    ranking: np.ndarray,
    ks: Sequence[int] = (2, 4, 6),
    *,
    n_random: int = 20,
    full_accuracy: float | None = None,
    seed: int = 0,
) -> AblationResult:
    """Does the filter ranking mean anything? Accuracy keeping top-k vs bottom-k vs random-k.

    Parameters
    ----------
    accuracy_keeping : callable
        Maps an array of filter indices to the test accuracy of the model with
        only those filters active (e.g. [`ConvRun.accuracy_keeping()`][ConvRun.accuracy_keeping]).
    ranking : ndarray of int
        Filter indices from most to least important (`tracker.filter_ranking_`).
    ks : sequence of int, default=(2, 4, 6)
        Numbers of filters to keep; each must be below the number of filters.
    n_random : int, default=20
        Random subsets per `k`.
    full_accuracy : float, optional
        Accuracy with every filter (computed if not given).
    seed : int, default=0
        Seed of the random subsets.

    Returns
    -------
    AblationResult
    """
    ranking = np.asarray(ranking, dtype=np.int64)
    n_filters = ranking.size
    if sorted(ranking.tolist()) != list(range(n_filters)):
        raise ValueError("ranking must be a permutation of the filter indices 0..n_filters-1.")
    ks_array = np.asarray(ks, dtype=np.int64)
    if ks_array.size == 0 or ks_array.min() < 1 or ks_array.max() >= n_filters:
        raise ValueError(
            f"ks={list(ks)!r}; each k must be between 1 and {n_filters - 1} "
            f"(the model has {n_filters} filters)."
        )
    if n_random < 1:
        raise ValueError(f"n_random={n_random!r}; use at least 1 random subset per k.")
    rng = np.random.default_rng(seed)
    top, bottom, mean, std = [], [], [], []
    for k in ks_array:
        top.append(accuracy_keeping(ranking[:k]))
        bottom.append(accuracy_keeping(ranking[-k:]))
        random = [
            accuracy_keeping(rng.choice(n_filters, size=k, replace=False)) for _ in range(n_random)
        ]
        mean.append(float(np.mean(random)))
        std.append(float(np.std(random)))
    full = accuracy_keeping(np.arange(n_filters)) if full_accuracy is None else float(full_accuracy)
    return AblationResult(
        ks_array,
        np.asarray(top),
        np.asarray(bottom),
        np.asarray(mean),
        np.asarray(std),
        float(full),
        n_random,
    )


def run_filter_ablation(
    run: ConvRun, ks: Sequence[int] = (2, 4, 6), *, n_random: int = 20, seed: int = 0
) -> AblationResult:
    """[`filter_ablation()`][filter_ablation] of a trained [`ConvRun`][], ranked by its tracker."""
    return filter_ablation(
        run.accuracy_keeping,
        run.tracker.filter_ranking_,
        ks,
        n_random=n_random,
        full_accuracy=run.test_accuracy,
        seed=seed,
    )
