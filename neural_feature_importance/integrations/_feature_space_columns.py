"""The original feature of each output column of a Keras 3 `FeatureSpace`.

With `output_mode="concat"`, `FeatureSpace._merge_features` (Keras 3,
`keras/src/layers/preprocessing/feature_space.py`) concatenates the encoded
features **sorted by name**, then the crossed features sorted by their names
(`"a_X_b"` for `crosses=[("a", "b")]`), whatever the order of the `features`
dict. A layout in the dict's order has the same total width and is wrong.

The widths are read from the concatenation itself: after `adapt()` the
FeatureSpace has called its concatenating layer on one symbolic tensor per
feature, and that layer's `input` lists them in order, each with its width (a
one-hot lookup's vocabulary with its OOV indices, a hashed feature's bins, a
discretized feature's bins, a cross's `crossing_dim`, 1 for a float). Each
one-hot feature's width is checked against its encoder's `num_tokens`, so a
Keras version that concatenated in another order would raise here rather than
mislabel the inputs.
"""

from __future__ import annotations

from typing import Any


def feature_space_columns(feature_space: Any) -> tuple[list[str], list[str | None], str]:
    """Describe the concatenated output of an adapted `FeatureSpace`.

    Returns
    -------
    names : list of str
        One name per output column: the feature's name for a one-column
        feature, `"<feature>=<token>"` for a lookup's levels, else
        `"<feature>_<i>"`.
    owners : list of str
        The feature (or cross) each output column encodes.
    source : str
        `"columns_from(FeatureSpace)"`, for messages.
    """
    source = "columns_from(FeatureSpace)"
    if feature_space.output_mode != "concat":
        raise ValueError(
            f"{source}: this FeatureSpace has output_mode={feature_space.output_mode!r}, so it "
            "gives one tensor per feature and the model decides how to join them; no input "
            "layer reads them in an order columns_from can know. Use output_mode='concat' "
            "(the model then has one input, and columns_from describes it), or track the "
            "layer after your own Concatenate with groups= in the order you concatenate."
        )
    if feature_space.concat is None:
        try:
            feature_space.get_encoded_features()  # what adapt() and the first call do
        except ValueError as error:
            raise ValueError(
                f"{source} reads the encoded widths of an adapted FeatureSpace; call "
                f"feature_space.adapt(data) first ({error})"
            ) from error
    order = _concatenation_order(feature_space)
    widths = [int(part.shape[-1]) for part in feature_space.concat.input]
    expected = {name: int(e.num_tokens) for name, e in feature_space.one_hot_encoders.items()}
    if len(order) != len(widths) or any(
        expected.get(name, width) != width for name, width in zip(order, widths, strict=False)
    ):
        raise ValueError(
            f"{source}: the FeatureSpace concatenates {len(widths)} parts of widths {widths}, "
            f"which do not fit its features in the order {order}; this Keras version lays "
            "them out in a way columns_from does not know."
        )
    names: list[str] = []
    owners: list[str | None] = []
    for name, width in zip(order, widths, strict=True):
        names += _input_names(name, width, feature_space.preprocessors.get(name))
        owners += [name] * width
    return names, owners, source


def _concatenation_order(feature_space: Any) -> list[str]:
    """Feature names in the order `FeatureSpace` concatenates them."""
    # _merge_features keeps the orders it used; both are sorted() in Keras 3.
    features = getattr(feature_space, "_preprocessed_features_names", None)
    crossed = getattr(feature_space, "_crossed_features_names", None)
    if features is None or crossed is None:
        features, crossed = sorted(feature_space.features), sorted(feature_space.crosses_by_name)
    return [*features, *crossed]


def _input_names(feature: str, width: int, preprocessor: Any) -> list[str]:
    if width == 1:
        return [feature]
    vocabulary = getattr(preprocessor, "get_vocabulary", None)
    tokens = [str(token) for token in vocabulary()] if vocabulary is not None else []
    if len(tokens) == width and len(set(tokens)) == width:
        return [f"{feature}={token}" for token in tokens]
    return [f"{feature}_{i}" for i in range(width)]
