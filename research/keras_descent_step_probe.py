r"""What the recommended mode's read costs inside the compiled Keras train step, against `taylor`.

`descent_taylor` reduces three products per read where `taylor` reduces one, and the tap
copies the tracked weight before the optimizer's update (a TensorFlow table's sparse
gradient: the batch's rows only). This probe times the compiled train step alone
(``benchmarks.cost.keras_step_profile``: one fixed batch, rotated blocks of plain,
``taylor`` and ``descent_taylor`` steps, process CPU time) on the cost suite's MLP
(100 inputs, 64-64) and its 20,000 x 32 embedding table, and prints the median extra
time per step over the plain step, with the quartiles of the paired differences.

Usage (one core, about 2 minutes per backend)::

    KERAS_BACKEND=tensorflow OMP_NUM_THREADS=1 .venv/bin/python research/keras_descent_step_probe.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cost.keras_gradients import KERAS_GRADIENT_ROWS  # noqa: E402
from benchmarks.cost.keras_step_profile import keras_step_profile  # noqa: E402
from benchmarks.cost.models import overhead_data  # noqa: E402
from benchmarks.cost.tables import quartiles  # noqa: E402
from benchmarks.training import limit_threads  # noqa: E402

VARIANTS = ("plain", "taylor", "descent_taylor")


def main() -> None:
    """Command line: ``--models``, ``--blocks``; a markdown table on stdout."""
    import keras

    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["mlp", "embedding"])
    parser.add_argument("--blocks", type=int, default=30)
    args = parser.parse_args()
    limit_threads(1)
    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}\n")
    print("| model | plain step | variant | extra per step [quartiles] | of the step |")
    print("| --- | ---: | --- | ---: | ---: |")
    for name in args.models:
        spec = overhead_data(name, KERAS_GRADIENT_ROWS[name])
        rows = pd.DataFrame(keras_step_profile(spec, blocks=args.blocks, variants=VARIANTS))
        wide = rows.pivot(index="repeat", columns="variant", values="step_us")
        plain = float(wide["plain"].median())
        for variant in VARIANTS[1:]:
            extra, q1, q3 = quartiles(list(wide[variant] - wide["plain"]))
            print(
                f"| {name} | {plain:.0f} µs | `{variant}` | {extra:+.0f} µs [{q1:+.0f}, {q3:+.0f}] "
                f"| {100 * extra / plain:+.1f} % |",
                flush=True,
            )


if __name__ == "__main__":
    main()
