"""Notebook tests: each notebook runs in a Jupyter kernel (``slow``) and, as its fast
variant, cell by cell in this process (no kernel to start, no framework to import again)."""

import ast
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture
def run_notebook_here(monkeypatch, capsys):
    """Run a notebook's code cells in this process, in order, in one namespace.

    ``run(name)`` returns ``(text, html, markdown, figures)``: what the cells
    printed; the HTML and the Markdown of what they showed (``display()`` calls
    and each cell's last expression, as a kernel shows them); and how many
    matplotlib figures they drew. Magics (``%matplotlib inline``) are dropped;
    the figures are drawn by Agg and closed at teardown. The notebook runs in
    ``notebooks/``, as the kernel does.
    """
    nbformat = pytest.importorskip("nbformat")
    display_module = pytest.importorskip("IPython.display")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    plt = pytest.importorskip("matplotlib.pyplot")
    shown = []
    monkeypatch.setattr(display_module, "display", lambda *objects, **_: shown.extend(objects))
    monkeypatch.chdir(NOTEBOOKS)

    def run(name):
        notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        namespace = {"__name__": "__main__"}
        before = set(plt.get_fignums())
        cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
        for index, cell in enumerate(cells):
            lines = [line for line in cell.source.splitlines() if not line.startswith("%")]
            tree = ast.parse("\n".join(lines))
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            filename = f"<{name} cell {index}>"
            exec(compile(tree, filename, "exec"), namespace)
            if last is not None:
                value = eval(compile(ast.Expression(last.value), filename, "eval"), namespace)
                if value is not None:
                    shown.append(value)
        figures = len(set(plt.get_fignums()) - before)
        html = "".join(getattr(item, "_repr_html_", lambda: "")() or "" for item in shown)
        markdown = "".join(item.data for item in shown if isinstance(item, display_module.Markdown))
        return capsys.readouterr().out, html, markdown, figures

    yield run
    plt.close("all")
