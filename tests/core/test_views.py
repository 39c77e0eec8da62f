import numpy as np
import pytest

from neural_feature_importance.core import WeightView


def test_dense_layouts_agree():
    rng = np.random.default_rng(0)
    keras_kernel = rng.normal(size=(4, 16))  # (in, out)
    torch_weight = keras_kernel.T.copy()  # (out, in)
    keras_view = WeightView("dense", "keras", keras_kernel.shape)
    torch_view = WeightView("dense", "torch", torch_weight.shape)
    assert keras_view.n_features == torch_view.n_features == 4
    assert keras_view.n_units == torch_view.n_units == 16
    np.testing.assert_array_equal(
        keras_view.to_matrix(keras_kernel), torch_view.to_matrix(torch_weight)
    )


@pytest.mark.parametrize("kernel", [(3,), (3, 2), (2, 3, 2)])
def test_conv_layouts_agree(kernel):
    rng = np.random.default_rng(1)
    in_channels, filters = 5, 7
    keras_kernel = rng.normal(size=(*kernel, in_channels, filters))
    ndim = keras_kernel.ndim
    # Keras (*k, in, out) -> torch (out, in, *k)
    torch_weight = np.transpose(keras_kernel, (ndim - 1, ndim - 2, *range(ndim - 2)))
    keras_view = WeightView("conv", "keras", keras_kernel.shape)
    torch_view = WeightView("conv", "torch", torch_weight.shape)
    assert keras_view.feature_shape == torch_view.feature_shape == (*kernel, in_channels)
    assert keras_view.n_units == torch_view.n_units == filters
    np.testing.assert_array_equal(
        keras_view.to_matrix(keras_kernel), torch_view.to_matrix(torch_weight)
    )
    # feature (position p, channel c) of the matrix is kernel[p..., c, :]
    matrix = keras_view.to_matrix(keras_kernel)
    np.testing.assert_array_equal(
        matrix[in_channels + 2], keras_kernel.reshape(-1, in_channels, filters)[1, 2]
    )


def test_embedding_view_rows_are_tokens():
    table = np.arange(12.0).reshape(6, 2)
    view = WeightView("embedding", "torch", table.shape)
    assert view.feature_shape == (6,) and view.n_units == 2
    np.testing.assert_array_equal(view.to_matrix(table), table)


def test_view_errors_name_the_problem():
    with pytest.raises(ValueError, match="kind='lstm' is not one of"):
        WeightView("lstm", "keras", (2, 2))
    with pytest.raises(ValueError, match="a dense weight must be 2-D"):
        WeightView("dense", "keras", (3, 3, 2, 4))
    with pytest.raises(ValueError, match="3-D to 5-D"):
        WeightView("conv", "torch", (4, 2))
    with pytest.raises(ValueError, match="does not match"):
        WeightView("dense", "keras", (2, 3)).to_matrix(np.zeros((3, 2)))
