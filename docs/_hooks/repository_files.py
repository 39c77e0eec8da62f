"""MkDocs hook: publish a few files of the repository as they are, under `repository/`.

The benchmarks' description and results (`benchmarks/README.md`, `RESULTS.md` and its
figures), the committed paper reproduction and the figures of the examples live beside
the code that writes them, outside `docs/`. Instead of
copies that would drift, the build reads them from the repository, so
`docs/benchmarks.md` links to `repository/benchmarks/RESULTS.md` and the
example pages show `repository/results/...png`.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "repository"
PUBLISHED = (
    "benchmarks/README.md",
    "benchmarks/RESULTS.md",
    "benchmarks/results/*.png",
    "results/paper/paper_results.md",
    "results/conv/digits_torch_filters.png",
    "results/tokens/synthetic_torch_top_tokens.png",
)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add every file matched by `PUBLISHED`, at its repository path under PREFIX."""
    for pattern in PUBLISHED:
        matches = sorted(ROOT.glob(pattern))
        if not matches:
            raise FileNotFoundError(f"docs: no repository file matches {pattern!r}")
        for path in matches:
            src_uri = f"{PREFIX}/{path.relative_to(ROOT).as_posix()}"
            files.append(File.generated(config, src_uri, abs_src_path=str(path)))
    return files
