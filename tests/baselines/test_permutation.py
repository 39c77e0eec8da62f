import numpy as np
import pytest

from neural_feature_importance.baselines import permutation_importance


def mse(y_true, y_pred):
    return float(np.mean((np.asarray(y_true) - np.asarray(y_pred)) ** 2))


def test_planted_linear_function_two_var_per_coefficient(rng):
    X = rng.normal(size=(4000, 3))
    coef = np.array([3.0, 1.0, 0.0])
    f = lambda A: A @ coef  # noqa: E731
    result = permutation_importance(f, X, f(X), loss=mse, n_repeats=4, random_state=0)
    assert result.importances.shape == (3, 4)
    assert result.importances_mean.shape == result.importances_std.shape == (3,)
    # Shuffling x_i adds coef_i * (x_i - x_perm): expected loss 2 * coef_i^2 * var(x_i).
    np.testing.assert_allclose(result.importances_mean, 2 * coef**2, rtol=0.06, atol=1e-12)
    assert result.importances_mean[2] == 0.0 and result.importances_std[2] == 0.0
    again = permutation_importance(f, X, f(X), loss=mse, n_repeats=4, random_state=0)
    np.testing.assert_array_equal(result.importances, again.importances)


def test_sklearn_estimator_passes_through_unchanged(rng):
    from sklearn.inspection import permutation_importance as sk_pi
    from sklearn.linear_model import LinearRegression

    X = rng.normal(size=(300, 3))
    y = X @ np.array([1.0, 0.0, 2.0]) + 0.1 * rng.normal(size=300)
    est = LinearRegression().fit(X, y)
    ours = permutation_importance(est, X, y, n_repeats=3, random_state=1)
    theirs = sk_pi(est, X, y, n_repeats=3, random_state=1)
    np.testing.assert_array_equal(ours.importances, theirs.importances)


def test_torch_classifier_with_logits(torch_single_thread):
    torch = torch_single_thread
    from torch import nn

    # Logits depend on features 0 and 1 only: shuffling 2 or 3 changes nothing.
    model = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [-4.0, -4.0, 0, 0]]))
    X = np.random.default_rng(0).normal(size=(600, 4))
    labels = (X[:, :2] @ np.array([[4.0, 0, -4.0], [0, 4.0, -4.0]])).argmax(axis=1)
    acc = permutation_importance(model, X, labels, scoring="accuracy", random_state=0)
    np.testing.assert_array_equal(acc.importances_mean[2:], 0.0)
    assert acc.importances_mean[0] > 0.2 and acc.importances_mean[1] > 0.2
    ce = permutation_importance(model, X, labels, loss=nn.CrossEntropyLoss(), random_state=0)
    np.testing.assert_allclose(ce.importances_mean[2:], 0.0, atol=1e-6)
    ll = permutation_importance(model, X, labels, scoring="neg_log_loss", random_state=0)
    np.testing.assert_allclose(ll.importances_mean, ce.importances_mean, rtol=1e-3, atol=1e-6)


@pytest.mark.keras
def test_keras_softmax_model_with_one_hot_targets_and_accuracy(rng):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, activation="softmax", use_bias=False)]
    )
    model.compile(loss="categorical_crossentropy")
    model.layers[0].kernel.assign(np.array([[5.0, -5.0], [0.0, 0.0], [0.0, 0.0]], "float32"))
    X = rng.normal(size=(400, 3))
    labels = (X[:, 0] < 0).astype(int)
    one_hot = np.eye(2)[labels]
    acc = permutation_importance(model, X, one_hot, scoring="accuracy", random_state=0)
    np.testing.assert_array_equal(acc.importances_mean[1:], 0.0)
    assert 0.35 < acc.importances_mean[0] < 0.65  # a shuffled sign is right half the time
    loss = permutation_importance(model, X, one_hot, n_repeats=2, random_state=0)
    assert loss.importances_mean[0] > 1.0
    np.testing.assert_allclose(loss.importances_mean[1:], 0.0, atol=1e-6)


def test_bad_arguments(rng):
    X = rng.normal(size=(10, 2))
    with pytest.raises(ValueError, match="n_repeats"):
        permutation_importance(lambda A: A[:, 0], X, X[:, 0], loss=mse, n_repeats=0)
    with pytest.raises(TypeError, match="not its weights"):
        permutation_importance([np.ones((2, 1))], X, X[:, 0])
    with pytest.raises(ValueError, match="task="):
        permutation_importance(lambda A: A[:, 0], X, X[:, 0], loss=mse, task="ranking")
