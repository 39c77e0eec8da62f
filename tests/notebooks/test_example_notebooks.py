"""Both example notebooks execute offline, in quick mode, and show their figures and numbers.

Executing them in a Jupyter kernel is marked ``slow``; the fast variants run
the same cells in this process (``run_notebook_here`` in ``conftest.py``).
"""

import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _quick(framework, monkeypatch):
    """The notebooks' switches: quick mode, on ``framework``; one thread per framework."""
    monkeypatch.setenv("NFI_EXAMPLES_QUICK", "1")
    monkeypatch.setenv("NFI_EXAMPLES_FRAMEWORK", framework)
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


def _execute(name, framework, monkeypatch):
    # The kernel inherits this environment.
    _quick(framework, monkeypatch)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend shows figures
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    return text, images


@pytest.mark.slow
def test_conv_notebook(monkeypatch):
    pytest.importorskip("keras")
    pytest.importorskip("sklearn")
    text, images = _execute("conv_visualization_example", "keras", monkeypatch)
    assert len(images) == 4  # filters, heatmap, ablation, history: each shown once
    _check_conv_text(text)


def test_conv_notebook_cells_here(monkeypatch, run_notebook_here):
    """The fast variant, on torch (the faster framework; the script tests cover Keras)."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    _quick("torch", monkeypatch)
    text, _, _, figures = run_notebook_here("conv_visualization_example")
    assert figures == 4  # filters, heatmap, ablation, history
    assert "torch: test accuracy" in text
    _check_conv_text(text)


def _check_conv_text(text):
    assert "filters by VIANN rank:" in text
    rows = re.findall(r"^\s+(\d)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+) \+-", text, re.MULTILINE)
    assert [int(k) for k, *_ in rows] == [2, 4, 6]
    top = [float(r[1]) for r in rows]
    bottom = [float(r[2]) for r in rows]
    assert all(t > b for t, b in zip(top, bottom, strict=True)), text


@pytest.mark.slow
def test_token_notebook(monkeypatch):
    pytest.importorskip("torch")
    # The notebook's framework switch, on the faster of the two (the script tests cover Keras).
    text, images = _execute("token_importance_topk_example", "torch", monkeypatch)
    assert len(images) == 4  # top tokens, documents, recall curve, history
    _check_token_text(text)


def test_token_notebook_cells_here(monkeypatch, run_notebook_here):
    """The fast variant: the same cells, on torch, in this process."""
    pytest.importorskip("torch")
    _quick("torch", monkeypatch)
    text, _, _, figures = run_notebook_here("token_importance_topk_example")
    assert figures == 4  # top tokens, documents, recall curve, history
    _check_token_text(text)


def _check_token_text(text):
    recall_20 = re.search(r"^\s+20\s+([\d.]+)\s+([\d.]+)", text, re.MULTILINE)
    assert recall_20 is not None, text
    assert float(recall_20.group(1)) >= 0.8 and float(recall_20.group(2)) == 0.0
    assert "planted: " in text and os.environ["NFI_EXAMPLES_QUICK"] == "1"
