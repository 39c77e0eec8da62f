"""columns_from(): one group per original column, checked against hand-built mappings.

Every scikit-learn case is checked twice: against the mapping written out by
hand, and against the fitted preprocessor's own output, by changing one original
column and seeing which output columns move (they must be exactly that column's
group). The table has a column ``city`` and a column ``city_zone``, which a
prefix match on output names would merge.
"""

import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from neural_feature_importance import VarianceImportanceBase, columns_from
from neural_feature_importance.core.columns import InputNames

pd = pytest.importorskip("pandas")
sklearn = pytest.importorskip("sklearn")

from sklearn.compose import ColumnTransformer, make_column_selector  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.feature_selection import VarianceThreshold  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import (  # noqa: E402
    FunctionTransformer,
    KBinsDiscretizer,
    OneHotEncoder,
    PolynomialFeatures,
    SplineTransformer,
    StandardScaler,
    TargetEncoder,
)

N = 300


def _table(seed=0):
    """city: 4 levels, ``d`` rare (about 5%); city_zone: 2 levels; shop: 3; price, age numeric."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "city": rng.choice(["a", "b", "c", "d"], N, p=[0.45, 0.3, 0.2, 0.05]),
            "price": rng.normal(size=N),
            "city_zone": rng.choice(["north", "south"], N),
            "age": rng.normal(size=N),
            "shop": rng.choice(["x", "y", "z"], N),
        }
    )


def _dense(array):
    return array.toarray() if hasattr(array, "toarray") else np.asarray(array)


def _moved_outputs(preprocessor, frame, column):
    """Output columns that change when only `column` changes (its values rolled by one row)."""
    before = _dense(preprocessor.transform(frame))
    changed = frame.copy()
    changed[column] = np.roll(frame[column].to_numpy(), 1)
    after = _dense(preprocessor.transform(changed))
    return np.flatnonzero(np.any(before != after, axis=0)).tolist()


def _check_against_output(preprocessor, frame, layout):
    """The groups are exactly the outputs each original column moves; names fit the width."""
    width = _dense(preprocessor.transform(frame.iloc[:5])).shape[1]
    assert len(layout["feature_names"]) == width
    for column, members in layout["groups"].items():
        assert _moved_outputs(preprocessor, frame, column) == members, column


# ------------------------------------------------------------ ColumnTransformer
def test_one_hot_drop_first_infrequent_and_passthrough_remainder():
    frame = _table()
    encoder = OneHotEncoder(drop="first", min_frequency=30, handle_unknown="infrequent_if_exist")
    ct = ColumnTransformer(
        [("cat", encoder, ["city", "city_zone"]), ("num", StandardScaler(), ["price"])],
        remainder="passthrough",
    ).fit(frame)
    layout = columns_from(ct)
    # city: a b c + infrequent (d), first (a) dropped -> b, c, infrequent; city_zone: south;
    # price; then the remainder in table order: age, shop.
    assert layout["feature_names"] == [
        "cat__city_b",
        "cat__city_c",
        "cat__city_infrequent_sklearn",
        "cat__city_zone_south",
        "num__price",
        "remainder__age",
        "remainder__shop",
    ]
    assert layout["groups"] == {
        "city": [0, 1, 2],
        "city_zone": [3],
        "price": [4],
        "age": [5],
        "shop": [6],
    }
    _check_against_output(ct, frame, layout)


@pytest.mark.parametrize(
    ("encoder", "city_width", "zone_width"),
    [
        (OneHotEncoder(), 4, 2),
        (OneHotEncoder(drop="first"), 3, 1),
        (OneHotEncoder(drop="if_binary"), 4, 1),  # only the binary column loses one
        (OneHotEncoder(drop=["south", "c"]), 3, 1),  # in the order of the columns
        (OneHotEncoder(handle_unknown="ignore"), 4, 2),
        (OneHotEncoder(max_categories=3, handle_unknown="infrequent_if_exist"), 3, 2),
        # d is infrequent: a, b, c and one infrequent column; only city_zone is binary
        (OneHotEncoder(min_frequency=30, drop="if_binary"), 4, 1),
    ],
    ids=["plain", "first", "if_binary", "array", "ignore", "max_categories", "infrequent_binary"],
)
def test_one_hot_widths_under_drop_and_unknown_handling(encoder, city_width, zone_width):
    frame = _table()
    ct = ColumnTransformer(
        [("cat", encoder, ["city_zone", "city"])], remainder="drop", verbose_feature_names_out=False
    ).fit(frame)
    layout = columns_from(ct)
    assert layout["groups"] == {
        "city_zone": list(range(zone_width)),
        "city": list(range(zone_width, zone_width + city_width)),
    }
    _check_against_output(ct, frame, layout)


def test_a_column_name_that_starts_like_another_stays_apart():
    frame = _table()
    # city_zone first, so that a prefix match on "city" would take its levels too.
    ct = ColumnTransformer(
        [("zone", OneHotEncoder(), ["city_zone"]), ("city", OneHotEncoder(), ["city"])],
        verbose_feature_names_out=False,
    ).fit(frame)
    layout = columns_from(ct)
    assert layout["feature_names"][:2] == ["city_zone_north", "city_zone_south"]
    assert layout["groups"] == {"city_zone": [0, 1], "city": [2, 3, 4, 5]}


@pytest.mark.parametrize(
    "selection",
    [
        ["city", "age"],
        [0, 3],
        np.array([True, False, False, True, False]),
        make_column_selector(pattern="^(?:city|age)$"),
    ],
    ids=["names", "indices", "mask", "selector"],
)
def test_columns_given_by_name_index_mask_or_selector(selection):
    frame = _table()
    ct = ColumnTransformer(
        [
            (
                "pick",
                make_pipeline(OneHotEncoder(drop="first", sparse_output=False), StandardScaler()),
                ["city"],
            ),
            ("rest", "passthrough", selection),
        ],
        remainder="drop",
    ).fit(frame)
    layout = columns_from(ct)
    # city: 3 levels after the drop; then the passthrough of city (its raw value) and age.
    assert layout["groups"] == {"city": [0, 1, 2, 3], "age": [4]}


def test_slices_of_positions_and_of_names():
    frame = _table()
    ct = ColumnTransformer(
        [
            ("ends", StandardScaler(), slice(1, 4, 2)),
            ("middle", "passthrough", slice("city_zone", "age")),
        ]
    ).fit(frame)
    layout = columns_from(ct)
    # positions 1 and 3 (price, age); names city_zone to age, both ends included.
    assert layout["groups"] == {"price": [0], "age": [1, 3], "city_zone": [2]}


def test_numpy_input_uses_x0_names_and_integer_columns():
    values = _table()[["price", "age"]].to_numpy()
    ct = ColumnTransformer(
        [("bins", KBinsDiscretizer(n_bins=3, encode="onehot-dense"), [1])],
        remainder="passthrough",
    ).fit(values)
    layout = columns_from(ct)
    assert layout["groups"] == {"x1": [0, 1, 2], "x0": [3]}
    assert layout["feature_names"] == [
        "bins__x1_0.0",
        "bins__x1_1.0",
        "bins__x1_2.0",
        "remainder__x0",
    ]


def test_nested_pipeline_with_imputer_indicator_and_selector():
    frame = _table().assign(country="fr")  # one level: a constant column once encoded
    frame.loc[::7, "price"] = np.nan
    numeric = Pipeline([("impute", SimpleImputer(add_indicator=True)), ("scale", StandardScaler())])
    categorical = Pipeline(
        [("impute", SimpleImputer(strategy="most_frequent")), ("onehot", OneHotEncoder())]
    )
    inner = ColumnTransformer(
        [("cat", categorical, ["shop", "country"]), ("num", numeric, ["price", "age"])]
    )
    pipeline = Pipeline([("columns", inner), ("select", VarianceThreshold(0.0))]).fit(frame)
    layout = columns_from(pipeline)
    # shop: 3 levels; country's constant column is selected away; price, age, and the
    # missing-value indicator of price (age has no missing value).
    assert layout["groups"] == {"shop": [0, 1, 2], "price": [3, 5], "age": [4]}
    assert layout["feature_names"][5] == "num__missingindicator_price"
    _check_against_output(pipeline, frame, layout)


def test_column_transformer_inside_a_pipeline_inside_a_column_transformer():
    frame = _table()[["city", "city_zone", "price", "age"]]
    # The inner ColumnTransformer gets the imputer's array: it selects by position, and its
    # position 1 is city_zone, the outer table's column 1.
    inner = ColumnTransformer([("zone", OneHotEncoder(), [1]), ("keep", "passthrough", [0])])
    geo = Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("inner", inner)])
    ct = ColumnTransformer([("geo", geo, ["city", "city_zone"])], remainder=StandardScaler()).fit(
        frame
    )
    layout = columns_from(ct)
    assert layout["groups"] == {"city_zone": [0, 1], "city": [2], "price": [3], "age": [4]}
    _check_against_output(ct, frame, layout)


def test_pipeline_ending_in_a_model_describes_what_the_model_reads():
    frame = _table()
    pipeline = Pipeline(
        [
            ("columns", ColumnTransformer([("city", OneHotEncoder(), ["city"])])),
            ("model", LinearRegression()),
        ]
    ).fit(frame, frame["price"])
    assert columns_from(pipeline) == {
        "feature_names": ["city__city_a", "city__city_b", "city__city_c", "city__city_d"],
        "groups": {"city": [0, 1, 2, 3]},
    }


def test_leading_passthrough_steps_and_a_pipeline_of_a_model_only():
    frame = _table()
    pipeline = Pipeline([("nothing", "passthrough"), ("onehot", OneHotEncoder())])
    pipeline.fit(frame[["city_zone", "shop"]])
    assert columns_from(pipeline)["groups"] == {"city_zone": [0, 1], "shop": [2, 3, 4]}
    model_only = Pipeline([("model", LinearRegression())]).fit(frame[["price"]], frame["price"])
    with pytest.raises(ValueError, match=r"no step before its model \(LinearRegression\)"):
        columns_from(model_only)
    unfitted = Pipeline([("onehot", OneHotEncoder()), ("model", LinearRegression())])
    with pytest.raises(NotFittedError, match=r"columns_from\(Pipeline\) reads what"):
        columns_from(unfitted)


def test_one_hot_encoder_alone():
    frame = _table()[["city_zone", "city"]]
    encoder = OneHotEncoder(drop="first").fit(frame)
    layout = columns_from(encoder)
    assert layout == {
        "feature_names": ["city_zone_south", "city_b", "city_c", "city_d"],
        "groups": {"city_zone": [0], "city": [1, 2, 3]},
    }
    assert layout["feature_names"].source == "columns_from(OneHotEncoder)"


@pytest.mark.parametrize(
    ("transformer", "columns", "groups"),
    [
        # a multiclass target: one column per class (3) for each input, input after input
        (
            TargetEncoder(target_type="multiclass"),
            ["shop", "city"],
            {"shop": [0, 1, 2], "city": [3, 4, 5]},
        ),
        (TargetEncoder(target_type="continuous"), ["shop", "city"], {"shop": [0], "city": [1]}),
        (
            KBinsDiscretizer(n_bins=3, encode="ordinal"),
            ["age", "price"],
            {"age": [0], "price": [1]},
        ),
        (
            KBinsDiscretizer(n_bins=4, encode="onehot"),
            ["age", "price"],
            {"age": [0, 1, 2, 3], "price": [4, 5, 6, 7]},
        ),
        # "empty" has no value to learn from: the imputer drops it
        pytest.param(
            SimpleImputer(),
            ["empty", "age", "price"],
            {"age": [0], "price": [1]},
            marks=pytest.mark.filterwarnings("ignore:Skipping features without any observed"),
        ),
    ],
    ids=["target_multiclass", "target_continuous", "bins_ordinal", "bins_onehot", "imputer"],
)
def test_transformers_read_from_their_fitted_attributes(transformer, columns, groups):
    frame = _table().assign(empty=np.nan)
    target = np.digitize(frame["price"], [-0.5, 0.5])  # three classes
    ct = ColumnTransformer([("t", transformer, columns)]).fit(frame, target)
    layout = columns_from(ct)
    assert layout["groups"] == groups
    _check_against_output(ct, frame, layout)


# --------------------------------------------- outputs of several columns
def test_polynomial_interactions_and_bias_stay_columns_of_their_own(caplog):
    frame = _table()
    ct = ColumnTransformer([("poly", PolynomialFeatures(2), ["price", "age"])]).fit(frame)
    with caplog.at_level(logging.INFO):
        layout = columns_from(ct)
    # 1, price, age, price^2, price age, age^2: the bias and the interaction are their own.
    assert layout["groups"] == {"price": [1, 3], "age": [2, 5]}
    assert [layout["feature_names"][i] for i in (0, 4)] == ["poly__1", "poly__price age"]
    assert "2 of 6 outputs depend on several" in caplog.text
    tracker = VarianceImportanceBase(scoring="viann", **layout)
    tracker.update(np.arange(12.0).reshape(6, 2))
    tracker.update(np.arange(12.0).reshape(6, 2) ** 2)
    assert tracker.feature_names_in_.tolist() == ["poly__1", "price", "age", "poly__price age"]


def test_spline_features_split_by_column():
    frame = _table()
    splines = SplineTransformer(n_knots=3, degree=2)  # 4 splines per column
    ct = ColumnTransformer([("spline", splines, ["age", "price"])]).fit(frame)
    layout = columns_from(ct)
    assert layout["groups"] == {"age": [0, 1, 2, 3], "price": [4, 5, 6, 7]}
    _check_against_output(ct, frame, layout)


def test_a_transformer_that_does_not_say_is_split_only_over_one_column(caplog):
    frame = _table()
    log = FunctionTransformer(np.abs)  # no feature_names_out: no output names either
    ct = ColumnTransformer(
        [("one", log, ["age"]), ("two", FunctionTransformer(np.abs), ["price", "age"])]
    ).fit(frame)
    with caplog.at_level(logging.INFO):
        layout = columns_from(ct)
    assert layout == {
        "feature_names": ["age", "output_1", "output_2"],
        "groups": {"age": [0]},
    }
    assert "'two' (FunctionTransformer) reads 2 columns" in caplog.text
    assert "feature_names_out='one-to-one'" in caplog.text
    one_to_one = FunctionTransformer(np.abs, feature_names_out="one-to-one")
    ct = ColumnTransformer([("two", one_to_one, ["price", "age"])]).fit(frame)
    assert columns_from(ct)["groups"] == {"price": [0], "age": [1]}


# ------------------------------------------------------------------- errors
def test_unfitted_and_unknown_objects_are_refused():
    ct = ColumnTransformer([("cat", OneHotEncoder(), ["city"])])
    with pytest.raises(NotFittedError, match=r"columns_from\(ColumnTransformer\) reads what"):
        columns_from(ct)
    with pytest.raises(TypeError, match="not dict"):
        columns_from({"city": [0, 1]})
    with pytest.raises(TypeError, match="either a preprocessor or embedding_sizes"):
        columns_from(ct, continuous=["price"])
    with pytest.raises(TypeError, match="needs a fitted preprocessor"):
        columns_from()


def test_import_loads_neither_scikit_learn_nor_keras():
    code = """
        import sys
        from neural_feature_importance import columns_from
        columns_from(embedding_sizes={"city": (3, 2)})
        print(sorted(m for m in ("sklearn", "keras", "torch", "tensorflow") if m in sys.modules))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# ------------------------------------------------------------ embedding sizes
