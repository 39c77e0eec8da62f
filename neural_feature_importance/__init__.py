"""Training-time feature importance for neural networks (VIANN and gradient modes).

While a network trains, the trackers watch the layer that reads its inputs. By
default (the recommended mode, `core.modes.RECOMMENDED_MODE`) they read that layer's
gradient after optimizer steps and score each input by its gradient x input, weighed
by how steadily the network relies on it. `scoring="viann"` is the paper's method,
bit for bit: the running variance of every weight of that layer times its final
size, so an input whose weights moved a lot and ended large is important (de Sá,
*Variance-based Feature Importance in Neural Networks*, Discovery Science 2019).

Importing this package imports no deep-learning framework: the Keras names load
Keras, and the PyTorch names load torch (`VarianceImportanceSkorch` also skorch),
the first time they are used.

```pycon
>>> from neural_feature_importance import VarianceImportanceTorch
>>> from neural_feature_importance import VarianceImportanceKeras
```

`columns_from(preprocessor)` gives the trackers one score per original column of
a table that a fitted scikit-learn `ColumnTransformer`, a Keras `FeatureSpace` or
an embedding layer turned into the model's input; it imports neither library.
"""

from __future__ import annotations

from importlib import metadata

from neural_feature_importance._lazy import lazy_exports
from neural_feature_importance.core import (
    ConvVarianceImportanceBase,
    EmbeddingVarianceImportanceBase,
    FeatureAxis,
    LayerSelectionError,
    NonFiniteWeightsError,
    NoSignalError,
    NotFittedError,
    StateDictError,
    VarianceImportanceBase,
)
from neural_feature_importance.integrations.columns import columns_from

__version__: str
"""The installed distribution's version (from its metadata)."""
try:
    __version__ = metadata.version("neural-feature-importance")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

_KERAS = "neural_feature_importance.keras"
_TORCH = "neural_feature_importance.torch"
_INTEGRATIONS = "neural_feature_importance.integrations"
_LAZY = {
    "VarianceImportanceKeras": _KERAS,
    "ConvVarianceImportanceKeras": _KERAS,
    "EmbeddingVarianceImportanceKeras": _KERAS,
    "MetricThreshold": _KERAS,
    "VarianceImportanceTorch": _TORCH,
    "ConvVarianceImportanceTorch": _TORCH,
    "EmbeddingVarianceImportanceTorch": _TORCH,
    "VarianceImportanceLightning": _TORCH,
    "VarianceImportanceTransformers": _TORCH,
    "VarianceImportanceSkorch": f"{_INTEGRATIONS}.skorch",
    "importance_getter": f"{_INTEGRATIONS}.sklearn",
}
__getattr__, _lazy_dir = lazy_exports(__name__, _LAZY)

__all__ = [
    "ConvVarianceImportanceBase",
    "EmbeddingVarianceImportanceBase",
    "FeatureAxis",
    "LayerSelectionError",
    "NonFiniteWeightsError",
    "NoSignalError",
    "NotFittedError",
    "StateDictError",
    "VarianceImportanceBase",
    "__version__",
    "columns_from",
    *_LAZY,
]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
