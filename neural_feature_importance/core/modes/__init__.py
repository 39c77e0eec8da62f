"""Scoring modes: which statistic of the training run ranks the input features.

Every tracker built without `scoring=` uses [`RECOMMENDED_MODE`][RECOMMENDED_MODE], a
gradient mode. VIANN, the paper's method (`scoring="viann"`, bit for bit), scores a
feature by how much the weights leaving it varied over the weight snapshots, times their
final size. Our planted-truth study showed that this depends on *when* training stops:
late in training the weights of noise features keep drifting and their variance swamps
the signal; on real data with appended irrelevant columns it can rank them above the real
ones (`benchmarks/RESULTS.md`, "Real data"). The modes below are the ones we measured and ship (see
`research/scoring_modes/RESULTS.md`; the research variants that no guide
recommends live in `research/research_modes.py`); each is one small class that every tracker
(Keras, PyTorch, Lightning, the bare core) drives through the same calls:

`start(weights)`
:   the weights before training (the adapters pass the initial weights);

`snapshot(weights)`
:   one weight snapshot (per epoch, or every `update_every` steps);

`gradient(gradient, weights)`
:   one optimizer step: the loss gradient of the tracked weight and the
    weight after the step. Only *gradient modes* use it. The PyTorch trackers
    feed `param.grad` in `on_step_end`; the Keras callbacks sum the same
    per-step terms ([`ScoringMode.step_terms()`][ScoringMode.step_terms]) inside the compiled train
    step, through an optimizer wrapper, and hand the sums over once per epoch
    ([`ScoringMode.add_sums()`][ScoringMode.add_sums]). A gradient holding NaN or Inf is skipped
    and counted (`n_skipped`), as mixed precision's loss scaler skips that
    optimizer step: one overflowed fp16 step must not poison the statistics
    of the whole run.

Every quantity is summed over the units `j` a feature `i` feeds, in the
tracked layer's `(features, units)` view ([`views`][]):

| mode | needs | raw score of feature `i` | source |
| --- | --- | --- | --- |
| `viann` | snapshots | `sum_j var_t(w_ij) * |w_ij(T)|` | de Sá 2019 |
| `growth` | snapshots | `max(0, sum_j w_ij(T)^2 - w_ij(0)^2)` | movement pruning, weight saliency |
| `taylor` | gradients | `mean_steps |sum_j g_ij * w_ij|` | Molchanov 2017/2019 |
| `steady_taylor` | gradients | `taylor * taylor / sd_steps(|sum_j g * w|)` | this study; SNR weighting |
| `descent_taylor` | gradients | `taylor * sum_steps |sum_j g_ij * dw_ij| / sum_steps ||g_i||` | this study; loss change allocation (Lan 2019) |

`descent_taylor` is the recommended mode where gradients are available, and
so the default of every tracker. Its first factor is `taylor`'s: for a dense
layer `sum_j g_ij * w_ij` equals the batch's summed *gradient x input* of
feature `i` (the first-order change of the loss if the feature were zeroed),
so it measures what the network does with the feature rather than how much
its weights wander, and late in training, when the loss gradients shrink, it
stops growing, whatever the number of epochs. Its second factor is how far the
optimizer's steps `dw` moved the feature's weights along the feature's
gradient: far for a column the network learns from, whose gradient keeps its
direction, little for an irrelevant column that the network carries from its
initialisation or uses to memorise a few rows, whose gradient turns from batch
to batch. It ranks appended irrelevant columns of real data sets far lower
than `taylor` (most under Keras's Glorot initialisation), and level with it on
planted truth. `steady_taylor` weighs `taylor` by how steadily the feature
contributes over the steps (`taylor / sd_steps`, its signal-to-noise ratio),
which ranks informative features above decoys better on wide, noisy
planted problems, for two more numbers per feature, but ranks appended
irrelevant columns higher on small real data sets. `growth` is the best
mode computed from snapshots alone. The measurements behind these choices
are in `research/scoring_modes/RESULTS.md`, `research/selector_gap/RESULTS.md`
and `research/real_data_modes/RESULTS.md`.

Modes keep their statistics in the tracker's array library (numpy, or torch
tensors on the parameter's device) and in the tracker's `state_dict`.
"""  # noqa: E501

