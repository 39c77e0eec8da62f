"""The importance methods the benchmarks compare, behind one registry.

Four families:

- ``viann``: our trackers, attached while the network trains (per epoch, and
  per optimizer step with ``update_every=1``), in PyTorch and in Keras;
- ``posthoc``: methods that explain the trained PyTorch network afterwards:
  Garson, Olden, permutation importance, LOFO (from
  :mod:`neural_feature_importance.baselines`), Captum's Integrated Gradients,
  SHAP's DeepExplainer and GradientExplainer (wrapped here: they are benchmark
  dependencies, not library ones);
- ``model_free``: a random forest's impurity importance, fitted on the same
  training rows;
- ``selector``: training-time feature-selection networks, LassoNet and
  Stochastic Gates (:mod:`benchmarks.selectors`). Like VIANN they score
  features while a network trains, but they train *their own* network with a
  selection penalty, so their whole cost is extra training; the benchmark
  reports it in units of one training run of the benchmark MLP.

Every post-hoc method explains the *same* trained network as the PyTorch
VIANN trackers, so differences come from the method, not from the model.
Data-driven post-hoc methods use held-out rows (the test split).

The grouped-column problem (:func:`benchmarks.truth.run_grouped`) has its own
small registry, :data:`GROUPED_METHODS`: the trackers in four scoring modes
(``viann``, ``growth``, ``taylor``, ``steady_taylor``) with ``groups=``, and
:func:`grouped_permutation`, which shuffles whole columns.

Adding a VIANN variant (a scoring mode, say) is one call::

    from benchmarks.methods import viann_variant
    from benchmarks.truth import run_truth

    mine = viann_variant("viann_abs", scoring="abs")       # tracker keyword arguments
    table = run_truth(["friedman1"], ["viann_epoch_torch", mine], seeds=range(5))
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from benchmarks.training import holdout_score, torch_loss, torch_predict

if TYPE_CHECKING:
    from benchmarks.selectors import Selection

logger = logging.getLogger(__name__)

Family = Literal["viann", "posthoc", "model_free", "selector"]
Framework = Literal["torch", "keras", "none"]

MAX_EXPLAIN_ROWS = 500
"""Held-out rows explained by the per-sample methods (Integrated Gradients, SHAP)."""
SHAP_BACKGROUND_ROWS = 100
"""Training rows in SHAP's background sample."""
PERMUTATION_REPEATS = 5
IG_STEPS = 50
SHAP_GRADIENT_SAMPLES = 200


