import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _single_thread():
    # Seeded by the autouse fixture of tests/conftest.py.
    torch.set_num_threads(1)
