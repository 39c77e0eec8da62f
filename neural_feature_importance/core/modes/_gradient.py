"""The gradient modes: scores from the tracked layer's gradient at optimizer steps.

`taylor` is the mean |gradient x input| per feature (Molchanov et al.);
`steady_taylor` weighs it by its signal-to-noise ratio over the steps, and
`descent_taylor` (`_descent.py`, the recommended mode) by the optimizer's
descent along each feature's gradient. Both keep one or two vectors per feature, whatever the
size of the layer. A read step only reduces `gradient * weights` over each
feature's units, on the gradient's device; the absolute values, squares and
the NaN/Inf mask are formed for blocks of reads
([`HeldReads`][neural_feature_importance.core.modes.HeldReads]).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from neural_feature_importance.core.arrays import Array, ArrayOps, StepOps
from neural_feature_importance.core.errors import NotFittedError
from neural_feature_importance.core.modes._base import ScoringMode, reduced_to_features
from neural_feature_importance.core.views import WeightView


class TaylorMode(ScoringMode):
    """First-order Taylor importance of each feature, averaged over the training steps.

    `score_i = mean_steps |sum_j g_ij * w_ij|` with `g` the loss gradient
    of the tracked weight at each optimizer step and `w` the weight after
    it. This is the group Taylor criterion of Molchanov et al. ("Pruning
    convolutional neural networks for resource efficient inference", ICLR
    2017; "Importance estimation for neural network pruning", CVPR 2019)
    applied to the group of weights that leave one input feature. For a dense
    layer `sum_j g_ij w_ij = sum_n x_ni * dL/dx_ni` over the batch: the
    batch's *gradient x input* of feature `i` (Shrikumar et al., 2016;
    Ancona et al., ICLR 2018), i.e. the first-order change of the loss if the
    feature were set to zero (its mean, for standardised inputs). It is
    computed from `param.grad`, which training computes anyway.

    Why it does not depend on the stopping epoch: once the network has fitted, the loss gradients
    shrink, so late steps add little; noise features only ever contribute the batch noise of a
    mean-zero product. It runs in every adapter (PyTorch, Lightning, and Keras through its optimizer
    tap) and keeps one vector per feature.

    On the planted-truth suite it ranks level with Integrated Gradients and with
    [`SteadyTaylorMode`][] (mean ROC-AUC 0.986 against 0.987 and 0.989, nine data sets, 5
    seeds, `benchmarks/RESULTS.md`); on real data with appended irrelevant columns it ranks
    above both, and above `steady_taylor` under either initialisation, but below the
    recommended mode, [`DescentTaylorMode`][], which multiplies it by the optimizer's
    descent along each feature's gradient (`research/real_data_modes/RESULTS.md`). It is
    the cheapest gradient mode: one reduction per read step and one vector per feature.
    For convolutions,
    [`filter_importances_`][neural_feature_importance.core.ConvVarianceImportanceBase.filter_importances_]
    is Molchanov's filter criterion `mean_steps |sum_(k, c) g * w|`.

    By default one step in `gradient_every` (4) is read. A read is one
    reduction of `gradient * weights` over each feature's units, left on the
    gradient's device (`raw_terms()`); the absolute values, the
    NaN/Inf mask and the sums are formed for 128 reads at once
    ([`HeldReads`][neural_feature_importance.core.modes.HeldReads]), so no read
    waits for the device. On a CPU core that is about 30 microseconds per read
    right after an optimizer step, 2 % of a step of the suite's 64-64 MLP
    (`benchmarks/RESULTS.md`, `torch_step`). Reading every step or every 4th
    gave the same rankings on the whole suite at 15, 60 and 200 epochs
    (`research/scoring_modes/RESULTS.md`); every 8th halves the cost and ties
    on the suite too, but ranks up to 0.02 ROC-AUC lower on small real data
    sets, whose runs have few steps.
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

    def raw_terms(
        self, gradient: Array, weights: Array, ops: StepOps, before: Array | None = None
    ) -> dict[str, Array]:
        # The signed sums over each feature's units (and each filter's weights);
        # the absolute value is taken per step, in terms_from_raw().
        if not self._track_units:
            return {"features": ops.dot(gradient, weights, self._unit_axis)}
        product = gradient * weights
        return {
            "features": ops.sum(product, self._unit_axis),
            "units": ops.sum(product, self._other_axes),
        }

    def terms_from_raw(self, raw: dict[str, Array]) -> dict[str, Array]:
        # A feature sum is finite exactly when every product in it is (NaN and
        # Inf propagate through sums), so checking these small vectors suffices.
        return {key: abs(value) for key, value in raw.items()}

    def step_terms(
        self, gradient: Array, weights: Array, before: Array | None, ops: StepOps
    ) -> dict[str, Array]:
        return self.terms_from_raw(self.raw_terms(gradient, weights, ops, before))

    def feature_sums(self) -> np.ndarray:
        self.held.fold()
        reduced = self.ops.to_numpy(self.arrays["features"])
        return reduced_to_features(self.view, reduced) / self.n_steps

    def unit_sums(self) -> np.ndarray:
        self.held.fold()
        if self.arrays["units"] is None:
            raise NotFittedError("unit scores of scoring='taylor' are kept for convolutions only.")
        return self.ops.to_numpy(self.arrays["units"]) / self.n_steps


