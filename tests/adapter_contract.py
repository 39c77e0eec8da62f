"""The contract every adapter keeps: one planted problem, one results surface, one end.

A PyTorch loop, the Lightning callback, the Hugging Face ``Trainer`` callback,
the skorch callback and the Keras callbacks each hold a core tracker. Trained on the same planted
problem with the recommended mode, each must offer the same learned
attributes under the same names, find the planted features, log its
importances exactly once, and leave nothing behind on the model. The torch
adapters are checked in ``tests/torch/test_adapter_contract.py`` and Keras, once
per backend, in ``tests/keras/test_adapter_contract.py``; both use this module.
"""

import logging

import numpy as np

N_ROWS, N_FEATURES, PLANTED, EPOCHS, BATCH, LR = 256, 6, (0, 1), 12, 32, 0.05
"""Six standard normal features of which the first two drive the target."""

SCORING = "steady_taylor"
"""The recommended mode: a gradient mode, so every adapter's step path is exercised."""

SURFACE = (
    "feature_importances_",
    "raw_importances_",
    "feature_names_in_",
    "importances_",
    "var_scores",
    "n_updates_",
    "n_gradient_steps_",
    "skipped_gradient_steps_",
    "history_",
    "importances_at",
    "layers_",
    "save_state",
    "load_state",
    "state_dict",
    "load_state_dict",
)
"""The results surface, with the same names in every adapter."""

TOP_LOG = "most important features of"
"""The one INFO line every adapter's end of training writes."""


def planted_data():
    """``(x, y)`` float32: ``y = 3 x0 - 2 tanh(2 x1) + noise``."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_ROWS, N_FEATURES)).astype("float32")
    noise = 0.1 * rng.normal(size=N_ROWS)
    y = (3.0 * x[:, 0] - 2.0 * np.tanh(2.0 * x[:, 1]) + noise)[:, None]
    return x, y.astype("float32")


def check_surface(adapter, tmp_path, fresh):
    """Every results attribute is there and agrees with the others and with a saved state.

    ``fresh`` makes an untrained adapter of the same kind, which must load the
    saved state and report the same scores (state is never lost).
    """
    for name in SURFACE:
        assert hasattr(adapter, name), name
    scores = adapter.feature_importances_
    assert scores.shape == (N_FEATURES,) and np.isfinite(scores).all()
    assert scores.max() == 1.0 and scores.min() == 0.0  # minmax
    np.testing.assert_array_equal(adapter.var_scores, scores)
    assert adapter.feature_names_in_.tolist() == [f"x{i}" for i in range(N_FEATURES)]
    np.testing.assert_array_equal(adapter.importances_.importances, scores)
    np.testing.assert_array_equal(adapter.importances_.raw_importances, adapter.raw_importances_)
    assert set(np.argsort(-scores)[: len(PLANTED)].tolist()) == set(PLANTED)
    assert adapter.n_gradient_steps_ >= 2 and adapter.skipped_gradient_steps_ == 0
    assert adapter.n_updates_ == EPOCHS
    assert adapter.history_.shape == (EPOCHS, N_FEATURES)
    # record_history=True also keeps every epoch's importances; the last is the result.
    assert adapter.epoch_importances_.shape == (EPOCHS, N_FEATURES)
    np.testing.assert_allclose(adapter.epoch_importances_[-1], scores, atol=1e-12)
    np.testing.assert_array_equal(adapter.importances_at(EPOCHS - 1).importances, scores)
    assert adapter.layers_ is None
    path = tmp_path / "state.safetensors"
    adapter.save_state(path)
    restored = fresh()
    restored.load_state(path)
    np.testing.assert_allclose(restored.raw_importances_, adapter.raw_importances_, rtol=1e-12)
    np.testing.assert_array_equal(restored.epoch_importances_, adapter.epoch_importances_)
    return scores


def logged_once(caplog):
    """How many times the importances were logged (each adapter logs them once)."""
    return sum(
        1
        for record in caplog.records
        if record.levelno == logging.INFO and TOP_LOG in record.getMessage()
    )
