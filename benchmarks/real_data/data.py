"""Real data sets with appended irrelevant columns, and the metrics read off them.

Real data has no planted truth: nobody knows which of breast cancer's 30
measurements the target needs. What *is* known is what was added: columns
appended to the real ones that cannot carry the target, so an importance
method that ranks them above the real columns is wrong about them. Three kinds
are appended (:func:`append_columns`):

- ``permuted``: a copy of a real column with its rows shuffled (each column
  by its own permutation, as Boruta's shadow features): the same values and
  marginal distribution, no relation to the target or to the other columns;
- ``gaussian``: standard normal noise;
- ``near_copy``: a real column plus Gaussian noise (standard deviation
  ``copy_noise`` times the column's, 0.5 by default: correlation 0.89 with
  its original). A near-copy is *not* irrelevant: it carries most of its
  original's signal, and a network may well use it in its original's place.
  It is therefore never counted as irrelevant; its own metric asks whether a
  method sees its signal (near-copies against the irrelevant columns).

Only ``permuted`` and ``gaussian`` columns are the negatives of the main
metric, :func:`appended_metrics`'s ``auc``: the ROC-AUC of the real columns
against them. Real columns that carry nothing (a border pixel of ``digits``)
are positives all the same, so a perfect AUC is not always attainable.

The loaders read only data bundled with installed packages (scikit-learn's
``load_*`` functions and mlxtend's Auto MPG); nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

APPENDED_KINDS: tuple[str, ...] = ("permuted", "gaussian", "near_copy")
IRRELEVANT_KINDS: tuple[str, ...] = ("permuted", "gaussian")
"""The kinds that cannot carry the target: the negatives of the main AUC."""

DEFAULT_APPENDED: dict[str, float] = {"permuted": 1.0, "gaussian": 1.0, "near_copy": 0.5}
"""Appended columns of each kind, as a multiple of the number of real columns (rounded up)."""

COPY_NOISE = 0.5
"""Standard deviation of a near-copy's noise, in units of its original's standard deviation."""


def _sklearn(loader: str) -> Callable[[], tuple[np.ndarray, np.ndarray, list[str]]]:
    def load() -> tuple[np.ndarray, np.ndarray, list[str]]:
        from sklearn import datasets

        bunch = getattr(datasets, loader)()
        names = [str(n) for n in getattr(bunch, "feature_names", [])]
        if not names:
            names = [f"x{j}" for j in range(bunch.data.shape[1])]
        return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target), names

    return load


def _autompg() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """mlxtend's Auto MPG (392 cars; its last column, the car's name, is all NaN and dropped)."""
    from mlxtend.data import autompg_data

    X, y = autompg_data()
    names = [
        "cylinders",
        "displacement",
        "horsepower",
        "weight",
        "acceleration",
        "model_year",
        "origin",
    ]
    return np.asarray(X[:, : len(names)], dtype=np.float64), np.asarray(y, np.float64), names


@dataclass(frozen=True)
class RealSource:
    """A bundled data set: its task, its loader and where it comes from."""

    task: str
    load: Callable[[], tuple[np.ndarray, np.ndarray, list[str]]]
    description: str


REAL_DATASETS: dict[str, RealSource] = {
    "breast_cancer": RealSource(
        "classification",
        _sklearn("load_breast_cancer"),
        "scikit-learn `load_breast_cancer`: 569 tumours, 30 measurements, 2 classes",
    ),
    "wine": RealSource(
        "classification",
        _sklearn("load_wine"),
        "scikit-learn `load_wine`: 178 wines, 13 chemical measurements, 3 cultivars",
    ),
    "digits": RealSource(
        "classification",
        _sklearn("load_digits"),
        "scikit-learn `load_digits`: 1,797 8x8 images, 64 pixels (3 always blank, "
        "dropped), 10 classes",
    ),
    "iris": RealSource(
        "classification",
        _sklearn("load_iris"),
        "scikit-learn `load_iris`: 150 flowers, 4 measurements, 3 species",
    ),
    "diabetes": RealSource(
        "regression",
        _sklearn("load_diabetes"),
        "scikit-learn `load_diabetes`: 442 patients, 10 baseline variables, disease "
        "progression after a year",
    ),
    "autompg": RealSource(
        "regression",
        _autompg,
        "mlxtend `autompg_data`: 392 cars, 7 attributes, fuel consumption (mpg)",
    ),
}
"""The real data sets of the benchmark, by name (all bundled; nothing is downloaded)."""


@dataclass
class RealData:
    """A real data set with appended columns: the real columns first, then the appended ones.

    Attributes
    ----------
    name, task : str
    X : ndarray of shape (n_rows, n_columns)
        Raw (not standardised) values.
    y : ndarray of shape (n_rows,)
    columns : list of str
        ``name`` for a real column, ``permuted:<name>``, ``gaussian:<k>`` or
        ``near_copy:<name>`` for an appended one.
    kind : ndarray of str
        ``"real"`` or one of :data:`APPENDED_KINDS`, per column.
    source : ndarray of int
        The real column a permuted copy or a near-copy was made from (the
        column's own index for a real column, -1 for Gaussian noise).
    """

    name: str
    task: str
    X: np.ndarray
    y: np.ndarray
    columns: list[str]
    kind: np.ndarray
    source: np.ndarray

    @property
    def real(self) -> np.ndarray:
        """Mask of the real columns."""
        return self.kind == "real"

    @property
    def irrelevant(self) -> np.ndarray:
        """Mask of the columns that cannot carry the target (permuted copies, Gaussian noise)."""
        return np.isin(self.kind, IRRELEVANT_KINDS)

    @property
    def n_real(self) -> int:
        return int(self.real.sum())


def load_real(name: str) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """``X, y, feature_names, task`` of a bundled data set, its constant columns dropped.

    A column constant over the whole data set (3 border pixels of ``digits``)
    tells nothing and cannot be standardised; a user would drop it, and so do we.

    Raises
    ------
    ValueError
        For a name not in :data:`REAL_DATASETS`.
    """
    if name not in REAL_DATASETS:
        raise ValueError(f"unknown data set {name!r}; use one of {', '.join(REAL_DATASETS)}.")
    source = REAL_DATASETS[name]
    X, y, names = source.load()
    keep = X.std(axis=0) > 0
    if source.task == "classification":
        y = np.unique(y, return_inverse=True)[1]
    return X[:, keep], y, [n for n, k in zip(names, keep, strict=True) if k], source.task


def append_columns(
    X: np.ndarray,
    rng: np.random.Generator,
    appended: dict[str, float] | None = None,
    copy_noise: float = COPY_NOISE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Append permuted copies, Gaussian noise and near-copies to the real columns ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_real)
    rng : numpy Generator
        Draws the permutations, the noise and which columns get a near-copy.
    appended : dict, optional
        Columns of each kind of :data:`APPENDED_KINDS` as a multiple of
        ``n_real`` (rounded up; 0 for none); default :data:`DEFAULT_APPENDED`.
        Permuted copies take the real columns in order (a multiple above 1
        cycles through them again), near-copies a random choice of them
        (without repetition while there are columns left).
    copy_noise : float, default=0.5
        A near-copy is ``x + copy_noise * sd(x) * N(0, 1)``.

    Returns
    -------
    X_all : ndarray of shape (n_rows, n_real + n_appended)
        The real columns first, then the permuted copies, the Gaussian
        columns and the near-copies.
    kind : ndarray of str
    source : ndarray of int
        See :class:`RealData`.
    """
    appended = dict(DEFAULT_APPENDED if appended is None else appended)
    unknown = sorted(set(appended) - set(APPENDED_KINDS))
    if unknown:
        raise ValueError(f"unknown appended kind(s) {unknown}; use {', '.join(APPENDED_KINDS)}.")
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    counts = {k: int(np.ceil(appended.get(k, 0.0) * d)) for k in APPENDED_KINDS}
    blocks, kinds, sources = [X], ["real"] * d, list(range(d))
    perm_src = np.arange(counts["permuted"]) % d
    permuted = np.empty((n, len(perm_src)))
    for c, j in enumerate(perm_src):
        permuted[:, c] = X[rng.permutation(n), j]
    blocks.append(permuted)
    kinds += ["permuted"] * len(perm_src)
    sources += perm_src.tolist()
    blocks.append(rng.standard_normal((n, counts["gaussian"])))
    kinds += ["gaussian"] * counts["gaussian"]
    sources += [-1] * counts["gaussian"]
    rounds = -(-counts["near_copy"] // d)  # ceil: each round copies every column once
    copy_src = np.concatenate(
        [np.arange(0, dtype=int), *(rng.permutation(d) for _ in range(rounds))]
    )
    copy_src = copy_src[: counts["near_copy"]]
    noise = rng.standard_normal((n, len(copy_src))) * X[:, copy_src].std(axis=0) * copy_noise
    blocks.append(X[:, copy_src] + noise)
    kinds += ["near_copy"] * len(copy_src)
    sources += copy_src.tolist()
    return np.hstack(blocks), np.array(kinds), np.array(sources, dtype=int)


def make_real_problem(
    name: str,
    seed: int,
    appended: dict[str, float] | None = None,
    copy_noise: float = COPY_NOISE,
) -> RealData:
    """A bundled data set with appended columns drawn from ``seed``.

    Examples
    --------
    >>> data = make_real_problem("iris", seed=0)
    >>> data.X.shape, data.n_real, int(data.irrelevant.sum())
    ((150, 14), 4, 8)
    >>> data.columns[4], data.columns[8], data.columns[12][:10]
    ('permuted:sepal length (cm)', 'gaussian:0', 'near_copy:')
    """
    X, y, names, task = load_real(name)
    X_all, kind, source = append_columns(X, np.random.default_rng(seed), appended, copy_noise)
    columns, n_gaussian = list(names), 0
    for k, s in zip(kind[len(names) :], source[len(names) :], strict=True):
        if k == "gaussian":
            columns.append(f"gaussian:{n_gaussian}")
            n_gaussian += 1
        else:
            columns.append(f"{k}:{names[s]}")
    return RealData(name, task, X_all, np.asarray(y), columns, kind, source)


@dataclass
class Split:
    """Standardised training and held-out rows; the held-out rows in two halves.

    The held-out rows are cut in two halves (stratified for classification) so
    that methods which read held-out rows can be cross-fitted: a selection
    chosen with half ``a``'s importances is scored on half ``b``, and the
    reverse (:func:`benchmarks.real_data.run.run_real`).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_a: np.ndarray
    y_a: np.ndarray
    X_b: np.ndarray
    y_b: np.ndarray

    @property
    def X_test(self) -> np.ndarray:
        return np.vstack([self.X_a, self.X_b])

    @property
    def y_test(self) -> np.ndarray:
        return np.concatenate([self.y_a, self.y_b])


def split_standardise(data: RealData, seed: int, test_size: float = 0.3) -> Split:
    """Split the rows, and standardise as a user would: statistics of the training rows only.

    Every column is centred and scaled with the training rows' mean and
    standard deviation (scikit-learn's ``StandardScaler``); a regression target
    too (R² does not change, but an MLP trained with a mean squared error on a
    target of scale 100 learns little in 20 epochs, and LassoNet's loss
    overflows). Classification splits are stratified.
    """
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    classify = data.task == "classification"
    X_train, X_test, y_train, y_test = train_test_split(
        data.X,
        data.y,
        test_size=test_size,
        random_state=seed,
        stratify=data.y if classify else None,
    )
    X_a, X_b, y_a, y_b = train_test_split(
        X_test, y_test, test_size=0.5, random_state=seed, stratify=y_test if classify else None
    )
    scaler = StandardScaler().fit(X_train)
    y_train = np.asarray(y_train)
    ys = [y_train, np.asarray(y_a), np.asarray(y_b)]
    if not classify:
        mean, sd = float(y_train.mean()), float(y_train.std())
        ys = [(v - mean) / sd for v in ys]
    return Split(
        scaler.transform(X_train), ys[0], scaler.transform(X_a), ys[1], scaler.transform(X_b), ys[2]
    )


# -------------------------------------------------------------------- metrics
def appended_metrics(scores: np.ndarray, data: RealData) -> dict[str, float]:
    """How well ``scores`` (one per column, larger = more important) tell real from appended.

    Returns
    -------
    dict
        ``auc``: ROC-AUC of the real columns against the irrelevant ones
        (permuted copies and Gaussian noise); ``auc_permuted`` and
        ``auc_gaussian``: against each kind alone; ``auc_copies``: the
        near-copies against the irrelevant columns (does the method see a
        near-copy's signal?); ``copy_below_original``: share of near-copies
        scored below their original (ties count one half). NaN where a kind is
        absent.
    """
    from benchmarks.metrics import roc_auc

    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape != (len(data.columns),):
        raise ValueError(
            f"{scores.shape[0]} scores for the {len(data.columns)} columns of {data.name}"
        )

    def auc(positive: np.ndarray, negative: np.ndarray) -> float:
        keep = positive | negative
        return roc_auc(scores[keep], positive[keep])

    copies = data.kind == "near_copy"
    out = {
        "auc": auc(data.real, data.irrelevant),
        "auc_permuted": auc(data.real, data.kind == "permuted"),
        "auc_gaussian": auc(data.real, data.kind == "gaussian"),
        "auc_copies": auc(copies, data.irrelevant),
        "copy_below_original": float("nan"),
    }
    if copies.any():
        copy_scores, original = scores[copies], scores[data.source[copies]]
        below = (copy_scores < original) + 0.5 * (copy_scores == original)
        out["copy_below_original"] = float(np.mean(below))
    return out


def top_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest ``scores`` (NaN last; ties by column order), sorted."""
    scores = np.asarray(scores, dtype=np.float64)
    if not 1 <= k <= len(scores):
        raise ValueError(f"k={k} must be between 1 and the number of columns ({len(scores)}).")
    filled = np.where(np.isfinite(scores), scores, -np.inf)
    return np.sort(np.argsort(-filled, kind="stable")[:k])


def selection_size(fraction: float, n_real: int) -> int:
    """Columns kept at ``fraction``: of the *real* columns' count, rounded, at least 1."""
    return max(1, int(np.floor(fraction * n_real + 0.5)))


def kind_counts(columns: Sequence[int] | np.ndarray, data: RealData) -> dict[str, int]:
    """How many of ``columns`` are of each kind (``real`` and :data:`APPENDED_KINDS`)."""
    kinds = data.kind[np.asarray(columns, dtype=int)]
    return {k: int(np.sum(kinds == k)) for k in ("real", *APPENDED_KINDS)}
