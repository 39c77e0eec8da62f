"""Integrations with other libraries (skorch, scikit-learn's feature selectors, ...).

Each module imports the library it integrates with; this package imports none of
them, so `import neural_feature_importance.integrations` stays light.
"""
