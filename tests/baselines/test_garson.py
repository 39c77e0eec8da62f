import numpy as np
import pytest

from neural_feature_importance.baselines import garson_importance, garson_scores


def _garson_by_hand(A, b):
    """Goh's formula, one output, written with loops."""
    n_in, n_hidden = A.shape
    r = np.zeros((n_in, n_hidden))
    for j in range(n_hidden):
        col = [abs(A[i, j] * b[j]) for i in range(n_in)]
        for i in range(n_in):
            r[i, j] = col[i] / sum(col)
    s = r.sum(axis=1)
    return s / s.sum()


def test_two_by_two_by_hand():
    # c = |A * b| = [[3, 2], [1, 2]]; shares [[.75, .5], [.25, .5]]; sums [1.25, .75] / 2.
    scores = garson_scores(np.array([[3.0, 1.0], [1.0, 1.0]]), np.array([1.0, -2.0]))
    np.testing.assert_allclose(scores, [0.625, 0.375])


def test_random_network_matches_loops_and_sums_outputs(rng):
    A = rng.normal(size=(5, 7))
    B = rng.normal(size=(7, 3))
    expected = sum(_garson_by_hand(A, B[:, k]) for k in range(3))
    np.testing.assert_allclose(garson_scores(A, B), expected, rtol=1e-12)
    # Each output's score sums to 1, so the paper's raw sum totals n_outputs.
    np.testing.assert_allclose(garson_importance([A, B], normalize=None).sum(), 3.0)
    np.testing.assert_allclose(garson_importance([A, B]), expected / 3.0, rtol=1e-12)


def test_planted_truth_feature_with_large_weights_ranks_first(rng):
    A = rng.uniform(0.5, 1.0, size=(4, 6))
    A[2] *= 10.0  # feature 2 drives every hidden unit
    A[3] = 0.0  # feature 3 is disconnected
    scores = garson_importance([A, rng.normal(size=(6, 2))], normalize="minmax")
    assert np.argmax(scores) == 2
    assert scores[3] == 0.0


def test_first_and_last_layers_of_a_deeper_chain_are_used(rng):
    A, M, B = rng.normal(size=(4, 5)), rng.normal(size=(5, 5)), rng.normal(size=(5, 2))
    np.testing.assert_allclose(
        garson_importance([A, M, B], normalize=None), garson_scores(A, B), rtol=1e-12
    )


def test_mismatched_first_and_last_layers_raise_with_a_hint(rng):
    with pytest.raises(ValueError, match="olden_importance"):
        garson_importance(
            [rng.normal(size=(4, 5)), rng.normal(size=(5, 6)), rng.normal(size=(6, 1))]
        )


def test_single_layer_raises(rng):
    with pytest.raises(ValueError, match="at least two dense layers"):
        garson_importance([rng.normal(size=(4, 5))])


def test_torch_linear_weights_are_transposed_to_in_out(torch_single_thread):
    from torch import nn

    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Dropout(0.1), nn.Linear(6, 3))
    A = model[0].weight.detach().double().numpy().T
    B = model[3].weight.detach().double().numpy().T
    np.testing.assert_allclose(garson_importance(model), garson_importance([A, B]), rtol=1e-12)
    assert garson_importance(model).shape == (4,)


@pytest.mark.keras
def test_keras_model_matches_its_kernels():
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(6, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    A = keras.ops.convert_to_numpy(model.layers[0].kernel)
    B = keras.ops.convert_to_numpy(model.layers[-1].kernel)
    np.testing.assert_allclose(garson_importance(model), garson_importance([A, B]), rtol=1e-6)
