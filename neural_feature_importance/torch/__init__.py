"""PyTorch adapters: trackers for training loops and a Lightning callback.

Importing this package imports torch (not Lightning); ``VarianceImportanceLightning``
loads Lightning on first use.
"""

from neural_feature_importance._lazy import lazy_exports
from neural_feature_importance.torch.arrays import TorchArrayOps
from neural_feature_importance.torch.layers import select_layer
from neural_feature_importance.torch.trackers import (
    ConvVarianceImportanceTorch,
    EmbeddingVarianceImportanceTorch,
    VarianceImportanceTorch,
)

__getattr__, _lazy_dir = lazy_exports(
    __name__, {"VarianceImportanceLightning": "neural_feature_importance.torch.lightning"}
)

__all__ = [
    "ConvVarianceImportanceTorch",
    "EmbeddingVarianceImportanceTorch",
    "TorchArrayOps",
    "VarianceImportanceLightning",
    "VarianceImportanceTorch",
    "select_layer",
]
