"""The torch array operations: the fused per-feature sum and the finiteness test."""

import math

import numpy as np
import pytest
import torch

from neural_feature_importance.torch.arrays import FUSED_DOT_MIN, TorchArrayOps

OPS = TorchArrayOps()


@pytest.mark.parametrize(
    "shape", [(64, 48), (FUSED_DOT_MIN // 256, 256), (256, FUSED_DOT_MIN // 256)]
)
@pytest.mark.parametrize("axis", [0, 1])
def test_dot_equals_the_summed_product(shape, axis):
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(*shape, generator=generator)
    b = torch.randn(*shape, generator=generator)
    expected = (a.double() * b.double()).sum(axis).numpy()
    # float32 summation: the error grows like the square root of the values summed.
    tolerance = 1e-5 * math.sqrt(shape[axis])
    np.testing.assert_allclose(OPS.dot(a, b, axis).double().numpy(), expected, atol=tolerance)


def test_all_finite_is_exact_when_the_sum_overflows():
    huge = torch.full((4,), 3e38)  # finite float32 values whose float32 sum is inf
    assert not math.isfinite(huge.sum().item())
    assert OPS.all_finite(huge)
    for bad in (math.nan, math.inf, -math.inf):
        values = huge.clone()
        values[2] = bad
        assert not OPS.all_finite(values)
    assert OPS.all_finite(torch.zeros(0))
    half = torch.full((100_000,), 60_000.0, dtype=torch.float16)  # the half sum overflows
    assert OPS.all_finite(half)
