"""Training-time feature-selection networks: the ``selector`` peers of the benchmark.

Where VIANN watches a network train, these methods train *their own* network
with a selection penalty and read the importances off it, so their whole cost
is extra training. Two peers:

- :func:`lassonet_selection`: LassoNet (Lemhadri, Ruan, Abraham & Tibshirani,
  JMLR 2021) through the ``lassonet`` package; a residual network whose
  skip-connection's L1 penalty is raised along a path until no feature is left.
  A feature's importance is the penalty at which it leaves the model
  (``feature_importances_``).
- :func:`stg_selection`: Stochastic Gates (Yamada, Lindenbaum, Negahban &
  Kluger, ICML 2020, "Feature Selection using Stochastic Gates"), written here
  in plain PyTorch after the reference code (github.com/runopti/stg,
  ``stg/layers.py``, ``FeatureSelector``): a gate per input in front of the
  benchmark's MLP, trained with the expected number of open gates as a
  penalty. A feature's importance is its gate mean ``mu``.

The PyPI package ``stg`` (0.1.2) cannot be used: it imports ``lifelines``
(which pins ``pandas<3``) and its ``fit`` fails on Python 3.10 and later
(``collections.Sequence`` in ``stg/utils.py``).

Both read the benchmark's network settings from :attr:`Trained.settings
<benchmarks.methods.Trained.settings>` (``hidden``, ``epochs``,
``batch_size``, ``lr``; missing keys take :data:`DEFAULT_SETTINGS`), train on
the training rows only and report their own network's held-out score in a
:class:`Selection`. :func:`lassonet_importance` and :func:`stg_importance`
return the importances alone.

Examples
--------
>>> import numpy as np
>>> from benchmarks.methods import Trained
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((300, 10))
>>> y = 2 * X[:, 0] - 2 * X[:, 1] + 0.1 * rng.standard_normal(300)
>>> t = Trained(None, "regression", X[:225], y[:225], X[225:], y[225:], seed=0)
>>> np.argsort(-stg_importance(t))[:2]  # doctest: +SKIP
array([1, 0])
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from benchmarks.methods import Trained

logger = logging.getLogger(__name__)

DEFAULT_SETTINGS: Mapping[str, Any] = {
    "hidden": (64, 64),
    "epochs": 30,
    "batch_size": 32,
    "lr": 1e-3,
}
"""The benchmark MLP's settings, used for any key missing from ``Trained.settings``."""

STG_LAMBDA = 0.1
"""Weight of the STG penalty: ``lam=0.1``, the default of the reference code's
``STG`` class and models (github.com/runopti/stg, ``stg/stg.py``, ``stg/models.py``)."""

STG_SIGMA = 0.5
"""Standard deviation of the gates' training noise: ``sigma=0.5``, the default of the
reference ``STG`` class and the value of the paper's experiments."""

LASSONET_INSTALL = (
    "LassoNet needs the lassonet package: pip install lassonet "
    "(or pip install 'neural-feature-importance[benchmarks]')"
)


@dataclass
class Selection:
    """What a selector returns: the importances and its own network's held-out score.

    Attributes
    ----------
    importances : ndarray of shape (n_features,)
        Larger = more important.
    test_score : float
        Accuracy or R² (:func:`~benchmarks.training.holdout_score`) of the
        selector's own network on the test rows; NaN if not measured.
    details : dict
        Method-specific extras (the gate probabilities, the path's length).
    """

    importances: np.ndarray
    test_score: float = float("nan")
    details: dict[str, Any] = field(default_factory=dict)


def network_settings(t: Trained) -> dict[str, Any]:
    """The benchmark's network settings of ``t``, defaults filled in.

    Returns
    -------
    dict
        ``hidden`` (tuple of int), ``epochs``, ``batch_size`` (int) and ``lr``
        (float), from ``t.settings`` or :data:`DEFAULT_SETTINGS`.
    """
    given = getattr(t, "settings", None) or {}
    merged = {key: given.get(key, default) for key, default in DEFAULT_SETTINGS.items()}
    return {
        "hidden": tuple(int(units) for units in merged["hidden"]),
        "epochs": int(merged["epochs"]),
        "batch_size": int(merged["batch_size"]),
        "lr": float(merged["lr"]),
    }


def _n_outputs(t: Trained) -> int:
    """Outputs of the benchmark's network: one logit per class seen anywhere, or one value."""
    from benchmarks.training import n_outputs

    return n_outputs(t.task, np.concatenate([np.asarray(t.y_train), np.asarray(t.y_test)]))


