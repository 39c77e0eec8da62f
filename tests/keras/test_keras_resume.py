"""A fit stopped, saved to .npz and resumed in a fresh callback equals an uninterrupted fit."""

import numpy as np
import pytest
from keras_helpers import KernelRecorder, regression_data, regression_model, twin, viann_by_hand

from neural_feature_importance import StateDictError, VarianceImportanceKeras


@pytest.mark.parametrize("update_every", [None, 4])
def test_resume_from_npz_equals_uninterrupted_run(tmp_path, update_every):
    # 80 samples / 16 = 5 batches per epoch: with update_every=4 the snapshots fall
    # at batches 4, 8, ..., 28, so the resumed run must carry the batch counter.
    x, y = regression_data(n=80)
    model = regression_model()
    whole_model = twin(model)  # same initial weights; SGD keeps no optimizer state
    fit = {"batch_size": 16, "shuffle": False, "verbose": 0}

    whole = VarianceImportanceKeras(update_every=update_every)
    whole_model.fit(x, y, epochs=6, callbacks=[whole], **fit)

    first = VarianceImportanceKeras(update_every=update_every)
    model.fit(x, y, epochs=3, callbacks=[first], **fit)
    first.save_state(tmp_path / "viann.safetensors")
    restarted_model = twin(model)  # as if loaded from the model's own checkpoint

    resumed = VarianceImportanceKeras(update_every=update_every)
    resumed.load_state(tmp_path / "viann.safetensors")
    restarted_model.fit(x, y, epochs=6, initial_epoch=3, callbacks=[resumed], **fit)

    expected_updates = 6 if update_every is None else 30 // 4
    assert resumed.n_updates_ == whole.n_updates_ == expected_updates
    np.testing.assert_allclose(resumed.raw_importances_, whole.raw_importances_, rtol=1e-12)
    np.testing.assert_allclose(resumed.feature_importances_, whole.feature_importances_, atol=1e-12)


def test_resume_equals_hand_computation_over_both_runs(tmp_path):
    x, y = regression_data(n=80)
    model = regression_model()
    recorder = KernelRecorder("hidden")
    first = VarianceImportanceKeras(scoring="viann")
    model.fit(x, y, epochs=3, verbose=0, callbacks=[first, recorder])
    first.save_state(tmp_path / "viann.safetensors")

    resumed = VarianceImportanceKeras(scoring="viann")
    resumed.load_state(tmp_path / "viann.safetensors")
    model.fit(x, y, epochs=5, initial_epoch=3, verbose=0, callbacks=[resumed, recorder])
    assert resumed.n_updates_ == 5
    np.testing.assert_allclose(
        resumed.raw_importances_, viann_by_hand(recorder.weights), rtol=1e-10
    )

    # the loaded state is used once: the next fit() of the same callback starts afresh
    model.fit(x, y, epochs=2, verbose=0, callbacks=[resumed])
    assert resumed.n_updates_ == 2


def test_state_dict_round_trip_keeps_the_batch_counter():
    x, y = regression_data(n=80)
    viann = VarianceImportanceKeras(update_every=3)
    regression_model().fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[viann])
    state = viann.state_dict()
    assert state["batches_seen"] == 10
    assert state["layer_name"] == "hidden"
    other = VarianceImportanceKeras(update_every=3)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.raw_importances_, viann.raw_importances_)
    assert other._batches_seen == 10


def test_state_of_another_kind_is_refused(tmp_path):
    from neural_feature_importance import EmbeddingVarianceImportanceKeras

    x, y = regression_data()
    viann = VarianceImportanceKeras()
    regression_model().fit(x, y, epochs=2, verbose=0, callbacks=[viann])
    viann.save_state(tmp_path / "dense.safetensors")
    with pytest.raises(StateDictError, match="kind='dense'"):
        EmbeddingVarianceImportanceKeras().load_state(tmp_path / "dense.safetensors")
