"""The original package's `embedding_callbacks` module (embedding trackers), lazily."""

from neural_feature_importance._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "EmbeddingVarianceImportanceKeras": "neural_feature_importance.keras",
        "EmbeddingVarianceImportanceTorch": "neural_feature_importance.torch",
        "EmbeddingVarianceImportanceBase": "neural_feature_importance.core.tracker",
    },
)
__all__ = [
    "EmbeddingVarianceImportanceBase",
    "EmbeddingVarianceImportanceKeras",
    "EmbeddingVarianceImportanceTorch",
]
