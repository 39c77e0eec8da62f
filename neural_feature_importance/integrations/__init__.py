"""Glue between the trackers and other libraries of a training pipeline.

Each module here imports the library it serves only when it is used, so
importing this package imports none of them. `columns`:
[`columns_from()`][neural_feature_importance.integrations.columns.columns_from]
reads a fitted preprocessor (scikit-learn, a Keras `FeatureSpace`, a table of
embedding sizes) and returns the `feature_names=` and `groups=` that give one
score per original column.
"""
