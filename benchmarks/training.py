"""The models the benchmarks train, and stopwatches around the trackers' hooks.

Every method in the accuracy benchmark explains the same kind of network: an
MLP with two hidden layers of 64 ReLU units trained with Adam (learning rate
1e-3, batches of 32), the network of the scoring-mode study
(``research/scoring_modes/``). PyTorch trains it with a plain loop that calls
the trackers' hooks; Keras with ``model.fit`` and the callbacks.

The time a tracker costs is measured *inside* it: :func:`time_hooks` wraps its
hook methods with ``time.perf_counter`` on the instance, so the sum is exactly
the time spent in our code, not a difference of two noisy training runs.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TORCH_HOOKS = ("on_train_begin", "on_step_end", "on_epoch_end", "on_train_end")
# Keras' batch hook is a property returning ``_count_batch`` (so that Keras can
# skip the per-batch dispatch when nothing is done per batch); we time what it
# returns.
KERAS_HOOKS = ("on_train_begin", "_count_batch", "on_epoch_end", "on_train_end")


def limit_threads(n: int = 1) -> None:
    """Pin BLAS/OpenMP and torch to ``n`` threads (the machine is shared)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a benchmark dependency
        return
    torch.set_num_threads(n)


def keras_backend_env(backend: str, threads: int, repo: Path) -> dict[str, str]:
    """The environment of a subprocess that runs Keras on ``backend``.

    Keras fixes its backend at import (``KERAS_BACKEND``), so each backend runs
    in a fresh interpreter: its backend, ``threads`` for BLAS/OpenMP (and XLA's
    CPU pool on JAX), and ``repo`` on the import path.
    """
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(repo), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    if backend == "jax" and threads == 1:
        env["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        ).strip()
    return env


def start_keras_child(threads: int) -> None:
    """Set up a Keras subprocess (see :func:`keras_backend_env`) before it imports Keras.

    Pins torch and BLAS to ``threads``, TensorFlow's intra- and inter-op pools
    too on the TensorFlow backend (only possible before its runtime starts,
    i.e. before keras is imported), and logs the library's warnings.
    """
    limit_threads(threads)
    if os.environ.get("KERAS_BACKEND") == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # pragma: no cover - runtime already started
            pass
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@dataclass
class HookTimer:
    """Seconds spent in the wrapped methods of one object, and how many calls."""

    seconds: float = 0.0
    calls: int = 0
    per_hook: dict[str, float] = field(default_factory=dict)


def time_hooks(
    obj: Any,
    names: Iterable[str],
    sync: Callable[[], None] | None = None,
    timer: HookTimer | None = None,
) -> HookTimer:
    """Wrap ``obj``'s methods ``names`` (on the instance) with a stopwatch.

    Missing names are skipped, so the same list works for tracker classes with
    and without a given hook. ``sync`` (e.g. ``torch.cuda.synchronize``) is
    called before starting and before stopping the clock, so that work queued
    on an accelerator is counted where it was launched. ``timer`` adds the
    seconds to an existing timer (the hooks of an object the tracker holds).
    """
    timer = HookTimer() if timer is None else timer

    def wrap(name: str, method: Any) -> Any:
        @functools.wraps(method)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if sync is not None:
                sync()
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                if sync is not None:
                    sync()
                elapsed = time.perf_counter() - start
                timer.seconds += elapsed
                timer.calls += 1
                timer.per_hook[name] = timer.per_hook.get(name, 0.0) + elapsed

        return wrapped

    for name in names:
        method = getattr(obj, name, None)
        if callable(method):
            object.__setattr__(obj, name, wrap(name, method))
    return timer


def timed_read(tracker: Any, timer: HookTimer) -> np.ndarray:
    """Read ``feature_importances_`` and add the time it takes to ``timer``."""
    start = time.perf_counter()
    scores = np.asarray(tracker.feature_importances_, dtype=np.float64)
    timer.seconds += time.perf_counter() - start
    return scores


# ------------------------------------------------------------------ PyTorch
def torch_mlp(n_features: int, n_outputs: int, hidden: Sequence[int] = (64, 64)) -> Any:
    """``Linear -> ReLU`` blocks then a linear output layer (logits or a value)."""
    from torch import nn

    layers: list[nn.Module] = []
    width = n_features
    for units in hidden:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


@functools.cache
def _embedding_mlp_class() -> type:
    """The :func:`torch_embedding_mlp` class, built once on first use (torch is optional)."""
    import torch
    from torch import nn

    class EmbeddingMLP(nn.Module):
        """Embeddings of the leading code columns, concatenated with the rest, then an MLP.

        The input is one float matrix whose first ``len(n_levels)`` columns hold
        integer codes (exact in float32 below 2**24), so the plain training loop,
        :func:`torch_predict` and column permutation work on it unchanged.
        """

        def __init__(
            self,
            n_levels: Sequence[int],
            embedding_dim: int,
            n_numeric: int,
            n_outputs: int,
            hidden: Sequence[int],
        ) -> None:
            super().__init__()
            self.n_codes = len(n_levels)
            self.embeddings = nn.ModuleList(nn.Embedding(k, embedding_dim) for k in n_levels)
            self.mlp = torch_mlp(self.n_codes * embedding_dim + n_numeric, n_outputs, hidden)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            codes = x[:, : self.n_codes].long()
            vectors = [emb(codes[:, j]) for j, emb in enumerate(self.embeddings)]
            return self.mlp(torch.cat([*vectors, x[:, self.n_codes :]], dim=1))

    return EmbeddingMLP


def torch_embedding_mlp(
    n_levels: Sequence[int],
    embedding_dim: int,
    n_numeric: int,
    n_outputs: int = 1,
    hidden: Sequence[int] = (64, 64),
) -> Any:
    """An ``nn.Embedding`` per categorical column, concatenated with numeric inputs, then an MLP.

    The model of the grouped-column benchmark. Its input is
    ``[codes, numeric]`` as one float matrix (codes first, one column per
    embedded column); ``mlp.0`` is the first ``nn.Linear``, whose inputs are
    every embedding's ``embedding_dim`` outputs (in column order) followed by
    the ``n_numeric`` inputs.

    Parameters
    ----------
    n_levels : sequence of int
        Levels of each embedded column (its table's rows).
    embedding_dim : int
        Width of every embedding.
    n_numeric : int
        Numeric and one-hot inputs after the codes.
    n_outputs : int, default=1
    hidden : sequence of int, default=(64, 64)
    """
    return _embedding_mlp_class()(list(n_levels), embedding_dim, n_numeric, n_outputs, hidden)


def n_outputs(task: str, y: np.ndarray) -> int:
    """Logits per class for classification, one value for regression."""
    return int(np.max(y)) + 1 if task == "classification" else 1


def torch_loss(task: str) -> Any:
    """Cross-entropy on logits, or mean squared error."""
    from torch import nn

    return nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()


def torch_target(task: str, y: np.ndarray) -> Any:
    """``y`` as the tensor the loss expects (class indices or an ``(n, 1)`` column)."""
    import torch

    if task == "classification":
        return torch.as_tensor(np.asarray(y), dtype=torch.long)
    return torch.as_tensor(np.asarray(y, dtype=np.float32).reshape(-1, 1))


def train_torch(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    task: str,
    *,
    epochs: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    hooks: Sequence[Any] = (),
    loss: Any = None,
    device: str = "cpu",
) -> float:
    """Train ``model`` in place with Adam; call each tracker's hooks. Returns seconds.

    The returned wall time includes the hooks (they are part of training); the
    hooks' own time is in their :class:`HookTimer`. Integer ``X`` (token
    indices) is passed as ``long``, anything else as ``float32``. With a
    ``device`` other than the CPU the data is moved there first and the clock
    stops after ``torch.cuda.synchronize()``.
    """
    import torch

    X = np.asarray(X)
    dtype = torch.long if np.issubdtype(X.dtype, np.integer) else torch.float32
    inputs = torch.as_tensor(X, dtype=dtype).to(device)
    target = torch_target(task, y).to(device)
    synchronize = torch.cuda.synchronize if str(device).startswith("cuda") else None
    loss_fn = loss if loss is not None else torch_loss(task)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    n = len(inputs)
    model.train()
    if synchronize is not None:
        synchronize()
    start = time.perf_counter()
    for hook in hooks:
        hook.on_train_begin()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(device)
        for begin in range(0, n, batch_size):
            idx = order[begin : begin + batch_size]
            optimizer.zero_grad()
            batch_loss = loss_fn(model(inputs[idx]), target[idx])
            batch_loss.backward()
            optimizer.step()
            for hook in hooks:
                hook.on_step_end()
        for hook in hooks:
            hook.on_epoch_end()
    for hook in hooks:
        hook.on_train_end()
    if synchronize is not None:
        synchronize()
    return time.perf_counter() - start


def torch_predict(model: Any, X: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """Outputs of ``model`` on ``X`` in eval mode, as float64 numpy."""
    import torch

    model.eval()
    with torch.no_grad():
        parts = [
            model(torch.as_tensor(np.asarray(X[i : i + batch_size]), dtype=torch.float32))
            for i in range(0, len(X), batch_size)
        ]
    model.train()
    return torch.cat(parts).double().numpy()


def holdout_score(task: str, outputs: np.ndarray, y: np.ndarray) -> float:
    """Accuracy (argmax of the outputs) or R^2 of a single-output regression."""
    if task == "classification":
        return float(np.mean(outputs.argmax(axis=1) == y))
    pred = outputs.reshape(len(y), -1)[:, 0]
    return float(1.0 - np.sum((y - pred) ** 2) / np.sum((y - np.mean(y)) ** 2))


# -------------------------------------------------------------------- Keras
def keras_mlp(n_features: int, n_outputs: int, hidden: Sequence[int] = (64, 64)) -> Any:
    """The same MLP in Keras (softmax output for classification)."""
    import keras

    layers: list[Any] = [keras.Input((n_features,))]
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden]
    activation = "softmax" if n_outputs > 1 else None
    layers.append(keras.layers.Dense(n_outputs, activation=activation))
    return keras.Sequential(layers)


def train_keras(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    task: str,
    *,
    epochs: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    callbacks: Sequence[Any] = (),
    seed: int = 0,
) -> float:
    """Compile and fit a Keras model with Adam; returns the seconds ``fit`` took.

    The batches are drawn in a new order at every epoch from ``seed``
    (:func:`reshuffled_batches`), as the PyTorch runs' are.
    """
    import keras

    loss = "sparse_categorical_crossentropy" if task == "classification" else "mse"
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss=loss)
    target = np.asarray(y) if task == "classification" else np.asarray(y, dtype=np.float32)
    batches = reshuffled_batches(np.asarray(X, dtype=np.float32), target, batch_size, seed)
    start = time.perf_counter()
    model.fit(batches, epochs=epochs, verbose=0, callbacks=list(callbacks))
    return time.perf_counter() - start


