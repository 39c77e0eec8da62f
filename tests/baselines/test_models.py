import sys

import numpy as np
import pytest

from neural_feature_importance.baselines import dense_weight_chain, loss_function, predict_function
from neural_feature_importance.baselines._models import framework_of


def test_importing_baselines_imports_no_framework():
    import subprocess

    code = (
        "import sys, neural_feature_importance.baselines as b; "
        "print(sorted(m for m in ('torch', 'keras', 'tensorflow', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_framework_of():
    from sklearn.linear_model import LinearRegression

    assert framework_of([np.ones((2, 2))]) == "weights"
    assert framework_of(LinearRegression()) == "sklearn"
    assert framework_of(lambda X: X) == "callable"
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        framework_of(42)


def test_weights_must_be_2d():
    with pytest.raises(ValueError, match=r"\(in, out\)"):
        dense_weight_chain([np.ones(3)])


def test_torch_chain_orientation_and_rejected_layers(torch_single_thread):
    from torch import nn

    model = nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3), nn.PReLU(), nn.Linear(3, 2))
    chain = dense_weight_chain(model)
    assert [w.shape for w in chain] == [(5, 3), (3, 2)]
    np.testing.assert_array_equal(chain[0], model[0].weight.detach().double().numpy().T)
    with pytest.raises(ValueError, match="Conv1d"):
        dense_weight_chain(nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(4, 1)))
    with pytest.raises(ValueError, match="no dense"):
        dense_weight_chain(nn.Sequential(nn.ReLU()))


def test_torch_predict_uses_eval_mode_and_restores_it(torch_single_thread):
    from torch import nn

    model = nn.Sequential(nn.Linear(3, 50), nn.Dropout(0.9), nn.Linear(50, 1))
    X = np.random.default_rng(0).normal(size=(20, 3))
    predict = predict_function(model, batch_size=7)
    first, second = predict(X), predict(X)
    np.testing.assert_array_equal(first, second)  # dropout is off
    assert first.shape == (20, 1) and first.dtype == np.float64
    assert model.training
    with pytest.raises(ValueError, match="batch_size"):
        predict_function(model, batch_size=0)
    with pytest.raises(ValueError, match="CrossEntropyLoss"):
        loss_function(model)


@pytest.mark.keras
def test_keras_nested_chain_and_errors():
    keras = pytest.importorskip("keras")
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model = keras.Sequential(
        [keras.Input((4,)), inner, keras.layers.PReLU(), keras.layers.Dense(2)]
    )
    assert [w.shape for w in dense_weight_chain(model)] == [(4, 3), (3, 2)]
    X = np.random.default_rng(0).normal(size=(9, 4))
    np.testing.assert_allclose(
        predict_function(model, batch_size=4)(X),
        keras.ops.convert_to_numpy(model(X.astype("float32"))),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="not compiled"):
        loss_function(model)
    conv = keras.Sequential(
        [
            keras.Input((6, 1)),
            keras.layers.Conv1D(2, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(1),
        ]
    )
    with pytest.raises(ValueError, match="Conv1D"):
        dense_weight_chain(conv)
