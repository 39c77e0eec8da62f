"""Example tests: one thread per framework (the test machine is shared), Agg backend."""

import importlib.util
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _load_script(name):
    """Import a script under scripts/ as a module (its main() is then called in-process)."""
    spec = importlib.util.spec_from_file_location(f"_example_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def conv_script():
    return _load_script("conv_visualization_example")


@pytest.fixture(scope="session")
def token_script():
    return _load_script("token_importance_topk_example")


@pytest.fixture(autouse=True)
def _quiet_single_threaded_env(monkeypatch):
    # Scoped to each test: a process-wide os.environ change would leak into later tests'
    # subprocesses (a notebook kernel started with MPLBACKEND=Agg shows no figures).
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _single_thread_torch():
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return
    plt.close("all")
