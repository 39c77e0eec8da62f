"""Optional dependencies: import them on first use, or say how to install them.

The library needs only numpy; frameworks, scikit-learn, mlxtend and matplotlib
come with extras. Every place that imports one of them goes through
`import_optional()`, so a missing package always gives the same kind of
message: what needed it and the `pip install` line that brings it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Top-level module -> (distribution name, the extra of this package that installs it).
OPTIONAL_PACKAGES: dict[str, tuple[str, str]] = {
    "torch": ("torch", "torch"),
    "keras": ("keras", "keras"),
    "lightning": ("lightning", "lightning"),
    "transformers": ("transformers", "transformers"),
    "accelerate": ("accelerate", "transformers"),
    "sklearn": ("scikit-learn", "experiments"),
    "mlxtend": ("mlxtend", "experiments"),
    "matplotlib": ("matplotlib", "plot"),
    "pandas": ("pandas", "experiments"),
    "skorch": ("skorch", "skorch"),
    "scikeras": ("scikeras", "scikeras"),
}


def install_hint(module_name: str) -> str | None:
    """The `pip install` line for `module_name`'s extra, or `None` if unknown."""
    known = OPTIONAL_PACKAGES.get(module_name.split(".")[0])
    return None if known is None else f"pip install 'neural-feature-importance[{known[1]}]'"


def import_optional(module_name: str, purpose: str) -> ModuleType:
    """Import `module_name`, or raise an ImportError naming `purpose` and the install line.

    Parameters
    ----------
    module_name : str
        Absolute module name, e.g. `"sklearn.datasets"`.
    purpose : str
        What needs it, as the start of a sentence (`"make_synthetic"`).
    """
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        top = module_name.split(".")[0]
        package = OPTIONAL_PACKAGES.get(top, (top, ""))[0]
        hint = install_hint(top) or f"pip install {package}"
        raise ImportError(
            f"{purpose} needs {package}, which is not installed; install it with {hint}"
        ) from error
