r"""Why Keras VIANN ranks ``high_dim``'s informative features *below* chance.

``high_dim`` (``neural_feature_importance.datasets.synthetic``): 4000 rows, 500
standardised features: 10 informative (5 linear, 3 quadratic, one pair), 50
decoys correlated (r = 0.7) with them, 440 noise; SNR 1. VIANN scores feature
``i`` by ``sum_j var_t(w_ij) * |w_ij(T)|`` over the first layer's per-epoch
snapshots. This probe trains the suite's MLP on ``high_dim`` (3 seeds) in
settings of :mod:`keras_taylor_gap_probe` (default: ``k_default``,
``k_torch_init``, ``t_default``, ``t_glorot``), records the first layer's kernel
before training and after every epoch, and after 15, 60 and 200 epochs splits
VIANN into its two factors, per feature group (informative / decoy / noise):

- ``var``: ``sum_j var_t(w_ij)`` over snapshots 1..E (the library's VIANN uses
  these; checked against its ``viann`` scores: rank correlation printed);
- ``mag``: ``sum_j |w_ij(E)|``; ``mag0``: the same at initialisation;
- ``move``: ``sum_j |w_ij(E) - w_ij(0)|``, ``move1``: the same after epoch 1;
- ``viann``: ``sum_j var * |w(E)|``.

For each it prints the group means and the ROC-AUC of informative vs the
rest, and the held-out R².

Usage (one core, about 5 minutes)::

    KERAS_BACKEND=tensorflow OMP_NUM_THREADS=1 .venv/bin/python research/keras_high_dim_probe.py

Writes ``research/scoring_modes/keras_high_dim_probe.csv``, and the same runs'
taylor / growth / viann read-outs into :mod:`keras_taylor_gap_probe`'s table
(read at epochs 1, 15, 60 and 200).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras_taylor_gap_probe as gap

from benchmarks.metrics import roc_auc

OUT = gap.OUT / "keras_high_dim_probe.csv"
READ_AT = (1, 15, 60, 200)


def statistics(snapshots: list[np.ndarray], E: int) -> dict[str, np.ndarray]:
    """Per-feature statistics of the first-layer kernel after ``E`` epochs."""
    stack = np.stack(snapshots[1 : E + 1])  # snapshots 1..E, (E, features, units)
    w0, w1, wE = snapshots[0], snapshots[1], snapshots[E]
    var = stack.var(axis=0)
    return {
        "var": var.sum(axis=1),
        "mag": np.abs(wE).sum(axis=1),
        "mag0": np.abs(w0).sum(axis=1),
        "move": np.abs(wE - w0).sum(axis=1),
        "move1": np.abs(w1 - w0).sum(axis=1),
        "viann": (var * np.abs(wE)).sum(axis=1),
    }


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (no ties expected)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def run_one(variant: str, seed: int) -> tuple[list[dict[str, Any]], tuple]:
    """Rows of this probe and of the taylor-gap probe (with raw scores), from one training run."""
    snapshots: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []

    def extra(epoch: int, trackers: dict, predict: Any, kernel: Any, data: Any, split: Any) -> None:
        snapshots.append(kernel())
        if epoch not in READ_AT:
            return
        informative = np.asarray(data.informative, bool)
        decoys = np.asarray(data.decoys, bool)
        noise = ~informative & ~decoys
        r2 = gap.holdout_score(data.task, predict(), split[3])
        stats = statistics(snapshots, epoch)
        try:
            library = np.asarray(trackers["viann"].feature_importances_, np.float64)
            check = spearman(library, stats["viann"])
        except gap.NotFittedError:
            check = np.nan
        for name, values in stats.items():
            rows.append(
                dict(
                    variant=variant,
                    seed=seed,
                    epochs=epoch,
                    statistic=name,
                    test_r2=r2,
                    auc=roc_auc(values, informative),
                    informative=values[informative].mean(),
                    decoy=values[decoys].mean(),
                    noise=values[noise].mean(),
                    viann_check=check,
                )
            )

    gap_result = gap.run_one(variant, "high_dim", seed, max(READ_AT), READ_AT, extra=extra)
    return rows, gap_result


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variants", nargs="+", default=["k_default", "k_torch_init", "t_default", "t_glorot"]
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--report", action="store_true", help="only print the saved table")
    args = parser.parse_args()
    if not args.report:
        gap.limit_threads(1)
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        rows = []
        for variant in args.variants:
            start = time.perf_counter()
            gap_rows, gap_raw = [], {}
            for seed in range(args.seeds):
                new_rows, (more_rows, more_raw) = run_one(variant, seed)
                rows += new_rows
                gap_rows += more_rows
                gap_raw.update(more_raw)
            # The same runs' taylor / growth / viann read-outs go to the gap probe's table.
            gap.save(gap_rows, gap_raw)
            print(f"{variant}: {(time.perf_counter() - start) / 60:.1f} min", flush=True)
        table = pd.DataFrame(rows)
        if OUT.exists():  # a rerun variant replaces its rows
            old = pd.read_csv(OUT)
            table = pd.concat([old[~old["variant"].isin(args.variants)], table], ignore_index=True)
        table.to_csv(OUT, index=False)
    table = pd.read_csv(OUT)
    pd.set_option("display.width", 250)
    cols = ["test_r2", "auc", "informative", "decoy", "noise", "viann_check"]
    summary = table.groupby(["statistic", "variant", "epochs"], sort=False)[cols].mean()
    print(summary.to_string(float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
