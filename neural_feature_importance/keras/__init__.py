"""Keras 3 callbacks for training-time feature importance, on any Keras backend.

Importing this package imports Keras (and the backend selected with
`KERAS_BACKEND`), but never TensorFlow directly: the callbacks read weights
with `keras.ops.convert_to_numpy`, and gradients (the default, recommended mode)
with `keras.ops` inside the train step, so they run on TensorFlow, JAX and
PyTorch alike.

```pycon
>>> from neural_feature_importance.keras import VarianceImportanceKeras, MetricThreshold
>>> callbacks = [VarianceImportanceKeras(), MetricThreshold(monitor="val_accuracy", threshold=0.95)]
```
"""

from neural_feature_importance.keras.callbacks import (
    ConvVarianceImportanceKeras,
    EmbeddingVarianceImportanceKeras,
    VarianceImportanceKeras,
)
from neural_feature_importance.keras.gradients import GradientTapOptimizer
from neural_feature_importance.keras.layers import select_layer
from neural_feature_importance.keras.monitors import MetricThreshold

__all__ = [
    "ConvVarianceImportanceKeras",
    "EmbeddingVarianceImportanceKeras",
    "GradientTapOptimizer",
    "MetricThreshold",
    "VarianceImportanceKeras",
    "select_layer",
]
