"""Which parameters of a module read the model's inputs, and which axis is the feature.

Importance is per *input feature*, so a tracked weight must have one axis that
indexes the features its module reads. For the layers the trackers know, the
axis is fixed by the layer's definition:

- `nn.Linear`: `weight`, `(out, in)`, features on axis 1;
- `nn.RNN`, `nn.LSTM`, `nn.GRU`: `weight_ih_l0`, `(gates * hidden, in)`, and
  `weight_ih_l0_reverse` when bidirectional, features on axis 1;
- `nn.MultiheadAttention`: `in_proj_weight`, `(3 * embed, embed)`, the rows of
  the query, key and value that read the input (or `q_proj_weight`,
  `k_proj_weight`, `v_proj_weight`), features on axis 1;
- a per-feature tokenizer (the FT-Transformer's numeric embedding, periodic
  or piecewise-linear numeric embeddings): its `weight` (or its only
  parameter of 2+ dimensions), `(features, ...)`, features on axis 0;
- [`FeatureAxis`][neural_feature_importance.core.FeatureAxis]`(weight, axis)`: any
  parameter (`weight` is its name in `model.named_parameters()`), features on
  `axis`.

Only the first layer of a stacked recurrent network reads the inputs. The
weights of a module are read together as one `(units, features)` matrix (the
PyTorch `nn.Linear` layout the core expects): two directions, or the query,
key and value projections, are its rows one after the other. That is what
scores a feature by every path it takes: for the gradient modes the
feature's term sums `gradient x weight` over all of them, which is the
feature's gradient x input, and a per-feature tokenizer's `weight[i]`, which
multiplies feature `i` (`x_i * w_i + b_i`), gives the same.

Every matrix is a view of the parameter (`narrow`, `movedim` and a
reshape that merges contiguous axes): reading a weight or a gradient copies
nothing, except the concatenation of two or more parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from neural_feature_importance.core.views import FeatureAxis

ATTENTION_SLOTS: tuple[str, ...] = ("query", "key", "value")
"""The arguments of `nn.MultiheadAttention`, in the order of `in_proj_weight`'s rows."""


@dataclass(frozen=True)
class WeightPart:
    """One parameter (or a block of its rows) that reads the inputs.

    Attributes
    ----------
    name : str
        The parameter's name inside its module (`"weight_ih_l0"`).
    parameter : nn.Parameter
        The parameter.
    axis : int
        Its feature axis (non-negative).
    rows : tuple of (int, int), optional
        `(start, length)` of the block of rows read (the query, key or value
        block of `in_proj_weight`), for a 2-D parameter with `axis=1`.
    """

    name: str
    parameter: nn.Parameter
    axis: int
    rows: tuple[int, int] | None = None

    def matrix(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` (the parameter, or its gradient) as a `(units, features)` view."""
        if self.rows is not None:
            tensor = tensor.narrow(0, *self.rows)
        if tensor.ndim == 2 and self.axis == 1:
            return tensor
        moved = tensor.movedim(self.axis, -1)
        return moved.reshape(-1, moved.shape[-1])

    @property
    def is_linear_layout(self) -> bool:
        """Whether the part is a whole 2-D `(units, features)` parameter, as `nn.Linear`'s."""
        return self.rows is None and self.axis == 1 and self.parameter.ndim == 2

    @property
    def n_features(self) -> int:
        """Number of input features the part reads."""
        return int(self.parameter.shape[self.axis])


def own_matrices(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The module's own parameters with two or more dimensions (not its children's)."""
    return [
        (name, param)
        for name, param in module.named_parameters(recurse=False)
        if param.ndim >= 2 and not isinstance(param, nn.parameter.UninitializedParameter)
    ]


def recurrent_parts(module: nn.RNNBase) -> list[WeightPart]:
    """`weight_ih_l0` (and its reverse): the first layer's input weights."""
    names = ["weight_ih_l0"] + (["weight_ih_l0_reverse"] if module.bidirectional else [])
    return [WeightPart(name, getattr(module, name), 1) for name in names]


def attention_parts(
    module: nn.MultiheadAttention, slots: tuple[str, ...] = ATTENTION_SLOTS
) -> list[WeightPart]:
    """The projections of the attention arguments in `slots` that read the inputs.

    With one `in_proj_weight` the query, key and value are blocks of
    `embed_dim` rows; all three (self-attention) are the whole weight.
    """
    if module.in_proj_weight is not None:
        if tuple(slots) == ATTENTION_SLOTS:
            return [WeightPart("in_proj_weight", module.in_proj_weight, 1)]
        size = module.embed_dim
        return [
            WeightPart(
                "in_proj_weight", module.in_proj_weight, 1, (ATTENTION_SLOTS.index(s) * size, size)
            )
            for s in slots
        ]
    projections = {
        "query": ("q_proj_weight", module.q_proj_weight),
        "key": ("k_proj_weight", module.k_proj_weight),
        "value": ("v_proj_weight", module.v_proj_weight),
    }
    return [WeightPart(*projections[slot], 1) for slot in slots]


def tokenizer_parts(module: nn.Module) -> list[WeightPart] | None:
    """The weight of a per-feature tokenizer, features on axis 0.

    Its parameter named `weight` if that has 2+ dimensions (a tokenizer's bias,
    `(features, d)` too, adds no input), else its only parameter of 2+
    dimensions. `None` when the module has none, or several and no `weight`
    (then which one reads the inputs, and along which axis, is not known).
    """
    matrices = dict(own_matrices(module))
    if "weight" in matrices:
        return [WeightPart("weight", matrices["weight"], 0)]
    if len(matrices) != 1:
        return None
    ((name, param),) = matrices.items()
    return [WeightPart(name, param, 0)]


def known_parts(module: nn.Module, slots: tuple[str, ...] | None = None) -> list[WeightPart] | None:
    """The input-reading parts of a recurrent or attention module (`None` for others)."""
    if isinstance(module, nn.RNNBase):
        return recurrent_parts(module)
    if isinstance(module, nn.MultiheadAttention):
        return attention_parts(module, slots or ATTENTION_SLOTS)
    return None


def reads_as_tokenizer(module: nn.Module, width: int) -> bool:
    """Whether `module` maps an input of `width` features with a `(width, ...)` weight.

    The structural test of a per-feature tokenizer: its weight (see
    [`tokenizer_parts()`][tokenizer_parts]) has the input's width on its first
    axis and on no other (a square weight does not say which axis is the
    feature, so it is refused rather than guessed).
    """
    parts = tokenizer_parts(module)
    if parts is None:
        return False
    shape = tuple(parts[0].parameter.shape)
    return shape[0] == width and width not in shape[1:]


def feature_axis_parts(
    model: nn.Module, spec: FeatureAxis
) -> tuple[str, nn.Module, list[WeightPart]]:
    """The module owning the parameter `spec.weight`, its name, and the one part to read.

    Raises
    ------
    KeyError
        If the model has no parameter of that name (the caller words the error).
    ValueError
        If `spec.axis` is not an axis of the parameter.
    """
    owner_name, _, attribute = spec.weight.rpartition(".")
    modules = dict(model.named_modules())
    owner = modules.get(owner_name)
    param = None if owner is None else dict(owner.named_parameters(recurse=False)).get(attribute)
    if owner is None or param is None:
        raise KeyError(spec.weight)
    if not -param.ndim <= spec.axis < param.ndim:
        raise ValueError(
            f"FeatureAxis({spec.weight!r}, axis={spec.axis}) names no axis of a parameter "
            f"of shape {tuple(param.shape)}."
        )
    return owner_name, owner, [WeightPart(attribute, param, spec.axis % param.ndim)]
