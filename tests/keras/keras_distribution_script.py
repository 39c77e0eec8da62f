"""Train one small model twice, on one device and data-parallel over two, and save the scores.

Run by ``test_keras_distribution.py`` in a fresh process, because the two
devices must exist before the backend starts: JAX reads
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` when it is imported
(the test sets it in the environment), and TensorFlow splits the CPU into two
logical devices only before its first op (this script does that).

``python keras_distribution_script.py OUT.npz`` trains with
``KERAS_BACKEND`` (``jax`` or ``tensorflow``), first on a single device, then
under ``keras.distribution.DataParallel`` (JAX) or
``tf.distribute.MirroredStrategy`` (TensorFlow), on the same global batches
(same data, same initial weights, no shuffling), with several trackers on
the same fit (and an Embedding model, whose TensorFlow gradient is sparse),
and writes ``{run}/{tracker}`` -> raw importances,
``{run}/{tracker}/n_steps`` -> the reads a gradient tracker counted,
``{run}/kernel`` -> the first layer's final kernel, ``{run}/loss`` -> the
loss of every epoch, and where the model's kernel and the gradient taps'
variables lived (``{run}/kernel_devices``, ``{run}/tap_devices``,
``{run}/tap_spread``), for ``run`` in ``single``, ``distributed`` and, on
TensorFlow, ``distributed_in_scope`` (``fit()`` inside ``strategy.scope()``).
"""

import os
import sys

import numpy as np

N, FEATURES, VOCABULARY, BATCH, EPOCHS, STEPS = 128, 6, 30, 32, 4, 4
"""The data, and a fit of four epochs of four global batches of 32 (16 per device)."""


def planted_data(seed=0):
    """Six standard normal features; the target depends on x0 and x1 only."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, FEATURES)).astype("float32")
    y = (2.0 * x[:, 0] - np.tanh(2.0 * x[:, 1]) + 0.1 * rng.normal(size=N))[:, None]
    return x, y.astype("float32")


def initial_weights(seed=1):
    """Fixed initial weights of Dense(8) -> Dense(16) -> Dense(1), so both runs start alike."""
    rng = np.random.default_rng(seed)
    shapes = [(FEATURES, 8), (8,), (8, 16), (16,), (16, 1), (1,)]
    return [(0.4 * rng.normal(size=shape)).astype("float32") for shape in shapes]


def build_model(keras):
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(8, activation="tanh", name="hidden"),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )
    model.set_weights(initial_weights())
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def token_data(seed=2):
    """Six tokens per sample; the first is 1 in positive samples and 2 in negative ones."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, VOCABULARY, size=(N, 6)).astype("int32")
    label = (rng.random(N) < 0.5).astype("float32")
    tokens[:, 0] = np.where(label == 1, 1, 2)
    return tokens, label


