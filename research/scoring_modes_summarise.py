"""Summarise an ``scoring_modes_probe.py`` JSON as a Markdown table (suite means per variant).

Usage::

    .venv/bin/python research/scoring_modes_summarise.py research/scoring_modes/probe.json.gz
"""

import gzip
import json
import sys

import pandas as pd

DESCRIPTIONS = {
    "viann": "VIANN (shipped: `viann`)",
    "viann_init": "VIANN counting the initial weights",
    "var_only": "variance alone, no magnitude",
    "ema_var_viann": "VIANN, EWMA variance, half-life 10 epochs (shipped: `ema_variance`)",
    "magnitude": "sum_j abs(w_T) (weight saliency)",
    "magnitude_l2": "L2 norm of w_T per feature",
    "displacement": "sum_j abs(w_T - w_0)",
    "displacement_l2": "L2 norm of w_T - w_0",
    "growth": "sum_j w_T^2 - w_0^2 (shipped: `growth`)",
    "path": "sum_t sum_j abs(w_t - w_t-1) (shipped: `path`)",
    "directed": "sum_j (w_T - w_0)^2 / path",
    "snap_movement": "sum_t sum_j w_t (w_t - w_t-1), per epoch",
    "snap_movement_abs": "sum_j abs(sum_t w_t (w_t - w_t-1))",
    "best_viann": "VIANN frozen at the best validation epoch",
    "best_magnitude": "magnitude at the best validation epoch",
    "best_displacement": "displacement at the best validation epoch",
    "best_displacement_l2": "L2 displacement at the best validation epoch",
    "best_growth": "growth at the best validation epoch",
    "best_snap_movement": "snapshot movement up to the best validation epoch",
    "movement": "-sum_steps sum_j g w (shipped: `movement`, every step)",
    "movement_pos": "sum_j max(0, -sum_steps g w)",
    "movement_abs": "sum_j abs(sum_steps g w)",
    "taylor_abs": "sum_steps sum_j abs(g w) (per-weight Taylor)",
    "taylor_group_abs": "sum_steps abs(sum_j g w) (shipped: `taylor`, every step)",
    "taylor_group2": "sum_steps (sum_j g w)^2 (Molchanov 2019, squared)",
    "taylor_epoch_window": "sum_epochs abs(sum_steps-in-epoch sum_j g w)",
    "fisher": "sum_steps sum_j g^2 (EWC's diagonal Fisher)",
    "si": "sum_steps sum_j -g dw (shipped: `synaptic`)",
    "si_norm": "SI normalised by (w_T - w_0)^2 + 1e-3 (Zenke's Omega)",
    "grad_x_input": "sum over samples abs(x dL/dx) (per-sample gradient x input)",
    "input_fisher": "sum over samples (dL/dx)^2",
    "best_movement": "movement up to the best validation epoch",
    "best_taylor_abs": "per-weight Taylor up to the best validation epoch",
    "best_grad_x_input": "gradient x input up to the best validation epoch",
    "best_taylor_group2": "squared group Taylor up to the best validation epoch",
    "combo_taylor_x_growth": "minmax(taylor) * minmax(growth)",
    "combo_rank_taylor_growth": "rank(taylor) + rank(growth)",
    "combo_taylor_plus_gxi": "minmax(taylor) + minmax(per-sample gradient x input)",
}


def main() -> None:
    """Print the Markdown table."""
    path = sys.argv[1]
    with (gzip.open if path.endswith(".gz") else open)(path, "rt") as handle:
        df = pd.DataFrame(json.load(handle))
    per_dataset = df.groupby(["variant", "epochs", "dataset"])[["auc", "p_at_k"]].mean()
    suite = per_dataset.groupby(["variant", "epochs"]).mean()
    worst = per_dataset["auc"].groupby(["variant", "epochs"]).min()
    epochs = sorted(df["epochs"].unique())
    last = epochs[-1]
    order = suite.xs(last, level="epochs")["auc"].sort_values(ascending=False).index
    header = ["variant", "what", *[f"AUC / P@k, {e} ep." for e in epochs], f"worst AUC, {last} ep."]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for variant in order:
        cells = [f"`{variant}`", DESCRIPTIONS.get(variant, "")]
        for e in epochs:
            auc, pk = suite.loc[(variant, e)]
            cells.append(f"{auc:.3f} / {pk:.3f}")
        cells.append(f"{worst.loc[(variant, last)]:.3f}")
        print("| " + " | ".join(cells) + " |")
    seeds = df["seed"].nunique()
    print(f"\n{seeds} seeds, data sets: {', '.join(sorted(df['dataset'].unique()))}.")


if __name__ == "__main__":
    main()
