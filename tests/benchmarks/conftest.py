"""Smoke tests of the benchmarks: tiny runs that keep them working, never timed assertions."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The benchmarks package lives at the repository root and is not installed.
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("pandas")
pytest.importorskip("mlxtend")


@pytest.fixture(autouse=True)
def _single_thread():
    # Seeded by the autouse fixture of tests/conftest.py.
    torch.set_num_threads(1)
