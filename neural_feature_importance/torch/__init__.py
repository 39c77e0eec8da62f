"""PyTorch adapters: trackers for training loops, a Lightning and a Hugging Face callback.

Importing this package imports torch (not Lightning or transformers);
`VarianceImportanceLightning` loads Lightning and `VarianceImportanceTransformers`
loads transformers on first use.
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
    __name__,
    {
        "VarianceImportanceLightning": "neural_feature_importance.torch.lightning",
        "VarianceImportanceTransformers": "neural_feature_importance.torch.huggingface",
    },
)

__all__ = [
    "ConvVarianceImportanceTorch",
    "EmbeddingVarianceImportanceTorch",
    "TorchArrayOps",
    "VarianceImportanceLightning",
    "VarianceImportanceTorch",
    "VarianceImportanceTransformers",
    "select_layer",
]
