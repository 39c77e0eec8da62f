"""Lazy re-exports (PEP 562), so importing the package imports no framework.

`VarianceImportanceTorch` lives in a module that imports torch and
`VarianceImportanceKeras` in one that imports Keras. A package `__init__`
that imported both would fail for a user who has only one of them (the bug of
the original package). Instead each public name is mapped to the module that
defines it, and that module is imported on first attribute access.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from neural_feature_importance._optional import install_hint


def lazy_exports(
    module_name: str, exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return `(__getattr__, __dir__)` for a module re-exporting `exports`.

    Parameters
    ----------
    module_name : str
        `__name__` of the re-exporting module (for error messages).
    exports : dict
        Public name -> absolute name of the module that defines it.
    """

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as error:
            hint = install_hint(error.name or "")
            if hint is None:
                raise
            raise ModuleNotFoundError(
                f"{name} needs {error.name}, which is not installed; install it with {hint}",
                name=error.name,
            ) from error
        return getattr(module, name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