class SteadyTaylorMode(TaylorMode):
    """Taylor importance weighted by how steadily the network relies on the feature.

    `score_i = m_i * (m_i / sd_i)` with `m_i = mean_steps |sum_j g_ij w_ij|`
    (the `taylor` score: the batch's gradient x input, how much the loss
    depends on the feature) and `sd_i` the standard deviation of the same
    per-step terms over the read steps: the Taylor score times its
    signal-to-noise ratio over training. The ratio is dimensionless, so the
    score keeps `taylor`'s unit (a first-order loss change) and inputs of
    different layers stay comparable.

    Why: a feature the network keeps relying on contributes a term of steady
    size at every step; a feature it uses only for a while (a decoy
    correlated with an informative feature, used early and then explained
    away by the feature itself, or a noise feature recruited to memorise a
    few batches) contributes in bursts, whose spread is large against their
    mean. `taylor`'s mean counts both alike. Signal-to-noise weighting is
    what Bayesian pruning and gradient-noise studies use for single weights
    (Graves, NeurIPS 2011; Blundell et al., ICML 2015; Liu et al.,
    "Understanding why neural networks generalize well through GSNR of
    parameters", ICLR 2020); here it applies to `taylor`'s per-feature
    terms. Measured (`research/selector_gap/RESULTS.md`): above `taylor`
    in PyTorch at 15, 60 and 200 epochs on the planted-truth suite, most on
    the high-dimensional problem (`high_dim` ROC-AUC 0.94 against 0.91);
    level with it in Keras. On small real data sets with appended
    irrelevant columns it ranks *below* `taylor` (mean ROC-AUC 0.88 against
    0.89 under PyTorch's initialisation, 0.80 against 0.84 under Glorot's;
    `research/real_data_modes/RESULTS.md`): their runs have few steps, and
    the spread of a real column's terms over them is large against its mean.
    So it is the choice for wide, noisy inputs trained long only.
    Multiplying in the distance the weights moved from their initialisation
    ranked better still under PyTorch's initialisation but worse under
    Keras's (Glorot): a weight-based factor that depends on the
    initialisation was not shipped.

    Cost: `taylor`'s per read step (the squares are formed with the
    absolute values, once per 128 reads); the state is two accumulators per
    feature (and per filter for convolutions). A feature whose term was 0
    at every read step scores 0. Needs at least two read steps.
    """

    name = "steady_taylor"
    check_key = "feature_squares"
    """Checked instead of `features`: a square is finite only if its term is,
    and it is the first to overflow in half precision."""
    merge_rules: ClassVar[dict[str, str]] = {
        "features": "sum",
        "units": "sum",
        "feature_squares": "sum",
        "unit_squares": "sum",
    }

    def terms_from_raw(self, raw: dict[str, Array]) -> dict[str, Array]:
        terms = super().terms_from_raw(raw)
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
        """`m * m / sd` from the sums of the terms of `key` and of their squares."""
        self.held.fold()
        sums = np.asarray(self.ops.to_numpy(self.arrays[key]), dtype=np.float64)
        squares = np.asarray(self.ops.to_numpy(self.arrays[squares_key]), dtype=np.float64)
        n = self.n_steps
        mean = sums / n
        variance = np.maximum(squares - n * mean * mean, 0.0) / (n - 1)
        # A term that never varied (a feature that never contributed, or runs of
        # a handful of steps) is floored, not divided by 0.
        spread = np.maximum(np.sqrt(variance), 1e-12 * mean)
        return np.divide(mean * mean, spread, out=np.zeros_like(mean), where=mean > 0)

    def feature_sums(self) -> np.ndarray:
        return reduced_to_features(self.view, self._steady("features", "feature_squares"))

    def unit_sums(self) -> np.ndarray:
        if self.arrays["units"] is None:
            raise NotFittedError(
                f"unit scores of scoring={self.name!r} are kept for convolutions only."
            )
        return self._steady("units", "unit_squares")
