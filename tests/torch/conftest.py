import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _seed_and_single_thread():
    torch.manual_seed(0)
    torch.set_num_threads(1)
