"""Research variants of the scoring modes, kept out of the package.

The scoring-mode study (`research/scoring_modes/RESULTS.md`) measured these
five modes against VIANN, `growth`, `taylor` and `steady_taylor` on the
planted-truth suite; none beat the shipped modes, and no guide recommends
them, so the package does not ship them. They remain runnable for the study's
scripts: `import research_modes; research_modes.register()` (with
`research/` on `sys.path`) makes `scoring="path"`, `"ema_variance"`,
`"update_variance"`, `"movement"` and `"synaptic"` available to every
tracker through `neural_feature_importance.core.modes.register_mode()`.

Each is written against the public `ScoringMode`
interface; `synaptic` reads every step in PyTorch and in the Keras tap
(which hands it the weight before the step, `needs_weights_before`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from neural_feature_importance.core.arrays import Array, ArrayOps, StepOps
from neural_feature_importance.core.errors import StateDictError
from neural_feature_importance.core.modes import SCORING_MODES, ScoringMode, register_mode
from neural_feature_importance.core.moments import RunningMoments
from neural_feature_importance.core.views import WeightView

EMA_HALFLIFE = 10
"""Half-life, in snapshots, of the `ema_variance` mode's memory."""


class PathMode(ScoringMode):
    """Length of the path the weights travelled, summed per feature.

    `score_i = sum_t sum_j |w_ij(t) - w_ij(t-1)|` over consecutive snapshots,
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

    def contributions(self) -> np.ndarray:
        return self._matrix("path")


class EMAVarianceMode(ScoringMode):
    """VIANN with an exponentially decayed variance (recent snapshots count most).

    `score_i = sum_j v_ij * |w_ij(T)|` where `v` is the exponentially
    weighted moving variance of the snapshots with a half-life of
    `EMA_HALFLIFE` snapshots (the incremental recurrence of West,
    "Updating mean and variance estimates", CACM 1979; see Finch, 2009,
    "Incremental calculation of weighted mean and variance"):
    `d = w - m; m += a d; v = (1 - a)(v + a d^2)` with `a = 1 - 2^(-1/h)`.

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

    def contributions(self) -> np.ndarray:
        last = self.last_matrix()
        assert last is not None  # min_snapshots = 2
        return self._matrix("variance") * np.abs(last)

    def merge(self, other: ScoringMode) -> None:
        raise ValueError(
            "scoring='ema_variance' keeps exponentially decayed statistics, which cannot "
            "be merged across trackers; use another scoring mode for data-parallel runs."
        )


class UpdateVarianceMode(ScoringMode):
    """VIANN on the weight *updates*: variance of the steps times final magnitude.

    `score_i = sum_j var_t(w_ij(t) - w_ij(t-1)) * |w_ij(T)|`, the updates
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

    def contributions(self) -> np.ndarray:
        last = self.last_matrix()
        assert last is not None  # min_snapshots = 2
        variance = self.view.to_matrix(self.ops.to_numpy(self.updates.variance(ddof=1)))
        return variance * np.abs(last)

    def checked_arrays(self) -> list[Array | None]:
        if self.updates.count == 0:
            return super().checked_arrays()
        state = self.updates.state_dict()
        return [*super().checked_arrays(), state["mean"], state["m2"]]

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


class MovementMode(ScoringMode):
    """Movement pruning's score: how much the weights moved *away from zero*.

    `score_i = max(0, -sum_steps sum_j g_ij * w_ij)`, accumulated over every
    optimizer step (Sanh, Wolf & Rush, "Movement Pruning: Adaptive Sparsity by
    Fine-Tuning", NeurIPS 2020: `S = -sum_t g_t * w_t`). Weights that the
    gradient pushes away from zero gain score, weights pushed toward zero lose
    it. For a dense layer the per-feature sum is the *signed* batch gradient x
    input, so unlike `taylor` the noise of late steps partly cancels, and so
    does the signal once the network has fitted. Measured: below `taylor`.
    Reads one step in 4 by default, like `taylor`.
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

    def contributions(self) -> np.ndarray:
        return self._matrix("score") / self.n_steps


class SynapticMode(ScoringMode):
    """Synaptic Intelligence's path integral: each weight's share of the loss decrease.

    `score_i = max(0, sum_steps sum_j -g_ij * (w_ij(after) - w_ij(before)))`,
    the first-order loss decrease each step owes to the weights of feature
    `i` (Zenke, Poole & Ganguli, "Continual Learning Through Synaptic
    Intelligence", ICML 2017, their `omega`; their normalisation by the
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

    def gradient(self, gradient: Array, weights: Array, before: Array | None = None) -> None:
        # Keeps its own copy of the previous step's weights: every step is read.
        previous = self.arrays["previous"]
        if previous is None:
            self.arrays["previous"] = self.ops.copy_as(weights, self.dtype)
            return
        terms = self.step_terms(gradient, weights, previous, self.ops)
        # A skipped optimizer step left the weights as they were, so the next
        # step's update still starts from ``weights``.
        previous[...] = weights
        self.held.hold(terms)

    def contributions(self) -> np.ndarray:
        return self._matrix("omega") / self.n_steps


RESEARCH_MODES: tuple[type[ScoringMode], ...] = (
    PathMode,
    EMAVarianceMode,
    UpdateVarianceMode,
    MovementMode,
    SynapticMode,
)
"""The research variants, in the order of the study's tables."""


def register() -> None:
    """Register every research variant (idempotent)."""
    for mode in RESEARCH_MODES:
        if SCORING_MODES.get(mode.name) is not mode:
            register_mode(mode)
