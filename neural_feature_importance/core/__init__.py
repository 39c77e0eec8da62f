"""The framework-free core: running statistics, weight views and scoring.

Nothing here imports TensorFlow, Keras or PyTorch; the adapters in
`neural_feature_importance.keras` and `neural_feature_importance.torch`
are thin layers over these classes.
"""

from neural_feature_importance.core.arrays import NUMPY_OPS, ArrayOps, NumpyArrayOps
from neural_feature_importance.core.columns import FeatureColumns
from neural_feature_importance.core.errors import (
    LayerSelectionError,
    NonFiniteWeightsError,
    NoSignalError,
    NotFittedError,
    StateDictError,
)
from neural_feature_importance.core.modes import (
    RECOMMENDED_MODE,
    RECOMMENDED_SNAPSHOT_MODE,
    SCORING_MODES,
)
from neural_feature_importance.core.moments import RunningMoments
from neural_feature_importance.core.result import FeatureImportances
from neural_feature_importance.core.scoring import (
    normalize_scores,
    top_features,
    unit_scores,
    variance_sum_scores,
    viann_scores,
)
from neural_feature_importance.core.serialization import load_state, save_state
from neural_feature_importance.core.sharding import WeightShard
from neural_feature_importance.core.tracker import (
    ConvVarianceImportanceBase,
    EmbeddingVarianceImportanceBase,
    VarianceImportanceBase,
)
from neural_feature_importance.core.views import FeatureAxis, WeightView

__all__ = [
    "FeatureAxis",
    "NUMPY_OPS",
    "ArrayOps",
    "ConvVarianceImportanceBase",
    "EmbeddingVarianceImportanceBase",
    "FeatureColumns",
    "FeatureImportances",
    "LayerSelectionError",
    "NonFiniteWeightsError",
    "NoSignalError",
    "NotFittedError",
    "NumpyArrayOps",
    "RECOMMENDED_MODE",
    "RECOMMENDED_SNAPSHOT_MODE",
    "SCORING_MODES",
    "RunningMoments",
    "StateDictError",
    "VarianceImportanceBase",
    "WeightShard",
    "WeightView",
    "load_state",
    "normalize_scores",
    "save_state",
    "top_features",
    "unit_scores",
    "variance_sum_scores",
    "viann_scores",
]