def test_embedding_sizes_in_pytorch_tabular_order():
    # pytorch-tabular 1.x: continuous columns, then each embedding in categorical_cols order.
    layout = columns_from(
        embedding_sizes=[(6, 3), (4, 2)],  # CategoryEmbeddingModel's embedding_dims
        categorical=["city", "store"],
        continuous=["price", "age"],
        order="continuous_first",
    )
    assert layout["feature_names"] == [
        "price",
        "age",
        "city_0",
        "city_1",
        "city_2",
        "store_0",
        "store_1",
    ]
    assert layout["groups"] == {"price": [0], "age": [1], "city": [2, 3, 4], "store": [5, 6]}
    assert layout["feature_names"].source == "columns_from(embedding_sizes=...)"


@pytest.mark.parametrize(
    "sizes",
    [{"city": (6, 3), "store": (4, 2)}, {"city": 3, "store": 2}, [("city", 6, 3), ("store", 4, 2)]],
    ids=["mapping", "dims", "triples"],
)
def test_embedding_sizes_forms_and_embeddings_first(sizes):
    layout = columns_from(embedding_sizes=sizes, continuous=["price"], order="embeddings_first")
    assert layout["groups"] == {"city": [0, 1, 2], "store": [3, 4], "price": [5]}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"embedding_sizes": {"city": 3}, "continuous": ["price"]}, "needs order="),
        ({"embedding_sizes": [(6, 3)]}, "categorical= must name each"),
        ({"embedding_sizes": [(6, 3)], "categorical": ["a", "b"]}, r"\(got 2 names\)"),
        ({"embedding_sizes": {"city": (6, 0)}}, "positive integers"),
        ({"embedding_sizes": {"city": 3}, "categorical": ["city"]}, "names its columns already"),
        (
            {"embedding_sizes": {"city": 3}, "continuous": ["city"], "order": "continuous_first"},
            "both continuous and embedded",
        ),
        ({"embedding_sizes": {"city": 3}, "order": "numbers_first"}, "order must be one of"),
        ({"embedding_sizes": 3}, "got int"),
        (
            {"embedding_sizes": {"a": 1}, "continuous": ["p", "p"], "order": "continuous_first"},
            "more than once",
        ),
    ],
)
def test_malformed_embedding_sizes_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        columns_from(**options)


