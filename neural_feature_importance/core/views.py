"""Weight views: which axes of a layer's weight are input features.

VIANN scores *input features*, so every weight array is turned into a
`(features, units)` matrix before scoring: row `i` holds the weights that
leave input feature `i`, column `j` the weights that enter unit `j`.
Frameworks lay weights out differently, and getting this wrong silently scores
hidden units instead of inputs (the bug of the original PyTorch helper), so the
layouts live here, once, with their shapes spelled out:

| kind | Keras layout | PyTorch layout | features |
| --- | --- | --- | --- |
| dense | `(in, out)` | `(out, in)` | `in` |
| conv | `(*kernel, in, out)` | `(out, in, *kernel)` | kernel position x in |
| embedding | `(vocab, dim)` | `(vocab, dim)` | tokens |

Convolution features are ordered as Keras orders them, `(*kernel, in)`, in
both frameworks, so a PyTorch and a Keras heatmap can be compared directly.

Views act on numpy arrays when scores are read: the running statistics are
elementwise and are kept in the framework's own layout, which saves a permuted
copy on every update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["dense", "conv", "embedding"]
Layout = Literal["keras", "torch"]
KINDS: tuple[str, ...] = ("dense", "conv", "embedding")
LAYOUTS: tuple[str, ...] = ("keras", "torch")


@dataclass(frozen=True)
class WeightView:
    """How one layer's weight array maps to a `(features, units)` matrix.

    Parameters
    ----------
    kind : {"dense", "conv", "embedding"}
        The layer type.
    layout : {"keras", "torch"}
        The framework's axis order (see the module docstring).
    weight_shape : tuple of int
        Shape of the raw weight array, in `layout`.

    Examples
    --------
    >>> view = WeightView("dense", "torch", (16, 4))  # nn.Linear(4, 16)
    >>> view.n_features, view.n_units
    (4, 16)
    """

    kind: Kind
    layout: Layout
    weight_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r} is not one of {KINDS}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout={self.layout!r} is not one of {LAYOUTS}")
        object.__setattr__(self, "weight_shape", tuple(int(s) for s in self.weight_shape))
        ndim = len(self.weight_shape)
        if self.kind in ("dense", "embedding") and ndim != 2:
            raise ValueError(
                f"a {self.kind} weight must be 2-D, got shape {self.weight_shape}; "
                "for convolution kernels use kind='conv'."
            )
        if self.kind == "conv" and ndim not in (3, 4, 5):
            raise ValueError(
                f"a conv kernel must be 3-D to 5-D (Conv1D to Conv3D), got shape "
                f"{self.weight_shape}."
            )

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of the per-feature scores: `(in,)`, `(*kernel, in)` or `(vocab,)`."""
        shape = self.weight_shape
        if self.kind == "embedding":
            return (shape[0],)
        if self.kind == "dense":
            return (shape[0],) if self.layout == "keras" else (shape[1],)
        if self.layout == "keras":
            return shape[:-1]
        return (*shape[2:], shape[1])

    @property
    def n_features(self) -> int:
        """Number of input features (rows of the matrix)."""
        return int(np.prod(self.feature_shape))

    @property
    def unit_axis(self) -> int:
        """Axis of the raw (framework-layout) weight that indexes the units.

        Keras kernels and embedding tables keep the units last; PyTorch
        `Linear` and `ConvNd` weights keep them first.
        """
        if self.layout == "torch" and self.kind in ("dense", "conv"):
            return 0
        return len(self.weight_shape) - 1

    @property
    def n_units(self) -> int:
        """Number of units fed by each feature (columns of the matrix)."""
        shape = self.weight_shape
        if self.kind == "embedding":
            return shape[1]
        if self.kind == "dense":
            return shape[1] if self.layout == "keras" else shape[0]
        return shape[-1] if self.layout == "keras" else shape[0]

    def to_matrix(self, weight: np.ndarray) -> np.ndarray:
        """Return `weight` (in this view's layout) as `(features, units)`."""
        weight = np.asarray(weight)
        if tuple(weight.shape) != self.weight_shape:
            raise ValueError(
                f"weight of shape {tuple(weight.shape)} does not match the view's "
                f"shape {self.weight_shape}"
            )
        if self.kind == "conv" and self.layout == "torch":
            # (out, in, *kernel) -> (*kernel, in, out), the Keras order.
            ndim = weight.ndim
            weight = np.transpose(weight, (*range(2, ndim), 1, 0))
        elif self.kind == "dense" and self.layout == "torch":
            weight = weight.T
        return weight.reshape(self.n_features, self.n_units)


@dataclass(frozen=True)
class FeatureAxis:
    """Name any weight of a model, and the axis of it that indexes the input features.

    Pass it as `layer=` when the weight that reads the inputs belongs to a
    layer the trackers do not map by themselves (a custom layer computing
    `x @ self.w`, one projection of an attention layer): the scores of
    feature `i` come from the slice `weight[..., i, ...]` along `axis`, and
    the other axes are the units the feature feeds. The same object works in
    both frameworks.

    Parameters
    ----------
    weight : str
        PyTorch: the parameter's name in `model.named_parameters()`
        (`"encoder.proj"`). Keras: the layer's name, a dot, and the attribute
        that holds the variable (`"proj.w"`, `"attention.query_dense.kernel"`;
        nested models' layers are found by their own name).
    axis : int, default=0
        The axis of the weight that indexes the input features (negative values
        count from the end).

    Examples
    --------
    >>> FeatureAxis("tokenizer.weight", axis=0)
    FeatureAxis(weight='tokenizer.weight', axis=0)
    """

    weight: str
    axis: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.weight, str) or not self.weight:
            raise TypeError(f"FeatureAxis(weight=...) takes a name, got {self.weight!r}")
        if not isinstance(self.axis, int) or isinstance(self.axis, bool):
            raise TypeError(f"FeatureAxis(axis=...) takes an int, got {self.axis!r}")
