"""Token example: train a small text CNN, rank its vocabulary, check the ranking.

Used by `scripts/token_importance_topk_example.py` and the notebook of the
same name. One model per framework, the same architecture in both:

```text
Embedding(vocab, dim) -> Conv1D(n_filters, kernel, ReLU) -> GlobalMaxPooling -> Dense(1)
```

The VIANN tracker (`EmbeddingVarianceImportanceKeras`
or `EmbeddingVarianceImportanceTorch`) scores
every row of the embedding table. On the generated corpus
([`make_sentiment_corpus()`][neural_feature_importance.datasets.make_sentiment_corpus]) the tokens
that decide the label are known, so [`recall_at_k()`][recall_at_k] says how many of them
the ranking puts on top, next to a frequency ranking and to chance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neural_feature_importance.datasets.text import TextDataset
from neural_feature_importance.examples._training import FRAMEWORKS as FRAMEWORKS
from neural_feature_importance.examples._training import (
    FitOptions,
    check_framework,
    fit_keras,
    fit_torch,
)


@dataclass
class TokenRun:
    """A trained text classifier, its embedding tracker and a prediction function.

    Attributes
    ----------
    framework : {"keras", "torch"}
        Which framework trained it.
    model : object
        The Keras model or `torch.nn.Module`.
    tracker : object
        The fitted `EmbeddingVarianceImportanceKeras` / `...Torch`.
    data : TextDataset
        The data it was trained on.
    test_accuracy : float
        Accuracy on `data.x_test`.
    epoch_metrics : list of dict
        `{"epoch", "loss", "train_accuracy"}` after each epoch.
    """

    framework: str
    model: Any
    tracker: Any
    data: TextDataset
    test_accuracy: float
    epoch_metrics: list[dict[str, float]] = field(default_factory=list)
    _predict: Callable[[np.ndarray], np.ndarray] | None = None

    def predict_proba(self, sequences: np.ndarray) -> np.ndarray:
        """Probability of the positive label for each padded sequence."""
        assert self._predict is not None
        return self._predict(np.asarray(sequences, dtype=np.int32))


def _token_run(
    framework: str,
    model: Any,
    tracker: Any,
    data: TextDataset,
    metrics: list[dict[str, float]],
    predict: Callable[[np.ndarray], np.ndarray],
) -> TokenRun:
    """A trained model's [`TokenRun`][], with its test accuracy at the 0.5 threshold."""
    accuracy = float(((predict(data.x_test) > 0.5) == data.y_test).mean())
    return TokenRun(framework, model, tracker, data, accuracy, metrics, predict)


# ------------------------------------------------------------------- PyTorch
def build_torch_model(vocab_size: int, embedding_dim: int, n_filters: int, kernel_size: int) -> Any:
    """`Embedding -> Conv1d -> ReLU -> max over time -> Linear(1)` (logits)."""
    import torch
    from torch import nn

    class TextCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, embedding_dim)
            self.conv = nn.Conv1d(embedding_dim, n_filters, kernel_size)
            self.classifier = nn.Linear(n_filters, 1)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            x = self.embedding(tokens).transpose(1, 2)  # (batch, dim, time)
            x = torch.relu(self.conv(x)).amax(dim=2)
            return self.classifier(x).squeeze(1)

    return TextCNN()


