import numpy as np
import pytest

try:  # imported up front, so that the seeding fixture of tests/conftest.py seeds it
    import torch  # noqa: F401
except ImportError:
    pass


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def torch_single_thread():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch
