"""The package's public surface: lazy imports, original module paths, version."""

import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

import neural_feature_importance as nfi


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_import_loads_no_framework():
    out = _run(
        """
        import sys
        import neural_feature_importance
        import neural_feature_importance.callbacks
        import neural_feature_importance.conv_callbacks
        import neural_feature_importance.embedding_callbacks
        import neural_feature_importance.utils
        import neural_feature_importance.core
        frameworks = ("torch", "tensorflow", "keras", "jax", "lightning")
        print(sorted(m for m in frameworks if m in sys.modules))
        """
    )
    assert out == "[]"


def test_torch_names_do_not_load_tensorflow_or_keras():
    pytest.importorskip("torch")
    out = _run(
        """
        import sys
        from neural_feature_importance import VarianceImportanceTorch
        from neural_feature_importance.callbacks import VarianceImportanceTorch as Same
        from neural_feature_importance.conv_callbacks import ConvVarianceImportanceTorch
        from neural_feature_importance.embedding_callbacks import EmbeddingVarianceImportanceTorch
        assert Same is VarianceImportanceTorch
        print(sorted(m for m in ("tensorflow", "keras", "lightning") if m in sys.modules))
        """
    )
    assert out == "[]"


def test_missing_framework_gives_install_hint():
    out = _run(
        """
        import sys
        sys.modules["torch"] = None  # simulate torch not installed
        try:
            from neural_feature_importance import VarianceImportanceTorch
        except ModuleNotFoundError as error:
            print(error)
        """
    )
    assert "pip install 'neural-feature-importance[torch]'" in out


def test_importance_getter_loads_no_framework_and_skorch_names_its_extra():
    out = _run(
        """
        import sys
        from neural_feature_importance import importance_getter
        frameworks = ("torch", "tensorflow", "keras", "jax", "lightning", "skorch", "sklearn")
        print(sorted(m for m in frameworks if m in sys.modules))
        sys.modules["skorch"] = None  # simulate skorch not installed
        try:
            from neural_feature_importance import VarianceImportanceSkorch
        except ModuleNotFoundError as error:
            print(error)
        """
    )
    loaded, error = out.splitlines()
    assert loaded == "[]"
    assert "VarianceImportanceSkorch needs skorch" in error
    assert error.endswith("pip install 'neural-feature-importance[skorch]'")


def test_public_names_and_version():
    assert nfi.__version__ == metadata.version("neural-feature-importance")
    for name in (
        "VarianceImportanceKeras",
        "VarianceImportanceTorch",
        "ConvVarianceImportanceKeras",
        "ConvVarianceImportanceTorch",
        "EmbeddingVarianceImportanceKeras",
        "EmbeddingVarianceImportanceTorch",
        "MetricThreshold",
        "VarianceImportanceBase",
        "VarianceImportanceSkorch",
        "importance_getter",
        "__version__",
    ):
        assert name in nfi.__all__
        assert name in dir(nfi)
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = nfi.Nope


def test_missing_optional_dependency_names_the_extra():
    out = _run(
        """
        import sys
        sys.modules["sklearn"] = None  # simulate scikit-learn not installed
        import numpy as np
        from neural_feature_importance.baselines import random_forest_importance
        try:
            random_forest_importance(np.zeros((4, 2)), np.array([0, 1, 0, 1]))
        except ImportError as error:
            print(error)
        """
    )
    assert out == (
        "random_forest_importance needs scikit-learn, which is not installed; "
        "install it with pip install 'neural-feature-importance[experiments]'"
    )


def test_import_optional_unknown_package_suggests_pip():
    from neural_feature_importance._optional import import_optional

    with pytest.raises(
        ImportError, match=r"^demo needs no_such_pkg_x, .* pip install no_such_pkg_x$"
    ):
        import_optional("no_such_pkg_x.sub", "demo")
