"""Scoring modes: which statistic of the training run ranks the input features.

VIANN (the default, ``scoring="viann"``) scores a feature by how much the
weights leaving it varied over the weight snapshots, times their final size.
Our planted-truth study showed that this depends on *when* training stops: late in training
the weights of noise features keep drifting and their variance swamps the
signal. The modes below are the alternatives we measured (see
``research/scoring_modes/RESULTS.md``); each is one small class that every tracker
(Keras, PyTorch, Lightning, the bare core) drives through the same calls:

``start(weights)``
    the weights before training (the adapters pass the initial weights);
``snapshot(weights)``
    one weight snapshot (per epoch, or every ``update_every`` steps);
``gradient(gradient, weights)``
    one optimizer step: the loss gradient of the tracked weight and the
    weight after the step. Only *gradient modes* use it. The PyTorch trackers
    feed ``param.grad`` in ``on_step_end``; the Keras callbacks sum the same
    per-step terms (:meth:`ScoringMode.step_terms`) inside the compiled train
    step, through an optimizer wrapper, and hand the sums over once per epoch
    (:meth:`ScoringMode.add_sums`). A gradient holding NaN or Inf is skipped
    and counted (``n_skipped``), as mixed precision's loss scaler skips that
    optimizer step: one overflowed fp16 step must not poison the statistics
    of the whole run.

Every quantity is summed over the units ``j`` a feature ``i`` feeds, in the
tracked layer's ``(features, units)`` view (:mod:`.views`):

==================  =========  ==============================================  ====================
mode                needs      raw score of feature ``i``                      source
==================  =========  ==============================================  ====================
``viann``           snapshots  ``sum_j var_t(w_ij) * |w_ij(T)|``               de Sá 2019
``growth``          snapshots  ``max(0, sum_j w_ij(T)^2 - w_ij(0)^2)``         movement pruning,
                                                                               weight saliency
``path``            snapshots  ``sum_t sum_j |w_ij(t) - w_ij(t-1)|``           path length
``ema_variance``    snapshots  VIANN with an exponentially decayed variance    West 1979
``update_variance`` snapshots  ``sum_j var_t(dw_ij(t)) * |w_ij(T)|``           this study
``taylor``          gradients  ``mean_steps |sum_j g_ij * w_ij|``              Molchanov 2017/2019
``steady_taylor``   gradients  ``taylor * taylor / sd_steps(|sum_j g * w|)``   this study; SNR
                                                                               weighting
``movement``        gradients  ``max(0, -sum_steps sum_j g_ij * w_ij)``        Sanh et al. 2020
``synaptic``        gradients  ``max(0, -sum_steps sum_j g_ij * dw_ij)``       Zenke et al. 2017
==================  =========  ==============================================  ====================

``dw(t) = w(t) - w(t-1)`` is the step between consecutive snapshots in the
snapshot modes and one optimizer step's update in ``synaptic``.

``steady_taylor`` is the recommended mode where gradients are available.
Its base is ``taylor``: for a dense layer ``sum_j g_ij * w_ij`` equals the
batch's summed *gradient x input* of feature ``i`` (the first-order change of
the loss if the feature were zeroed), so it measures what the network does
with the feature rather than how much its weights wander, and late in
training, when the loss gradients shrink, it stops growing, whatever the
number of epochs. ``steady_taylor`` weighs it by how steadily the feature
contributes over the steps (``taylor / sd_steps``, its signal-to-noise ratio),
which ranks informative features above decoys and memorised noise better on
high-dimensional data, for two more numbers per feature. ``growth`` is the
best mode computed from snapshots alone. The measurements behind these
choices are in ``research/scoring_modes/RESULTS.md`` and
``research/selector_gap/RESULTS.md``.

Modes keep their statistics in the tracker's array library (numpy, or torch
tensors on the parameter's device) and in the tracker's ``state_dict``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from neural_feature_importance.core.arrays import Array, ArrayOps, StepOps
from neural_feature_importance.core.errors import NotFittedError, StateDictError
from neural_feature_importance.core.moments import RunningMoments
from neural_feature_importance.core.views import WeightView

EMA_HALFLIFE = 10
"""Half-life, in snapshots, of the ``ema_variance`` mode's memory."""

FLUSH_EVERY = 256
"""Steps ``taylor`` sums in the gradient's own precision before adding to its accumulator.

Adding a float32 vector to a float64 accumulator costs a dtype conversion per
step, about a quarter of the mode's per-step time on a small network; summing
at most this many steps in float32 first keeps the relative rounding error
below ``256 * 2**-24``, about 2e-5, before the float64 accumulator takes over.
The sums are also flushed at every weight snapshot (epoch end).
"""