def reshuffled_batches(X: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> Any:
    """``(X, y)`` in batches drawn in a new random order at every epoch, on every backend.

    ``fit(x, y, shuffle=True)`` on Keras's TensorFlow backend repeats the first
    epoch's order at every epoch once ``keras.utils.set_random_seed()`` was
    called (Keras 3.15, TensorFlow 2.21; the JAX and PyTorch backends
    reshuffle): the network then sees the same batches in the same order every
    epoch, unlike the PyTorch runs. A ``PyDataset`` that draws its own order from
    a seeded generator at each epoch's end trains every backend alike.
    """
    import keras

    class _Reshuffled(keras.utils.PyDataset):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(X))

        def __len__(self) -> int:
            return -(-len(X) // batch_size)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            rows = self.order[index * batch_size : (index + 1) * batch_size]
            return X[rows], y[rows]

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(len(X))

    return _Reshuffled()


def keras_predict(model: Any, X: np.ndarray) -> np.ndarray:
    """Outputs of a Keras model as float64 numpy."""
    return np.asarray(model.predict(np.asarray(X, dtype=np.float32), verbose=0), dtype=np.float64)


def keras_embedding_mlp(
    n_levels: Sequence[int],
    embedding_dim: int,
    n_numeric: int,
    n_outputs: int = 1,
    hidden: Sequence[int] = (64, 64),
) -> Any:
    """The Keras twin of :func:`torch_embedding_mlp` (same input layout).

    The first ``Dense`` is named ``"mlp_0"``; its inputs are the embeddings'
    outputs in column order, then the ``n_numeric`` inputs. Keras initialises
    embeddings uniformly in ±0.05 where PyTorch draws N(0, 1), so the two
    networks start differently.
    """
    import keras

    n_codes = len(n_levels)
    inputs = keras.Input((n_codes + n_numeric,))
    parts = []
    for j, levels in enumerate(n_levels):
        codes = keras.layers.Lambda(lambda x, j=j: x[:, j], name=f"codes_{j}")(inputs)
        parts.append(
            keras.layers.Embedding(int(levels), embedding_dim, name=f"embedding_{j}")(codes)
        )
    parts.append(keras.layers.Lambda(lambda x: x[:, n_codes:], name="numeric")(inputs))
    h = keras.layers.Concatenate()(parts)
    for i, units in enumerate(hidden):
        h = keras.layers.Dense(units, activation="relu", name=f"mlp_{i}")(h)
    activation = "softmax" if n_outputs > 1 else None
    outputs = keras.layers.Dense(n_outputs, activation=activation, name="output")(h)
    return keras.Model(inputs, outputs)


# ------------------------------------------------- Keras: epoch clock, traces
def keras_epoch_clock() -> Any:
    """A Keras callback that stamps the clocks at ``on_train_begin`` and every epoch's end.

    Two clocks: ``perf_counter`` (wall time) and ``process_time`` (CPU time of
    the whole process, all its threads). On a shared machine the CPU time is
    the steadier measure of the work done, since waiting for a core is not
    counted. Put the clock *last* in ``callbacks``: Keras calls callbacks in
    list order, so each stamp then comes after the other callbacks' hooks of
    that epoch (a tracker's ``on_epoch_end``, a gradient tap's drain), and
    ``epoch_seconds`` / ``epoch_cpu_seconds`` (differences of consecutive
    stamps) count them as part of the epoch. The first epoch includes tracing
    and compiling the train step. The clock overrides no batch hook, so Keras
    keeps its asynchronous batch dispatch.
    """
    import keras

    class EpochClock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.stamps: list[float] = []
            self.cpu_stamps: list[float] = []

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            self.stamps = [time.perf_counter()]
            self.cpu_stamps = [time.process_time()]

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.stamps.append(time.perf_counter())
            self.cpu_stamps.append(time.process_time())

        @property
        def epoch_seconds(self) -> list[float]:
            return [float(s) for s in np.diff(self.stamps)]

        @property
        def epoch_cpu_seconds(self) -> list[float]:
            return [float(s) for s in np.diff(self.cpu_stamps)]

    return EpochClock()


def count_keras_traces(model: Any) -> Callable[[], int]:
    """Count the Python calls of ``model.train_step``; returns a function that reads the count.

    Set before ``fit``: the TensorFlow and JAX trainers call ``train_step``
    in Python only while tracing the compiled step, so the count is the
    number of traces (the PyTorch backend runs it eagerly: one call a step).
    The wrapper is set on the instance; the model's class is untouched.
    """
    original = model.train_step
    calls = [0]

    @functools.wraps(original)
    def train_step(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    object.__setattr__(model, "train_step", train_step)
    return lambda: calls[0]
