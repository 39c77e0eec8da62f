r"""The scoring-mode table: every scoring mode on the planted-truth suite at 15, 60 and 200 epochs.

Runs the benchmark suite's own runner (:func:`benchmarks.truth.run_truth`,
the planted-truth benchmark) with one VIANN tracker per scoring mode attached to the *same*
training run, so every mode scores the same trajectory, plus the strongest
post-hoc references explaining that network. Each epoch count is its own set
of training runs. ``report`` then writes the tables into ``research/scoring_modes/RESULTS.md``
(between its ``tables`` markers; the text around them is kept).

Gradient modes (``taylor``, ``movement``, ``synaptic``) run in both frameworks:
PyTorch reads ``param.grad``, the Keras callbacks read the gradient through
the tap they put around ``model.optimizer``. With ``taylor`` among the modes a
second taylor tracker reading every step (``taylor_every_step_*``) is added
(``--no-every-step`` drops it).

Usage (from the repository root; one core, a few minutes per epoch count)::

    OMP_NUM_THREADS=1 .venv/bin/python research/scoring_modes_truth.py run --epochs 15 60 200
    KERAS_BACKEND=tensorflow OMP_NUM_THREADS=1 .venv/bin/python research/scoring_modes_truth.py \\
        run --framework keras --modes viann growth path ema_variance update_variance taylor \\
        movement --seeds 3
    .venv/bin/python research/scoring_modes_truth.py report
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.methods import viann_variant  # noqa: E402
from benchmarks.training import limit_threads  # noqa: E402
from neural_feature_importance.core.modes import SCORING_MODES  # noqa: E402
from neural_feature_importance.datasets.synthetic import SYNTHETIC_DATASETS  # noqa: E402

sys.path.insert(0, str(ROOT / "research"))
import research_modes  # noqa: E402

research_modes.register()  # the study compares the shipped modes with its research variants

OUT = ROOT / "research" / "scoring_modes"
REFERENCE = ("permutation", "integrated_gradients", "random_forest")
GOAL_AUC, GOAL_PK, GOAL_COST = 0.99, 0.95, 2.0
START, END = "<!-- tables:start -->", "<!-- tables:end -->"


def _describe(mode: str, framework: str) -> str:
    if not SCORING_MODES[mode].needs_gradients:
        return f"scoring={mode!r} ({framework}, one snapshot per epoch)"
    every = SCORING_MODES[mode].gradient_every
    where = "param.grad" if framework == "torch" else "the optimizer's gradient tap"
    return f"scoring={mode!r} ({framework}, {where}, one step in {every})"


def methods(framework: str, modes: list[str], every_step: bool = True) -> list:
    """One VIANN variant per scoring mode, for ``run_truth``.

    Gradient modes work in both frameworks: PyTorch reads ``param.grad`` in
    ``on_step_end``, Keras wraps ``model.optimizer`` in a gradient tap that sums
    the per-step terms inside the compiled train step.
    """
    return [
        viann_variant(
            f"{mode}_{framework}",
            framework=framework,
            scoring=mode,
            description=_describe(mode, framework),
        )
        for mode in modes
    ] + (
        # The cost/accuracy check of reading the gradient at every step (taylor's
        # default reads one step in 4).
        [
            viann_variant(
                f"taylor_every_step_{framework}",
                framework=framework,
                scoring="taylor",
                gradient_every=1,
                description=f"scoring='taylor', gradient_every=1 ({framework})",
            )
        ]
        if every_step and "taylor" in modes
        else []
    )


def run(args: argparse.Namespace) -> None:
    """Train and score: one CSV per (framework, epochs) in research/scoring_modes/."""
    from benchmarks.truth import run_truth

    limit_threads(1)
    modes = [] if args.peers_only else args.modes or list(SCORING_MODES)
    chosen = methods(args.framework, modes, every_step=not args.no_every_step)
    if args.framework == "torch" and not args.no_reference:
        chosen += list(REFERENCE)
    chosen += list(args.peers or [])
    OUT.mkdir(parents=True, exist_ok=True)
    for epochs in args.epochs:
        start = time.perf_counter()
        table = run_truth(
            args.datasets or SYNTHETIC_DATASETS,
            chosen,
            seeds=range(args.seeds),
            epochs=epochs,
            progress=lambda line, e=epochs: print(f"[{e} epochs] {line}", flush=True),
        )
        table["wall_minutes"] = (time.perf_counter() - start) / 60
        label = f"_{args.label}" if args.label else ""
        path = OUT / f"truth_{args.framework}_{epochs}{label}.csv"
        table.to_csv(path, index=False)
        print(f"wrote {path} ({table['wall_minutes'].iloc[0]:.1f} min)", flush=True)


# ------------------------------------------------------------------- report
def _mean_std(values: np.ndarray, digits: int = 2) -> str:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return "n/a"
    spread = values.std(ddof=1) if values.size > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {spread:.{digits}f}"


def _md(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def load() -> pd.DataFrame:
    """All result rows without errors."""
    frames = [pd.read_csv(p) for p in sorted(OUT.glob("truth_*.csv"))]
    if not frames:
        raise SystemExit(
            "no research/scoring_modes/truth_*.csv yet; run `scoring_modes_truth.py run` first."
        )
    table = pd.concat(frames, ignore_index=True)
    error = table["error"]
    return table[error.isna() | (error.astype(str) == "")]


HEADLINE_COLUMNS = [
    "method",
    "epochs",
    "ROC-AUC",
    "precision@k",
    "worst data set (AUC)",
    "cost",
    "meets goal",
    "seeds",
]
"""Columns of the headline tables (one per framework), as :func:`headline` fills them."""


def headline(table: pd.DataFrame) -> list[list[str]]:
    """One row per (method, epochs): suite means, worst data set, cost, goal."""
    rows = []
    for (method, epochs), sub in table.groupby(["method", "epochs"], sort=False):
        per_dataset = sub.groupby("dataset")
        auc = per_dataset["auc"].mean()
        pk = per_dataset["precision_at_k"].mean()
        # Suite mean per seed, then mean ± std over seeds.
        suite_auc = sub.groupby("seed")["auc"].mean().to_numpy()
        suite_pk = sub.groupby("seed")["precision_at_k"].mean().to_numpy()
        cost = sub["overhead_pct"].median()
        family = sub["family"].iloc[0]
        if family == "viann":
            cost_text = f"{cost:.2f} %"
        elif family == "selector":
            # A feature-selection network trains its own model: its whole run is the cost.
            cost_text = f"{cost / 100:.1f} x training ({sub['method_seconds'].median():.1f} s)"
        else:
            cost_text = f"{sub['method_seconds'].median():.2f} s"
        meets = (
            auc.mean() >= GOAL_AUC
            and pk.mean() >= GOAL_PK
            and (family not in ("viann", "selector") or cost <= GOAL_COST)
        )
        rows.append(
            [
                method,
                int(epochs),
                _mean_std(suite_auc, 3),
                _mean_std(suite_pk, 3),
                f"{auc.min():.3f} ({auc.idxmin()})",
                cost_text,
                "**yes**" if meets else "no",
                len(sub["seed"].unique()),
            ]
        )
    return rows


def per_dataset(table: pd.DataFrame, column: str) -> str:
    """Mean ± std over seeds per data set, one block per epoch count."""
    datasets = list(dict.fromkeys(table["dataset"]))
    parts = []
    for epochs, block in table.groupby("epochs"):
        rows = []
        for method, sub in block.groupby("method", sort=False):
            cells = [method]
            for dataset in datasets:
                cells.append(_mean_std(sub.loc[sub["dataset"] == dataset, column].to_numpy(float)))
            cells.append(f"{sub.groupby('dataset')[column].mean().mean():.3f}")
            rows.append(cells)
        parts += [f"*{int(epochs)} epochs*", "", _md(["method", *datasets, "mean"], rows), ""]
    return "\n".join(parts)


def cost_table(table: pd.DataFrame) -> str:
    """Median tracker overhead per data set."""
    viann = table[table["family"] == "viann"]
    datasets = list(dict.fromkeys(table["dataset"]))
    rows = []
    for method, sub in viann.groupby("method", sort=False):
        cells = [method]
        for dataset in datasets:
            cells.append(f"{sub.loc[sub['dataset'] == dataset, 'overhead_pct'].median():.2f}")
        cells.append(f"{sub['overhead_pct'].median():.2f}")
        cells.append(f"{sub['overhead_pct'].quantile(0.9):.2f}")
        rows.append(cells)
    train = ["(training s, median)"]
    for dataset in datasets:
        train.append(f"{viann.loc[viann['dataset'] == dataset, 'train_seconds'].median():.1f} s")
    rows.append([*train, "", ""])
    return _md(["method", *datasets, "median %", "90th pct %"], rows)


def _suite_means(sub: pd.DataFrame, column: str) -> float:
    """Mean over data sets of the per-data-set mean over seeds."""
    return float(sub.groupby("dataset")[column].mean().mean())


def framework_gap(table: pd.DataFrame) -> str:
    """Keras against PyTorch, mode by mode: suite means on the seeds both ran, and the gap.

    One row per (scoring mode, epochs) present in both frameworks. ``PyTorch``
    is on the seeds Keras ran (the first ones), ``PyTorch, all seeds`` on all
    of its seeds; the gap is Keras minus PyTorch on the common seeds, and the
    data set where the AUC gap is largest.
    """
    torch_rows = table[table["framework"] == "torch"]
    keras_rows = table[table["framework"] == "keras"]
    rows = []
    for method in dict.fromkeys(keras_rows["method"]):
        mode = method.removesuffix("_keras")
        twin = f"{mode}_torch"
        for epochs, k in keras_rows[keras_rows["method"] == method].groupby("epochs"):
            t_all = torch_rows[(torch_rows["method"] == twin) & (torch_rows["epochs"] == epochs)]
            t = t_all[t_all["seed"].isin(set(k["seed"]))]
            if t.empty:
                continue
            per_k = k.groupby("dataset")["auc"].mean()
            per_t = t.groupby("dataset")["auc"].mean()
            gaps = (per_k - per_t).dropna()
            worst = gaps.idxmin()
            k_auc, t_auc = _suite_means(k, "auc"), _suite_means(t, "auc")
            k_pk, t_pk = _suite_means(k, "precision_at_k"), _suite_means(t, "precision_at_k")
            rows.append(
                [
                    mode,
                    int(epochs),
                    f"{k_auc:.3f}",
                    f"{t_auc:.3f}",
                    f"{_suite_means(t_all, 'auc'):.3f}",
                    f"{k_auc - t_auc:+.3f}",
                    f"{k_pk:.3f}",
                    f"{t_pk:.3f}",
                    f"{_suite_means(t_all, 'precision_at_k'):.3f}",
                    f"{k_pk - t_pk:+.3f}",
                    f"{worst} ({gaps[worst]:+.3f})",
                    f"{k['seed'].nunique()} / {t_all['seed'].nunique()}",
                ]
            )
    return _md(
        [
            "mode",
            "epochs",
            "AUC Keras",
            "AUC PyTorch",
            "AUC PyTorch, all seeds",
            "AUC gap",
            "P@k Keras",
            "P@k PyTorch",
            "P@k PyTorch, all seeds",
            "P@k gap",
            "largest AUC gap (data set)",
            "seeds (Keras / PyTorch)",
        ],
        rows,
    )


def report(args: argparse.Namespace) -> None:
    """Write the tables into research/scoring_modes/RESULTS.md, between its markers."""
    table = load()
    order = {m: i for i, m in enumerate(dict.fromkeys(table["method"]))}
    table = table.sort_values(
        ["epochs", "method"], key=lambda c: c.map(order) if c.name == "method" else c
    )
    torch_table = table[table["framework"].isin(["torch", "none"])]
    keras_table = table[table["framework"] == "keras"]
    text = [
        "## Table: every scoring mode on the planted-truth suite",
        "",
        "Made with `OMP_NUM_THREADS=1 .venv/bin/python research/scoring_modes_truth.py run "
        "--epochs 15 60 --peers stg` (PyTorch, every mode, 5 seeds, the references and STG; "
        "6.8 + 19.7 min), `... run --epochs 200` (the same without STG, which doubles the "
        "run time; 25.3 min), `... run --epochs 60 --seeds 5 --peers-only --peers lassonet "
        "--no-reference --label lassonet` (LassoNet, whose path does not depend on the "
        "epochs; 62.9 min) and `KERAS_BACKEND=tensorflow OMP_NUM_THREADS=1 .venv/bin/python "
        "research/scoring_modes_truth.py run --framework keras --modes viann growth taylor "
        "steady_taylor --seeds 3 --epochs 15 60 200` (TensorFlow backend; 3.1 / 8.9 / 26.4 "
        "min), all at once on a 2-core machine, then `... report`. Runner: the benchmark "
        "suite's `benchmarks.truth.run_truth`: MLP 64-64 (ReLU, Adam 1e-3, batch 32), 75/25 "
        "split, each epoch count its own training runs; every mode is a tracker attached to "
        "the same run (`scoring=` of `VarianceImportanceTorch` or `VarianceImportanceKeras`), "
        "the references "
        "explain that network afterwards. Raw rows: `research/scoring_modes/truth_*.csv`.",
        "",
        f"Goal: suite-mean ROC-AUC >= {GOAL_AUC}, precision@k >= {GOAL_PK}, tracker "
        f"cost <= {GOAL_COST:.0f} % of training, at every number of epochs. Suite mean = mean "
        f"over the {table['dataset'].nunique()} data sets (per seed, then mean ± std over "
        "seeds). Cost = time inside the tracker's hooks (and reading the scores) / training "
        "time without them, median over runs; for the post-hoc references, seconds after "
        "training; for the selectors, their whole run in units of one training of the MLP.",
        "",
        _md(HEADLINE_COLUMNS, headline(torch_table)),
        "",
    ]
    if not keras_table.empty:
        text += [
            "**Keras** (TensorFlow backend, `model.fit` with the callbacks; gradient modes "
            "read the gradient through the tap the callback puts around `model.optimizer`, "
            "inside the compiled train step). Cost of the gradient modes here is the time in "
            "the callback's hooks only (installing the tap and rebuilding the train function "
            "at the start, draining the sums once per epoch); the work the tap adds inside "
            "the compiled step is part of training time and not in this column.",
            "",
            _md(HEADLINE_COLUMNS, headline(keras_table)),
            "",
        ]
    text += [
        "### ROC-AUC per data set (mean ± std over seeds)",
        "",
        per_dataset(torch_table, "auc"),
        "### Precision@k per data set",
        "",
        per_dataset(torch_table, "precision_at_k"),
        "### Informative vs correlated decoys only (ROC-AUC)",
        "",
        per_dataset(torch_table[torch_table["auc_vs_decoys"].notna()], "auc_vs_decoys"),
        "### Tracker cost, % of training time (median over seeds and epoch counts)",
        "",
        cost_table(torch_table),
        "",
    ]
    if not keras_table.empty:
        text += [
            "### Keras against PyTorch, mode by mode",
            "",
            "Suite means (mean over data sets of the mean over seeds) on the seeds both "
            "frameworks ran; `PyTorch, all seeds` adds its other seeds. Gap = Keras minus "
            "PyTorch on the common seeds.",
            "",
            framework_gap(table),
            "",
            "### Keras: ROC-AUC per data set",
            "",
            per_dataset(keras_table, "auc"),
            "### Keras: precision@k per data set",
            "",
            per_dataset(keras_table, "precision_at_k"),
        ]
    tables = "\n".join(text)
    out = OUT / "RESULTS.md"
    body = out.read_text(encoding="utf-8") if out.exists() else f"{START}\n{END}\n"
    if START not in body or END not in body:
        raise SystemExit(f"{out} lacks the {START} / {END} markers; restore them.")
    head, rest = body.split(START, 1)
    tail = rest.split(END, 1)[1]
    out.write_text(f"{head}{START}\n{tables}\n{END}{tail}", encoding="utf-8")
    print(f"wrote the tables into {out}")


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--epochs", type=int, nargs="+", default=[15, 60, 200])
    r.add_argument("--seeds", type=int, default=5)
    r.add_argument("--framework", choices=["torch", "keras"], default="torch")
    r.add_argument("--modes", nargs="+", choices=list(SCORING_MODES))
    r.add_argument("--datasets", nargs="+")
    r.add_argument("--no-reference", action="store_true", help="skip the post-hoc references")
    r.add_argument(
        "--peers",
        nargs="+",
        help="more benchmark methods to run, e.g. the training-time selectors lassonet stg",
    )
    r.add_argument("--label", help="suffix of the CSV names, to keep a separate run's rows apart")
    r.add_argument(
        "--peers-only",
        action="store_true",
        help="run only --peers (no trackers): LassoNet's path does not depend on --epochs",
    )
    r.add_argument(
        "--no-every-step",
        action="store_true",
        help="with taylor, skip the extra taylor tracker that reads every step",
    )
    sub.add_parser("report")
    args = parser.parse_args()
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
