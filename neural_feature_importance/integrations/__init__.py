"""Glue between the trackers and the other libraries of a training pipeline.

Each module here imports the library it serves only when it is used, so
importing this package imports none of them:

- `skorch`: `VarianceImportanceSkorch`, the skorch callback that gives a net
  `feature_importances_` for scikit-learn's selectors;
- `sklearn`: `importance_getter`, for the `importance_getter=` of
  scikit-learn's selectors (skorch, scikeras);
- `columns`: [`columns_from()`][neural_feature_importance.integrations.columns.columns_from]
  reads a fitted preprocessor (scikit-learn, a Keras `FeatureSpace`, a table of
  embedding sizes) and returns the `feature_names=` and `groups=` that give one
  score per original column.
"""
