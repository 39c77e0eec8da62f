"""The compiled Keras train step alone, with and without the gradient tap.

Part of ``keras_gradients``: the step that ``fit`` compiles, applied to one
fixed batch in rotated blocks of plain, taylor and steady_taylor steps, CPU
time per step. More precise than whole fits on a shared machine.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np

from benchmarks.cost.models import tracker_classes

KERAS_LOSS = "sparse_categorical_crossentropy"


def _keras_step_runner(spec: dict[str, Any], variant: str, seed: int = 0) -> Any:
    """A function ``run(n)`` that applies ``n`` compiled train steps to one fixed batch.

    The step is the one ``fit`` compiles (``model.train_step``, jitted on JAX,
    a ``tf.function`` on TensorFlow, eager on PyTorch), without ``fit``'s data
    pipeline and callbacks; ``variant="taylor"`` or ``"steady_taylor"``
    installs the tap through the callback's own ``set_model`` /
    ``on_train_begin``. Returns ``None`` where this Keras version's trainer
    does not expose what it needs.
    """
    import keras

    keras.utils.set_random_seed(seed)
    model = spec["keras"]()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss=KERAS_LOSS)
    batch = spec["batch_size"]
    x = np.asarray(spec["X_keras"][:batch])
    x = x if np.issubdtype(x.dtype, np.integer) else x.astype(np.float32)
    y = np.asarray(spec["y"][:batch])
    if variant != "plain":
        tracker = tracker_classes("keras")[spec["kind"]](scoring=variant)
        tracker.set_model(model)
        tracker.on_train_begin()
    else:
        model.optimizer.build(model.trainable_variables)  # built before tracing, as the tap's
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        get_state = getattr(model, "_get_jax_state", None)
        if get_state is None:  # pragma: no cover - another Keras version
            return None
        state = [
            get_state(
                trainable_variables=True,
                non_trainable_variables=True,
                optimizer_variables=True,
                metrics_variables=True,
            )
        ]
        step = jax.jit(model.train_step, donate_argnums=0)
        data = (jax.numpy.asarray(x), jax.numpy.asarray(y))

        def run(n: int) -> None:
            current = state[0]
            for _ in range(n):
                _, current = step(current, data)
            jax.block_until_ready(current)
            state[0] = current

        return run
    if backend == "tensorflow":
        import tensorflow as tf

        function = tf.function(
            model.train_step, jit_compile=bool(model.jit_compile), reduce_retracing=True
        )
        tf_data = (tf.constant(x), tf.constant(y))

        def run(n: int) -> None:
            for _ in range(n):
                function(tf_data)

        return run
    import torch

    torch_data = (torch.as_tensor(x), torch.as_tensor(y))

    def run(n: int) -> None:
        for _ in range(n):
            model.train_step(torch_data)

    return run


STEP_VARIANTS = ("plain", "taylor", "steady_taylor")


def keras_step_profile(
    spec: dict[str, Any],
    blocks: int = 20,
    block_seconds: float = 0.25,
    variants: tuple[str, ...] = STEP_VARIANTS,
) -> list[dict[str, Any]]:
    """CPU time per compiled train step with and without the tap, in rotated blocks.

    Blocks of steps (about ``block_seconds`` each) of each of ``variants``
    (``"plain"`` first, then scoring modes: plain, taylor and steady_taylor by
    default), in an order rotated from one round to the next; one row per block
    and variant, in microseconds per step.
    """
    runs = {variant: _keras_step_runner(spec, variant) for variant in variants}
    if any(run is None for run in runs.values()):
        return []
    for run in runs.values():
        run(3)  # trace and compile
    start = time.process_time()
    runs["plain"](5)
    per_step = max((time.process_time() - start) / 5, 1e-6)
    block = max(3, int(block_seconds / per_step))
    out = []
    gc.collect()
    gc.disable()
    try:
        for index in range(blocks):
            shift = index % len(variants)
            order = variants[shift:] + variants[:shift]
            for variant in order:
                start = time.process_time()
                runs[variant](block)
                seconds = (time.process_time() - start) / block
                out.append(
                    {"kind": "step", "variant": variant, "repeat": index, "step_us": 1e6 * seconds}
                )
    finally:
        gc.enable()
    return out
