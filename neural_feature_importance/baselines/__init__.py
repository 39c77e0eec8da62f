"""Importance methods the paper compares VIANN with, for Keras and PyTorch models.

One method per module, all re-exported here:

- [`garson_importance()`][garson_importance] (Garson's algorithm, first and last layers),
- [`olden_importance()`][olden_importance] (connection weights multiplied through the layers),
- [`lofo_importance()`][lofo_importance] (leave one feature out, by blanking it as the paper did),
- [`permutation_importance()`][permutation_importance] (scikit-learn's, for any model),
- [`random_forest_importance()`][random_forest_importance] (impurity importance of a random forest).

Weight-based methods take a model or its `(in, out)` kernels; the others
take a trained model and data. Nothing here imports a deep-learning framework
until a model of that framework is passed in.
"""

from neural_feature_importance.baselines._models import (
    dense_weight_chain,
    loss_function,
    predict_function,
)
from neural_feature_importance.baselines.forest import infer_task, random_forest_importance
from neural_feature_importance.baselines.garson import garson_importance, garson_scores
from neural_feature_importance.baselines.lofo import lofo_importance
from neural_feature_importance.baselines.olden import connection_weights, olden_importance
from neural_feature_importance.baselines.permutation import permutation_importance

__all__ = [
    "connection_weights",
    "dense_weight_chain",
    "garson_importance",
    "garson_scores",
    "infer_task",
    "lofo_importance",
    "loss_function",
    "olden_importance",
    "permutation_importance",
    "predict_function",
    "random_forest_importance",
]
