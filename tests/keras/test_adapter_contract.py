"""The adapter contract (``tests/adapter_contract.py``) for the Keras callback, on each backend."""

import logging

import keras
import numpy as np
from adapter_contract import BATCH, EPOCHS, LR, N_FEATURES, SCORING, check_surface, logged_once
from adapter_contract import planted_data as _planted

from neural_feature_importance import VarianceImportanceKeras
from neural_feature_importance.keras.gradients import find_taps

OPTIONS = {"scoring": SCORING, "record_history": True}


def test_keras_callback(tmp_path, caplog):
    x, y = _planted()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((N_FEATURES,)),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )
    optimizer = keras.optimizers.SGD(LR)
    model.compile(optimizer, "mse")
    callback = VarianceImportanceKeras(**OPTIONS)
    with caplog.at_level(logging.INFO, logger="neural_feature_importance"):
        model.fit(
            x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[callback]
        )
    # Nothing left on the model: the user's optimizer is back, with no tap inside.
    assert model.optimizer is optimizer and not find_taps(model.optimizer)
    assert logged_once(caplog) == 1
    # The tracked layer is named as on the torch trackers.
    assert callback.tracked_layer_name_ == callback.tracked_layer_.name == model.layers[0].name
    scores = check_surface(callback, tmp_path, lambda: VarianceImportanceKeras(**OPTIONS))
    assert scores.shape == (N_FEATURES,) and np.ptp(scores) == 1.0
