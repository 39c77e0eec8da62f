"""Keras distribution: data-parallel training gives the importances of single-device training.

``keras_distribution_script.py`` trains one small model (Dense(8) ->
Dense(16) -> Dense(1) on a planted signal) twice in a fresh process: on one
device, then data-parallel over two, on the same global batches (same data,
same initial weights, no shuffling), with snapshot trackers (``viann``, per
epoch and every 2 batches) and gradient trackers (``taylor`` reading every
update and one in 3, ``synaptic``) on the same fit. A fresh process, because
the two devices must exist before the backend starts: JAX reads
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` at import, TensorFlow
splits its CPU into two logical devices before its first op.

- JAX: ``keras.distribution.DataParallel`` over the two host devices.
- TensorFlow: ``tf.distribute.MirroredStrategy`` over the two logical CPUs,
  the model built and compiled in ``strategy.scope()``, ``fit()`` called
  outside it and inside it.
- PyTorch: Keras's torch backend has no distribution API (its
  ``distribution_lib`` is ``None``, and ``fit()`` under ``DataParallel`` runs
  on one device), so there is nothing to compare; the tests skip.

The numbers cannot be bitwise equal: the global batch's gradient is summed
as two half-batch sums (JAX's reduction over the batch-sharded matmul,
TensorFlow's ``SUM`` all-reduce of the replicas' gradients) instead of in one
pass, so float32 rounding differs by a few units in the last place per step,
and Adam carries that forward. Measured: at most 4e-7 relative on the
importances, on both backends; the tests allow 1e-5 and ask for the same
ranking and exactly the same number of gradient reads.

The two-device run is marked ``slow``. Its fast variant (``one-device``) runs
the same fits in this process, distributed over its one device (a
``DataParallel`` of one device on JAX, a ``MirroredStrategy`` of one replica on
TensorFlow), and must pass the same tests.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()
SCRIPT = Path(__file__).with_name("keras_distribution_script.py")
ROOT = Path(__file__).resolve().parents[2]
RUNS = {"jax": ["distributed"], "tensorflow": ["distributed", "distributed_in_scope"]}
"""The distributed runs of each backend, each compared with the single-device run."""
TRACKERS = ["viann", "viann_batches", "taylor", "taylor_every_3", "synaptic"]
EMBEDDING_TRACKERS = ["embedding_viann", "embedding_taylor"]
GRADIENT_TRACKERS = ["taylor", "taylor_every_3", "synaptic", "embedding_taylor"]

pytestmark = pytest.mark.skipif(
    BACKEND not in RUNS,
    reason=f"Keras's {BACKEND} backend has no data-parallel distribution to compare",
)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(2, id="two-devices", marks=pytest.mark.slow),
        pytest.param(1, id="one-device"),
    ],
)
def devices(request):
    """The devices of the distributed runs."""
    return request.param


def _one_device_results():
    """The script's fits in this process, the distributed ones over its one device."""
    import keras_distribution_script as script

    results = {}
    script.train(keras, script.build_model(keras), results, "single")
    script.train_embedding(keras, script.build_embedding_model(keras), results, "single")
    if BACKEND == "jax":
        one = keras.distribution.list_devices()[:1]
        with keras.distribution.DataParallel(devices=one).scope():
            script.train(keras, script.build_model(keras), results, "distributed")
            script.train_embedding(
                keras, script.build_embedding_model(keras), results, "distributed"
            )
        return results
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model, embedding_model = script.build_model(keras), script.build_embedding_model(keras)
    script.train(keras, model, results, "distributed")
    script.train_embedding(keras, embedding_model, results, "distributed")
    with strategy.scope():
        script.train(keras, script.build_model(keras), results, "distributed_in_scope")
    results["replicas"] = np.asarray(strategy.num_replicas_in_sync)
    return results


@pytest.fixture(scope="module")
def results(devices, tmp_path_factory):
    """What the script measured, as ``{key: array}``."""
    if devices == 1:
        return _one_device_results()
    out = tmp_path_factory.mktemp("distribution") / "results.npz"
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if BACKEND == "jax":
        flags = env.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=2".strip()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{SCRIPT.name} failed:\n{done.stderr[-4000:]}"
    with np.load(out) as saved:
        return {key: saved[key] for key in saved.files}


def test_the_distributed_runs_ran_on_every_device(results, devices):
    assert int(results["single/kernel_devices"]) == 1
    assert int(results["single/tap_devices"]) == 1
    for run in RUNS[BACKEND]:
        # The model's kernel and every gradient tap's variable live on every device
        # (replicated arrays on JAX, mirrored variables on TensorFlow)...
        assert int(results[f"{run}/kernel_devices"]) == devices, run
        assert int(results[f"{run}/tap_devices"]) == devices, run
        # ...and every replica's copy of the taps' sums and counters holds the same values.
        assert float(results[f"{run}/tap_spread"]) == 0.0, run
    if BACKEND == "tensorflow":
        assert int(results["replicas"]) == devices


def test_the_model_trains_as_on_one_device(results):
    for run in RUNS[BACKEND]:
        np.testing.assert_allclose(
            results[f"{run}/loss"], results["single/loss"], rtol=1e-6, err_msg=run
        )
        np.testing.assert_allclose(
            results[f"{run}/kernel"], results["single/kernel"], rtol=1e-5, atol=1e-7, err_msg=run
        )


@pytest.mark.parametrize("tracker", TRACKERS + EMBEDDING_TRACKERS)
def test_importances_equal_those_of_single_device_training(results, tracker):
    single = results[f"single/{tracker}"]
    if tracker in EMBEDDING_TRACKERS:
        # Tokens 1 and 2 decide the label; token 0 never occurs and scores exactly 0.
        assert set(np.argsort(single)[-2:]) == {1, 2} and single[0] == 0
    else:
        # A ranking to compare: distinct positive scores, the planted feature x0 first.
        assert np.all(single > 0) and len(np.unique(single)) == len(single)
        assert int(np.argmax(single)) == 0
    runs = RUNS[BACKEND] if tracker in TRACKERS else ["distributed"]
    for run in runs:
        distributed = results[f"{run}/{tracker}"]
        np.testing.assert_allclose(distributed, single, rtol=1e-5, err_msg=run)
        np.testing.assert_array_equal(
            np.argsort(distributed, kind="stable"), np.argsort(single, kind="stable"), err_msg=run
        )
        if tracker in GRADIENT_TRACKERS:
            # Each applied update read once, not once per replica.
            assert int(results[f"{run}/{tracker}/n_steps"]) == int(
                results[f"single/{tracker}/n_steps"]
            ), run


def test_the_gradient_trackers_read_every_applied_update(results):
    # 4 epochs of 4 global batches: 16 updates, of which taylor_every_3 reads 1, 4, 7, ...
    expected = {"taylor": 16, "taylor_every_3": 6, "synaptic": 16, "embedding_taylor": 16}
    measured = {name: int(results[f"single/{name}/n_steps"]) for name in expected}
    assert measured == expected
