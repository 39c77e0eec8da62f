"""Importance per named column in PyTorch: embedded categoricals, one-hot groups, names.

The tabular network embeds a categorical column and concatenates it with the
numeric and one-hot inputs before its first Linear. One embedded categorical
(city) and one numeric column (income) decide the target; a one-hot
categorical (colour), an embedded categorical (shop) and a numeric column
(age) are noise. Grouped per column, ``taylor`` must put city and income on
top for every seed.
"""

import numpy as np
import pytest
import torch
from torch import nn
from training_loops import train

from neural_feature_importance import VarianceImportanceTorch

DIM = 3


def _table(seed, n=1200):
    rng = np.random.default_rng(seed)
    city = rng.integers(0, 6, n)
    shop = rng.integers(0, 4, n)
    colour = rng.integers(0, 3, n)
    income, age = rng.normal(size=(2, n))
    city_effect = rng.permutation([2.0, -1.5, 1.0, -0.5, 0.0, -1.0])
    y = city_effect[city] + 1.5 * income + rng.normal(scale=0.3, size=n)
    numeric = np.column_stack([income, age, np.eye(3)[colour]]).astype("float32")
    codes = np.column_stack([city, shop])
    return (
        torch.tensor(codes),
        torch.tensor(numeric),
        torch.tensor(y, dtype=torch.float32).unsqueeze(1),
    )


class TabularNet(nn.Module):
    """Two embedded categoricals concatenated with 5 numeric/one-hot inputs."""

    def __init__(self):
        super().__init__()
        self.city = nn.Embedding(6, DIM)
        self.shop = nn.Embedding(4, DIM)
        self.mlp = nn.Sequential(nn.Linear(2 * DIM + 5, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, codes, numeric):
        embedded = [self.city(codes[:, 0]), self.shop(codes[:, 1])]
        return self.mlp(torch.cat([*embedded, numeric], dim=1))


INPUTS = [f"city_{d}" for d in range(DIM)] + [f"shop_{d}" for d in range(DIM)]
INPUTS += ["income", "age", "colour_red", "colour_green", "colour_blue"]
GROUPS = {"city": INPUTS[:DIM], "shop": INPUTS[DIM : 2 * DIM], "colour": INPUTS[-3:]}
COLUMNS = ["city", "shop", "income", "age", "colour"]


def _train(tracker, model, seed, epochs=15):
    codes, numeric, y = _table(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    train(
        model,
        tracker,
        (codes, numeric),
        y,
        optimizer=optimizer,
        epochs=epochs,
        batch_size=64,
        shuffle=seed,
    )
    return tracker


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_columns_come_out_on_top_with_taylor(seed):
    torch.manual_seed(seed)
    model = TabularNet()
    tracker = VarianceImportanceTorch(
        model, layer="mlp.0", scoring="taylor", feature_names=INPUTS, groups=GROUPS
    )
    _train(tracker, model, seed)
    assert tracker.feature_names_in_.tolist() == COLUMNS
    scores = tracker.feature_importances_
    top = {COLUMNS[i] for i in np.argsort(scores)[::-1][:2]}
    assert top == {"city", "income"}, dict(zip(COLUMNS, scores.round(3), strict=True))
    frame = tracker.importances_.to_frame()
    assert set(frame["feature"][:2]) == {"city", "income"}


def test_group_raw_score_is_the_sum_of_its_inputs_taylor_scores():
    runs = {}
    for grouped in (False, True):
        torch.manual_seed(0)
        model = TabularNet()
        options = {"feature_names": INPUTS, "groups": GROUPS} if grouped else {}
        tracker = VarianceImportanceTorch(model, layer="mlp.0", scoring="taylor", **options)
        runs[grouped] = _train(tracker, model, seed=0, epochs=2).raw_importances_
    per_input = runs[False]
    expected = [
        per_input[0:DIM].sum(),
        per_input[DIM : 2 * DIM].sum(),
        per_input[2 * DIM],
        per_input[2 * DIM + 1],
        per_input[-3:].sum(),
    ]
    np.testing.assert_allclose(runs[True], expected, rtol=1e-12)


def test_names_and_groups_are_checked_against_the_layer_at_construction():
    model = TabularNet()
    with pytest.raises(ValueError, match=r"feature_names has 3 names, but layer 'mlp.0' has 11"):
        VarianceImportanceTorch(model, layer="mlp.0", feature_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"groups\['colour'\] has the index 11"):
        VarianceImportanceTorch(model, layer="mlp.0", groups={"colour": [8, 9, 11]})
    with pytest.raises(ValueError, match=r"groups\['shop'\] and groups\['city'\] both cover"):
        VarianceImportanceTorch(model, layer="mlp.0", groups={"city": [0, 1, 2], "shop": [2, 3, 4]})


def test_lightning_takes_names_and_groups(tmp_path):
    pytest.importorskip("lightning")
    from lightning_helpers import Regressor
    from quiet_trainers import quiet_trainer

    from neural_feature_importance import VarianceImportanceLightning

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=generator)
    y = (3 * x[:, 0] - 2 * (x[:, 1] + x[:, 2])).unsqueeze(1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    names = ["a", "b1", "b2", "c", "d", "e", "f", "g"]
    callback = VarianceImportanceLightning(
        scoring="taylor", feature_names=names, groups={"b": ["b1", "b2"]}
    )
    quiet_trainer(tmp_path, 6, [callback]).fit(Regressor(), loader)
    assert callback.feature_names_in_.tolist() == ["a", "b", "c", "d", "e", "f", "g"]
    assert set(callback.importances_.to_frame()["feature"][:2]) == {"a", "b"}
    with pytest.raises(ValueError, match=r"groups\['b'\] is empty"):
        VarianceImportanceLightning(groups={"b": []})
