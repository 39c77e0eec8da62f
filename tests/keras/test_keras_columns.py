"""Per-column importance in Keras: feature_names= and groups= on a tracked layer.

The planted-truth tests train a small tabular model whose target depends on
two of its four data columns: an embedded categorical ("city") and a numeric
column ("income"). The other two ("age", a one-hot "colour") are noise. The
tracked layer is the Dense layer after the Concatenate, whose inputs are the
city embedding's dimensions and the numeric inputs, so each column is a group
of its inputs (or a single one). The seeds are fixed and the tests are run
with each of them: they check a property of the method, not of one run.
"""

import keras
import numpy as np
import pytest

from neural_feature_importance import VarianceImportanceKeras

N_CITIES = 8
EMBEDDING_DIM = 4
COLOURS = ["red", "green", "blue", "yellow"]
CITY_DIMS = [f"city_{j}" for j in range(EMBEDDING_DIM)]
COLOUR_LEVELS = [f"colour_{c}" for c in COLOURS]
NUMERIC = ["income", "age", *COLOUR_LEVELS]
MIXER_INPUTS = [*CITY_DIMS, *NUMERIC]
"""The inputs of "mixer", in Concatenate order: the embedding's dimensions, then the numeric."""
GROUPS = {"city": CITY_DIMS, "colour": COLOUR_LEVELS}
COLUMNS = ["city", "income", "age", "colour"]
PLANTED = {"city", "income"}
SEEDS = [0, 1, 2]


def tabular_data(n=1000, seed=0):
    """City codes and numeric inputs; y depends on the city's level effect and on income.

    Returns ``({"city": (n, 1) int32, "numeric": (n, 6) float32}, y (n, 1))``.
    Both planted columns explain a similar share of y (variances 0.96 and
    0.82); age and the one-hot colour (raw 0/1 levels) do not enter. Income
    acts through a centred V shape, ``1.5 (|income| - E|income|)``: a linear
    effect of the same size needs only small weights, and then growth put
    the planted columns on top in 3 of 30 runs only (10 seeds x 3 backends):
    the noise colour, summed over its four levels, outranked income.
    """
    rng = np.random.default_rng(seed)
    effects = rng.permutation(np.linspace(-1.5, 1.5, N_CITIES))
    city = rng.integers(0, N_CITIES, size=n)
    income = rng.normal(size=n)
    age = rng.normal(size=n)
    colour = np.eye(len(COLOURS))[rng.integers(0, len(COLOURS), size=n)]
    income_effect = 1.5 * (np.abs(income) - np.sqrt(2 / np.pi))
    y = effects[city] + income_effect + rng.normal(scale=0.1, size=n)
    numeric = np.column_stack([income, age, colour]).astype("float32")
    inputs = {"city": city[:, None].astype("int32"), "numeric": numeric}
    return inputs, y[:, None].astype("float32")


def tabular_model():
    """Input city -> Embedding -> Flatten, Input numeric; Concatenate -> Dense "mixer" -> Dense."""
    city = keras.Input((1,), dtype="int32", name="city")
    numeric = keras.Input((len(NUMERIC),), name="numeric")
    embedded = keras.layers.Flatten(name="flatten")(
        keras.layers.Embedding(N_CITIES, EMBEDDING_DIM, name="city_embedding")(city)
    )
    merged = keras.layers.Concatenate(name="concat")([embedded, numeric])
    hidden = keras.layers.Dense(32, activation="relu", name="mixer")(merged)
    model = keras.Model(
        {"city": city, "numeric": numeric}, keras.layers.Dense(1, name="out")(hidden)
    )
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def fit_tabular(seed, callbacks, epochs=50):
    """Train the tabular model with every tracker in ``callbacks`` (one seeded run)."""
    keras.utils.set_random_seed(seed)
    inputs, y = tabular_data(seed=seed)
    model = tabular_model()
    model.fit(inputs, y, epochs=epochs, batch_size=64, verbose=0, callbacks=list(callbacks))
    return model


def _columns(**options):
    return VarianceImportanceKeras(
        layer="mixer", feature_names=MIXER_INPUTS, groups=GROUPS, **options
    )


def _top_two(tracker):
    order = np.argsort(-tracker.feature_importances_, kind="stable")
    return set(tracker.feature_names_in_[order[:2]].tolist())


def _scores(tracker):
    return dict(zip(tracker.feature_names_in_.tolist(), tracker.feature_importances_, strict=True))


@pytest.mark.parametrize("seed", SEEDS)
def test_planted_columns_rank_first_with_growth_and_above_numeric_noise_with_viann(seed):
    # Measured over 10 seeds x 3 backends at 40, 50 and 60 epochs: growth put
    # city and income on top in all 90 runs (at 50 epochs, by at least 0.06 of
    # the min-max range over the best noise column, 0.15 with these seeds).
    # VIANN did in 12 of 90 only: the noise colour, summed over its four
    # levels, outranked income in the others (and city in 9); the single
    # noise input, age, came last in every run.
    growth, viann = _columns(scoring="growth"), _columns(scoring="viann")
    fit_tabular(seed, [growth, viann])
    assert growth.feature_names_in_.tolist() == COLUMNS
    assert _top_two(growth) == PLANTED, _scores(growth)
    scores = _scores(viann)
    assert min(scores["city"], scores["income"]) > scores["age"], scores