def build_embedding_model(keras):
    """Embedding(30, 8) -> mean -> Dense(1): its gradient is a sparse ``IndexedSlices`` on TF."""
    model = keras.Sequential(
        [
            keras.Input((6,), dtype="int32"),
            keras.layers.Embedding(VOCABULARY, 8, name="embedding"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    rng = np.random.default_rng(3)
    model.set_weights([(0.3 * rng.normal(size=w.shape)).astype("float32") for w in model.weights])
    model.compile(keras.optimizers.Adam(0.02), "binary_crossentropy")
    return model


def trackers():
    """The trackers of one fit: snapshot and gradient modes, per epoch and per batch."""
    from neural_feature_importance import VarianceImportanceKeras

    # synaptic (a research variant outside the package) exercises the tap's weight-before path.
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "research"))
    import research_modes

    research_modes.register()

    return {
        "viann": VarianceImportanceKeras(),
        "viann_batches": VarianceImportanceKeras(update_every=2),
        "taylor": VarianceImportanceKeras(scoring="taylor", gradient_every=1),
        "taylor_every_3": VarianceImportanceKeras(scoring="taylor", gradient_every=3),
        "synaptic": VarianceImportanceKeras(scoring="synaptic"),
    }


def tap_copies(keras, model):
    """(devices, spread) of the gradient taps' variables: where they live, and how far apart.

    ``devices`` is the fewest devices any variable is on (the mirrored
    variable's copies on TensorFlow, the array's sharding on JAX); ``spread``
    the largest difference between two copies of one variable (TensorFlow;
    a replicated JAX array is one value).
    """
    from neural_feature_importance.keras.gradients import find_taps

    devices, spread = [], 0.0
    for tap in find_taps(model.optimizer):
        for variable in tap.variables:
            value = variable.value
            if keras.backend.backend() == "jax":
                devices.append(len(value.sharding.device_set))
                continue
            # A mirrored variable's .values are its copies, one per replica.
            copies = [np.asarray(copy.numpy(), np.float64) for copy in getattr(value, "values", [])]
            copies = copies or [np.asarray(value.numpy(), np.float64)]
            devices.append(len(copies))
            for copy in copies[1:]:
                spread = max(spread, float(np.max(np.abs(copy - copies[0]), initial=0.0)))
    return min(devices), spread


def probe(keras, results, run):
    """A callback, listed before the trackers, recording where their taps' variables live."""

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if keras.backend.backend() == "jax":
                self.model.jax_state_sync()
            devices, spread = tap_copies(keras, self.model)
            results[f"{run}/tap_devices"] = np.asarray(devices)
            results[f"{run}/tap_spread"] = np.maximum(results.get(f"{run}/tap_spread", 0.0), spread)

    return Probe()


def train(keras, model, results, run):
    """Fit ``model`` with every tracker and store what they measured under ``run``."""
    x, y = planted_data()
    callbacks = {"probe": probe(keras, results, run), **trackers()}
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=EPOCHS,
        steps_per_epoch=STEPS,
        shuffle=False,
        verbose=0,
        callbacks=list(callbacks.values()),
    )
    for name, tracker in list(callbacks.items())[1:]:
        results[f"{run}/{name}"] = tracker.raw_importances_
        if tracker.scoring != "viann":
            results[f"{run}/{name}/n_steps"] = np.asarray(tracker.n_gradient_steps_)
    kernel = model.get_layer("hidden").kernel
    results[f"{run}/kernel"] = np.asarray(keras.ops.convert_to_numpy(kernel))
    if keras.backend.backend() == "jax":
        results[f"{run}/kernel_devices"] = np.asarray(len(kernel.value.sharding.device_set))
    else:
        results[f"{run}/kernel_devices"] = np.asarray(len(getattr(kernel.value, "values", [0])))
    results[f"{run}/loss"] = np.asarray(history.history["loss"])


def train_embedding(keras, model, results, run):
    """Fit the Embedding model with taylor and viann; store their token scores under ``run``."""
    from neural_feature_importance import EmbeddingVarianceImportanceKeras

    tokens, label = token_data()
    callbacks = {
        "embedding_viann": EmbeddingVarianceImportanceKeras(),
        "embedding_taylor": EmbeddingVarianceImportanceKeras(scoring="taylor", gradient_every=1),
    }
    model.fit(
        tokens,
        label,
        batch_size=BATCH,
        epochs=EPOCHS,
        steps_per_epoch=STEPS,
        shuffle=False,
        verbose=0,
        callbacks=list(callbacks.values()),
    )
    for name, tracker in callbacks.items():
        results[f"{run}/{name}"] = tracker.raw_importances_
    results[f"{run}/embedding_taylor/n_steps"] = np.asarray(
        callbacks["embedding_taylor"].n_gradient_steps_
    )


def run_jax(results):
    import jax
    import keras

    if len(jax.devices()) != 2:
        raise RuntimeError(f"expected 2 host devices (XLA_FLAGS), found {jax.devices()}")
    train(keras, build_model(keras), results, "single")
    train_embedding(keras, build_embedding_model(keras), results, "single")
    distribution = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
    with distribution.scope():
        train(keras, build_model(keras), results, "distributed")
        train_embedding(keras, build_embedding_model(keras), results, "distributed")


def run_tensorflow(results):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    train(keras, build_model(keras), results, "single")
    train_embedding(keras, build_embedding_model(keras), results, "single")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model, embedding_model = build_model(keras), build_embedding_model(keras)
    # fit() outside the scope, as Keras's guide does: the model remembers its strategy.
    train(keras, model, results, "distributed")
    train_embedding(keras, embedding_model, results, "distributed")
    with strategy.scope():
        train(keras, build_model(keras), results, "distributed_in_scope")
    results["replicas"] = np.asarray(strategy.num_replicas_in_sync)


def main(out):
    backend = os.environ.get("KERAS_BACKEND")
    results = {}
    if backend == "jax":
        run_jax(results)
    elif backend == "tensorflow":
        run_tensorflow(results)
    else:
        raise SystemExit(f"KERAS_BACKEND={backend!r}: only jax and tensorflow distribute here")
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1])
