"""Scoring modes in Keras find planted features where VIANN drifts.

``descent_taylor`` (the recommended mode), ``taylor`` (both read by the
optimizer tap) and ``growth`` (the best mode that needs weight snapshots only)
score the same training run.
"""

import keras
import numpy as np
import pytest

pytest.importorskip("sklearn")
callbacks = pytest.importorskip("neural_feature_importance.keras")

from sklearn.metrics import roc_auc_score  # noqa: E402

from neural_feature_importance.core.modes import (  # noqa: E402
    RECOMMENDED_MODE,
    RECOMMENDED_SNAPSHOT_MODE,
)
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


def test_taylor_and_growth_find_the_planted_features_where_viann_drifts():
    # Linear target of 4 features among 8 correlated decoys and 8 noise features,
    # trained 60 epochs (long past the best validation epoch, about 15). The
    # thresholds leave room for the backends' different trajectories (AUC of
    # taylor / growth / VIANN: TensorFlow 1.00 / 1.00 / 0.81, torch 1.00 / 0.88 /
    # 0.47, JAX 0.98 / 0.95 / 0.67). descent_taylor, the recommended mode, ranks a
    # decoy or two higher than taylor in this one long run (TensorFlow 0.95, torch
    # 1.00, JAX 0.94): the decoys' gradients are as steady as the informative
    # features' while they still explain the target. (The planted-truth benchmark,
    # 5 seeds at 30 epochs: 1.00 for both modes on this data set.)
    data = make_synthetic("correlated_decoys", n_samples=600, random_state=0)
    keras.utils.set_random_seed(0)
    model = _mlp(data.X.shape[1])
    scorings = ("viann", RECOMMENDED_SNAPSHOT_MODE, "taylor", RECOMMENDED_MODE)
    trackers = {s: _callback(s) for s in scorings}
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
    auc_viann = roc_auc_score(data.informative, viann)
    assert auc_growth >= 0.85
    assert auc_growth >= auc_viann + 0.15
    for scoring, least, margin in (("taylor", 0.95, 0.15), (RECOMMENDED_MODE, 0.9, 0.1)):
        auc = roc_auc_score(data.informative, trackers[scoring].feature_importances_)
        assert auc >= least, scoring
        assert auc >= auc_viann + margin, scoring
    # Growth is computed from the first and last kernels alone: check it by hand.
    assert trackers["growth"].n_updates_ == 60
    kernel = np.asarray(keras.ops.convert_to_numpy(model.layers[0].kernel), dtype=np.float64)
    initial = trackers["growth"].core.statistics.mode.arrays["initial"]
    raw = np.maximum((kernel**2 - initial**2).sum(axis=1), 0)
    np.testing.assert_allclose(trackers["growth"].raw_importances_, raw, rtol=1e-12)


def test_recommended_mode_finds_redundant_linear_combinations():
    # Madelon's design: 5 informative features and 10 exact linear combinations
    # of them (all 15 relevant) among 285 noise features, 15 epochs. Measured
    # AUC of descent_taylor / taylor: TensorFlow 0.998 / 0.990, JAX 0.998 / 0.990,
    # torch 0.994 / 0.961.
    data = make_synthetic("redundant_clusters", random_state=0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((data.X.shape[1],)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(2),
        ]
    )
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    trackers = {s: _callback(s) for s in ("taylor", RECOMMENDED_MODE)}
    model.fit(
        data.X.astype("float32"),
        data.y,
        epochs=15,
        batch_size=32,
        verbose=0,
        callbacks=list(trackers.values()),
    )
    auc = {s: roc_auc_score(data.informative, t.feature_importances_) for s, t in trackers.items()}
    assert auc[RECOMMENDED_MODE] >= 0.95, auc
    assert auc["taylor"] >= 0.9, auc
