"""One core: the same weights through the Keras and the PyTorch adapters give the same scores.

Kernels recorded while Keras trains are copied, in PyTorch's layout, into a
torch layer whose tracker is driven through its own hooks.
"""

import keras
import numpy as np
import pytest
from keras_helpers import KernelRecorder, regression_data, regression_model

from neural_feature_importance import ConvVarianceImportanceKeras, VarianceImportanceKeras

torch = pytest.importorskip("torch")

# The statistics are one piece of code (core.moments); numpy and torch run it with the
# same operations, but torch fuses multiply-adds (add_(alpha=), addcmul_) to update
# without temporaries, so the two may differ in the last bit: compare to 1e-12.
same = {"rtol": 1e-12, "atol": 0.0}


def _kernel(layer):
    return np.asarray(keras.ops.convert_to_numpy(layer.kernel), dtype=np.float64)


def _replay(tracker, parameter, initial, snapshots, to_torch_layout):
    """Drive a torch tracker with Keras kernels copied into ``parameter``."""
    with torch.no_grad():
        parameter.copy_(torch.from_numpy(to_torch_layout(initial)))
    tracker.on_train_begin()
    for kernel in snapshots:
        with torch.no_grad():
            parameter.copy_(torch.from_numpy(to_torch_layout(kernel)))
        tracker.on_epoch_end()
    tracker.on_train_end()
    return tracker


def test_dense_keras_and_torch_trackers_agree():
    from neural_feature_importance import VarianceImportanceTorch

    x, y = regression_data()
    model = regression_model()
    initial = _kernel(model.get_layer("hidden"))
    viann = VarianceImportanceKeras(scoring="viann", include_initial=True, record_history=True)
    recorder = KernelRecorder("hidden")
    model.fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=[viann, recorder])

    linear = torch.nn.Linear(5, 6, dtype=torch.float64)  # weight (out, in) = Keras kernel.T
    tracker = VarianceImportanceTorch(
        linear, scoring="viann", include_initial=True, record_history=True
    )
    _replay(tracker, linear.weight, initial, recorder.weights, lambda k: k.T.copy())

    assert tracker.n_updates_ == viann.n_updates_ == 6
    np.testing.assert_allclose(tracker.raw_importances_, viann.raw_importances_, **same)
    np.testing.assert_allclose(tracker.feature_importances_, viann.feature_importances_, **same)
    np.testing.assert_allclose(tracker.history_, viann.history_, **same)
    np.testing.assert_allclose(tracker.variance_.T, viann.variance_, **same)


def test_conv2d_keras_and_torch_trackers_agree():
    from neural_feature_importance import ConvVarianceImportanceTorch

    rng = np.random.default_rng(4)
    images = rng.normal(size=(32, 6, 6, 2)).astype("float32")
    target = images[:, 2:4, 2:4, 1].mean(axis=(1, 2))[:, None]
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(3, (3, 2), activation="tanh", name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.SGD(0.1), "mse")
    initial = _kernel(model.get_layer("conv"))
    viann = ConvVarianceImportanceKeras(scoring="viann")
    recorder = KernelRecorder("conv")
    model.fit(images, target, batch_size=16, epochs=4, verbose=0, callbacks=[viann, recorder])

    conv = torch.nn.Conv2d(2, 3, (3, 2), dtype=torch.float64)  # (out, in, kh, kw)
    tracker = ConvVarianceImportanceTorch(conv, scoring="viann")
    to_torch = lambda k: np.ascontiguousarray(k.transpose(3, 2, 0, 1))  # noqa: E731
    _replay(tracker, conv.weight, initial, recorder.weights, to_torch)

    assert tracker.heatmap_.shape == viann.heatmap_.shape == (3, 2, 2)
    np.testing.assert_allclose(tracker.heatmap_, viann.heatmap_, **same)
    np.testing.assert_allclose(tracker.filter_importances_, viann.filter_importances_, **same)
    np.testing.assert_array_equal(tracker.filter_ranking_, viann.filter_ranking_)
