"""Synthetic data sets with planted truth: which features drive the target is known.

Used by the accuracy benchmark (`python -m benchmarks.truth`), the tests and
examples: an importance method is good when it ranks the `informative`
features above the others. Everything is generated on the spot (scikit-learn's
generators, mlxtend's multiplexer and numpy), so nothing is downloaded.

| name | task | features | informative | what is planted |
| --- | --- | --- | --- | --- |
| classification | classification | 40 | 6 | `make_classification`; the rest is noise |
| friedman1 | regression | 20 | 5 | `make_friedman1`: sin, square and the linear terms x3, x4; the rest is noise |
| xor | classification | 20 | 3 | sign of `x_a * x_b` (an interaction with no marginal effect) plus a weak linear feature `x_c` |
| correlated_decoys | regression | 20 | 4 | linear target of 4 features; 8 decoys correlated (r ~ 0.8) with them that do not enter the target |
| multiplexer | classification | 20 | 6 | mlxtend's 6-bit multiplexer (2 address + 4 register bits) padded with 14 noise bits |
| high_dim | regression | 500 | 10 | low signal-to-noise (SNR 1): 5 linear, 3 quadratic, 1 interacting pair; 50 correlated decoys; 440 noise features |
| effect_shapes | regression | 30 | 9 | one feature per effect shape: step, sine, absolute value, saturation, cubic, bump, a rare tail effect and a multiplicative pair; 22 noise features |
| redundant_clusters | classification | 300 | 15 | `make_classification` (Madelon's design): 5 informative features, 10 redundant ones (random linear combinations of them), 285 noise |
| redundant_regression | regression | 300 | 12 | 6 sources with linear, sine, square, absolute-value and interaction effects, 6 redundant features (linear combinations of the sources); SNR 2; 288 noise features |

Redundant features carry the same information as the informative ones they
are combined from, so they count as relevant (`informative`), as in the
feature-selection literature (Guyon et al., NIPS 2003 feature selection
challenge, whose Madelon set `make_classification` follows): a method may
rank either the sources or their combinations first, but must rank both
above the noise.

The informative columns are placed at random positions (seeded), so a method
that favours the first columns gains nothing. `X` is standardised column by
column over the whole set (the VIANN paper's preprocessing) and regression
targets are standardised too; classification targets are integer labels.

Examples
--------
>>> data = make_synthetic("friedman1", n_samples=200, random_state=0)
>>> data.X.shape, int(data.informative.sum()), data.task
((200, 20), 5, 'regression')
"""  # noqa: E501

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from neural_feature_importance._optional import import_optional

logger = logging.getLogger(__name__)

SYNTHETIC_DATASETS: tuple[str, ...] = (
    "classification",
    "friedman1",
    "xor",
    "correlated_decoys",
    "multiplexer",
    "high_dim",
    "effect_shapes",
    "redundant_clusters",
    "redundant_regression",
)
"""Names accepted by [`make_synthetic()`][make_synthetic]: the original six easiest first, then
the effect-shape and redundant-feature problems."""

DEFAULT_N_SAMPLES: dict[str, int] = {
    "classification": 2000,
    "friedman1": 2000,
    "xor": 2000,
    "correlated_decoys": 2000,
    "multiplexer": 2000,
    "high_dim": 4000,
    "effect_shapes": 2000,
    "redundant_clusters": 3000,
    "redundant_regression": 3000,
}
"""Rows generated when `n_samples` is not given."""

_Generated = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]
"""`(X, y, informative, decoys, task)` with the informative columns first."""


def _import_sklearn() -> Any:
    import_optional("sklearn.datasets", "make_synthetic")  # loads the submodules used as
    import_optional("sklearn.utils", "make_synthetic")  # sklearn.datasets / sklearn.utils
    return import_optional("sklearn", "make_synthetic")


def _masks(n_features: int, n_informative: int, n_decoys: int = 0) -> tuple[np.ndarray, np.ndarray]:
    informative = np.zeros(n_features, dtype=bool)
    informative[:n_informative] = True
    decoys = np.zeros(n_features, dtype=bool)
    decoys[n_informative : n_informative + n_decoys] = True
    return informative, decoys


def _two_class_clusters(
    n: int, rng: np.random.Generator, n_features: int, n_informative: int, n_redundant: int
) -> tuple[np.ndarray, np.ndarray]:
    """`make_classification`'s two classes of two clusters each, columns in order.

    The informative columns come first, then the redundant ones (random linear
    combinations of them), then noise; `make_synthetic` permutes the columns.
    """
    sklearn = _import_sklearn()
    X, y = sklearn.datasets.make_classification(
        n_samples=n,
        n_features=n_features,
        n_informative=n_informative,
        n_redundant=n_redundant,
        n_repeated=0,
        n_classes=2,
        n_clusters_per_class=2,
        flip_y=0.02,
        class_sep=1.0,
        shuffle=False,  # informative columns first; we permute them ourselves
        random_state=int(rng.integers(2**31 - 1)),
    )
    return X, y