# ------------------------------------------------- width checked against the layer
def test_a_layer_of_another_width_is_named_beside_the_preprocessor():
    frame = _table()
    ct = ColumnTransformer([("cat", OneHotEncoder(), ["city", "shop"])]).fit(frame)  # 7 outputs
    tracker = VarianceImportanceBase(scoring="viann", **columns_from(ct))
    expected = r"columns_from\(ColumnTransformer\) describes 7 inputs; layer 'fc1' reads 6\."
    with pytest.raises(ValueError, match=expected):
        tracker.start(np.zeros((6, 4)), layer_name="fc1")
    # A hand-written list keeps its own message.
    names = [f"x{i}" for i in range(7)]
    with pytest.raises(ValueError, match="feature_names has 7 names, but layer 'fc1' has 6"):
        VarianceImportanceBase(scoring="viann", feature_names=names).start(
            np.zeros((6, 4)), layer_name="fc1"
        )


def test_from_state_takes_the_columns_after_training():
    frame = _table()
    ct = ColumnTransformer(
        [("cat", OneHotEncoder(drop="first"), ["city"])], remainder="passthrough"
    ).fit(frame[["city", "price"]])  # 3 + 1 inputs
    trained = VarianceImportanceBase(scoring="viann", normalize=None)
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(4, 2))
    for _ in range(4):
        weights = weights + rng.normal(size=(4, 2)) * np.array([[1.0], [2.0], [3.0], [0.5]])
        trained.update(weights)
    restored = VarianceImportanceBase.from_state(trained.state_dict(), **columns_from(ct))
    raw = trained.raw_importances_
    assert restored.feature_names_in_.tolist() == ["city", "price"]
    np.testing.assert_allclose(restored.raw_importances_, [raw[:3].sum(), raw[3]])
    narrower = ColumnTransformer([("cat", OneHotEncoder(), ["city"])]).fit(frame)  # 4 inputs
    wider = VarianceImportanceBase(scoring="viann", normalize=None)
    wider.update(np.ones((5, 2)))
    with pytest.raises(ValueError, match="describes 4 inputs; layer 'weights' reads 5"):
        VarianceImportanceBase.from_state(wider.state_dict(), **columns_from(narrower))


def test_input_names_are_a_plain_list_that_remembers_its_source():
    names = InputNames(["a", "b"], source="columns_from(Thing)")
    assert names == ["a", "b"] and isinstance(names, list)
    assert names.source == "columns_from(Thing)"
