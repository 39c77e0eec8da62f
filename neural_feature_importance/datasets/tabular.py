"""The six tabular data sets of the VIANN paper, behind one loader.

de Sá (Discovery Science 2019) compares importance methods on four
classification sets and two regression sets:

| name | task | samples | features | source |
| --- | --- | --- | --- | --- |
| breastcancer | classification | 569 | 30 | `sklearn.datasets.load_breast_cancer` |
| digits | classification | 1,797 | 64 | `sklearn.datasets.load_digits` |
| iris | classification | 150 | 4 | `sklearn.datasets.load_iris` |
| wine | classification | 178 | 13 | `sklearn.datasets.load_wine` |
| boston | regression | 506 | 13 | `mlxtend.data.boston_housing_data` |
| diabetes | regression | 442 | 10 | `sklearn.datasets.load_diabetes` |

All of them ship inside installed packages, so nothing is downloaded.

**Boston housing.** scikit-learn removed `load_boston` in version 1.2. We take
the same 506 x 13 table from mlxtend (`mlxtend.data.boston_housing_data`),
which bundles it, rather than shipping a copy of the data in this package: it
keeps the package free of third-party data files and mlxtend is already part
of the `experiments` extra. The values are those of the UCI file the paper
used. Note that the set is kept only to reproduce the paper; its `B` column
encodes a racial statistic and the data set should not be used to build new
models (see scikit-learn's deprecation note for `load_boston`).

`load_dataset(name, preprocess=True)` applies the paper's preprocessing:
`X` standardised column by column (`sklearn.preprocessing.scale`),
classification targets one-hot encoded, regression targets standardised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

import numpy as np

from neural_feature_importance._optional import import_optional

logger = logging.getLogger(__name__)

Task = Literal["classification", "regression"]

PAPER_DATASETS: tuple[str, ...] = (
    "breastcancer",
    "digits",
    "iris",
    "wine",
    "boston",
    "diabetes",
)
"""The paper's data sets, in the order of its tables."""

DATASET_TASKS: dict[str, Task] = {
    "breastcancer": "classification",
    "digits": "classification",
    "iris": "classification",
    "wine": "classification",
    "boston": "regression",
    "diabetes": "regression",
}
"""Task of each data set in [`PAPER_DATASETS`][]."""

_ALIASES = {
    "breast_cancer": "breastcancer",
    "breast-cancer": "breastcancer",
    "boston_housing": "boston",
    "boston-housing": "boston",
}

BOSTON_FEATURE_NAMES: tuple[str, ...] = (
    "CRIM",
    "ZN",
    "INDUS",
    "CHAS",
    "NOX",
    "RM",
    "AGE",
    "DIS",
    "RAD",
    "TAX",
    "PTRATIO",
    "B",
    "LSTAT",
)


