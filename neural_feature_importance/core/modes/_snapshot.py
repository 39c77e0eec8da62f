"""The snapshot modes: scores from weight snapshots alone (no per-step work).

`viann` is the paper's method (de Sá 2019), bit for bit; `growth` is the
best mode of our planted-truth study that needs no gradient
(`research/scoring_modes/RESULTS.md`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from neural_feature_importance.core.arrays import Array, ArrayOps
from neural_feature_importance.core.errors import NotFittedError, StateDictError
from neural_feature_importance.core.modes._base import ScoringMode
from neural_feature_importance.core.moments import RunningMoments
from neural_feature_importance.core.scoring import unit_scores, variance_sum_scores, viann_scores
from neural_feature_importance.core.views import WeightView


class ViannMode(ScoringMode):
    """VIANN, the paper's method: variance of the weights times their final magnitude.

    `score_i = sum_j var_t(w_ij) * |w_ij(T)|` over the snapshots `t`
    (embedding tables: `sum_j var_t(w_ij)`; a convolution's filters:
    the same sum over the features). The variance is Welford's running
    variance ([`RunningMoments`][],
    merged across processes with Chan et al.'s formula). Source: de Sá,
    "Variance-Based Feature Importance in Neural Networks", Discovery
    Science 2019. The scores are the sums themselves (no clipping), so
    published results reproduce bit for bit.
    """

    name = "viann"
    min_snapshots = 2
    keeps_last = True
    clips = False

    def __init__(self, view: WeightView, ops: ArrayOps, dtype: str) -> None:
        super().__init__(view, ops, dtype)
        self.moments = RunningMoments(dtype, ops)

    def snapshot(self, weights: Array) -> None:
        self.moments.update(weights)
        super().snapshot(weights)

    def check_ready(self) -> None:
        count = self.moments.count
        if count < 2:
            raise NotFittedError(
                f"VIANN has {count} weight snapshot(s); a variance needs at least 2. Call "
                "update()/on_epoch_end() after each epoch (or use update_every=N for "
                "per-step snapshots) and train for at least 2 of them before reading "
                "importances."
            )

    def variance_matrix(self) -> np.ndarray:
        """The running variance as a `(features, units)` numpy matrix."""
        return self.view.to_matrix(self.ops.to_numpy(self.moments.variance(ddof=1)))

    def feature_sums(self) -> np.ndarray:
        variance = self.variance_matrix()
        if self.view.kind == "embedding":
            return variance_sum_scores(variance)
        last = self.last_matrix()
        assert last is not None  # min_snapshots = 2
        return viann_scores(variance, last)

    def unit_sums(self) -> np.ndarray:
        last = self.last_matrix()
        assert last is not None  # min_snapshots = 2
        return unit_scores(self.variance_matrix(), last)

    def checked_arrays(self) -> list[Array | None]:
        if self.moments.count == 0:
            return [self.last]
        state = self.moments.state_dict()
        return [state["mean"], state["m2"], self.last]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "moments": self.moments.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "moments" not in state:
            raise StateDictError("state of scoring='viann' is missing 'moments'.")
        self.moments.load_state_dict(state["moments"])

    def merge(self, other: ScoringMode) -> None:
        assert isinstance(other, ViannMode)
        super().merge(other)
        self.moments.merge(other.moments)


class GrowthMode(ScoringMode):
    """Squared-norm growth of a feature's weights since initialisation.

    `score_i = max(0, sum_j w_ij(T)^2 - w_ij(0)^2)`: how far the weights
    leaving feature `i` grew away from zero, with the random initialisation
    subtracted. A snapshot-only approximation of *movement pruning*'s score
    `-sum_t g_t w_t` (Sanh, Wolf & Rush, NeurIPS 2020): under gradient
    descent with step `eta`, `-sum_t g_t w_t = (w_T^2 - w_0^2) / (2 eta)`
    up to `O(eta)`. It refines the classic weight-based saliency `|w_T|`
    (Tarr 1991; Steppe & Bauer, 1997) by removing the initial weights, which
    carry no information. Features whose weights shrank score 0.

    Needs only the initial weights and the last snapshot, so it works in every
    framework (Keras included) at no per-step cost. Measured on the planted-truth suite: far
    less dependent on the number of epochs than VIANN, but below `taylor`.
    """

    name = "growth"
    min_snapshots = 1
    keeps_last = True
    merge_rules: ClassVar[dict[str, str]] = {"initial": "first"}

    def start(self, weights: Array) -> None:
        self.arrays["initial"] = self.ops.copy_as(weights, self.dtype)

    def contributions(self) -> np.ndarray:
        last = self.last_matrix()
        assert last is not None  # min_snapshots = 1
        initial = self._matrix("initial")
        return last**2 - initial**2