def _classification(n: int, rng: np.random.Generator) -> _Generated:
    X, y = _two_class_clusters(n, rng, n_features=40, n_informative=6, n_redundant=0)
    return (X, y, *_masks(40, 6), "classification")


def _friedman1(n: int, rng: np.random.Generator) -> _Generated:
    sklearn = _import_sklearn()
    # y = 10 sin(pi x0 x1) + 20 (x2 - 0.5)^2 + 10 x3 + 5 x4 + noise; x5.. are noise.
    X, y = sklearn.datasets.make_friedman1(
        n_samples=n, n_features=20, noise=1.0, random_state=int(rng.integers(2**31 - 1))
    )
    return (X, y, *_masks(20, 5), "regression")


def _xor(n: int, rng: np.random.Generator) -> _Generated:
    X = rng.normal(size=(n, 20))
    # The label is the sign of an interaction: x0 and x1 have no marginal effect,
    # so methods that look at one feature at a time (or only at linear effects)
    # miss them. x2 is a weak linear push on the same logit.
    logit = 4.0 * X[:, 0] * X[:, 1] + 0.75 * X[:, 2]
    y = (logit + rng.logistic(size=n) > 0).astype(np.int64)
    return (X, y, *_masks(20, 3), "classification")


def _correlated_block(
    rng: np.random.Generator, sources: np.ndarray, per_source: int, correlation: float
) -> np.ndarray:
    """`per_source` noisy copies of each column of `sources` at the given correlation."""
    noise_scale = np.sqrt(1.0 - correlation**2)
    copies = [
        correlation * sources[:, [k]] + noise_scale * rng.normal(size=(len(sources), per_source))
        for k in range(sources.shape[1])
    ]
    return np.hstack(copies)


def _correlated_decoys(n: int, rng: np.random.Generator) -> _Generated:
    true = rng.normal(size=(n, 4))
    decoys = _correlated_block(rng, true, per_source=2, correlation=0.8)
    noise = rng.normal(size=(n, 8))
    X = np.hstack([true, decoys, noise])
    beta = np.array([2.0, -1.5, 1.0, 0.75])
    y = true @ beta + 0.5 * rng.normal(size=n)
    return (X, y, *_masks(20, 4, n_decoys=8), "regression")


def _multiplexer(n: int, rng: np.random.Generator) -> _Generated:
    mlxtend_data = import_optional("mlxtend.data", "the multiplexer data set")
    bits, y = mlxtend_data.make_multiplexer_dataset(
        address_bits=2,
        sample_size=n,
        positive_class_ratio=0.5,
        shuffle=True,
        random_seed=int(rng.integers(2**31 - 1)),
    )
    noise_bits = rng.integers(0, 2, size=(n, 14))
    X = np.hstack([bits, noise_bits]).astype(np.float64)
    return (X, np.asarray(y, dtype=np.int64), *_masks(20, 6), "classification")


def _high_dim(n: int, rng: np.random.Generator) -> _Generated:
    true = rng.normal(size=(n, 10))
    signal = (
        true[:, :5] @ np.array([1.0, -0.8, 0.6, -0.5, 0.4])  # linear
        + 0.5 * (true[:, 5:8] ** 2 - 1.0).sum(axis=1)  # quadratic: no linear trace
        + 0.7 * true[:, 8] * true[:, 9]  # one interacting pair
    )
    noise = rng.normal(size=n)
    # Signal-to-noise ratio 1: at best half of y's variance can be explained.
    y = signal + noise * signal.std()
    decoys = _correlated_block(rng, true, per_source=5, correlation=0.7)
    rest = rng.normal(size=(n, 440))
    X = np.hstack([true, decoys, rest])
    return (X, y, *_masks(500, 10, n_decoys=50), "regression")


def _effect_shapes(n: int, rng: np.random.Generator) -> _Generated:
    X = rng.normal(size=(n, 30))
    # One feature per shape, each scaled to a comparable share of the signal.
    # None of the even shapes (|x|, bump) has a linear trace, the step and the
    # tail effect are flat almost everywhere, and the pair has no marginal effect.
    effects = [
        (X[:, 0] > 0.5).astype(np.float64),  # step
        np.sin(2.0 * X[:, 1]),  # sine, two half-periods over the bulk
        np.abs(X[:, 2]),  # absolute value
        np.tanh(3.0 * X[:, 3]),  # saturation
        X[:, 4] ** 3,  # cubic: heavy-tailed contribution
        np.exp(-2.0 * X[:, 5] ** 2),  # bump around 0
        np.maximum(X[:, 6] - 1.5, 0.0) * 4.0,  # rare tail: only ~7 % of the rows
        X[:, 7] * X[:, 8],  # multiplicative pair (two features)
    ]
    signal = sum(e / e.std() for e in effects)
    y = signal + 0.5 * signal.std() * rng.normal(size=n)  # SNR 4
    return (X, y, *_masks(30, 9), "regression")


