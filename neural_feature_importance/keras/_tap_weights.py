"""The tracked weights of the gradient tap: one variable, or a group read as one.

[`GradientTapOptimizer`][neural_feature_importance.keras.gradients.GradientTapOptimizer]
keeps one `_Weight` (the sums of a scoring mode's terms) per tracked
weight, and one `_Slot` per variable whose gradient it reads. A weight is
usually one variable (a Dense kernel, a recurrent layer's input kernel), read
as it is; a group (a Bidirectional layer's two input kernels, an attention
layer's query, key and value kernels) is combined into one `(in_features,
units)` kernel in the train step, and the mode's terms are computed on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from neural_feature_importance.core.modes import ScoringMode


class VariableGroup(Protocol):
    """Several variables tracked as one weight (a `TrackedWeight` of the layer choice).

    `combine` turns one tensor per variable (the variables' values, or their
    gradients) into the one weight the scoring mode reads, with `keras.ops`
    (for recurrent and attention layers: each kernel reshaped to
    `(in_features, -1)`, concatenated along the units); `shape` is its shape.
    """

    @property
    def variables(self) -> tuple[Any, ...]: ...

    @property
    def shape(self) -> tuple[int, ...]: ...

    def combine(self, tensors: Sequence[Any]) -> Any: ...


@dataclass
class _Weight:
    """One tracked weight: its scoring mode and the tap's sums of it.

    It is one variable, or a group of variables read as one (`combine`); the
    mode's terms are computed on the combined gradient and weight, so that
    `step_terms` stays the single source of the formula. A plain object, not
    a Keras-tracked attribute: the tracked weight belongs to the model and
    must never become one of the optimizer's variables.
    """

    name: str
    mode: ScoringMode
    shape: tuple[int, ...]
    group: VariableGroup | None = None
    # The mode's terms, in the order they are laid out in `total`: (key, shape).
    layout: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    # The sums of every term, flattened one after the other, then the count of
    # reads added: `size` numbers, so a read is one masked add (keras/_tap_state.py).
    size: int = 0
    # Compiled steps: where they start in the tap's one state variable.
    offset: int = 0
    # The eager PyTorch backend: this weight's own float64 vector of them.
    total: Any = None
    # The eager backend's constant 1 (float32, shape (1,)) that each read adds to the count.
    one: Any = None

    def combine(self, tensors: Sequence[Any]) -> Any:
        """The weight from one tensor per variable; a single variable's tensor as it is."""
        return tensors[0] if self.group is None else self.group.combine(tensors)


@dataclass
class _Slot:
    """One variable the tap reads the gradient of, and the tracked weight it is part of."""

    name: str
    variable: Any
    mode: ScoringMode
    weight: _Weight
