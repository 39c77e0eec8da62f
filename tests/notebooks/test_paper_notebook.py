"""The paper notebook executes offline top to bottom in quick mode, with tables and plots.

Executing it in a Jupyter kernel is marked ``slow``; the fast variant runs the
same cells in this process (``run_notebook_here`` in ``conftest.py``), on the
Keras backend this process has.
"""

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")
pytest.importorskip("keras")
pytest.importorskip("sklearn")
pytest.importorskip("pandas")

NOTEBOOK = (
    Path(__file__).resolve().parents[2]
    / "notebooks"
    / "variance-based feature importance in artificial neural networks.ipynb"
)


@pytest.mark.slow
def test_paper_notebook_runs_in_quick_mode(monkeypatch):
    # The kernel inherits this environment: quick mode, one thread.
    monkeypatch.setenv("NFI_PAPER_QUICK", "1")
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend shows figures
    try:
        import torch  # noqa: F401

        monkeypatch.setenv("KERAS_BACKEND", "torch")  # the fastest backend for tiny runs
    except ImportError:
        pass
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    html = "".join(out.get("data", {}).get("text/html", "") for out in outputs)
    markdown = "".join(out.get("data", {}).get("text/markdown", "") for out in outputs)
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    _check(text, html, markdown, len(images))


def test_paper_notebook_cells_run_here_in_quick_mode(monkeypatch, run_notebook_here):
    """The fast variant: the same cells in this process."""
    monkeypatch.setenv("NFI_PAPER_QUICK", "1")
    _check(*run_notebook_here(NOTEBOOK.stem))


def _check(text, html, markdown, n_images):
    assert "quick=True: models ['NN1'], data sets ['iris', 'diabetes']" in text
    assert n_images == 1  # NN1: VIANN vs LOFO and vs RF, one panel per data set
    # The six data sets, offline (Boston from mlxtend).
    assert "mlxtend.data.boston_housing_data" in html and "breastcancer" in html
    # Reproduced beside published: NN1 iris VIANN-LOFO was 0.99 in the paper.
    assert re.search(r"-?\d\.\d+ \(0\.99\)", html), html[:2000]
    gap = re.search(r"\{'NN1': (\d\.\d+)\}", text)
    assert gap is not None and 0.0 <= float(gap.group(1)) <= 2.0
    # The committed full run is displayed when results/paper/ exists.
    if (NOTEBOOK.parents[1] / "results" / "paper" / "paper_results.md").exists():
        assert "Mean |reproduced - published| over 24 cells" in markdown
