"""Keras tests: run once per backend, each in its own process.

``KERAS_BACKEND=tensorflow|torch|jax pytest tests/keras`` (see the Makefile).
The directory is skipped, with the reason in pytest's header, when Keras or
the selected backend cannot be imported.
"""

import os

# Before any framework is imported: one thread each (the test machine is shared).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import numpy as np
import pytest

try:
    import keras
except Exception as error:  # ImportError, or a backend that fails to initialise
    keras = None
    SKIP_REASON = f"Keras tests skipped: cannot import keras ({error!r})"
    collect_ignore_glob = ["test_*.py"]
else:
    SKIP_REASON = None
    if keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(1)


def pytest_report_header(config):
    if SKIP_REASON is not None:
        return SKIP_REASON
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.keras)


@pytest.fixture(scope="session")
def iris():
    """Iris, standardised and shuffled with a fixed seed (classes are sorted on disk)."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X[order].astype("float32"), y[order]