def _reduced_to_features(view: WeightView, reduced: np.ndarray) -> np.ndarray:
    """Per-feature values summed over the unit axis -> ``(n_features,)`` in view order."""
    axis = view.unit_axis
    shape = list(view.weight_shape)
    shape[axis] = 1
    single_unit = WeightView(view.kind, view.layout, tuple(shape))
    return single_unit.to_matrix(np.expand_dims(reduced, axis))[:, 0]


class ScoringMode:
    """Base class: the statistics one mode keeps, and the scores it derives.

    Parameters
    ----------
    view : WeightView
        The tracked weight's view (shape, layout, which axis is a feature).
    ops : ArrayOps
        Array library of the weights; the statistics live in it.
    dtype : str
        Precision of the statistics (``"float64"`` or ``"float32"``).

    Notes
    -----
    Subclasses set :attr:`name`, :attr:`needs_gradients`, :attr:`min_snapshots`
    and the names of their arrays with how two trackers' arrays merge
    (:attr:`merge_rules`: ``"sum"`` adds them, ``"first"`` keeps this
    tracker's, ``"last"`` takes the other's), and implement the hooks they need
    and :meth:`contributions` (or :meth:`feature_scores` and
    :meth:`unit_scores`).
    """

    name: ClassVar[str] = ""
    needs_gradients: ClassVar[bool] = False
    gradient_every: ClassVar[int] = 1
    """Gradient modes: read one optimizer step in this many, unless the tracker says."""
    min_snapshots: ClassVar[int] = 1
    merge_rules: ClassVar[dict[str, str]] = {}
    keeps_last: ClassVar[bool] = False
    """Whether the scores read the last weight snapshot.

    The tracker keeps a copy of the last snapshot only for the modes that
    read it, so that each mode's state holds only what it needs (``taylor``
    keeps one accumulator per feature and nothing per weight).
    """
    reduces_each_step: ClassVar[bool] = False
    """Whether each step's terms are already complete sums (gradient modes).

    ``taylor`` takes the absolute value of each step's per-feature sum over
    the units (and, for convolutions, of each unit's sum over the features),
    so under a sharded weight those sums must be complete at every step: the
    adapter's step operations reduce them over the processes
    (:mod:`.sharding`), and the accumulated sums need no reduction when read.
    """

    def __init__(self, view: WeightView, ops: ArrayOps, dtype: str) -> None:
        self.view = view
        self.ops = ops
        self.dtype = dtype
        self.n_snapshots = 0
        self.n_steps = 0
        self.n_skipped = 0
        self.arrays: dict[str, Array | None] = dict.fromkeys(self.merge_rules)

    # ------------------------------------------------------------------ hooks
    def start(self, weights: Array) -> None:
        """Record the weights before training (nothing by default)."""

    def snapshot(self, weights: Array) -> None:
        """Absorb one weight snapshot (counted; nothing else by default)."""
        self.n_snapshots += 1

    check_key: ClassVar[str] = ""
    """Gradient modes: the term of :meth:`step_terms` whose finiteness decides a read."""
    needs_weights_before: ClassVar[bool] = False
    """Gradient modes: whether :meth:`step_terms` reads the weight before the step."""

    def step_terms(
        self, gradient: Array, weights: Array, before: Array | None, ops: StepOps
    ) -> dict[str, Array]:
        """One optimizer step's contribution to each of the mode's sums.

        The mode's whole per-step formula, written with operators and
        ``ops.sum`` only, so that the same code runs on the host (numpy), on
        a torch parameter's device and inside a compiled Keras train step
        (:mod:`neural_feature_importance.keras.gradients`).

        Parameters
        ----------
        gradient : array
            The loss gradient of the tracked weight, in its framework layout.
        weights : array
            The weight after the optimizer step.
        before : array or None
            The weight before the step, for modes with :attr:`needs_weights_before`
            (``synaptic``); ``None`` elsewhere.
        ops : StepOps
            The array library's reductions.
        """
        raise NotImplementedError(f"scoring={self.name!r} does not use gradients")

    def gradient(self, gradient: Array, weights: Array) -> bool:
        """Absorb one optimizer step's gradient (gradient modes only).

        Returns
        -------
        bool
            ``False`` if the step was skipped because its contribution held
            NaN or Inf (counted in :attr:`n_skipped`), else ``True``.
        """
        terms = self.step_terms(gradient, weights, None, self.ops)
        if not self._finite_step(terms[self.check_key]):
            return False
        for key, value in terms.items():
            self._add_step(key, value)
        self.n_steps += 1
        return True

    def _add_step(self, key: str, value: Array) -> None:
        """Add one step's term to its sum (in float64 by default)."""
        self._add(key, value)

    def add_sums(self, sums: dict[str, np.ndarray], n_steps: int, n_skipped: int) -> None:
        """Absorb the sums of :meth:`step_terms` over steps read elsewhere.

        The Keras gradient tap sums the terms inside the compiled train step
        and hands them over once per epoch; this adds them to the mode's own
        sums, exactly as if each step had been passed to :meth:`gradient`.

        Parameters
        ----------
        sums : dict of str to ndarray
            One summed term per key of :meth:`step_terms`.
        n_steps : int
            Steps absorbed into ``sums``.
        n_skipped : int
            Reads skipped because their terms held NaN or Inf.
        """
        unknown = set(sums) - set(self.merge_rules)
        if unknown or not self.needs_gradients:
            raise ValueError(
                f"scoring={self.name!r} keeps no gradient sums named {sorted(unknown)}."
            )
        if n_steps:
            for key, value in sums.items():
                self._add(key, self.ops.copy_as(value, self.dtype))
        self.n_steps += int(n_steps)
        self.n_skipped += int(n_skipped)

    def _finite_step(self, contribution: Array) -> bool:
        """Whether one step's contribution is finite; counts it in ``n_skipped`` if not.

        Mixed-precision training (``torch.amp.GradScaler``, Lightning's
        ``precision="16-mixed"``) leaves an overflowed gradient in
        ``param.grad`` and skips that optimizer step, so the weights stay
        finite; the statistics skip the step too. Costs one device sync per
        gradient read, on the smallest array the mode forms.
        """
        if self.ops.all_finite(contribution):
            return True
        self.n_skipped += 1
        return False

    # ---------------------------------------------------------------- scoring
    def check_ready(self) -> None:
        """Raise :class:`NotFittedError` unless scores can be computed."""
        if self.needs_gradients:
            if self.n_steps < 1 and self.n_skipped:
                raise NotFittedError(
                    f"scoring={self.name!r} read {self.n_skipped} gradient(s), and every "
                    "one held NaN or Inf, so none was recorded. Under mixed precision the "
                    "loss scaler skips such steps while it lowers its scale: train for "
                    "more steps. Otherwise training diverged: lower the learning rate or "
                    "clip gradients."
                )
            if self.n_steps < 1:
                raise NotFittedError(
                    f"scoring={self.name!r} reads the tracked layer's gradient after every "
                    "optimizer step, but none was recorded. Call on_step_end() after "
                    "optimizer.step() and before optimizer.zero_grad() (the PyTorch "
                    "trackers); pass the Keras callback to fit() of a compiled model, or "
                    "update the model with its wrap_optimizer() in a custom loop; or call "
                    "update_gradients(grad, weights) on the bare core."
                )
            return
        if self.n_snapshots < self.min_snapshots:
            raise NotFittedError(
                f"scoring={self.name!r} needs at least {self.min_snapshots} weight "
                f"snapshot(s), but {self.n_snapshots} were recorded; train for more epochs "
                "or use update_every=N."
            )

    def contributions(self, moments: RunningMoments, last: np.ndarray | None) -> np.ndarray:
        """Per-weight contributions as a ``(features, units)`` numpy matrix.

        ``last`` is the last snapshot as a ``(features, units)`` matrix, or
        ``None`` before the first one (a gradient mode may be read without
        snapshots; the snapshot modes' ``min_snapshots`` guarantees one).
        """
        raise NotImplementedError

    def feature_sums(self, moments: RunningMoments, last: np.ndarray | None) -> np.ndarray:
        """Per-feature sums before the final clipping at 0, ``(n_features,)``.

        Sums over the units, so the sums of the slices of a sharded weight
        add up to the whole weight's (:mod:`.sharding`); see
        :attr:`reduces_each_step` for the exception.
        """
        return self.contributions(moments, last).sum(axis=1)

    def unit_sums(self, moments: RunningMoments, last: np.ndarray | None) -> np.ndarray:
        """Per-unit (filter) sums before the final clipping at 0, ``(n_units,)``."""
        return self.contributions(moments, last).sum(axis=0)

    def feature_scores(self, moments: RunningMoments, last: np.ndarray | None) -> np.ndarray:
        """Raw, non-negative score per input feature, ``(n_features,)``."""
        return np.maximum(self.feature_sums(moments, last), 0.0)

    def unit_scores(self, moments: RunningMoments, last: np.ndarray | None) -> np.ndarray:
        """Raw, non-negative score per unit (filter), ``(n_units,)``."""
        return np.maximum(self.unit_sums(moments, last), 0.0)

    def _matrix(self, key: str) -> np.ndarray:
        return self.view.to_matrix(self.ops.to_numpy(self.arrays[key]))

    def _add(self, key: str, value: Array) -> None:
        """``arrays[key] += value``, allocating the accumulator at the first call."""
        if self.arrays[key] is None:
            self.arrays[key] = self.ops.copy_as(value, self.dtype)
        else:
            self.arrays[key] += value

    # ------------------------------------------------------------------ state
    def all_finite(self) -> bool:
        """Whether every statistic is finite (one device sync per array)."""
        return all(a is None or self.ops.all_finite(a) for a in self.arrays.values())

    def state_dict(self) -> dict[str, Any]:
        """Counts and arrays (the accumulators themselves, not copies)."""
        return {
            "n_snapshots": self.n_snapshots,
            "n_steps": self.n_steps,
            "n_skipped": self.n_skipped,
            **self.arrays,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (arrays are copied into :attr:`ops`)."""
        missing = [key for key in ("n_snapshots", "n_steps", *self.arrays) if key not in state]
        if missing:
            raise StateDictError(
                f"state of scoring={self.name!r} is missing {missing}; was it saved by a "
                "tracker with the same scoring mode?"
            )
        self.n_snapshots = int(state["n_snapshots"])
        self.n_steps = int(state["n_steps"])
        # States written before skipped steps were counted have no "n_skipped".
        self.n_skipped = int(state.get("n_skipped", 0))
        for key in self.arrays:
            value = state[key]
            self.arrays[key] = None if value is None else self.ops.copy_as(value, self.dtype)

    def merge(self, other: ScoringMode) -> None:
        """Absorb ``other``'s statistics (``other`` is the later stream)."""
        for key, rule in self.merge_rules.items():
            mine, theirs = self.arrays[key], other.arrays[key]
            if theirs is None or (rule == "first" and mine is not None):
                continue
            if mine is None or rule == "last":
                self.arrays[key] = self.ops.copy_as(theirs, self.dtype)
            else:
                self.arrays[key] = mine + theirs
        self.n_snapshots += other.n_snapshots
        self.n_steps += other.n_steps
        self.n_skipped += other.n_skipped


# ------------------------------------------------------------ snapshot modes
class ViannMode(ScoringMode):
    """VIANN, the paper's method (the default): variance times final magnitude.

    ``score_i = sum_j var_t(w_ij) * |w_ij(T)|`` over the snapshots ``t``
    (embedding tables: ``sum_j var_t(w_ij)``). Source: de Sá, "Variance-Based
    Feature Importance in Neural Networks", Discovery Science 2019. The
    trackers compute it with their own code path
    (:meth:`~.tracker.VarianceImportanceBase._score_matrices`), unchanged, so
    published results reproduce bit for bit; this class only documents it in
    the registry.
    """

    name = "viann"
    min_snapshots = 2
    keeps_last = True


class GrowthMode(ScoringMode):
    """Squared-norm growth of a feature's weights since initialisation.

    ``score_i = max(0, sum_j w_ij(T)^2 - w_ij(0)^2)``: how far the weights
    leaving feature ``i`` grew away from zero, with the random initialisation
    subtracted. A snapshot-only approximation of *movement pruning*'s score
    ``-sum_t g_t w_t`` (Sanh, Wolf & Rush, NeurIPS 2020): under gradient
    descent with step ``eta``, ``-sum_t g_t w_t = (w_T^2 - w_0^2) / (2 eta)``
    up to ``O(eta)``. It refines the classic weight-based saliency ``|w_T|``
    (Tarr 1991; Steppe & Bauer, 1997) by removing the initial weights, which
    carry no information. Features whose weights shrank score 0.

    Needs only the initial weights and the last snapshot, so it works in every
    framework (Keras included) at no per-step cost. Measured on the planted-truth suite: far
    less dependent on the number of epochs than VIANN, but below ``taylor``.
    """

    name = "growth"
    min_snapshots = 1
    keeps_last = True
    merge_rules: ClassVar[dict[str, str]] = {"initial": "first"}

    def start(self, weights: Array) -> None:
        self.arrays["initial"] = self.ops.copy_as(weights, self.dtype)

    def contributions(self, moments: RunningMoments, last: np.ndarray | None) -> np.ndarray:
        assert last is not None  # min_snapshots = 1
        initial = self._matrix("initial")
        return last**2 - initial**2


class PathMode(ScoringMode):
    """Length of the path the weights travelled, summed per feature.

    ``score_i = sum_t sum_j |w_ij(t) - w_ij(t-1)|`` over consecutive snapshots,
    starting from the initial weights. The importance-from-the-path idea of
    Synaptic Intelligence (Zenke et al., 2017) without its gradient factor, as
    a candidate of the scoring-mode study. Measured: like VIANN it grows with the late drift of
    noise features, so it is worse the longer training runs.
    """

    name = "path"
    min_snapshots = 1
    merge_rules: ClassVar[dict[str, str]] = {"previous": "last", "path": "sum"}

    def start(self, weights: Array) -> None:
        self.arrays["previous"] = self.ops.copy_as(weights, self.dtype)

    def snapshot(self, weights: Array) -> None:
        super().snapshot(weights)
        current = self.ops.copy_as(weights, self.dtype)
        self._add("path", abs(current - self.arrays["previous"]))
        self.arrays["previous"] = current

    def contributions(self, moments: RunningMoments, last: np.ndarray | None) -> np.ndarray:
        return self._matrix("path")


class EMAVarianceMode(ScoringMode):
    """VIANN with an exponentially decayed variance (recent snapshots count most).

    ``score_i = sum_j v_ij * |w_ij(T)|`` where ``v`` is the exponentially
    weighted moving variance of the snapshots with a half-life of
    :data:`EMA_HALFLIFE` snapshots (the incremental recurrence of West,
    "Updating mean and variance estimates", CACM 1979; see Finch, 2009,
    "Incremental calculation of weighted mean and variance"):
    ``d = w - m; m += a d; v = (1 - a)(v + a d^2)`` with ``a = 1 - 2^(-1/h)``.

    The question it answers: does forgetting old snapshots help? Measured: it does
    not, because the late snapshots are where noise features drift. Two
    trackers' decayed statistics cannot be merged.
    """

    name = "ema_variance"
    min_snapshots = 2
    keeps_last = True
    merge_rules: ClassVar[dict[str, str]] = {"mean": "last", "variance": "last"}

    def snapshot(self, weights: Array) -> None:
        super().snapshot(weights)
        alpha = 1.0 - 0.5 ** (1.0 / EMA_HALFLIFE)
        if self.arrays["mean"] is None:
            self.arrays["mean"] = self.ops.copy_as(weights, self.dtype)
            self.arrays["variance"] = self.ops.zeros_like(self.arrays["mean"])
            return
        delta = self.ops.copy_as(weights, self.dtype) - self.arrays["mean"]
        self.arrays["mean"] += alpha * delta
        self.arrays["variance"] = (1.0 - alpha) * (self.arrays["variance"] + alpha * delta * delta)

    def contributions(self, moments: RunningMoments, last: np.ndarray | None) -> np.ndarray:
        assert last is not None  # min_snapshots = 2
        return self._matrix("variance") * np.abs(last)

    def merge(self, other: ScoringMode) -> None:
        raise ValueError(
            "scoring='ema_variance' keeps exponentially decayed statistics, which cannot "
            "be merged across trackers; use another scoring mode for data-parallel runs."
        )


class UpdateVarianceMode(ScoringMode):
    """VIANN on the weight *updates*: variance of the steps times final magnitude.

    ``score_i = sum_j var_t(w_ij(t) - w_ij(t-1)) * |w_ij(T)|``, the updates
    taken between consecutive snapshots (the first from the initial weights).
    A steady drift adds to the variance of the weights (VIANN) but not to the
    variance of the updates, which is what this mode tries to exploit.
    Measured: the late updates of noise features are as irregular as their
    drift is large, so it does not fix the epoch dependence.
    """

    name = "update_variance"
    min_snapshots = 2
    keeps_last = True
    merge_rules: ClassVar[dict[str, str]] = {"previous": "last"}

    def __init__(self, view: WeightView, ops: ArrayOps, dtype: str) -> None:
        super().__init__(view, ops, dtype)
        self.updates = RunningMoments(dtype, ops)

    def start(self, weights: Array) -> None:
        self.arrays["previous"] = self.ops.copy_as(weights, self.dtype)

    def snapshot(self, weights: Array) -> None:
        super().snapshot(weights)
        current = self.ops.copy_as(weights, self.dtype)
        self.updates.update(current - self.arrays["previous"])
        self.arrays["previous"] = current

    def contributions(self, moments: RunningMoments, last: np.ndarray | None) -> np.ndarray:
        assert last is not None  # min_snapshots = 2
        variance = self.view.to_matrix(self.ops.to_numpy(self.updates.variance(ddof=1)))
        return variance * np.abs(last)

    def all_finite(self) -> bool:
        if self.updates.count == 0:
            return super().all_finite()
        state = self.updates.state_dict()
        return super().all_finite() and all(
            self.ops.all_finite(state[key]) for key in ("mean", "m2")
        )

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "updates": self.updates.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "updates" not in state:
            raise StateDictError("state of scoring='update_variance' is missing 'updates'.")
        self.updates.load_state_dict(state["updates"])

    def merge(self, other: ScoringMode) -> None:
        assert isinstance(other, UpdateVarianceMode)
        super().merge(other)
        self.updates.merge(other.updates)


# ------------------------------------------------------------ gradient modes
class TaylorMode(ScoringMode):
    """First-order Taylor importance of each feature, averaged over the training steps.

    ``score_i = mean_steps |sum_j g_ij * w_ij|`` with ``g`` the loss gradient
    of the tracked weight at each optimizer step and ``w`` the weight after
    it. This is the group Taylor criterion of Molchanov et al. ("Pruning
    convolutional neural networks for resource efficient inference", ICLR
    2017; "Importance estimation for neural network pruning", CVPR 2019)
    applied to the group of weights that leave one input feature. For a dense
    layer ``sum_j g_ij w_ij = sum_n x_ni * dL/dx_ni`` over the batch: the
    batch's *gradient x input* of feature ``i`` (Shrikumar et al., 2016;
    Ancona et al., ICLR 2018), i.e. the first-order change of the loss if the
    feature were set to zero (its mean, for standardised inputs). It is
    computed from ``param.grad``, which training computes anyway.

    Why it does not depend on the stopping epoch: once the network has fitted,
    the loss gradients shrink, so late steps add little; noise features only
    ever contribute the batch noise of a mean-zero product. It runs in every
    adapter (PyTorch, Lightning, and Keras through its optimizer tap) and
    keeps one vector per feature; :class:`SteadyTaylorMode`, the recommended
    mode, builds on it. For convolutions, :attr:`filter_importances_` is Molchanov's
    filter criterion ``mean_steps |sum_(k, c) g * w|``.

    By default one step in :attr:`gradient_every` (4) is read: each read is a
    few small tensor operations (about 15 microseconds on a CPU, 3 % of a step
    of the suite's 64-64 MLP), and reading every step or every 4th gave the
    same rankings on the whole suite at 15, 60 and 200 epochs (every 2nd and
    8th too, checked at 15 epochs; ``research/scoring_modes/RESULTS.md``).
    """

    name = "taylor"
    needs_gradients = True
    check_key = "features"
    gradient_every = 4
    min_snapshots = 0
    merge_rules: ClassVar[dict[str, str]] = {"features": "sum", "units": "sum"}
    reduces_each_step = True

    def __init__(self, view: WeightView, ops: ArrayOps, dtype: str) -> None:
        super().__init__(view, ops, dtype)
        self._unit_axis = view.unit_axis
        ndim = len(view.weight_shape)
        self._other_axes = tuple(a for a in range(ndim) if a != self._unit_axis)
        self._track_units = view.kind == "conv"
        # Per-step sums in the gradient's precision, flushed every FLUSH_EVERY steps.
        self._pending: dict[str, Array] = {}
        self._unflushed = 0

    def step_terms(
        self, gradient: Array, weights: Array, before: Array | None, ops: StepOps
    ) -> dict[str, Array]:
        # A feature sum is finite exactly when every product in it is (NaN and
        # Inf propagate through sums), so checking this small vector suffices.
        if not self._track_units:
            return {"features": abs(ops.dot(gradient, weights, self._unit_axis))}
        product = gradient * weights
        return {
            "features": abs(ops.sum(product, self._unit_axis)),
            "units": abs(ops.sum(product, self._other_axes)),
        }

    def gradient(self, gradient: Array, weights: Array) -> bool:
        if not super().gradient(gradient, weights):
            return False
        self._unflushed += 1
        if self._unflushed >= FLUSH_EVERY:
            self.flush()
        return True

    def _add_step(self, key: str, value: Array) -> None:
        self._accumulate(key, value)

    def add_sums(self, sums: dict[str, np.ndarray], n_steps: int, n_skipped: int) -> None:
        self.flush()
        super().add_sums(sums, n_steps, n_skipped)

    def _accumulate(self, key: str, value: Array) -> None:
        pending = self._pending.get(key)
        if pending is None:
            exact = str(value.dtype).endswith(("float32", "float64"))
            # Half precision would lose the sum: convert those at once.
            self._pending[key] = value if exact else self.ops.copy_as(value, self.dtype)
        else:
            pending += value

    def snapshot(self, weights: Array) -> None:
        super().snapshot(weights)
        # Flushing at every snapshot makes the state at an epoch's end independent
        # of when it is saved, so a resumed run equals an uninterrupted one.
        self.flush()

    def flush(self) -> None:
        """Move the per-step sums into the accumulators (before reading or saving)."""
        for key, pending in self._pending.items():
            self._add(key, pending)
        self._pending = {}
        self._unflushed = 0

    def feature_sums(self, moments: RunningMoments, last: np.ndarray | None) -> np.ndarray:
        self.flush()
        reduced = self.ops.to_numpy(self.arrays["features"])
        return _reduced_to_features(self.view, reduced) / self.n_steps

    def unit_sums(self, moments: RunningMoments, last: np.ndarray | None) -> np.ndarray:
        self.flush()
        if self.arrays["units"] is None:
            raise NotFittedError("unit scores of scoring='taylor' are kept for convolutions only.")
        return self.ops.to_numpy(self.arrays["units"]) / self.n_steps

    def all_finite(self) -> bool:
        self.flush()
        return super().all_finite()

    def state_dict(self) -> dict[str, Any]:
        self.flush()
        return super().state_dict()

    def merge(self, other: ScoringMode) -> None:
        assert isinstance(other, TaylorMode)
        self.flush()
        other.flush()
        super().merge(other)


class SteadyTaylorMode(TaylorMode):
    """Taylor importance weighted by how steadily the network relies on the feature.

    ``score_i = m_i * (m_i / sd_i)`` with ``m_i = mean_steps |sum_j g_ij w_ij|``
    (the ``taylor`` score: the batch's gradient x input, how much the loss
    depends on the feature) and ``sd_i`` the standard deviation of the same
    per-step terms over the read steps: the Taylor score times its
    signal-to-noise ratio over training. The ratio is dimensionless, so the
    score keeps ``taylor``'s unit (a first-order loss change) and inputs of
    different layers stay comparable.

    Why: a feature the network keeps relying on contributes a term of steady
    size at every step; a feature it uses only for a while (a decoy
    correlated with an informative feature, used early and then explained
    away by the feature itself, or a noise feature recruited to memorise a
    few batches) contributes in bursts, whose spread is large against their
    mean. ``taylor``'s mean counts both alike. Signal-to-noise weighting is
    what Bayesian pruning and gradient-noise studies use for single weights
    (Graves, NeurIPS 2011; Blundell et al., ICML 2015; Liu et al.,
    "Understanding why neural networks generalize well through GSNR of
    parameters", ICLR 2020); here it applies to ``taylor``'s per-feature
    terms. Measured (``research/selector_gap/RESULTS.md``): above ``taylor``
    in PyTorch at 15, 60 and 200 epochs, most on the high-dimensional and
    redundant problems, and on problems and networks outside the suite;
    level with it in Keras. Multiplying in the distance the weights moved
    from their initialisation ranked better still under PyTorch's
    initialisation but worse under Keras's (Glorot): a weight-based factor
    that depends on the initialisation was not shipped.

    Cost: ``taylor``'s plus one square and one sum of a vector per read step;
    the state is two accumulators per feature (and per filter for
    convolutions). A feature whose term was 0 at every read step scores 0.
    Needs at least two read steps.
    """

    name = "steady_taylor"
    check_key = "feature_squares"
    """Checked instead of ``features``: a square is finite only if its term is,
    and it is the first to overflow in half precision."""
    merge_rules: ClassVar[dict[str, str]] = {
        "features": "sum",
        "units": "sum",
        "feature_squares": "sum",
        "unit_squares": "sum",
    }

    def step_terms(
        self, gradient: Array, weights: Array, before: Array | None, ops: StepOps
    ) -> dict[str, Array]:
        terms = super().step_terms(gradient, weights, before, ops)
        terms["feature_squares"] = terms["features"] * terms["features"]
        if "units" in terms:
            terms["unit_squares"] = terms["units"] * terms["units"]
        return terms

    def check_ready(self) -> None:
        super().check_ready()
        if self.n_steps < 2:
            raise NotFittedError(
                f"scoring={self.name!r} compares the gradient terms of several steps, but "
                f"{self.n_steps} was recorded; train for more steps (the trackers read "
                "steps 1, 1 + gradient_every, ...: with the default gradient_every="
                f"{self.gradient_every}, at least {self.gradient_every + 1})."
            )

    def _steady(self, key: str, squares_key: str) -> np.ndarray:
        """``m * m / sd`` from the sums of the terms of ``key`` and of their squares."""
        self.flush()
        sums = np.asarray(self.ops.to_numpy(self.arrays[key]), dtype=np.float64)
        squares = np.asarray(self.ops.to_numpy(self.arrays[squares_key]), dtype=np.float64)
        n = self.n_steps
        mean = sums / n
        variance = np.maximum(squares - n * mean * mean, 0.0) / (n - 1)
        # A term that never varied (a feature that never contributed, or runs of
        # a handful of steps) is floored, not divided by 0.
        spread = np.maximum(np.sqrt(variance), 1e-12 * mean)
        return np.divide(mean * mean, spread, out=np.zeros_like(mean), where=mean > 0)

    def feature_sums(self, moments: RunningMoments, last: np.ndarray | None) -> np.ndarray:
        return _reduced_to_features(self.view, self._steady("features", "feature_squares"))

    def unit_sums(self, moments: RunningMoments, last: np.ndarray | None) -> np.ndarray:
        if self.arrays["units"] is None:
            raise NotFittedError(
                f"unit scores of scoring={self.name!r} are kept for convolutions only."
            )
        return self._steady("units", "unit_squares")


class MovementMode(ScoringMode):
    """Movement pruning's score: how much the weights moved *away from zero*.

    ``score_i = max(0, -sum_steps sum_j g_ij * w_ij)``, accumulated over every
    optimizer step (Sanh, Wolf & Rush, "Movement Pruning: Adaptive Sparsity by
    Fine-Tuning", NeurIPS 2020: ``S = -sum_t g_t * w_t``). Weights that the
    gradient pushes away from zero gain score, weights pushed toward zero lose
    it. For a dense layer the per-feature sum is the *signed* batch gradient x
    input, so unlike ``taylor`` the noise of late steps partly cancels, and so
    does the signal once the network has fitted. Measured: below ``taylor``.
    Reads one step in 4 by default, like ``taylor``.
    """

    name = "movement"
    needs_gradients = True
    check_key = "score"
    gradient_every = 4
    min_snapshots = 0
    merge_rules: ClassVar[dict[str, str]] = {"score": "sum"}

    def step_terms(
        self, gradient: Array, weights: Array, before: Array | None, ops: StepOps
    ) -> dict[str, Array]:
        return {"score": -(gradient * weights)}

    def contributions(self, moments: RunningMoments, last: np.ndarray | None) -> np.ndarray:
        return self._matrix("score") / self.n_steps


class SynapticMode(ScoringMode):
    """Synaptic Intelligence's path integral: each weight's share of the loss decrease.

    ``score_i = max(0, sum_steps sum_j -g_ij * (w_ij(after) - w_ij(before)))``,
    the first-order loss decrease each step owes to the weights of feature
    ``i`` (Zenke, Poole & Ganguli, "Continual Learning Through Synaptic
    Intelligence", ICML 2017, their ``omega``; their normalisation by the
    squared total displacement serves regularisation strength, not ranking,
    and ranks worse here). Keeps a copy of the weights to form each step's
    update. Measured: fails where noise features help memorise the training
    set (their steps reduce the training loss too). Reads every step (the
    path integral needs each step's update).
    """

    name = "synaptic"
    needs_gradients = True
    check_key = "omega"
    needs_weights_before = True
    min_snapshots = 0
    merge_rules: ClassVar[dict[str, str]] = {"previous": "last", "omega": "sum"}

    def start(self, weights: Array) -> None:
        self.arrays["previous"] = self.ops.copy_as(weights, self.dtype)

    def step_terms(
        self, gradient: Array, weights: Array, before: Array | None, ops: StepOps
    ) -> dict[str, Array]:
        assert before is not None
        return {"omega": -(gradient * (weights - before))}

    def gradient(self, gradient: Array, weights: Array) -> bool:
        previous = self.arrays["previous"]
        if previous is None:
            self.arrays["previous"] = self.ops.copy_as(weights, self.dtype)
            return True
        terms = self.step_terms(gradient, weights, previous, self.ops)
        # A skipped optimizer step left the weights as they were, so the next
        # step's update still starts from ``weights``.
        previous[...] = weights
        if not self._finite_step(terms["omega"]):
            return False
        self._add("omega", terms["omega"])
        self.n_steps += 1
        return True

    def contributions(self, moments: RunningMoments, last: np.ndarray | None) -> np.ndarray:
        return self._matrix("omega") / self.n_steps


# ------------------------------------------------------------------ registry
SCORING_MODES: dict[str, type[ScoringMode]] = {
    mode.name: mode
    for mode in (
        ViannMode,
        GrowthMode,
        PathMode,
        EMAVarianceMode,
        UpdateVarianceMode,
        TaylorMode,
        SteadyTaylorMode,
        MovementMode,
        SynapticMode,
    )
}
"""Every scoring mode by name (``scoring=`` of the trackers)."""

RECOMMENDED_MODE = "steady_taylor"
"""The mode to use where gradients are available.

Chosen on the planted-truth measurements in ``research/scoring_modes/RESULTS.md``
(every mode at 15, 60 and 200 epochs) and ``research/selector_gap/RESULTS.md``
(the candidates, and a check on problems and networks outside the suite).
``"taylor"`` is its base statistic, without the weighting.
"""
RECOMMENDED_SNAPSHOT_MODE = "growth"
"""The best mode that needs weight snapshots only (no per-step work at all)."""


def get_mode(scoring: str) -> type[ScoringMode]:
    """Return the mode class registered as ``scoring``, or raise naming the options."""
    if not isinstance(scoring, str) or scoring not in SCORING_MODES:
        snapshot = [n for n, m in SCORING_MODES.items() if not m.needs_gradients]
        gradient = [n for n, m in SCORING_MODES.items() if m.needs_gradients]
        raise ValueError(
            f"scoring={scoring!r} is not a scoring mode. Use 'viann' (the paper's method, "
            f"default), a snapshot mode ({', '.join(repr(n) for n in snapshot[1:])}) or a "
            f"gradient mode ({', '.join(repr(n) for n in gradient)}); "
            f"'{RECOMMENDED_MODE}' is recommended, '{RECOMMENDED_SNAPSHOT_MODE}' is the "
            "best of the snapshot modes."
        )
    return SCORING_MODES[scoring]