# ------------------------------------------------------------------- LassoNet
def lassonet_selection(t: Trained, **lassonet_kwargs: Any) -> Selection:
    """LassoNet's whole regularisation path on the training rows; its ``feature_importances_``.

    The estimator (``LassoNetClassifier`` or ``LassoNetRegressor``, by
    ``t.task``) gets the benchmark MLP's hidden widths (``hidden_dims``), the
    seed (``random_state`` for its validation split, ``torch_seed`` for the
    initialisation), ``verbose=0`` and ``device="cpu"`` (the benchmark times
    everything on the CPU; LassoNet would pick a GPU when there is one).
    Everything else is LassoNet's own default, as users run it (lassonet
    0.0.21): LassoNet holds out 10 % of the rows it is given
    (``val_size=0.1``) for early stopping; it trains the dense network
    full-batch (``batch_size=None``) with Adam (lr 1e-3) for up to 1000 epochs
    (patience 100), then walks the path: the penalty starts at an automatic
    ``lambda_start`` and grows by 2 % a step (``path_multiplier=1.02``), each
    step up to 100 epochs of SGD (lr 1e-3, momentum 0.9, patience 10), until
    no feature is left; hierarchy ``M=10``. The benchmark's ``epochs``,
    ``batch_size`` and ``lr`` therefore do not apply. The path has a few
    hundred steps (about 400 on ``friedman1`` and ``high_dim``), and the
    automatic ``lambda_start`` alone (up to 10,000 proximal iterations per
    candidate value) takes seconds, so one run costs tens of seconds on one
    core whatever the number of rows.

    Only the training rows go in; the test rows stay held out for the score:
    ``test_score`` is that of the network at the step of the path with the
    lowest validation loss (LassoNet's own split), the model a user would
    pick, measured through the path's ``callback``.

    Parameters
    ----------
    t : Trained
        ``t.model`` is not used.
    **lassonet_kwargs
        Override the estimator's arguments (e.g. ``path_multiplier=1.2`` or
        ``n_iters=(100, 10)`` for a short path in tests); the benchmark passes
        none, except in its throw-away warm-up run. ``t.settings["lassonet"]``
        (a mapping) is applied first.

    Returns
    -------
    Selection
        ``importances``: the penalty at which each feature leaves the model
        (larger = more important; features that never leave, if the path is
        cut short, rank above all others); ``details``: ``n_lambdas`` (steps
        on the path), ``lambda_start``.

    Raises
    ------
    ImportError
        Without the ``lassonet`` package, with the command that installs it.
    """
    try:
        import lassonet
    except ImportError as exc:
        raise ImportError(LASSONET_INSTALL) from exc
    import torch

    from benchmarks.training import holdout_score

    settings = network_settings(t)
    kwargs: dict[str, Any] = {
        "hidden_dims": settings["hidden"],
        "random_state": t.seed,
        "torch_seed": t.seed,
        "verbose": 0,
        "device": "cpu",
    }
    kwargs.update(dict((getattr(t, "settings", None) or {}).get("lassonet", {})))
    kwargs.update(lassonet_kwargs)
    cls = lassonet.LassoNetClassifier if t.task == "classification" else lassonet.LassoNetRegressor
    estimator = cls(**kwargs)
    X_test = torch.as_tensor(np.asarray(t.X_test), dtype=torch.float32)
    best = {"val_loss": math.inf, "test_score": math.nan}

    def score_step(model: Any, history: list[Any]) -> None:
        """After each step of the path: the held-out score of the step best on validation."""
        if not history or not history[-1].val_loss < best["val_loss"]:
            return
        net = model.model
        net.eval()
        with torch.no_grad():
            outputs = net(X_test).double().numpy()
        best.update(
            val_loss=float(history[-1].val_loss),
            test_score=holdout_score(t.task, outputs, np.asarray(t.y_test)),
        )

    # torch_seed calls torch.manual_seed: keep the caller's random state as it was.
    with torch.random.fork_rng(devices=[]):
        path = estimator.path(
            np.asarray(t.X_train, dtype=np.float32),
            np.asarray(t.y_train),
            return_state_dicts=False,
            callback=score_step,
        )
    scores = estimator.feature_importances_.detach().double().numpy().copy()
    never_left = ~np.isfinite(scores)
    if never_left.any():
        finite = scores[~never_left]
        scores[never_left] = 2.0 * finite.max() + 1.0 if finite.size else 1.0
    return Selection(
        importances=scores,
        test_score=float(best["test_score"]),
        details={
            "n_lambdas": len(path) - 1,
            "lambda_start": float(getattr(estimator, "lambda_start_", estimator.lambda_start)),
        },
    )


def lassonet_importance(t: Trained) -> np.ndarray:
    """LassoNet's ``feature_importances_`` (float64): see :func:`lassonet_selection`."""
    return lassonet_selection(t).importances


