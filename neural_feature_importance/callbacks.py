"""The original package's `callbacks` module (dense-layer trackers).

Kept so that `from neural_feature_importance.callbacks import ...` keeps
working; the names are loaded lazily from `neural_feature_importance.keras`
and `neural_feature_importance.torch`.
"""

from neural_feature_importance._lazy import lazy_exports
from neural_feature_importance.core.tracker import VarianceImportanceBase

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "VarianceImportanceKeras": "neural_feature_importance.keras",
        "VarianceImportanceTorch": "neural_feature_importance.torch",
    },
)
__all__ = ["VarianceImportanceBase", "VarianceImportanceKeras", "VarianceImportanceTorch"]