@dataclass(frozen=True)
class TabularDataset:
    """A tabular data set: features, target and what they mean.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
        Features (float64); standardised when loaded with `preprocess=True`.
    y : ndarray
        The target a network is trained on. Raw: class labels `0 .. k-1`
        (int64) or the regression target (float64), shape `(n_samples,)`.
        Preprocessed: one-hot `(n_samples, n_classes)` float64, or the
        standardised regression target `(n_samples,)`.
    target : ndarray of shape (n_samples,)
        Class labels or the regression target before preprocessing (for
        models such as random forests that want labels).
    feature_names : tuple of str
        Name of every column of `X`.
    target_names : tuple of str
        Class names (classification) or the target's name (regression).
    task : {"classification", "regression"}
    name : str
        Canonical name, one of [`PAPER_DATASETS`][].
    source : str
        The function the data came from.
    preprocessed : bool
        Whether the paper's preprocessing was applied.
    """

    X: np.ndarray
    y: np.ndarray
    target: np.ndarray
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]
    task: Task
    name: str
    source: str
    preprocessed: bool

    @property
    def n_samples(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of feature columns."""
        return int(self.X.shape[1])

    @property
    def n_outputs(self) -> int:
        """Output units a network needs: classes, or 1 for regression."""
        return len(self.target_names) if self.task == "classification" else 1


def _import_sklearn_datasets() -> ModuleType:
    return import_optional("sklearn.datasets", "loading the paper's data sets")


def _from_sklearn(loader_name: str) -> Callable[[], tuple]:
    def load() -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...], str]:
        bunch = getattr(_import_sklearn_datasets(), loader_name)()
        names = tuple(str(n) for n in getattr(bunch, "feature_names", ()))
        if not names:
            names = tuple(f"x{i}" for i in range(bunch.data.shape[1]))
        if hasattr(bunch, "target_names"):
            targets = tuple(str(t) for t in bunch.target_names)
        else:
            targets = ("target",)
        return bunch.data, bunch.target, names, targets, f"sklearn.datasets.{loader_name}"

    return load


def _load_boston() -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...], str]:
    # scikit-learn removed load_boston in 1.2; mlxtend bundles the same UCI table.
    mlxtend_data = import_optional("mlxtend.data", "the Boston housing data (mlxtend's copy)")
    data, target = mlxtend_data.boston_housing_data()
    return data, target, BOSTON_FEATURE_NAMES, ("MEDV",), "mlxtend.data.boston_housing_data"


_LOADERS: dict[str, Callable[[], tuple]] = {
    "breastcancer": _from_sklearn("load_breast_cancer"),
    "digits": _from_sklearn("load_digits"),
    "iris": _from_sklearn("load_iris"),
    "wine": _from_sklearn("load_wine"),
    "boston": _load_boston,
    "diabetes": _from_sklearn("load_diabetes"),
}


def canonical_name(name: str) -> str:
    """Return the canonical name of a paper data set (`"breast_cancer"` -> `"breastcancer"`).

    Raises
    ------
    ValueError
        If `name` is not one of [`PAPER_DATASETS`][] (or an alias).
    """
    if not isinstance(name, str):
        raise TypeError(f"a data set name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _LOADERS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(PAPER_DATASETS)}.")
    return key


def standardize(values: np.ndarray) -> np.ndarray:
    """Centre every column to mean 0 and scale it to (population) std 1.

    The paper's `sklearn.preprocessing.scale`, which this calls: a constant
    column is only centred (it stays 0), never divided by zero. 1-D input is
    one column.

    Examples
    --------
    >>> standardize(np.array([1.0, 2.0, 3.0])).round(4).tolist()
    [-1.2247, 0.0, 1.2247]
    """
    preprocessing = import_optional("sklearn.preprocessing", "standardize (the paper's scale)")
    return preprocessing.scale(np.asarray(values, dtype=np.float64))


def one_hot(labels: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """Encode integer labels `0 .. k-1` as a float64 one-hot matrix.

    Examples
    --------
    >>> one_hot(np.array([0, 2, 1])).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError("labels must be non-negative integers 0 .. n_classes - 1")
    k = int(labels.max()) + 1 if n_classes is None else int(n_classes)
    if labels.size and int(labels.max()) >= k:
        raise ValueError(f"a label is {int(labels.max())}, but n_classes={k}")
    out = np.zeros((labels.size, k), dtype=np.float64)
    out[np.arange(labels.size), labels] = 1.0
    return out


def load_dataset(name: str, *, preprocess: bool = False) -> TabularDataset:
    """Load one of the paper's data sets, optionally preprocessed as in the paper.

    Parameters
    ----------
    name : str
        One of [`PAPER_DATASETS`][] (`"breastcancer"`, `"digits"`,
        `"iris"`, `"wine"`, `"boston"`, `"diabetes"`); case-insensitive,
        `"breast_cancer"` and `"boston_housing"` are accepted too.
    preprocess : bool, default=False
        Apply the paper's preprocessing: `X` standardised column by column,
        classification targets one-hot, regression targets standardised.
        `target` keeps the untouched labels or values either way.

    Returns
    -------
    TabularDataset

    Examples
    --------
    >>> data = load_dataset("iris", preprocess=True)
    >>> data.X.shape, data.y.shape, data.task
    ((150, 4), (150, 3), 'classification')
    """
    key = canonical_name(name)
    data, target, feature_names, target_names, source = _LOADERS[key]()
    task = DATASET_TASKS[key]
    X = np.asarray(data, dtype=np.float64)
    if task == "classification":
        target = np.asarray(target).astype(np.int64)
    else:
        target = np.asarray(target, dtype=np.float64)
    y = target.copy()
    if preprocess:
        X = standardize(X)
        y = one_hot(target, len(target_names)) if task == "classification" else standardize(target)
    logger.debug("loaded %s from %s: X %s, y %s", key, source, X.shape, y.shape)
    return TabularDataset(
        X=X,
        y=y,
        target=target,
        feature_names=tuple(feature_names),
        target_names=tuple(target_names),
        task=task,
        name=key,
        source=source,
        preprocessed=preprocess,
    )


def load_paper_datasets(
    names: tuple[str, ...] | list[str] | None = None, *, preprocess: bool = True
) -> dict[str, TabularDataset]:
    """Load several paper data sets at once, preprocessed by default.

    Parameters
    ----------
    names : sequence of str, optional
        Which sets; all of [`PAPER_DATASETS`][] by default.
    preprocess : bool, default=True
        See [`load_dataset()`][load_dataset].

    Returns
    -------
    dict
        Canonical name -> [`TabularDataset`][], in the order given.
    """
    names = PAPER_DATASETS if names is None else tuple(names)
    out: dict[str, TabularDataset] = {}
    for name in names:
        data = load_dataset(name, preprocess=preprocess)
        out[data.name] = data
    return out
