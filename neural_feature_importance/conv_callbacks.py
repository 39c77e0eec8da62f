"""The original package's `conv_callbacks` module (convolution trackers), lazily."""

from neural_feature_importance._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ConvVarianceImportanceKeras": "neural_feature_importance.keras",
        "ConvVarianceImportanceTorch": "neural_feature_importance.torch",
        "ConvVarianceImportanceBase": "neural_feature_importance.core.tracker",
    },
)
__all__ = [
    "ConvVarianceImportanceBase",
    "ConvVarianceImportanceKeras",
    "ConvVarianceImportanceTorch",
]
