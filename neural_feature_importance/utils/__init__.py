"""The original package's `utils` module: `MetricThreshold`, lazily.

[`MetricThreshold`][neural_feature_importance.keras.MetricThreshold] is a Keras callback, so it
loads Keras on first use.
"""

from neural_feature_importance._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__, {"MetricThreshold": "neural_feature_importance.keras"}
)
__all__ = ["MetricThreshold"]
