"""The documentation's code runs as written, and its API reference is complete.

Every ```` ```python ```` block of every page under ``docs/`` is preceded by a marker:

- ``<!-- test: NEEDS [CHECK] [torchrun] [slow] -->``: the block is executed, in a
  fresh interpreter, as ``tests/test_readme.py`` executes the README's. NEEDS is
  the module it needs (``torch``, ``lightning``, ``keras``, ``sklearn``,
  ``matplotlib``, ``numpy``); the test skips when that is not installed, and
  Keras blocks run on the backend the process is given (``KERAS_BACKEND``), as the
  README's do. CHECK says what the output must show: ``iris`` (the default) the
  importances of Iris's 4 features, ``tabular`` the per-column table of the
  tabular example, ``runs`` only that the block succeeds (it checks itself with
  ``assert``). ``torchrun`` runs the block in two processes
  (``python -m torch.distributed.run``). ``slow`` marks a block that takes more
  than a few seconds: it runs only when asked for, with ``pytest -m slow``.
- ``<!-- not tested: REASON -->``: a fragment (a variant of a block above, or a
  sketch that needs what a page cannot provide).

A block identical to one of the README's tested blocks runs once, in
``tests/test_readme.py``; it runs here once the README no longer has it.
"""

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
MARKER = re.compile(r"<!-- (?:test: ([\w ]+?)|not tested: [^>]+?) -->\s*\n```python\n")
BLOCK = re.compile(r"<!-- test: ([\w ]+?) -->\s*\n```python\n(.*?)```", re.DOTALL)
README_BLOCK = re.compile(r"<!-- test: (\w+)(?: (\w+))? -->\s*```python\n(.*?)```", re.DOTALL)
CHECKS = {"iris", "tabular", "runs"}
FLAGS = {"torchrun", "slow"}


def _line(text, offset):
    return text.count("\n", 0, offset) + 1


def _blocks():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    in_readme = {code for _, _, code in README_BLOCK.findall(readme)}
    blocks, seen = [], set()
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            words, code = match.group(1).split(), match.group(2)
            if code in in_readme or code in seen:
                continue
            seen.add(code)
            name = f"{page.relative_to(DOCS).as_posix()}:{_line(text, match.start())}"
            blocks.append((name, words[0], set(words[1:]), code))
    return blocks


BLOCKS = _blocks()


def _param(name, needs, words, code):
    check = (words & CHECKS or {"iris"}).pop()
    marks = [pytest.mark.slow] if "slow" in words else []
    return pytest.param(name, needs, check, "torchrun" in words, code, marks=marks, id=name)


def test_every_python_block_is_marked():
    unmarked, bad = [], []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        fences = [m.start() for m in re.finditer(r"^```python\n", text, re.MULTILINE)]
        marked = {m.end() - len("```python\n") for m in MARKER.finditer(text)}
        name = page.relative_to(DOCS).as_posix()
        unmarked += [f"{name}:{_line(text, at)}" for at in fences if at not in marked]
        for match in BLOCK.finditer(text):
            words = set(match.group(1).split()[1:])
            if words - CHECKS - FLAGS or len(words & CHECKS) > 1:
                bad.append(f"{name}: <!-- test: {match.group(1)} -->")
    assert not unmarked, f"python blocks without a test marker: {unmarked}"
    assert not bad, f"markers with unknown or several checks: {bad}"


def test_docs_have_tested_blocks():
    pages = {name.split(":")[0] for name, *_ in BLOCKS}
    assert {"guide/scoring-modes.md", "guide/checkpoint.md", "guide/distributed.md"} <= pages


@pytest.mark.parametrize(
    ("name", "needs", "check", "torchrun", "code"), [_param(*block) for block in BLOCKS]
)
def test_block_runs_as_written(name, needs, check, torchrun, code, tmp_path, request):
    if request.node.get_closest_marker("slow") and not _slow_requested(request.config):
        pytest.skip("slow: run with pytest -m slow")
    if importlib.util.find_spec(needs) is None:
        pytest.skip(f"{needs} is not installed")
    script = tmp_path / "docs_block.py"
    script.write_text(code, encoding="utf-8")
    command = [sys.executable, str(script)]
    if torchrun:
        command[1:1] = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, f"{name}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    if check == "tabular":
        rows = [line.split() for line in result.stdout.strip().splitlines()[1:]]
        assert {row[1] for row in rows[:2]} == {"city", "income"}, result.stdout
        assert sorted(row[1] for row in rows) == ["age", "city", "colour", "income"]
    elif check == "iris":
        # the block ends by printing the importances of Iris's 4 features (a numpy array)
        printed = result.stdout.rsplit("[", 1)[-1].split("]")[0]
        values = [float(value) for value in printed.split()]
        assert len(values) == 4, result.stdout
        assert min(values) == 0.0 and max(values) == 1.0


def _slow_requested(config):
    expression = config.getoption("markexpr") or ""
    return "slow" in expression and "not slow" not in expression


# ----------------------------------------------------------------- API reference
# Every name a public module exports has an entry (a ``::: path`` line) in docs/api/.
PUBLIC_MODULES = {
    "neural_feature_importance": "",
    "neural_feature_importance.core": "neural_feature_importance.core",
    "neural_feature_importance.torch": "neural_feature_importance.torch",
    "neural_feature_importance.keras": "neural_feature_importance.keras",
    "neural_feature_importance.baselines": "neural_feature_importance.baselines",
    "neural_feature_importance.datasets": "neural_feature_importance.datasets",
    "neural_feature_importance.plotting": "neural_feature_importance.plotting",
    "neural_feature_importance.experiments.paper": "neural_feature_importance.experiments",
    # the original import paths: their names are documented where they live now
    "neural_feature_importance.callbacks": "",
    "neural_feature_importance.conv_callbacks": "",
    "neural_feature_importance.embedding_callbacks": "",
    "neural_feature_importance.utils": "",
}


def _source(module):
    path = ROOT.joinpath(*module.split("."))
    return (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text(
        encoding="utf-8"
    )


def _exports(module):
    """The names in ``__all__`` (read from the source; nothing is imported)."""
    tree = ast.parse(_source(module))
    values = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    if "__all__" not in values:  # a plain list of imports (the datasets package)
        return [
            alias.asname or alias.name
            for node in tree.body
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        ]
    names = []
    for element in values["__all__"].elts:
        if isinstance(element, ast.Starred):  # *_LAZY: the keys of a dict defined above
            names += [key.value for key in values[element.value.id].keys]
        else:
            names.append(element.value)
    return names


def test_every_public_name_has_an_api_entry():
    entries = [
        match.group(1)
        for page in (DOCS / "api").rglob("*.md")
        for match in re.finditer(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), re.M)
    ]
    missing = [
        f"{module}.{name}"
        for module, prefix in PUBLIC_MODULES.items()
        for name in _exports(module)
        if not any(entry.endswith(f".{name}") and entry.startswith(prefix) for entry in entries)
    ]
    assert not missing, f"public names without an entry in docs/api: {missing}"


def test_every_page_is_in_the_navigation():
    nav = set(re.findall(r"([\w./-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M))
    pages = {page.relative_to(DOCS).as_posix() for page in PAGES}
    assert pages <= nav, f"pages missing from mkdocs.yml's nav: {sorted(pages - nav)}"
