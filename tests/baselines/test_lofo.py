import numpy as np
import pytest

from neural_feature_importance.baselines import lofo_importance


def mse(y_true, y_pred):
    return float(np.mean((np.asarray(y_true) - np.asarray(y_pred)) ** 2))


def test_zero_and_mean_replacement_of_a_planted_linear_model(rng):
    X = rng.normal(loc=0.5, size=(400, 3))
    coef = np.array([2.0, -1.0, 0.0])
    y = X @ coef
    model = lambda A: A @ coef  # noqa: E731 - the model under test
    # No noise: blanking column i to v gives loss coef_i^2 * mean((x_i - v)^2).
    zero = lofo_importance(model, X, y, loss=mse)
    np.testing.assert_allclose(zero, coef**2 * np.mean(X**2, axis=0), rtol=1e-12)
    mean = lofo_importance(model, X, y, loss=mse, replace="mean")
    np.testing.assert_allclose(mean, coef**2 * X.var(axis=0), rtol=1e-12)
    const = lofo_importance(model, X, y, loss=mse, replace=1.0)
    np.testing.assert_allclose(const, coef**2 * np.mean((X - 1.0) ** 2, axis=0), rtol=1e-12)


def test_torch_loss_module_and_single_output(torch_single_thread):
    torch = torch_single_thread
    from torch import nn

    model = nn.Sequential(nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0, -3.0]]))
    X = np.random.default_rng(0).normal(size=(200, 3))
    y = X @ np.array([1.0, 0.0, -3.0])
    scores = lofo_importance(model, X, y, loss=nn.MSELoss())
    expected = np.array([1.0, 0.0, 9.0]) * np.mean(X**2, axis=0)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert model.training  # the training flag is restored


@pytest.mark.keras
def test_keras_evaluate_loss_matches_numpy_mse(rng):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(loss="mse")
    w = np.array([[0.5], [-2.0], [0.0]], dtype="float32")
    model.layers[0].kernel.assign(w)
    X = rng.normal(size=(100, 3))
    y = X @ w[:, 0]
    scores = lofo_importance(model, X, y)  # the paper's model.evaluate loss
    np.testing.assert_allclose(scores, w[:, 0] ** 2 * np.mean(X**2, axis=0), rtol=1e-4)


def test_bad_inputs_say_what_to_do(rng):
    X = rng.normal(size=(10, 2))
    with pytest.raises(ValueError, match="'zero'"):
        lofo_importance(lambda A: A[:, 0], X, X[:, 0], loss=mse, replace="median")
    with pytest.raises(ValueError, match="pass loss="):
        lofo_importance(lambda A: A[:, 0], X, X[:, 0])
    with pytest.raises(ValueError, match="rows"):
        lofo_importance(lambda A: A[:, 0], X, X[:5, 0], loss=mse)
