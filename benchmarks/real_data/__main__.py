"""Command line: ``python -m benchmarks.real_data [--quick] [--datasets ...] [--seeds 3] ...``.

Runs the Keras trackers and the Keras peers first (one subprocess with
``KERAS_BACKEND=tensorflow``, :mod:`benchmarks.real_data.keras_run`), then every
PyTorch network and method
(:func:`benchmarks.real_data.run.run_real`); writes ``real_data.csv``,
``real_data_summary.csv`` and ``real_data.md`` to ``benchmarks/results/`` and
refreshes the ``real_data`` section of ``benchmarks/RESULTS.md``. ``--quick``
is a smoke run (iris, one seed, 4 epochs, no LassoNet) that writes to a
temporary folder and never touches ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks import report
from benchmarks.real_data import report as real_report
from benchmarks.real_data.data import REAL_DATASETS
from benchmarks.real_data.keras_run import run_keras
from benchmarks.real_data.run import (
    DEFAULT_EPOCHS,
    DEFAULT_METHODS,
    DEFAULT_SEEDS,
    REAL_METHODS,
    TEST_SIZE,
    run_real,
)
from benchmarks.training import limit_threads
from benchmarks.truth import _ints, _names, _seeds

QUICK: dict[str, Any] = {
    "datasets": ["iris"],
    "seeds": [0],
    "epochs": [4],
    "methods": [m for m in DEFAULT_METHODS if m != "lassonet"],
}
SECTION = "real_data"


def _command(argv: Sequence[str] | None) -> str:
    args = argv if argv is not None else sys.argv[1:]
    return ("python -m benchmarks.real_data " + " ".join(args)).rstrip()


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    """Parse the options, run the benchmark, write its files; returns the table."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.real_data", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: iris, 1 seed, 4 epochs, no LassoNet"
    )
    parser.add_argument("--datasets", help=f"comma list of {', '.join(REAL_DATASETS)}")
    parser.add_argument("--methods", help=f"comma list of {', '.join(REAL_METHODS)} (default: all)")
    parser.add_argument(
        "--seeds", type=_seeds, help=f"a count ({DEFAULT_SEEDS}) or a list (0,3,7 or 0-4)"
    )
    parser.add_argument(
        "--epochs",
        type=_ints,
        help=f"comma list of training lengths (default {','.join(map(str, DEFAULT_EPOCHS))})",
    )
    parser.add_argument(
        "--no-selection", action="store_true", help="AUCs only: skip the selection retrains"
    )
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results)")
    parser.add_argument("--no-update", action="store_true", help="do not edit RESULTS.md")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (default 1)")
    args = parser.parse_args(argv)

    limit_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quick = QUICK if args.quick else {}
    datasets = _names(args.datasets) or quick.get("datasets", list(REAL_DATASETS))
    methods = _names(args.methods) or quick.get("methods", list(DEFAULT_METHODS))
    seeds = args.seeds if args.seeds is not None else quick.get("seeds", DEFAULT_SEEDS)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    epochs = args.epochs or quick.get("epochs", list(DEFAULT_EPOCHS))
    unknown = [m for m in methods if m not in REAL_METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; use {', '.join(REAL_METHODS)}.")
    bad = [d for d in datasets if d not in REAL_DATASETS]
    if bad:
        parser.error(f"unknown data set(s) {bad}; use {', '.join(REAL_DATASETS)}.")
    out = args.out
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="viann-real-")) if args.quick else report.RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    keras_methods = [m for m in methods if REAL_METHODS[m].framework == "keras"]
    keras_scores: dict[tuple[str, int, int, str], dict[str, Any]] = {}
    if keras_methods:
        keras_scores = run_keras(
            datasets, seeds, epochs, keras_methods, test_size=TEST_SIZE, threads=args.threads
        )
    table = run_real(
        datasets,
        methods,
        seeds,
        epochs,
        select=not args.no_selection,
        keras_scores=keras_scores,
        progress=lambda line: print(line, flush=True),
    )
    elapsed = time.perf_counter() - start
    table.to_csv(out / "real_data.csv", index=False)
    real_report.summarise(table).to_csv(out / "real_data_summary.csv", index=False)
    body = (
        f"Command: `{_command(argv)}` ({elapsed / 60:.1f} min; files `results/real_data.csv`, "
        f"`results/real_data_summary.csv`, `results/real_data.md`).\n\n"
        f"{report.machine_info()}\n\n{real_report.markdown(table)}"
    )
    (out / "real_data.md").write_text(body + "\n", encoding="utf-8")
    print(body)
    print(f"\nwrote {out / 'real_data.md'} and its CSV files")
    if not args.quick and not args.no_update and out.resolve() == report.RESULTS_DIR.resolve():
        report.update_section(SECTION, body)
        print(f"updated {report.RESULTS_MD}")
    return table


if __name__ == "__main__":
    main()
