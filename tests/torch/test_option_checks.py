"""Bad options fail in the constructor, on the line that made them."""

import pytest
import torch
from torch import nn

from neural_feature_importance import LayerSelectionError, VarianceImportanceTorch


def _model():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"scoring": "tayler"}, ValueError, r"scoring='tayler' is not a scoring mode"),
        ({"update_every": 0}, ValueError, r"update_every=0 is not supported"),
        ({"update_every": 2.5}, ValueError, r"update_every=2.5 is not supported"),
        ({"gradient_every": 0}, ValueError, r"gradient_every=0 is not supported"),
        ({"normalize": "max"}, ValueError, r"normalize='max' is not supported"),
        ({"dtype": torch.float16}, ValueError, r"dtype='float16' is not supported"),
        ({"finite_check": "always"}, ValueError, r"finite_check='always' is not supported"),
        ({"layer": "does_not_exist"}, LayerSelectionError, r"layer='does_not_exist' is not"),
        ({"layer": "1"}, LayerSelectionError, r"layer '1' is a ReLU"),
    ],
)
def test_torch_tracker_checks_options_at_construction(options, error, message):
    with pytest.raises(error, match=message):
        VarianceImportanceTorch(_model(), **options)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"scoring": "tayler"}, ValueError, r"scoring='tayler' is not a scoring mode"),
        ({"update_every": 0}, ValueError, r"update_every=0 is not supported"),
        ({"gradient_every": -1}, ValueError, r"gradient_every=-1 is not supported"),
        ({"normalize": "max"}, ValueError, r"normalize='max' is not supported"),
        ({"dtype": "float16"}, ValueError, r"dtype='float16' is not supported"),
        ({"finite_check": "always"}, ValueError, r"finite_check='always' is not supported"),
        ({"kind": "lstm"}, ValueError, r"kind='lstm' is not supported; use one of"),
        ({"scorng": "taylor"}, TypeError, r"no option 'scorng'; its options are layer, "),
    ],
)
def test_lightning_callback_checks_options_at_construction(options, error, message):
    pytest.importorskip("lightning")
    from neural_feature_importance import VarianceImportanceLightning

    with pytest.raises(error, match=message):
        VarianceImportanceLightning(**options)
