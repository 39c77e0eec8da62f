"""What every test shares: seed 0 in each framework, and ``tests/`` importable.

Helpers shared across test directories live as plain modules in ``tests/``
(``training_loops.py``); the directory is put on ``sys.path`` here so that
``from training_loops import train`` works from any test, whatever pytest's
import mode.
"""

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


@pytest.fixture(autouse=True)
def _seed():
    """Seed 0 before every test in each framework already imported.

    Only frameworks that are already imported are seeded: importing one here
    would load it for tests that do not use it (and TensorFlow imported before
    torch can break torch's import). A directory whose tests import a framework
    lazily imports it in its own ``conftest.py`` so that it is seeded here.
    ``keras.utils.set_random_seed`` also seeds ``random``, NumPy's global
    generator, TensorFlow and, on its torch backend, torch.
    """
    keras = sys.modules.get("keras")
    if keras is not None:
        keras.utils.set_random_seed(0)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(0)


@pytest.fixture
def research_modes_registered():
    """The research scoring modes (``research/research_modes.py``) registered for one test.

    They left the package; tests of the extension point (``register_mode``) and of
    code paths only they use (the Keras tap's weight-before-the-step) register them,
    and the registry is restored afterwards so no other test sees them.
    """
    sys.path.insert(0, str(TESTS.parent / "research"))
    import research_modes

    from neural_feature_importance.core.modes import SCORING_MODES

    before = dict(SCORING_MODES)
    research_modes.register()
    yield research_modes
    SCORING_MODES.clear()
    SCORING_MODES.update(before)