# --------------------------------------------------------- Stochastic Gates
def stg_gate(mu: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """The stochastic gates ``clamp(mu + noise + 0.5, 0, 1)`` (no noise: their eval value).

    Examples
    --------
    >>> import torch
    >>> stg_gate(torch.tensor([-1.0, 0.0, 0.2, 1.0])).tolist()
    [0.0, 0.5, 0.699999988079071, 1.0]
    """
    import torch

    z = mu if noise is None else mu + noise
    return torch.clamp(z + 0.5, 0.0, 1.0)


def stg_regulariser(mu: torch.Tensor, sigma: float = STG_SIGMA) -> torch.Tensor:
    """The STG penalty: the mean probability that a gate is open, ``mean(Phi((mu + 0.5) / sigma))``.

    ``Phi`` is the standard normal CDF, ``0.5 - 0.5 * erf(-x / sqrt(2))``: a
    gate with noise ``N(0, sigma^2)`` is open (positive) with probability
    ``Phi((mu + 0.5) / sigma)``, so the penalty is the expected share of open
    gates, a smooth stand-in for the L0 norm.

    Examples
    --------
    >>> import torch
    >>> round(float(stg_regulariser(torch.tensor([-0.5, -0.5]))), 6)
    0.5
    """
    import torch

    return torch.mean(0.5 - 0.5 * torch.erf(-(mu + 0.5) / (sigma * math.sqrt(2.0))))


def stg_selection(t: Trained, *, lam: float = STG_LAMBDA, sigma: float = STG_SIGMA) -> Selection:
    """Train Stochastic Gates in front of the benchmark's MLP; the gate means ``mu``.

    One gate per input, ``mu`` initialised ``0.01 * randn``. In training the
    input is ``x * z`` with ``z = clamp(mu + eps + 0.5, 0, 1)``, ``eps ~ N(0,
    sigma^2)`` drawn once per feature and step (shared by the batch, as in the
    reference code); the loss is the task's (cross-entropy or MSE) plus ``lam
    * mean(Phi((mu + 0.5) / sigma))`` (:func:`stg_regulariser`). The network
    behind the gates is the benchmark's MLP (``t.settings["hidden"]``, ReLU),
    initialised exactly like it (``torch.manual_seed(t.seed)`` then
    :func:`~benchmarks.training.torch_mlp`); Adam at the benchmark's ``lr``,
    its ``batch_size`` and ``epochs``, batches in the benchmark's order (a
    ``torch.Generator`` seeded with ``t.seed``). The reference ``STG`` class's
    own defaults (hidden 400-200, lr 1e-5, batch 100, weight decay 1e-3,
    truncated-normal weights) are replaced by the benchmark's, so the network
    differs from the benchmark MLP by the gates alone. At evaluation the gates
    are deterministic, ``clamp(mu + 0.5, 0, 1)``.

    Parameters
    ----------
    t : Trained
        Training rows, task, seed and ``settings``; ``t.model`` is not used.
    lam : float, default=0.1
        Weight of the penalty (:data:`STG_LAMBDA`).
    sigma : float, default=0.5
        Standard deviation of the gates' noise (:data:`STG_SIGMA`).

    Returns
    -------
    Selection
        ``importances``: ``mu`` (monotone in the gate probability
        ``clamp(mu + 0.5, 0, 1)``, without its ties among closed gates);
        ``test_score``: the gated network on the test rows; ``details``:
        ``gate_probability``.
    """
    if lam < 0 or sigma <= 0:
        raise ValueError(f"lam={lam!r} must be >= 0 and sigma={sigma!r} > 0.")
    import torch

    from benchmarks.training import holdout_score, torch_loss, torch_mlp, torch_target

    settings = network_settings(t)
    X = torch.as_tensor(np.asarray(t.X_train), dtype=torch.float32)
    target = torch_target(t.task, t.y_train)
    n, d = X.shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(t.seed)  # the benchmark MLP's initialisation, then the gates
        mlp = torch_mlp(d, _n_outputs(t), settings["hidden"])
        mu = torch.nn.Parameter(0.01 * torch.randn(d))
    optimizer = torch.optim.Adam([mu, *mlp.parameters()], lr=settings["lr"])
    order_rng = torch.Generator().manual_seed(t.seed)
    noise_rng = torch.Generator().manual_seed(
        int(np.random.SeedSequence([t.seed, 1]).generate_state(1)[0])
    )
    loss_fn = torch_loss(t.task)
    batch_size = settings["batch_size"]
    mlp.train()
    for _ in range(settings["epochs"]):
        order = torch.randperm(n, generator=order_rng)
        for begin in range(0, n, batch_size):
            idx = order[begin : begin + batch_size]
            eps = sigma * torch.randn(d, generator=noise_rng)
            optimizer.zero_grad()
            loss = loss_fn(mlp(X[idx] * stg_gate(mu, eps)), target[idx])
            loss = loss + lam * stg_regulariser(mu, sigma)
            loss.backward()
            optimizer.step()
    mlp.eval()
    with torch.no_grad():
        gates = stg_gate(mu)
        X_test = torch.as_tensor(np.asarray(t.X_test), dtype=torch.float32)
        outputs = mlp(X_test * gates).double().numpy()
    importances = mu.detach().double().numpy().copy()
    return Selection(
        importances=importances,
        test_score=holdout_score(t.task, outputs, np.asarray(t.y_test))
        if len(X_test)
        else math.nan,
        details={"gate_probability": gates.double().numpy()},
    )


def stg_importance(t: Trained, *, lam: float = STG_LAMBDA, sigma: float = STG_SIGMA) -> np.ndarray:
    """The STG gate means ``mu`` (float64): see :func:`stg_selection`."""
    return stg_selection(t, lam=lam, sigma=sigma).importances
