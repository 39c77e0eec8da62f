"""Keras: several input layers are tracked as one result, as in PyTorch.

Two planted problems: two Dense branches fed by two Inputs (a[:, 0], a[:, 1]
and b[:, 0] decide the target), and an Embedding for a categorical Input
beside a Dense for the numeric Input (the city and income decide it).
"""

import keras
import numpy as np
import pytest

from neural_feature_importance import StateDictError, VarianceImportanceKeras

N = 1024


def _branches():
    a = keras.Input((5,), name="a")
    b = keras.Input((3,), name="b")
    left = keras.layers.Dense(16, activation="tanh", name="left")(a)
    right = keras.layers.Dense(16, activation="tanh", name="right")(b)
    merged = keras.layers.Concatenate()([left, right])
    model = keras.Model([a, b], keras.layers.Dense(1, name="head")(merged))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def _branch_data(seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(N, 5)), rng.normal(size=(N, 3))
    y = 2 * a[:, 0] - 1.5 * a[:, 1] + 2 * b[:, 0]
    return [a.astype("float32"), b.astype("float32")], y.astype("float32")[:, None]


def _embedded():
    city = keras.Input((1,), dtype="int32", name="city")
    numeric = keras.Input((3,), name="numeric")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(5, 4, name="city_embedding")(city))
    dense = keras.layers.Dense(12, activation="relu", name="numeric_dense")(numeric)
    merged = keras.layers.Concatenate()([embedded, dense])
    model = keras.Model([city, numeric], keras.layers.Dense(1, name="out")(merged))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def _embedded_data(seed=0):
    rng = np.random.default_rng(seed)
    city = rng.integers(0, 5, size=(N, 1))
    numeric = rng.normal(size=(N, 3))
    y = np.array([2.0, -1.5, 1.0, -0.5, 0.0])[city[:, 0]] + 1.5 * np.abs(numeric[:, 0])
    return [city.astype("int32"), numeric.astype("float32")], y.astype("float32")[:, None]


def _top(tracker, k):
    names, scores = tracker.feature_names_in_, tracker.feature_importances_
    return {str(names[i]) for i in np.argsort(scores)[::-1][:k]}


def test_two_branches_are_tracked_as_one_result():
    keras.utils.set_random_seed(0)
    model = _branches()
    x, y = _branch_data()
    # viann: growth's scores of two layers are on different scales (their
    # initialisations differ), so they rank across layers poorly (measured: seeds
    # 0-4 put right[1] or right[2] above left[1] three times).
    tracker = VarianceImportanceKeras()
    model.fit(x, y, epochs=15, batch_size=64, verbose=0, callbacks=[tracker])
    assert list(tracker.layers_) == ["left", "right"]
    expected = [f"left[{i}]" for i in range(5)] + [f"right[{i}]" for i in range(3)]
    assert tracker.feature_names_in_.tolist() == expected
    assert _top(tracker, 3) == {"left[0]", "left[1]", "right[0]"}
    np.testing.assert_array_equal(
        tracker.raw_importances_,
        np.concatenate([layer.raw_importances_ for layer in tracker.layers_.values()]),
    )


def test_embedding_is_one_column_beside_a_dense_input_layer():
    keras.utils.set_random_seed(0)
    model = _embedded()
    x, y = _embedded_data()
    names = ["city", "income", "age", "tenure"]
    tracker = VarianceImportanceKeras(
        layer=["city_embedding", "numeric_dense"], scoring="growth", feature_names=names
    )
    model.fit(x, y, epochs=30, batch_size=64, verbose=0, callbacks=[tracker])
    assert tracker.feature_names_in_.tolist() == names
    assert _top(tracker, 2) == {"city", "income"}
    city = tracker.layers_["city_embedding"]
    assert tracker.raw_importances_[0] == pytest.approx(city.raw_importances_.sum(), rel=1e-12)


def test_several_layers_resume_from_a_saved_state(tmp_path):
    x, y = _branch_data()
    keras.utils.set_random_seed(0)
    model = _branches()
    whole = VarianceImportanceKeras()
    model.fit(x, y, epochs=4, batch_size=64, verbose=0, shuffle=False, callbacks=[whole])

    keras.utils.set_random_seed(0)
    model = _branches()
    first = VarianceImportanceKeras()
    model.fit(x, y, epochs=2, batch_size=64, verbose=0, shuffle=False, callbacks=[first])
    first.save_state(tmp_path / "state.safetensors")
    resumed = VarianceImportanceKeras()
    resumed.load_state(tmp_path / "state.safetensors")
    model.fit(
        x,
        y,
        epochs=4,
        initial_epoch=2,
        batch_size=64,
        verbose=0,
        shuffle=False,
        callbacks=[resumed],
    )
    assert resumed.n_updates_ == whole.n_updates_ == 4
    np.testing.assert_allclose(resumed.raw_importances_, whole.raw_importances_, rtol=1e-10)
    single = VarianceImportanceKeras(layer="left")
    single.load_state(tmp_path / "state.safetensors")
    with pytest.raises(StateDictError, match="continues a state of the layers"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[single])


def test_layer_list_errors_and_config():
    model = _branches()
    with pytest.raises(ValueError, match="names 'left' twice"):
        model.fit(
            *_branch_data(),
            epochs=1,
            verbose=0,
            callbacks=[VarianceImportanceKeras(layer=["left", "left"])],
        )
    callback = VarianceImportanceKeras(layer=[model.get_layer("left"), "right"])
    assert callback.get_config()["layer"] == ["left", "right"]
    with pytest.raises(ValueError, match=r"layer=2\.5 is not supported"):
        VarianceImportanceKeras(layer=["left", 2.5])
