"""Scoring modes in Keras: the snapshot scoring mode finds planted features; gradient modes refused.

Keras callbacks never see gradients, so the recommended mode there is the
best snapshot mode (``growth``); ``taylor`` must fail at once with a message
that names the PyTorch trackers.
"""

import keras
import numpy as np
import pytest

pytest.importorskip("sklearn")
callbacks = pytest.importorskip("neural_feature_importance.keras")

from sklearn.metrics import roc_auc_score  # noqa: E402

from neural_feature_importance.core.modes import RECOMMENDED_SNAPSHOT_MODE  # noqa: E402
from neural_feature_importance.datasets.synthetic import make_synthetic  # noqa: E402


def _callback(scoring):
    return callbacks.VarianceImportanceKeras(scoring=scoring)


def _mlp(n_features):
    model = keras.Sequential(
        [
            keras.Input((n_features,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    return model


def test_growth_finds_the_planted_features_where_viann_drifts():
    # Linear target of 4 features among 8 correlated decoys and 8 noise features,
    # trained 60 epochs (long past the best validation epoch, about 15). The
    # thresholds leave room for the backends' different trajectories (AUC of
    # growth / VIANN: TensorFlow 1.00 / 0.81, torch 0.88 / 0.47, JAX 0.95 / 0.67).
    data = make_synthetic("correlated_decoys", n_samples=600, random_state=0)
    keras.utils.set_random_seed(0)
    model = _mlp(data.X.shape[1])
    trackers = {s: _callback(s) for s in ("viann", RECOMMENDED_SNAPSHOT_MODE)}
    model.fit(
        data.X.astype("float32"),
        data.y.astype("float32"),
        epochs=60,
        batch_size=32,
        verbose=0,
        callbacks=list(trackers.values()),
    )
    growth = trackers["growth"].feature_importances_
    viann = trackers["viann"].feature_importances_
    auc_growth = roc_auc_score(data.informative, growth)
    assert auc_growth >= 0.85
    assert auc_growth >= roc_auc_score(data.informative, viann) + 0.15
    # Growth is computed from the first and last kernels alone: check it by hand.
    assert trackers["growth"].n_updates_ == 60
    kernel = np.asarray(keras.ops.convert_to_numpy(model.layers[0].kernel), dtype=np.float64)
    initial = trackers["growth"]._mode.arrays["initial"]
    raw = np.maximum((kernel**2 - initial**2).sum(axis=1), 0)
    np.testing.assert_allclose(trackers["growth"].raw_importances_, raw, rtol=1e-12)


def test_gradient_modes_are_refused_with_a_clear_message():
    data = make_synthetic("friedman1", n_samples=64, random_state=0)
    model = _mlp(data.X.shape[1])
    with pytest.raises(ValueError, match=r"PyTorch trackers.*scoring='growth'"):
        model.fit(
            data.X.astype("float32"),
            data.y.astype("float32"),
            epochs=1,
            verbose=0,
            callbacks=[_callback("taylor")],
        )
