r"""Probe of where a short Keras fit on JAX spends the gradient tap's extra time: XLA's compile.

A fit of a few seconds on JAX compiles its train step twice (the last, smaller
batch is a second shape, for plain Keras too), and each compile of the tapped
step takes longer than the plain one's. This probe fits a fresh MLP 64-64
(`friedman1`, 512 rows, one epoch of 16 batches, so one compile) in an order
alternated from round to round, and sums `jax.monitoring`'s durations of each
fit's tracing, lowering and XLA compile, for:

- ``plain``: no callback;
- ``taylor``: the callback built without ``scoring=`` (the recommended mode);
- ``reduced``: the same callback with the tap's compiled step cut to its one
  reduction added to the state (no Kahan compensation, no mask of the steps
  not read, no finite check; every step counted as read): a lower bound of
  what any tap costs the compiler, not a usable tracker.

Usage::

    KERAS_BACKEND=jax .venv/bin/python research/keras_jax_compile_probe.py --rounds 5

Prints the median compile time per variant and each round's. The absolute
times move by a third from run to run on a shared machine; the differences
between the variants of one run are the measurement.
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = ("plain", "taylor", "reduced")


def _reduced_apply(self: Any, grads: Any, trainable_variables: Any, variables: Any) -> None:
    """The tap's compiled step cut to one reduction added to its state (see the module)."""
    import keras

    inputs = self._read_inputs(grads, variables)
    self.inner_optimizer.apply(grads, trainable_variables)
    state = self._state.value
    ((_, terms),) = self._weight_terms(inputs)
    flat = keras.ops.reshape(terms["features"], (-1,))
    # The read's count, the step and the phase: 1 each (every step read, as the tap sees it).
    increments = keras.ops.concatenate([flat, keras.ops.ones((state.shape[1] - flat.shape[0],))])
    self._state.assign(keras.ops.stack([state[0] + increments, state[1]]))


def compile_seconds(rounds: int) -> dict[str, list[dict[str, float]]]:
    """Per variant and round: the fit's seconds of tracing, lowering and XLA compile."""
    import jax
    import keras

    from benchmarks.cost.keras_short_fits import short_fit_mlp
    from neural_feature_importance import VarianceImportanceKeras
    from neural_feature_importance.datasets import make_synthetic
    from neural_feature_importance.keras.gradients import GradientTapOptimizer

    events: dict[str, float] = collections.defaultdict(float)
    phases = {
        "/jax/core/compile/jaxpr_trace_duration": "trace",
        "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
        "/jax/core/compile/backend_compile_duration": "compile",
    }

    def listen(name: str, seconds: float, **_: Any) -> None:
        if name in phases:
            events[phases[name]] += seconds

    jax.monitoring.register_event_duration_secs_listener(listen)
    bunch = make_synthetic("friedman1", n_samples=512, random_state=0)
    X, y = np.asarray(bunch.X, "float32"), np.asarray(bunch.y, "float32")
    tapped = GradientTapOptimizer._apply_compiled

    # One fit first: the library's and Keras's own small jitted functions compile once.
    short_fit_mlp(X.shape[1]).fit(
        X, y, epochs=1, batch_size=32, verbose=0, callbacks=[VarianceImportanceKeras()]
    )
    out: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    try:
        for round_ in range(rounds):
            for name in VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]:
                keras.backend.clear_session()
                gc.collect()
                keras.utils.set_random_seed(round_)
                GradientTapOptimizer._apply_compiled = (  # type: ignore[method-assign]
                    _reduced_apply if name == "reduced" else tapped
                )
                callbacks = [] if name == "plain" else [VarianceImportanceKeras()]
                model = short_fit_mlp(X.shape[1])
                events.clear()
                model.fit(X, y, epochs=1, batch_size=32, verbose=0, callbacks=callbacks)
                out[name].append(dict(events))
    finally:
        GradientTapOptimizer._apply_compiled = tapped  # type: ignore[method-assign]
    return out


def main() -> None:
    """Command line: `--rounds`; a line per variant on stdout."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results = compile_seconds(args.rounds)
    for name, runs in results.items():
        compile_ms = np.array([run.get("compile", 0.0) for run in runs]) * 1e3
        front_ms = np.array([run.get("trace", 0.0) + run.get("lower", 0.0) for run in runs]) * 1e3
        print(
            f"{name:8s} XLA compile median {np.median(compile_ms):6.1f} ms "
            f"(rounds {', '.join(f'{v:.0f}' for v in compile_ms)}); "
            f"tracing and lowering {np.median(front_ms):5.1f} ms"
        )


if __name__ == "__main__":
    main()
