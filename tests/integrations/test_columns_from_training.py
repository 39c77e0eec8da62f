"""A PyTorch tracker given **columns_from(ct) scores the table's columns, planted ones on top.

The table has five columns: city (4 levels) and price decide the target;
city_zone (a name that starts like city), shop and age are noise. A fitted
ColumnTransformer one-hot encodes the categoricals (first level dropped) and
scales the numbers; an MLP reads its output. Grouped by ``columns_from(ct)``,
``taylor`` must rank city and price first for every seed. A tracked layer of
another width fails before the first optimizer step, naming the preprocessor.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402
from torch import nn  # noqa: E402
from training_loops import train  # noqa: E402

from neural_feature_importance import (  # noqa: E402
    VarianceImportanceBase,
    VarianceImportanceTorch,
    columns_from,
)

COLUMNS = ["city", "city_zone", "shop", "price", "age"]


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)


def _table(seed, n=1200):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "city": rng.choice(["brest", "lille", "lyon", "paris"], n),
            "city_zone": rng.choice(["east", "north", "south", "west"], n),
            "shop": rng.choice(["x", "y", "z"], n),
            "price": rng.normal(size=n),
            "age": rng.normal(size=n),
        }
    )
    levels = ["brest", "lille", "lyon", "paris"]
    effect = dict(zip(levels, rng.permutation([1.5, -1.5, 0.5, -0.5]), strict=True))
    y = frame["city"].map(effect) + 1.5 * frame["price"] + rng.normal(scale=0.3, size=n)
    return frame, torch.tensor(y.to_numpy(), dtype=torch.float32).unsqueeze(1)


def _preprocessor(frame):
    return ColumnTransformer(
        [
            (
                "cat",
                OneHotEncoder(drop="first", sparse_output=False),
                ["city", "city_zone", "shop"],
            ),
            ("num", StandardScaler(), ["price", "age"]),
        ]
    ).fit(frame)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_columns_of_the_table_come_out_on_top(seed):
    frame, y = _table(seed)
    ct = _preprocessor(frame)
    X = torch.tensor(ct.transform(frame), dtype=torch.float32)  # 3 + 3 + 2 + 2 = 10 inputs
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(X.shape[1], 32), nn.ReLU(), nn.Linear(32, 1))
    tracker = VarianceImportanceTorch(model, layer="0", scoring="taylor", **columns_from(ct))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    train(model, tracker, X, y, optimizer=optimizer, epochs=8, batch_size=64, shuffle=seed)
    result = tracker.importances_
    assert result.feature_names.tolist() == COLUMNS
    assert result.members["city"] == [0, 1, 2] and result.members["price"] == [8]
    top = {COLUMNS[i] for i in result.ranking()[:2]}
    assert top == {"city", "price"}, result.to_frame()
    # After training: the same columns from the saved state.
    restored = VarianceImportanceBase.from_state(tracker.state_dict(), **columns_from(ct))
    np.testing.assert_allclose(restored.raw_importances_, tracker.raw_importances_, rtol=1e-6)


def test_a_layer_of_another_width_fails_before_the_first_step():
    frame, y = _table(0, n=64)
    ct = _preprocessor(frame)  # 10 inputs
    model = nn.Sequential(nn.Linear(9, 8), nn.ReLU(), nn.Linear(8, 1))
    message = r"columns_from\(ColumnTransformer\) describes 10 inputs; layer '0' reads 9\."
    with pytest.raises(ValueError, match=message):
        VarianceImportanceTorch(model, layer="0", **columns_from(ct))
    # Without layer=, the layer is known at the first forward pass: it fails there.
    tracker = VarianceImportanceTorch(model, scoring="taylor", **columns_from(ct))
    before = model[0].weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=message):
        train(model, tracker, torch.zeros(64, 9), y, optimizer=optimizer, epochs=1)
    torch.testing.assert_close(model[0].weight, before)  # no step was taken
