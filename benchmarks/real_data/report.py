"""Tables of the real-data benchmark: summary CSV, Markdown, and the flags worth reading first."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from benchmarks import report
from benchmarks.real_data.data import (
    COPY_NOISE,
    DEFAULT_APPENDED,
    REAL_DATASETS,
    selection_size,
)
from benchmarks.real_data.run import FRACTIONS, REFERENCES, TEST_SIZE

VIANN_FLOOR = 0.75
"""The default tracker's AUC below which :func:`flags` names a data set."""
POSTHOC = ("permutation", "integrated_gradients", "shap_deep")


def failed(table: pd.DataFrame) -> pd.Series:
    """Rows whose method raised (an ``error`` message; empty or NaN when read from CSV)."""
    errors = table["error"]
    return errors.notna() & (errors.astype(str) != "")


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per (data set, epochs, method)."""
    ok = table[~failed(table)]
    metrics = ["auc", "auc_permuted", "auc_gaussian", "auc_copies", "copy_below_original"]
    for fraction in FRACTIONS:
        tag = round(100 * fraction)
        metrics += [f"select_{tag}", f"real_share_{tag}", f"copy_share_{tag}"]
    aggregations: dict[str, tuple[str, str]] = {}
    for metric in metrics:
        aggregations[f"{metric}_mean"] = (metric, "mean")
        if metric in ("auc", *(f"select_{round(100 * f)}" for f in FRACTIONS)):
            aggregations[f"{metric}_std"] = (metric, "std")
    aggregations.update(
        test_score_mean=("test_score", "mean"),
        method_seconds_median=("method_seconds", "median"),
        train_seconds_median=("train_seconds", "median"),
        seeds=("seed", "nunique"),
    )
    grouped = ok.groupby(["dataset", "epochs", "method"], sort=False)
    return grouped.agg(**aggregations).reset_index()


def _cells(sub: pd.DataFrame, column: str, datasets: list[str], mean: bool) -> list[str]:
    cells, means = [], []
    for dataset in datasets:
        values = sub.loc[sub["dataset"] == dataset, column].to_numpy(dtype=float)
        cells.append(report.fmt_mean_std(values))
        finite = values[np.isfinite(values)]
        if finite.size:
            means.append(finite.mean())
    if mean:
        cells.append(f"{np.mean(means):.2f}" if means else "n/a")
    return cells


def _pivot(
    ok: pd.DataFrame, column: str, methods: list[str], datasets: list[str], mean: bool = True
) -> list[list[str]]:
    rows = []
    for method in methods:
        sub = ok[ok["method"] == method]
        if sub[column].notna().any():
            rows.append([method, *_cells(sub, column, datasets, mean)])
    return rows


def flags(table: pd.DataFrame) -> list[str]:
    """Where the paper's method (``viann``) scores an AUC below 0.75, and where
    ``steady_taylor`` is below the best post-hoc peer (mean AUC over seeds)."""
    ok = table[~failed(table)]
    means = ok.groupby(["dataset", "epochs", "method"])["auc"].mean()
    lines = []
    for (dataset, epochs), sub in means.groupby(level=[0, 1]):
        sub = sub.droplevel([0, 1])
        where = f"{dataset}, {epochs} epochs"
        for name in ("viann", "viann_keras"):
            if name in sub and sub[name] < VIANN_FLOOR:
                lines.append(f"{where}: `{name}` (the paper's) AUC {sub[name]:.3f} < {VIANN_FLOOR}")
        peers = sub[[m for m in POSTHOC if m in sub]]
        if "steady_taylor" in sub and not peers.empty and sub["steady_taylor"] < peers.max():
            lines.append(
                f"{where}: `steady_taylor` AUC {sub['steady_taylor']:.3f} below "
                f"`{peers.idxmax()}` {peers.max():.3f}"
            )
    return lines


def markdown(table: pd.DataFrame) -> str:
    """The Markdown tables of a :func:`~benchmarks.real_data.run.run_real` result."""
    ok = table[~failed(table)]
    datasets = list(dict.fromkeys(table["dataset"]))
    methods = [m for m in dict.fromkeys(table["method"]) if m not in REFERENCES]
    references = [m for m in REFERENCES if (table["method"] == m).any()]
    seeds = sorted(table["seed"].unique())
    epochs = sorted(int(e) for e in table["epochs"].unique())
    first = table.drop_duplicates("dataset").set_index("dataset")
    described = "; ".join(
        f"`{d}` ({REAL_DATASETS[d].task}, {int(first.loc[d, 'n_real'])} real + "
        f"{int(first.loc[d, 'n_columns'] - first.loc[d, 'n_real'])} appended columns, "
        f"{int(first.loc[d, 'n_train'])} training rows)"
        for d in datasets
    )
    appended = ", ".join(f"{k} x{v:g}" for k, v in DEFAULT_APPENDED.items())
    parts = [
        f"Seeds {seeds[0]}-{seeds[-1]} ({len(seeds)}), {' and '.join(map(str, epochs))} epochs. "
        f"Data: {described}. Appended to the real columns (counts as a multiple of the real "
        f"columns', rounded up): {appended}; a permuted copy shuffles a real column's rows, a "
        f"near-copy adds noise of {COPY_NOISE:g} times the column's standard deviation (it "
        "keeps most of its original's signal, so it is reported apart, never as irrelevant). "
        f"Split {100 * (1 - TEST_SIZE):.0f}/{100 * TEST_SIZE:.0f}, every column and a "
        "regression target standardised with the training rows' statistics. Network: MLP "
        "64-64 (ReLU, Adam 1e-3, batch 32), PyTorch for every method but the `*_keras` "
        "trackers, which watch the same architecture trained in Keras (TensorFlow). The "
        "random forest and LassoNet do not depend on the training length (one run per data "
        "set and seed, shown at every length). Permutation importance, Integrated Gradients "
        "and SHAP are cross-fitted on two halves of the held-out rows. Cells: mean ± std "
        "over seeds; `mean` = mean over data sets.",
    ]
    regression = [d for d in datasets if REAL_DATASETS[d].task == "regression"]
    scored = "accuracy" + (f"; R² for {', '.join(regression)}" if regression else "")
    for n in epochs:
        at = ok[ok["epochs"] == n]
        parts += [
            "",
            f"### {n} epochs",
            "",
            "**ROC-AUC, real columns vs appended irrelevant ones** (permuted copies and "
            "Gaussian noise; 1 = every real column above every irrelevant one, 0.5 = chance)",
            "",
            report.markdown_table(
                ["method", *datasets, "mean"], _pivot(at, "auc", methods, datasets)
            ),
        ]
        for fraction in FRACTIONS:
            tag = round(100 * fraction)
            parts += [
                "",
                f"**Selection at {tag} %: held-out score of a fresh network on the method's "
                f"top columns** ({scored}; columns kept: {tag} % of the real columns' count: "
                + ", ".join(
                    f"{d} {selection_size(fraction, int(first.loc[d, 'n_real']))}" for d in datasets
                )
                + ")",
                "",
                report.markdown_table(
                    ["method", *datasets],
                    _pivot(at, f"select_{tag}", [*methods, *references], datasets, mean=False),
                ),
            ]
        parts += [
            "",
            "**Share of real columns among the top 25 %** (1 = no appended column kept; "
            "near-copies count as appended)",
            "",
            report.markdown_table(
                ["method", *datasets, "mean"], _pivot(at, "real_share_25", methods, datasets)
            ),
            "",
            "**ROC-AUC, near-copies vs irrelevant columns** (does the method see the signal a "
            "near-copy carries? not a measure of error)",
            "",
            report.markdown_table(
                ["method", *datasets, "mean"], _pivot(at, "auc_copies", methods, datasets)
            ),
        ]
    parts += ["", *_cost(ok, methods, datasets, epochs), "", *_networks(ok, datasets, epochs)]
    found = flags(table)
    if found:
        parts += ["", "**Flags** (mean AUC over seeds)", "", *(f"- {line}" for line in found)]
    errors = table[failed(table)]
    if not errors.empty:
        parts += ["", "**Failures**", ""]
        for _, row in errors.drop_duplicates(["method", "error"]).iterrows():
            parts.append(f"- {row['method']} on {row['dataset']}: {row['error']}")
    return "\n".join(parts)


def _cost(
    ok: pd.DataFrame, methods: list[str], datasets: list[str], epochs: Sequence[int]
) -> list[str]:
    """Seconds beyond training per method, one cell per data set with every length."""
    rows = []
    for method in methods:
        cells = [method]
        for dataset in datasets:
            sub = ok[(ok["method"] == method) & (ok["dataset"] == dataset)]
            per = [sub.loc[sub["epochs"] == n, "method_seconds"].median() for n in epochs]
            cells.append(" / ".join(report.fmt_seconds(float(s)) for s in per))
        rows.append(cells)
    for framework in ("torch", "keras"):
        sub = ok[(ok["framework"] == framework) & (ok["family"] == "viann")]
        if sub.empty:
            continue
        cells = [f"(training, {framework} network)"]
        for dataset in datasets:
            nets = sub[sub["dataset"] == dataset]
            per = [nets.loc[nets["epochs"] == n, "train_seconds"].median() for n in epochs]
            cells.append(" / ".join(report.fmt_seconds(float(s)) for s in per))
        rows.append(cells)
    return [
        f"**Cost: seconds beyond training** (median over seeds; cells: "
        f"{' / '.join(f'{n} epochs' for n in epochs)}; trackers: inside their hooks plus "
        "reading the importances, measured in the training process; post-hoc: both halves of "
        "the held-out rows; forest and LassoNet: their whole fit, once per seed. The Keras "
        "gradient modes do their per-step work inside the compiled train step, which hook "
        "timing does not see: their cost is in the `cost_keras_gradients` section. Last "
        "lines: the networks' training time without the trackers)",
        "",
        report.markdown_table(["method", *datasets], rows),
    ]


def _networks(ok: pd.DataFrame, datasets: list[str], epochs: Sequence[int]) -> list[str]:
    """Held-out score of the explained networks (and LassoNet's own)."""
    rows = []
    for label, mask in (
        ("MLP (torch)", (ok["framework"] == "torch") & (ok["family"] == "viann")),
        ("MLP (keras)", ok["framework"] == "keras"),
        ("lassonet (own network)", ok["method"] == "lassonet"),
    ):
        sub = ok[mask]
        if sub.empty:
            continue
        # LassoNet's own network does not depend on the training length: one line.
        own = label.startswith("lassonet")
        for n in epochs[:1] if own else epochs:
            at = sub[sub["epochs"] == n]
            per_seed = at.groupby(["dataset", "seed"])["test_score"].first().reset_index()
            name = label if own else f"{label}, {n} epochs"
            rows.append([name, *_cells(per_seed, "test_score", datasets, False)])
    return [
        "**Held-out score of the networks explained** (all columns; accuracy or R²)",
        "",
        report.markdown_table(["network", *datasets], rows),
    ]