@dataclass
class Trained:
    """A trained PyTorch network and its data, handed to every post-hoc method.

    Selectors (:mod:`benchmarks.selectors`) ignore ``model`` (it may be
    ``None``) and train their own network with ``settings``.
    """

    model: Any
    task: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    seed: int
    column_members: Sequence[Sequence[int]] | None = None
    """For grouped problems: the columns of ``X`` that encode each data column."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """The benchmark network's settings: ``epochs``, ``hidden``, ``batch_size``, ``lr``.

    Read by the selectors, which train their own network like the benchmark's
    (missing keys: :data:`benchmarks.selectors.DEFAULT_SETTINGS`).
    """

    @property
    def X_explain(self) -> np.ndarray:
        """The held-out rows the per-sample methods explain (at most 500)."""
        return self.X_test[:MAX_EXPLAIN_ROWS]

    @property
    def y_explain(self) -> np.ndarray:
        return self.y_test[:MAX_EXPLAIN_ROWS]


@dataclass
class Method:
    """One importance method of the benchmark.

    Parameters
    ----------
    name : str
        Key in the result tables.
    family : {"viann", "posthoc", "model_free", "selector"}
        How it is run (see the module docstring).
    framework : {"torch", "keras", "none"}
        Which trained network it needs.
    description : str
        One line for the Markdown tables.
    explain : callable, optional
        ``explain(trained) -> scores`` for ``posthoc``, ``model_free`` and
        ``selector`` methods; scores are one number per feature, larger = more
        important. A selector may return a
        :class:`~benchmarks.selectors.Selection` instead, which also carries
        its own network's held-out score.
    update_every : int, optional
        For ``viann``: ``None`` = one snapshot per epoch, ``N`` = every N steps.
    tracker_kwargs : dict
        For ``viann``: extra keyword arguments of the tracker's constructor.
    tracker_cls : type, optional
        For ``viann``: the tracker class (default ``VarianceImportanceTorch`` or
        ``VarianceImportanceKeras``); a subclass implementing a variant goes here.
    """

    name: str
    family: Family
    framework: Framework
    description: str
    explain: Callable[[Trained], np.ndarray | Selection] | None = None
    update_every: int | None = None
    tracker_kwargs: Mapping[str, Any] = field(default_factory=dict)
    tracker_cls: type | None = None

    def make_tracker(self, model: Any = None, **extra: Any) -> Any:
        """A fresh tracker (torch) or callback (Keras) for a ``viann`` method.

        ``extra`` keyword arguments (``layer=``, ``feature_names=``, ``groups=``:
        what depends on the model and the data) are added to ``tracker_kwargs``.
        """
        if self.family != "viann":
            raise TypeError(f"method {self.name!r} is {self.family}, not a VIANN tracker.")
        kwargs = {**self.tracker_kwargs, **extra}
        if self.framework == "torch":
            if self.tracker_cls is None:
                from neural_feature_importance.torch import VarianceImportanceTorch as cls
            else:
                cls = self.tracker_cls
            return cls(model, update_every=self.update_every, **kwargs)
        if self.tracker_cls is None:
            from neural_feature_importance.keras import VarianceImportanceKeras as cls
        else:
            cls = self.tracker_cls
        return cls(update_every=self.update_every, **kwargs)


# ----------------------------------------------------------------- post-hoc
def _garson(t: Trained) -> np.ndarray:
    from neural_feature_importance.baselines import garson_importance

    return garson_importance(t.model)


def _olden(t: Trained) -> np.ndarray:
    from neural_feature_importance.baselines import olden_importance

    return olden_importance(t.model)


def _permutation(t: Trained) -> np.ndarray:
    from neural_feature_importance.baselines import permutation_importance

    result = permutation_importance(
        t.model,
        t.X_test,
        t.y_test,
        n_repeats=PERMUTATION_REPEATS,
        random_state=t.seed,
        loss=torch_loss(t.task),
        task=t.task,
    )
    return np.asarray(result.importances_mean)


def grouped_permutation(t: Trained, n_repeats: int = PERMUTATION_REPEATS) -> np.ndarray:
    """Permutation importance per data column: all of a column's inputs shuffled together.

    A one-hot column's levels are permuted as one block of rows (each row keeps
    a valid one-hot vector), an embedded column's codes as one column. The
    importance is the drop of the held-out score (R² or accuracy, as
    :func:`~benchmarks.training.holdout_score`), averaged over ``n_repeats``
    shuffles seeded with ``t.seed``. The library's
    :func:`~neural_feature_importance.baselines.permutation_importance`
    (scikit-learn's) shuffles one input at a time, which would score a
    one-hot level, not its column.

    Returns
    -------
    ndarray of shape (n_columns,)
        In the order of ``t.column_members``.
    """
    if t.column_members is None:
        raise ValueError("grouped permutation needs Trained.column_members (one list per column).")
    rng = np.random.default_rng(t.seed)
    X = np.asarray(t.X_test)
    base = holdout_score(t.task, torch_predict(t.model, X), t.y_test)
    scores = np.empty(len(t.column_members))
    for c, members in enumerate(t.column_members):
        members = list(members)
        drops = []
        for _ in range(n_repeats):
            shuffled = X.copy()
            shuffled[:, members] = X[rng.permutation(len(X))][:, members]
            drops.append(base - holdout_score(t.task, torch_predict(t.model, shuffled), t.y_test))
        scores[c] = np.mean(drops)
    return scores


def _lofo(t: Trained) -> np.ndarray:
    from neural_feature_importance.baselines import lofo_importance

    return lofo_importance(t.model, t.X_test, t.y_test, loss=torch_loss(t.task))


def _targets(t: Trained, y: np.ndarray) -> Any:
    """Output explained for each row: the true class's logit, or the value."""
    import torch

    if t.task == "classification":
        return torch.as_tensor(np.asarray(y), dtype=torch.long)
    return 0


def integrated_gradients(t: Trained, n_steps: int = IG_STEPS) -> np.ndarray:
    """Captum's Integrated Gradients from an all-zero baseline (the standardised mean).

    Global importance: mean absolute attribution over the explained rows, each
    row explaining its true class's logit (classification) or the output.
    """
    import torch
    from captum.attr import IntegratedGradients

    X = torch.as_tensor(t.X_explain, dtype=torch.float32)
    t.model.eval()
    try:
        attributions = IntegratedGradients(t.model).attribute(
            X,
            baselines=torch.zeros_like(X),
            target=_targets(t, t.y_explain),
            n_steps=n_steps,
            internal_batch_size=max(1, 16384 // n_steps) * n_steps,
        )
    finally:
        t.model.train()
    return attributions.abs().mean(dim=0).detach().double().numpy()


def _pick_outputs(values: Any, t: Trained) -> np.ndarray:
    """SHAP values ``(n, features, outputs)`` -> the explained output of each row."""
    values = np.asarray(values)
    if values.ndim == 2:
        return values
    if t.task == "classification":
        return values[np.arange(len(values)), :, np.asarray(t.y_explain)]
    return values[:, :, 0]


def _background(t: Trained) -> Any:
    import torch

    rng = np.random.default_rng(t.seed)
    rows = rng.choice(len(t.X_train), size=min(SHAP_BACKGROUND_ROWS, len(t.X_train)), replace=False)
    return torch.as_tensor(t.X_train[rows], dtype=torch.float32)


def shap_deep(t: Trained) -> np.ndarray:
    """SHAP DeepExplainer (DeepLIFT with a 100-row background); mean |SHAP value|."""
    import shap
    import torch

    t.model.eval()
    try:
        explainer = shap.DeepExplainer(t.model, _background(t))
        values = explainer.shap_values(
            torch.as_tensor(t.X_explain, dtype=torch.float32), check_additivity=False
        )
    finally:
        t.model.train()
    return np.abs(_pick_outputs(values, t)).mean(axis=0)


def shap_gradient(t: Trained, nsamples: int = SHAP_GRADIENT_SAMPLES) -> np.ndarray:
    """SHAP GradientExplainer (expected gradients, 200 samples per row); mean |SHAP value|."""
    import shap
    import torch

    t.model.eval()
    try:
        explainer = shap.GradientExplainer(t.model, _background(t))
        values = explainer.shap_values(
            torch.as_tensor(t.X_explain, dtype=torch.float32), nsamples=nsamples, rseed=t.seed
        )
    finally:
        t.model.train()
    return np.abs(_pick_outputs(values, t)).mean(axis=0)


def _random_forest(t: Trained) -> np.ndarray:
    from neural_feature_importance.baselines import random_forest_importance

    # max_features="sqrt" for both tasks (scikit-learn's classifier default): the
    # regressor default (all features at every split) takes 75 s per fit on
    # high_dim on one core, which alone would break the 15-minute budget.
    return random_forest_importance(
        t.X_train, t.y_train, task=t.task, random_state=t.seed, n_jobs=1, max_features="sqrt"
    )


# ----------------------------------------------------------------- selectors
def _lassonet(t: Trained) -> Selection:
    from benchmarks.selectors import lassonet_selection

    return lassonet_selection(t)


def _stg(t: Trained) -> Selection:
    from benchmarks.selectors import stg_selection

    return stg_selection(t)


# ----------------------------------------------------------------- registry
def viann_variant(
    name: str,
    *,
    framework: Literal["torch", "keras"] = "torch",
    update_every: int | None = None,
    tracker_cls: type | None = None,
    description: str | None = None,
    **tracker_kwargs: Any,
) -> Method:
    """A VIANN method with its own tracker settings, for :func:`benchmarks.truth.run_truth`.

    Parameters
    ----------
    name : str
        Key in the result tables; must not clash with a built-in method.
    framework : {"torch", "keras"}, default="torch"
    update_every : int, optional
        ``None``: one snapshot per epoch; ``1``: one per optimizer step.
    tracker_cls : type, optional
        A tracker class to use instead of ``VarianceImportanceTorch`` /
        ``VarianceImportanceKeras`` (constructed like them).
    description : str, optional
    **tracker_kwargs
        Passed to the tracker's constructor. ``scoring`` is ``"viann"`` unless
        given (a tracker's own default is the recommended gradient mode).

    Examples
    --------
    >>> m = viann_variant("viann_sum", normalize="sum")
    >>> m.family, m.framework, dict(m.tracker_kwargs)
    ('viann', 'torch', {'scoring': 'viann', 'normalize': 'sum'})
    """
    if framework not in ("torch", "keras"):
        raise ValueError(f"framework={framework!r}; use 'torch' or 'keras'.")
    if name in METHODS:
        raise ValueError(f"{name!r} is a built-in method; give the variant another name.")
    if description is None:
        settings = ", ".join(f"{k}={v!r}" for k, v in tracker_kwargs.items())
        when = "per epoch" if update_every is None else f"every {update_every} step(s)"
        description = f"VIANN {when} ({framework}{', ' + settings if settings else ''})"
    return Method(
        name=name,
        family="viann",
        framework=framework,
        description=description,
        update_every=update_every,
        tracker_kwargs={"scoring": "viann", **tracker_kwargs},
        tracker_cls=tracker_cls,
    )


METHODS: dict[str, Method] = {}


def _register(method: Method) -> None:
    METHODS[method.name] = method


for _framework in ("torch", "keras"):
    _register(
        Method(
            f"descent_taylor_{_framework}",
            "viann",
            _framework,  # type: ignore[arg-type]
            f"descent_taylor, the recommended mode and the default: taylor times the "
            f"descent along each feature's gradient, every 4th step ({_framework})",
            tracker_kwargs={"scoring": "descent_taylor"},
        )
    )
    _register(
        Method(
            f"taylor_{_framework}",
            "viann",
            _framework,  # type: ignore[arg-type]
            f"taylor: gradient x input, every 4th step ({_framework})",
            tracker_kwargs={"scoring": "taylor"},
        )
    )
    _register(
        Method(
            f"steady_taylor_{_framework}",
            "viann",
            _framework,  # type: ignore[arg-type]
            f"steady_taylor: taylor times its signal-to-noise ratio over the steps ({_framework})",
            tracker_kwargs={"scoring": "steady_taylor"},
        )
    )
    _register(
        Method(
            f"viann_epoch_{_framework}",
            "viann",
            _framework,  # type: ignore[arg-type]
            f"VIANN (the paper), one snapshot per epoch ({_framework})",
            tracker_kwargs={"scoring": "viann"},
        )
    )
    _register(
        Method(
            f"viann_step_{_framework}",
            "viann",
            _framework,  # type: ignore[arg-type]
            f"VIANN (the paper), one snapshot per optimizer step ({_framework})",
            update_every=1,
            tracker_kwargs={"scoring": "viann"},
        )
    )
for _method in (
    Method("garson", "posthoc", "torch", "Garson (first and last layer weights)", _garson),
    Method("olden", "posthoc", "torch", "Olden (connection weights)", _olden),
    Method(
        "permutation",
        "posthoc",
        "torch",
        f"permutation importance, {PERMUTATION_REPEATS} repeats, held-out rows",
        _permutation,
    ),
    Method("lofo", "posthoc", "torch", "LOFO (blank one column, held-out loss)", _lofo),
    Method(
        "integrated_gradients",
        "posthoc",
        "torch",
        f"Captum Integrated Gradients, {IG_STEPS} steps, mean |attribution|",
        integrated_gradients,
    ),
    Method("shap_deep", "posthoc", "torch", "SHAP DeepExplainer, mean |SHAP|", shap_deep),
    Method(
        "shap_gradient",
        "posthoc",
        "torch",
        f"SHAP GradientExplainer, {SHAP_GRADIENT_SAMPLES} samples, mean |SHAP|",
        shap_gradient,
    ),
    Method(
        "random_forest",
        "model_free",
        "none",
        "random forest impurity (100 trees, max_features='sqrt', own fit)",
        _random_forest,
    ),
    Method(
        "lassonet",
        "selector",
        "torch",
        "LassoNet (hidden 64-64), whole regularisation path; feature_importances_",
        _lassonet,
    ),
    Method(
        "stg",
        "selector",
        "torch",
        "stochastic gates (Yamada et al. 2020), lam=0.1, sigma=0.5, gate mean mu",
        _stg,
    ),
):
    _register(_method)

DEFAULT_METHODS: tuple[str, ...] = tuple(
    name for name in METHODS if name not in ("shap_gradient", "lassonet")
)
"""The built-in methods :func:`resolve_methods` uses by default, in table order.

``shap_gradient`` is left out: it ranks like ``shap_deep`` on every data set
(one-seed check) at 4-6 times its cost (14-41 s per run here), so it would
double the benchmark's run time; pass it explicitly to include it. The cost
benchmark times it. ``lassonet`` is left out for the same reason: its whole
regularisation path takes 25-110 s per run on one core (30-40 times one
training of the MLP, whatever the number of rows), which would add about an
hour to the suite; the scoring-mode study (``research/scoring_modes_truth.py
run --peers lassonet``) runs it. ``stg`` (1.5-2 trainings) is in.
"""


GROUPED_METHODS: dict[str, Method] = {
    "viann": Method(
        "viann",
        "viann",
        "torch",
        "VIANN snapshot variance, per epoch, groups= (torch)",
        tracker_kwargs={"scoring": "viann"},
    ),
    "growth": Method(
        "growth",
        "viann",
        "torch",
        "growth of the squared weights, per epoch, groups= (torch)",
        tracker_kwargs={"scoring": "growth"},
    ),
    "taylor": Method(
        "taylor",
        "viann",
        "torch",
        "gradient x weight, every 4th step, groups= (torch)",
        tracker_kwargs={"scoring": "taylor"},
    ),
    "steady_taylor": Method(
        "steady_taylor",
        "viann",
        "torch",
        "steady taylor (taylor x its signal-to-noise ratio x weight displacement), groups= (torch)",
        tracker_kwargs={"scoring": "steady_taylor"},
    ),
    "viann_keras": Method(
        "viann_keras",
        "viann",
        "keras",
        "VIANN snapshot variance, per epoch, groups= (Keras network)",
        tracker_kwargs={"scoring": "viann"},
    ),
    "growth_keras": Method(
        "growth_keras",
        "viann",
        "keras",
        "growth of the squared weights, per epoch, groups= (Keras network)",
        tracker_kwargs={"scoring": "growth"},
    ),
    "taylor_keras": Method(
        "taylor_keras",
        "viann",
        "keras",
        "gradient x weight, every 4th step, groups= (Keras network, optimizer tap)",
        tracker_kwargs={"scoring": "taylor"},
    ),
    "steady_taylor_keras": Method(
        "steady_taylor_keras",
        "viann",
        "keras",
        "steady taylor, groups= (Keras network, optimizer tap)",
        tracker_kwargs={"scoring": "steady_taylor"},
    ),
    "grouped_permutation": Method(
        "grouped_permutation",
        "posthoc",
        "torch",
        f"permutation of whole columns, {PERMUTATION_REPEATS} repeats, held-out R²",
        grouped_permutation,
    ),
}
"""The methods of the grouped-column benchmark (:func:`benchmarks.truth.run_grouped`).

The trackers' family is ``viann``: attached while training, each gets the
first dense layer (``layer="mlp.0"`` in PyTorch, ``"mlp_0"`` in Keras) and
``feature_names=`` / ``groups=`` from the data. ``taylor`` reads gradients:
in PyTorch from ``param.grad``, in Keras (``taylor_keras``) through the
gradient tap the callback puts around ``model.optimizer``. The Keras rows
watch their own network (Keras' initialisation), while
``grouped_permutation`` explains the PyTorch one.
"""


def resolve_methods(
    methods: Iterable[str | Method] | None,
    registry: Mapping[str, Method] | None = None,
) -> list[Method]:
    """Turn names and :class:`Method` objects into a list of methods.

    Parameters
    ----------
    methods : iterable of str or Method, optional
        Default: every method of ``registry`` (:data:`DEFAULT_METHODS` for the
        main registry).
    registry : mapping, optional
        Where names are looked up: :data:`METHODS` (default) or
        :data:`GROUPED_METHODS`.

    Raises
    ------
    ValueError
        For an unknown name or a duplicate.
    """
    if methods is None:
        methods = DEFAULT_METHODS if registry is None else tuple(registry)
    if registry is None:
        registry = METHODS
    if isinstance(methods, (str, Method)):
        methods = [methods]
    resolved: list[Method] = []
    for item in methods:
        if isinstance(item, Method):
            resolved.append(item)
            continue
        if item not in registry:
            raise ValueError(
                f"unknown method {item!r}; use one of {', '.join(registry)}, or a Method "
                "from benchmarks.methods.viann_variant()."
            )
        resolved.append(registry[item])
    names = [m.name for m in resolved]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"method(s) {duplicates} given twice; each name must be unique.")
    return resolved
