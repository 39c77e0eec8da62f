"""The README's quick starts run as written.

Code blocks preceded by ``<!-- test: NAME -->`` or ``<!-- test: NAME CHECK -->``
are executed, each in a fresh interpreter; NAME says what they need (``torch``,
``keras``), and the test skips when that is not installed. CHECK says what the
output must show: by default (``iris``) the importances of Iris's 4 features;
``tabular`` the per-column table of the tabular example, planted columns on top (the
docs' examples run the same way, in ``tests/test_docs.py``).
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"<!-- test: (\w+)(?: (\w+))? -->\s*```python\n(.*?)```", re.DOTALL)
BLOCKS = BLOCK.findall(README.read_text(encoding="utf-8"))


def test_readme_has_tested_quick_starts():
    assert {"torch", "keras"} <= {needs for needs, _, _ in BLOCKS}


@pytest.mark.parametrize(
    ("needs", "check", "code"),
    BLOCKS,
    ids=[f"{needs}-{check or 'iris'}" for needs, check, _ in BLOCKS],
)
def test_quick_start_runs_as_written(needs, check, code, tmp_path):
    if importlib.util.find_spec(needs) is None:
        pytest.skip(f"{needs} is not installed")
    script = tmp_path / "quick_start.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    if check == "tabular":
        # to_frame() sorted by importance: the two planted columns first, one row per column
        rows = [line.split() for line in result.stdout.strip().splitlines()[1:]]
        assert {row[1] for row in rows[:2]} == {"city", "income"}, result.stdout
        assert sorted(row[1] for row in rows) == ["age", "city", "colour", "income"]
        return
    # every quick start ends by printing the importances of Iris's 4 features (a numpy array)
    printed = result.stdout.rsplit("[", 1)[-1].split("]")[0]
    values = [float(value) for value in printed.split()]
    assert len(values) == 4, result.stdout
    assert min(values) == 0.0 and max(values) == 1.0
