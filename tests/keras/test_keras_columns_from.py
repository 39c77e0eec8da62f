"""columns_from(FeatureSpace): Keras's real concatenation order, widths, and a planted run.

A FeatureSpace concatenates its features sorted by name, crosses last, not in
the order of its ``features`` dict. The features here are given out of order,
so a layout in dict order (same total width) would be wrong. The mapping is
checked against a hand-built one and against the FeatureSpace's own output:
changing one raw feature must move exactly its group's columns (and those of
the crosses it enters).
"""

import keras
import numpy as np
import pytest

pytest.importorskip("tensorflow")  # FeatureSpace preprocesses with tf.data on every backend

from keras.utils import FeatureSpace

from neural_feature_importance import VarianceImportanceKeras, columns_from

N = 600


def _data(seed=0, n=N):
    rng = np.random.default_rng(seed)
    return {
        "zone": rng.choice(["east", "north", "west"], n),
        "price": rng.normal(size=n).astype("float32"),
        "city": rng.choice(["brest", "lille", "lyon", "paris"], n),
        "age": rng.integers(0, 5, n).astype("int32"),
        "shop": rng.choice([f"shop{i}" for i in range(8)], n),
        "size": rng.normal(size=n).astype("float32"),
    }


def _feature_space(data):
    features = {  # deliberately not sorted
        "zone": "string_categorical",
        "price": "float_normalized",
        "city": "string_categorical",
        "age": FeatureSpace.integer_categorical(num_oov_indices=2),
        "shop": FeatureSpace.string_hashed(num_bins=5),
        "size": FeatureSpace.float_discretized(num_bins=3),
    }
    space = FeatureSpace(features, crosses=[FeatureSpace.cross(("city", "age"), crossing_dim=6)])
    space.adapt(data)
    return space


def _encode(space, data):
    return keras.ops.convert_to_numpy(space(data))


def test_features_are_laid_out_sorted_by_name_with_crosses_last():
    data = _data()
    layout = columns_from(_feature_space(data))
    # age: 5 levels + 2 OOV; city: 4 + OOV; price: 1; shop: 5 bins; size: 3 bins; zone: 3 + OOV;
    # then the cross city_X_age: 6 bins.
    widths = {"age": 7, "city": 5, "price": 1, "shop": 5, "size": 3, "zone": 4, "city_X_age": 6}
    start, expected = 0, {}
    for name, width in widths.items():
        expected[name] = list(range(start, start + width))
        start += width
    assert layout["groups"] == expected
    names = layout["feature_names"]
    assert len(names) == _encode(_feature_space(data), data).shape[1] == 31
    # a lookup's levels are named after its vocabulary (most frequent first), OOV first
    assert names[7] == "city=[UNK]"
    assert sorted(names[8:12]) == ["city=brest", "city=lille", "city=lyon", "city=paris"]
    assert names[12] == "price" and names[0] == "age_0" and names[-1] == "city_X_age_5"
    assert names.source == "columns_from(FeatureSpace)"


def test_each_raw_feature_moves_exactly_its_own_columns():
    data = _data()
    space = _feature_space(data)
    layout = columns_from(space)
    before = _encode(space, data)
    for feature in data:
        changed = dict(data)
        changed[feature] = np.roll(data[feature], 1)
        after = _encode(space, changed)
        moved = set(np.flatnonzero(np.any(after != before, axis=0)).tolist())
        unused = set(np.flatnonzero(~np.any(before != 0, axis=0) & ~np.any(after != 0, axis=0)))
        own = set(layout["groups"][feature])
        if feature in ("city", "age"):
            own |= set(layout["groups"]["city_X_age"])
        # It moves nothing outside its group, and every column of its group that is used.
        assert moved <= own, (feature, sorted(moved - own))
        assert own - unused <= moved, (feature, sorted(own - unused - moved))
        assert moved, feature


def test_the_order_is_read_back_when_keras_keeps_no_list(monkeypatch):
    data = _data()
    space = _feature_space(data)
    expected = columns_from(space)
    monkeypatch.delattr(space, "_preprocessed_features_names")
    assert columns_from(space) == expected


def test_dict_output_and_a_space_not_adapted_are_refused():
    space = FeatureSpace({"price": "float"}, output_mode="dict")
    with pytest.raises(ValueError, match=r"output_mode='dict'.*Use output_mode='concat'"):
        columns_from(space)
    with pytest.raises(ValueError, match=r"call feature_space.adapt\(data\) first"):
        columns_from(FeatureSpace({"city": "string_categorical"}))


def _planted(seed, n=1200):
    """y depends on city (through its level effect) and price; zone, age, shop, size are noise."""
    data = _data(seed, n)
    effect = dict(zip(["brest", "lille", "lyon", "paris"], [1.5, -1.5, 0.5, -0.5], strict=True))
    y = np.array([effect[c] for c in data["city"]]) + 1.5 * data["price"]
    return data, (y + np.random.default_rng(seed).normal(scale=0.3, size=n)).astype("float32")


def _model(width):
    inputs = keras.Input((width,))
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_features_come_out_on_top(seed):
    data, y = _planted(seed)
    space = FeatureSpace(
        {
            "zone": "string_categorical",
            "price": "float_normalized",
            "city": "string_categorical",
            "size": "float_normalized",
            "shop": FeatureSpace.string_hashed(num_bins=4),
        }
    )
    space.adapt({k: data[k] for k in ("zone", "price", "city", "size", "shop")})
    X = _encode(space, {k: data[k] for k in ("zone", "price", "city", "size", "shop")})
    keras.utils.set_random_seed(seed)
    model = _model(X.shape[1])
    tracker = VarianceImportanceKeras(layer="hidden", scoring="taylor", **columns_from(space))
    model.fit(X, y, epochs=6, batch_size=64, verbose=0, callbacks=[tracker])
    assert tracker.feature_names_in_.tolist() == ["city", "price", "shop", "size", "zone"]
    top = set(tracker.feature_names_in_[np.argsort(-tracker.feature_importances_)[:2]].tolist())
    assert top == {"city", "price"}, tracker.importances_.to_frame()


def test_a_layer_of_another_width_fails_when_training_begins():
    data, y = _planted(0, n=64)
    space = _feature_space(data)  # 31 inputs
    model = _model(30)
    tracker = VarianceImportanceKeras(layer="hidden", **columns_from(space))
    message = r"columns_from\(FeatureSpace\) describes 31 inputs; layer 'hidden' reads 30\."
    before = model.get_layer("hidden").get_weights()[0].copy()
    with pytest.raises(ValueError, match=message):
        model.fit(np.zeros((64, 30), "float32"), y, epochs=1, verbose=0, callbacks=[tracker])
    np.testing.assert_array_equal(model.get_layer("hidden").get_weights()[0], before)