def _redundant_clusters(n: int, rng: np.random.Generator) -> _Generated:
    # Madelon's construction: informative features on the vertices of a
    # hypercube (two clusters per class), redundant ones random linear
    # combinations of them, then noise.
    X, y = _two_class_clusters(n, rng, n_features=300, n_informative=5, n_redundant=10)
    rows = rng.permutation(n)  # make_classification without shuffle sorts the rows by class
    return (X[rows], y[rows], *_masks(300, 15), "classification")


def _redundant_regression(n: int, rng: np.random.Generator) -> _Generated:
    sources = rng.normal(size=(n, 6))
    signal = (
        sources[:, 0]
        - 0.8 * sources[:, 1]
        + np.sin(2.0 * sources[:, 2])
        + 0.6 * (sources[:, 3] ** 2 - 1.0)
        + 0.8 * (np.abs(sources[:, 4]) - np.sqrt(2.0 / np.pi)) / 0.6
        + 0.7 * sources[:, 4] * sources[:, 5]
    )
    y = signal + 0.5**0.5 * signal.std() * rng.normal(size=n)  # SNR 2
    # Each redundant feature mixes two or three sources with random weights plus
    # a little noise of its own, so it is informative only through them.
    mixing = np.zeros((6, 6))
    for k in range(6):
        chosen = rng.choice(6, size=int(rng.integers(2, 4)), replace=False)
        mixing[chosen, k] = rng.uniform(0.5, 1.0, size=len(chosen)) * rng.choice(
            [-1, 1], len(chosen)
        )
    redundant = sources @ mixing + 0.2 * rng.normal(size=(n, 6))
    noise = rng.normal(size=(n, 288))
    X = np.hstack([sources, redundant, noise])
    return (X, y, *_masks(300, 12), "regression")


_GENERATORS: dict[str, Callable[[int, np.random.Generator], _Generated]] = {
    "classification": _classification,
    "friedman1": _friedman1,
    "xor": _xor,
    "correlated_decoys": _correlated_decoys,
    "multiplexer": _multiplexer,
    "high_dim": _high_dim,
    "effect_shapes": _effect_shapes,
    "redundant_clusters": _redundant_clusters,
    "redundant_regression": _redundant_regression,
}


def _standardize(a: np.ndarray) -> np.ndarray:
    scale = a.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return (a - a.mean(axis=0)) / scale


def make_synthetic(name: str, *, n_samples: int | None = None, random_state: int = 0) -> Any:
    """Generate a data set whose informative features are known.

    Parameters
    ----------
    name : str
        One of [`SYNTHETIC_DATASETS`][].
    n_samples : int, optional
        Number of rows; default `DEFAULT_N_SAMPLES[name]`.
    random_state : int, default=0
        Seed of everything random: the data, the noise and the column order.

    Returns
    -------
    sklearn.utils.Bunch
        - `X`: float64 `(n_samples, n_features)`, each column standardised.
        - `y`: int64 labels (classification) or standardised float64 values
          (regression), `(n_samples,)`.
        - `informative`: bool mask `(n_features,)`, True for the features
          that enter the target.
        - `decoys`: bool mask of the features built to correlate with an
          informative one without entering the target (all False where none).
        - `n_informative`: `informative.sum()`.
        - `task`: `"classification"` or `"regression"`.
        - `name`, `feature_names` (`"x0"`, `"x1"`, ...), `random_state`.

    Raises
    ------
    ValueError
        For an unknown `name` or a `n_samples` below 20.

    Examples
    --------
    >>> data = make_synthetic("xor", n_samples=100, random_state=1)
    >>> data.X.shape, data.n_informative
    ((100, 20), 3)
    """
    if name not in _GENERATORS:
        raise ValueError(
            f"unknown synthetic data set {name!r}; use one of {', '.join(SYNTHETIC_DATASETS)}."
        )
    n = DEFAULT_N_SAMPLES[name] if n_samples is None else n_samples
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 20:
        raise ValueError(f"n_samples={n_samples!r}; use an integer of at least 20 (or None).")
    sklearn = _import_sklearn()
    rng = np.random.default_rng(random_state)
    X, y, informative, decoys, task = _GENERATORS[name](int(n), rng)
    order = rng.permutation(X.shape[1])
    X, informative, decoys = X[:, order], informative[order], decoys[order]
    X = _standardize(np.asarray(X, dtype=np.float64))
    if task == "regression":
        y = _standardize(np.asarray(y, dtype=np.float64))
    else:
        y = np.asarray(y, dtype=np.int64)
    logger.debug(
        "make_synthetic(%r): X %s, informative %s", name, X.shape, np.flatnonzero(informative)
    )
    return sklearn.utils.Bunch(
        X=X,
        y=y,
        informative=informative,
        decoys=decoys,
        n_informative=int(informative.sum()),
        task=task,
        name=name,
        feature_names=[f"x{i}" for i in range(X.shape[1])],
        random_state=random_state,
    )
