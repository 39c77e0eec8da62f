import numpy as np
import pytest

from neural_feature_importance.baselines import connection_weights, olden_importance


def test_product_of_kernels_by_hand():
    W1 = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    W2 = np.array([[2.0, 1.0], [-3.0, 0.0]])
    # CW = W1 @ W2 = [[2, 1], [-3, 0], [-0.5, 0.5]]
    np.testing.assert_allclose(connection_weights([W1, W2]), [[2, 1], [-3, 0], [-0.5, 0.5]])
    np.testing.assert_allclose(olden_importance([W1, W2], output=0), [2.0, -3.0, -0.5])
    np.testing.assert_allclose(olden_importance([W1, W2], output=-1), [1.0, 0.0, 0.5])
    np.testing.assert_allclose(olden_importance([W1, W2]), [3.0, 3.0, 1.0])
    np.testing.assert_allclose(olden_importance([W1, W2], normalize="sum"), [3 / 7, 3 / 7, 1 / 7])


def test_trained_linear_network_recovers_planted_coefficients(torch_single_thread):
    torch = torch_single_thread
    from torch import nn
    from training_loops import train

    rng = np.random.default_rng(1)
    X = rng.normal(size=(512, 3))
    coef = np.array([3.0, -2.0, 0.0])
    y = X @ coef
    model = nn.Sequential(nn.Linear(3, 8), nn.Linear(8, 4), nn.Linear(4, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    Xt = torch.tensor(X, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)[:, None]
    loss = train(model, [], Xt, yt, optimizer=opt, epochs=600)  # 600 whole-batch steps
    assert loss < 1e-4
    np.testing.assert_allclose(olden_importance(model, output=0), coef, atol=0.02)


def test_bad_output_index_and_broken_chain_raise():
    W1, W2 = np.ones((3, 2)), np.ones((2, 1))
    with pytest.raises(ValueError, match="1 output"):
        olden_importance([W1, W2], output=1)
    with pytest.raises(ValueError, match="forward order"):
        olden_importance([W2, W1])