def _train_torch(
    data: TextDataset,
    model_options: dict[str, int],
    fit: FitOptions,
    tracker_options: dict[str, Any],
) -> TokenRun:
    """Train the PyTorch model with an `EmbeddingVarianceImportanceTorch` tracker."""
    import torch
    from torch import nn

    from neural_feature_importance import EmbeddingVarianceImportanceTorch

    torch.manual_seed(fit.seed)
    model = build_torch_model(data.vocab_size, **model_options)
    tracker = EmbeddingVarianceImportanceTorch(model, **tracker_options)
    metrics = fit_torch(
        model,
        data.x_train.astype(np.int64),
        data.y_train.astype(np.float32),
        tracker,
        fit,
        loss_fn=nn.BCEWithLogitsLoss(),
        n_correct=lambda logits, y: int(((logits > 0).float() == y).sum()),
    )

    def predict(sequences: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.sigmoid(model(torch.from_numpy(sequences.astype(np.int64)))).numpy()

    return _token_run("torch", model, tracker, data, metrics, predict)


# --------------------------------------------------------------------- Keras
def build_keras_model(
    vocab_size: int, maxlen: int, embedding_dim: int, n_filters: int, kernel_size: int
) -> Any:
    """`Embedding -> Conv1D(ReLU) -> GlobalMaxPooling1D -> Dense(1, sigmoid)`."""
    import keras

    return keras.Sequential(
        [
            keras.Input((maxlen,), dtype="int32"),
            keras.layers.Embedding(vocab_size, embedding_dim, name="embedding"),
            keras.layers.Conv1D(n_filters, kernel_size, activation="relu"),
            keras.layers.GlobalMaxPooling1D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


def _train_keras(
    data: TextDataset,
    model_options: dict[str, int],
    fit: FitOptions,
    tracker_options: dict[str, Any],
) -> TokenRun:
    """Train the Keras model with an `EmbeddingVarianceImportanceKeras` callback."""
    import keras

    from neural_feature_importance import EmbeddingVarianceImportanceKeras

    keras.utils.set_random_seed(fit.seed)
    model = build_keras_model(data.vocab_size, data.maxlen, **model_options)
    tracker = EmbeddingVarianceImportanceKeras(**tracker_options)
    metrics = fit_keras(
        model,
        data.x_train,
        data.y_train.astype(np.float32),
        tracker,
        fit,
        loss="binary_crossentropy",
    )

    def predict(sequences: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(sequences, batch_size=1024, verbose=0)).reshape(-1)

    return _token_run("keras", model, tracker, data, metrics, predict)


# ------------------------------------------------------------------ training
def train_tokens(
    framework: str,
    data: TextDataset,
    *,
    embedding_dim: int = 16,
    n_filters: int = 32,
    kernel_size: int = 3,
    epochs: int = 5,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    update_every: int | None = None,
    record_history: bool = True,
    seed: int = 0,
) -> TokenRun:
    """Train the text CNN in `framework` while a VIANN tracker watches its embedding.

    Parameters
    ----------
    framework : {"keras", "torch"}
        `"keras"` trains with an
        [`EmbeddingVarianceImportanceKeras`][neural_feature_importance.keras.EmbeddingVarianceImportanceKeras]
        callback, `"torch"` with an
        [`EmbeddingVarianceImportanceTorch`][neural_feature_importance.torch.EmbeddingVarianceImportanceTorch]
        tracker.
    data : TextDataset
        Padded token sequences and binary labels.
    embedding_dim : int, default=16
        Width of the embedding table.
    n_filters : int, default=32
        Conv1D filters.
    kernel_size : int, default=3
        Tokens per Conv1D window.
    epochs : int, default=5
        Passes over the training documents.
    batch_size : int, default=32
        Documents per Adam step.
    learning_rate : float, default=1e-3
        Adam's learning rate.
    update_every, record_history
        The tracker's options (default: one snapshot per epoch, history kept); the
        tracker scores with `scoring="viann"`, the paper's method.
    seed : int, default=0
        Seed of the initial weights and of the batch order.

    Returns
    -------
    TokenRun

    Examples
    --------
    >>> from neural_feature_importance.datasets.text import make_sentiment_corpus
    >>> run = train_tokens("torch", make_sentiment_corpus(1000), epochs=8)
    >>> planted_recall(run).to_text()
    """
    check_framework(framework)
    trainer = _train_torch if framework == "torch" else _train_keras
    return trainer(
        data,
        {"embedding_dim": embedding_dim, "n_filters": n_filters, "kernel_size": kernel_size},
        FitOptions(epochs, batch_size, learning_rate, seed),
        # VIANN, the paper's method, whatever the trackers' default scoring.
        {"scoring": "viann", "update_every": update_every, "record_history": record_history},
    )


def train_torch(data: TextDataset, **kwargs: Any) -> TokenRun:
    """[`train_tokens()`][train_tokens] with PyTorch; the keyword arguments are the same."""
    return train_tokens("torch", data, **kwargs)


def train_keras(data: TextDataset, **kwargs: Any) -> TokenRun:
    """[`train_tokens()`][train_tokens] with Keras; the keyword arguments are the same."""
    return train_tokens("keras", data, **kwargs)


# ------------------------------------------------------------------- ranking
def rank_tokens(scores: np.ndarray, exclude: Sequence[int] = ()) -> np.ndarray:
    """Token indices from highest to lowest score, without the `exclude` tokens."""
    scores = np.asarray(scores, dtype=np.float64)
    candidates = np.setdiff1d(np.arange(scores.size), np.asarray(list(exclude), dtype=np.int64))
    return candidates[np.argsort(-scores[candidates], kind="stable")]


def recall_at_k(
    scores: np.ndarray,
    relevant: Sequence[int] | np.ndarray,
    ks: Sequence[int] | np.ndarray | int,
    *,
    exclude: Sequence[int] = (),
) -> np.ndarray:
    """Fraction of the `relevant` tokens among the `k` highest-scored tokens.

    Parameters
    ----------
    scores : ndarray of shape (vocab_size,)
        One score per token.
    relevant : sequence of int
        The tokens that should come first (e.g. `data.planted_tokens`).
    ks : int or sequence of int
        Cut-offs.
    exclude : sequence of int, default=()
        Tokens removed before ranking (special tokens).

    Returns
    -------
    ndarray of float, one recall per cut-off.

    Examples
    --------
    >>> recall_at_k(np.array([0.0, 0.9, 0.1, 0.8, 0.5]), [1, 2], [1, 2, 3])
    array([0.5, 0.5, 0.5])
    """
    relevant = np.unique(np.asarray(relevant, dtype=np.int64))
    if relevant.size == 0:
        raise ValueError(
            "relevant is empty; pass the indices of the tokens that should rank first."
        )
    ranking = rank_tokens(scores, exclude)
    hits = np.cumsum(np.isin(ranking, relevant))
    ks_array = np.atleast_1d(np.asarray(ks, dtype=np.int64))
    if ks_array.min() < 1:
        raise ValueError(f"ks={ks!r}; every cut-off must be at least 1.")
    return hits[np.minimum(ks_array, ranking.size) - 1] / relevant.size


def token_frequencies(sequences: np.ndarray, vocab_size: int) -> np.ndarray:
    """How often each token occurs in `sequences` (the frequency baseline's scores)."""
    return np.bincount(np.asarray(sequences).ravel(), minlength=vocab_size).astype(np.float64)


def expected_random_recall(ks: Sequence[int] | np.ndarray, n_candidates: int) -> np.ndarray:
    """Expected recall@k of a random ranking of `n_candidates` tokens: `k / n`."""
    return np.minimum(np.asarray(ks, dtype=np.float64) / n_candidates, 1.0)


@dataclass(frozen=True)
class RecallResult:
    """Recall@k of the planted tokens for VIANN, token frequency and chance."""

    ks: np.ndarray
    viann: np.ndarray
    frequency: np.ndarray
    random: np.ndarray
    n_relevant: int

    def rows(self) -> list[dict[str, float]]:
        """One dict per cut-off, for printing or a CSV."""
        return [
            {"k": int(k), "viann": float(v), "frequency": float(f), "random": float(r)}
            for k, v, f, r in zip(self.ks, self.viann, self.frequency, self.random, strict=True)
        ]

    def to_text(self) -> str:
        """The table as aligned text."""
        lines = [f"{'k':>4} {'VIANN':>7} {'frequency':>10} {'random':>7}"]
        for row in self.rows():
            k, viann, frequency, random = row["k"], row["viann"], row["frequency"], row["random"]
            lines.append(f"{k:>4} {viann:>7.3f} {frequency:>10.3f} {random:>7.3f}")
        return "\n".join(lines)


def planted_recall(run: TokenRun, ks: Sequence[int] | None = None) -> RecallResult:
    """Recall@k of `run.data.planted_tokens` under the tracker's scores and the baselines.

    `ks` defaults to `n/2, n, 2n` and `4n` for `n` planted tokens.
    """
    data = run.data
    if data.planted_tokens is None:
        raise ValueError(
            f"the {data.name!r} data set has no planted tokens; recall@k needs the "
            "generated corpus (make_sentiment_corpus, --dataset synthetic)."
        )
    n = int(data.planted_tokens.size)
    ks_array = np.asarray(ks if ks is not None else [max(1, n // 2), n, 2 * n, 4 * n])
    exclude = data.special_tokens
    return RecallResult(
        ks=ks_array,
        viann=recall_at_k(
            run.tracker.feature_importances_, data.planted_tokens, ks_array, exclude=exclude
        ),
        frequency=recall_at_k(
            token_frequencies(data.x_train, data.vocab_size),
            data.planted_tokens,
            ks_array,
            exclude=exclude,
        ),
        random=expected_random_recall(ks_array, data.vocab_size - len(exclude)),
        n_relevant=n,
    )