@pytest.mark.parametrize("scoring", ["viann", "growth"])
def test_group_raw_score_is_the_sum_of_its_inputs_raw_scores(scoring):
    # Both trackers watch the same run: the grouped one must equal the
    # ungrouped one's raw scores summed over each column's inputs.
    grouped = _columns(scoring=scoring)
    plain = VarianceImportanceKeras(layer="mixer", scoring=scoring, normalize=None)
    fit_tabular(0, [grouped, plain], epochs=5)
    raw = plain.raw_importances_
    assert raw.shape == (len(MIXER_INPUTS),)
    assert plain.feature_names_in_.tolist() == [f"x{i}" for i in range(len(MIXER_INPUTS))]
    expected = [raw[0:4].sum(), raw[4], raw[5], raw[6:10].sum()]
    np.testing.assert_allclose(grouped.raw_importances_, expected, rtol=1e-12)
    assert grouped.importances_.members == {
        "city": [0, 1, 2, 3],
        "income": [4],
        "age": [5],
        "colour": [6, 7, 8, 9],
    }


# ------------------------------------------------------------ Sequential model
SEQ_NAMES = ["size", "shade_light", "shade_mid", "shade_dark", "weight"]


def _one_hot_data(n=400, seed=0):
    """x: size, a 3-level one-hot "shade" and weight; y depends on shade and size only."""
    rng = np.random.default_rng(seed)
    shade = rng.integers(0, 3, size=n)
    size, weight = rng.normal(size=(2, n))
    x = np.column_stack([size, np.eye(3)[shade], weight]).astype("float32")
    y = (np.array([-2.0, 0.0, 2.0])[shade] + size)[:, None].astype("float32")
    return x, y


def _sequential():
    model = keras.Sequential(
        [
            keras.Input((len(SEQ_NAMES),)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(1, name="out"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def test_one_hot_groups_on_a_sequential_model_and_sorted_frame():
    pytest.importorskip("pandas")
    x, y = _one_hot_data()
    tracker = VarianceImportanceKeras(
        feature_names=SEQ_NAMES,
        groups={"shade": ["shade_light", "shade_mid", "shade_dark"]},
        scoring="growth",
    )
    plain = VarianceImportanceKeras(scoring="growth", normalize=None)
    _sequential().fit(x, y, epochs=30, batch_size=32, verbose=0, callbacks=[tracker, plain])
    assert tracker.tracked_layer_.name == "hidden"
    assert tracker.feature_names_in_.tolist() == ["size", "shade", "weight"]
    raw = plain.raw_importances_
    np.testing.assert_allclose(
        tracker.raw_importances_, [raw[0], raw[1:4].sum(), raw[4]], rtol=1e-12
    )
    frame = tracker.importances_.to_frame()
    assert list(frame.columns) == ["feature", "importance", "raw_importance", "n_inputs"]
    assert frame["importance"].is_monotonic_decreasing
    assert frame["feature"].iloc[-1] == "weight"  # the noise input: last in 10 seeds x 3 backends
    assert dict(zip(frame["feature"], frame["n_inputs"], strict=True)) == {
        "size": 1,
        "shade": 3,
        "weight": 1,
    }


def test_get_config_round_trips_feature_names_and_groups():
    tracker = VarianceImportanceKeras(
        layer="mixer",
        feature_names=MIXER_INPUTS,
        groups={"city": range(4), "colour": COLOUR_LEVELS},
    )
    config = tracker.get_config()
    assert config["feature_names"] == MIXER_INPUTS
    assert config["groups"] == {"city": [0, 1, 2, 3], "colour": COLOUR_LEVELS}
    rebuilt = VarianceImportanceKeras(**config)
    assert rebuilt.get_config() == config
    by_index = VarianceImportanceKeras(groups={"pair": [0, 1]}).get_config()
    assert by_index["groups"] == {"pair": [0, 1]} and by_index["feature_names"] is None


@pytest.mark.parametrize(
    ("feature_names", "groups", "message"),
    [
        (
            MIXER_INPUTS,
            {"city": CITY_DIMS, "colour": ["city_3", *COLOUR_LEVELS]},
            r"groups\['colour'\] and groups\['city'\] both cover input 3 \('city_3'\)",
        ),
        (
            MIXER_INPUTS,
            {"colour": ["colour_red", "colour_purple"]},
            r"groups\['colour'\] names the input 'colour_purple', which is not one of the 10",
        ),
        (
            None,
            {"city": [0, 1, 2, 3, 10]},
            r"groups\['city'\] has the index 10, but layer 'mixer' has 10 inputs",
        ),
        (
            MIXER_INPUTS[:-1],
            None,
            r"feature_names has 9 names, but layer 'mixer' has 10 inputs",
        ),
    ],
    ids=["overlapping", "unknown-name", "index-out-of-range", "too-few-names"],
)
def test_bad_groups_raise_at_the_start_of_fit_naming_the_bad_entry(feature_names, groups, message):
    # Constructing the tracker succeeds: the number of inputs is known only
    # once the layer is, at the start of fit().
    tracker = VarianceImportanceKeras(layer="mixer", feature_names=feature_names, groups=groups)
    with pytest.raises(ValueError, match=message):
        fit_tabular(0, [tracker], epochs=1)
