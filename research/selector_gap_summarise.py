"""Tables of the selector-gap study: the probe's candidates and the held-out check.

Reads ``research/selector_gap/probe_200.csv`` (``selector_gap_probe.py``) and
``research/selector_gap/holdout.csv`` (``steady_taylor_holdout.py``) and writes
their tables into ``research/selector_gap/RESULTS.md`` between its
``tables`` markers (the text around them is kept).

Usage::

    .venv/bin/python research/selector_gap_summarise.py
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parent / "selector_gap"
START, END = "<!-- tables:start -->", "<!-- tables:end -->"
PROBE_ROWS = [
    "taylor_every_4",
    "taylor_every_step",
    "taylor_squared",
    "per_sample_gxi",
    "pairwise_pos",
    "signed_snr",
    "abs_snr",
    "taylor_times_snr",
    "step_normalised",
    "early_half",
    "late_half",
    "first_5_epochs",
    "epoch_window",
    "growth",
    "displacement_l2",
    "update_variance",
    "taylor_x_growth",
    "taylor_times_growth_pos",
    "taylor_times_magnitude",
    "taylor_times_update_variance",
    "taylor_times_displacement",
    "steady_times_growth_pos",
    "steady_times_magnitude",
    "steady_times_displacement",
]
"""The probe's candidates shown, in the order of the write-up."""
HARD = ["high_dim", "redundant_clusters", "redundant_regression", "effect_shapes", "xor"]


def _md(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def probe_tables(probe: pd.DataFrame) -> list[str]:
    """Suite means per candidate and epoch count, then the hard data sets at 200 epochs."""
    per = probe.groupby(["variant", "epochs", "dataset"])[["auc", "precision_at_k"]].mean()
    suite = per.groupby(["variant", "epochs"]).agg(
        auc=("auc", "mean"), pk=("precision_at_k", "mean"), worst=("auc", "min")
    )
    rows = []
    for variant in PROBE_ROWS:
        cells = [f"`{variant}`"]
        for epochs in (15, 60, 200):
            r = suite.loc[(variant, epochs)]
            cells.append(f"{r['auc']:.3f} / {r['pk']:.3f} / {r['worst']:.3f}")
        rows.append(cells)
    head = pd.DataFrame(
        rows,
        columns=["candidate", "15 epochs", "60 epochs", "200 epochs"],
    )
    hard = per.xs(200, level="epochs").reset_index()
    hard = hard[hard["variant"].isin(PROBE_ROWS) & hard["dataset"].isin(HARD)]
    table = hard.pivot_table(index="variant", columns="dataset", values=["auc", "precision_at_k"])
    rows = []
    for variant in PROBE_ROWS:
        cells = [f"`{variant}`"]
        for dataset in HARD:
            auc = table.loc[variant, ("auc", dataset)]
            pk = table.loc[variant, ("precision_at_k", dataset)]
            cells.append(f"{auc:.3f} / {pk:.2f}")
        rows.append(cells)
    per_set = pd.DataFrame(rows, columns=["candidate", *HARD])
    n_seeds = probe["seed"].nunique()
    return [
        f"**Probe, suite means** ({probe['dataset'].nunique()} data sets, {n_seeds} seeds): "
        "ROC-AUC / precision@k / worst data set's AUC.",
        "",
        _md(head),
        "",
        "**Probe, the data sets where the candidates differ, 200 epochs** (ROC-AUC / precision@k):",
        "",
        _md(per_set),
        "",
    ]


def holdout_tables(holdout: pd.DataFrame) -> list[str]:
    """Mean per problem and per network of the held-out check."""
    order = [
        "taylor",
        "steady_taylor",
        "growth",
        "displacement",
        "taylor_times_displacement",
        "steady_taylor_times_displacement",
    ]
    text = []
    for by in ("problem", "network"):
        auc = holdout.pivot_table(index="mode", columns=by, values="auc")
        pk = holdout.pivot_table(index="mode", columns=by, values="precision_at_k")
        rows = []
        for mode in order:
            cells = [f"`{mode}`"]
            cells += [f"{auc.loc[mode, c]:.3f} / {pk.loc[mode, c]:.2f}" for c in auc.columns]
            cells.append(f"{auc.loc[mode].mean():.3f} / {pk.loc[mode].mean():.3f}")
            rows.append(cells)
        text += [
            f"**Held-out check, by {by}** (ROC-AUC / precision@k, mean over "
            f"{holdout['seed'].nunique()} seeds and the other factor):",
            "",
            _md(pd.DataFrame(rows, columns=["score", *auc.columns, "mean"])),
            "",
        ]
    return text


def main() -> None:
    """Write the tables into RESULTS.md."""
    probe = pd.read_csv(OUT / "probe_200.csv")
    holdout = pd.read_csv(OUT / "holdout.csv")
    tables = "\n".join([*probe_tables(probe), *holdout_tables(holdout)])
    out = OUT / "RESULTS.md"
    body = out.read_text(encoding="utf-8") if out.exists() else f"{START}\n{END}\n"
    head, rest = body.split(START, 1)
    tail = rest.split(END, 1)[1]
    out.write_text(f"{head}{START}\n{tables}\n{END}{tail}", encoding="utf-8")
    print(f"wrote the tables into {out}")


if __name__ == "__main__":
    main()