from __future__ import annotations

from neural_feature_importance.core.modes._base import ScoringMode
from neural_feature_importance.core.modes._descent import DescentTaylorMode
from neural_feature_importance.core.modes._gradient import SteadyTaylorMode, TaylorMode
from neural_feature_importance.core.modes._held_reads import FOLD_EVERY, HeldReads
from neural_feature_importance.core.modes._snapshot import GrowthMode, ViannMode

SCORING_MODES: dict[str, type[ScoringMode]] = {
    mode.name: mode
    for mode in (ViannMode, GrowthMode, TaylorMode, SteadyTaylorMode, DescentTaylorMode)
}
"""Every scoring mode by name (`scoring=` of the trackers)."""

RECOMMENDED_MODE = "descent_taylor"
"""The mode to use where gradients are available: every tracker's default `scoring`.

Chosen on both benchmarks (`benchmarks/RESULTS.md`,
`research/real_data_modes/RESULTS.md`): it ranks level with `taylor`,
`steady_taylor` and Integrated Gradients on the nine planted-truth data sets,
and above all of them on real data with appended irrelevant columns, under
PyTorch's and Keras's initialisation and under Adam, SGD with momentum and plain
SGD, for three accumulators per feature and a copy of the tracked weight.
`"taylor"` is its first factor alone (one accumulator, one reduction per read);
`"steady_taylor"` weighs `taylor` by its signal-to-noise ratio over the steps.
"""
RECOMMENDED_SNAPSHOT_MODE = "growth"
"""The best mode that needs weight snapshots only (no per-step work at all)."""


def register_mode(mode: type[ScoringMode]) -> type[ScoringMode]:
    """Make `mode` available as `scoring=mode.name` in every tracker.

    For research variants kept outside the package (`research/research_modes.py`)
    and for users' own modes: a subclass of [`ScoringMode`][] with a new
    `name`. Usable as a class decorator.

    Raises
    ------
    ValueError
        If the name is empty or taken by another class.
    """
    if not mode.name or SCORING_MODES.get(mode.name, mode) is not mode:
        raise ValueError(f"cannot register a scoring mode named {mode.name!r}: empty or taken.")
    SCORING_MODES[mode.name] = mode
    return mode


def get_mode(scoring: str) -> type[ScoringMode]:
    """Return the mode class registered as `scoring`, or raise naming the options."""
    if not isinstance(scoring, str) or scoring not in SCORING_MODES:
        snapshot = [n for n, m in SCORING_MODES.items() if not m.needs_gradients]
        gradient = [n for n, m in SCORING_MODES.items() if m.needs_gradients]
        raise ValueError(
            f"scoring={scoring!r} is not a scoring mode. Use a gradient mode "
            f"({', '.join(repr(n) for n in gradient)}; '{RECOMMENDED_MODE}' is recommended "
            "and the default) or a snapshot mode "
            f"({', '.join(repr(n) for n in snapshot)}; 'viann' is the paper's method, "
            f"'{RECOMMENDED_SNAPSHOT_MODE}' the best of them)."
        )
    return SCORING_MODES[scoring]


__all__ = [
    "FOLD_EVERY",
    "RECOMMENDED_MODE",
    "RECOMMENDED_SNAPSHOT_MODE",
    "SCORING_MODES",
    "DescentTaylorMode",
    "GrowthMode",
    "HeldReads",
    "ScoringMode",
    "SteadyTaylorMode",
    "TaylorMode",
    "ViannMode",
    "get_mode",
    "register_mode",
]
