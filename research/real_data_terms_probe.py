r"""Probe of per-step gradient statistics on real and planted-truth problems.

Trains the benchmark's PyTorch MLP (64-64, Adam 1e-3, batch 32) on each
bundled data set with appended irrelevant columns, under two
initialisations (PyTorch's default and Keras's Glorot-uniform with zero
biases), and records the first layer's per-feature terms at every 4th
optimizer step:

- ``w``: ``sum_j g_ij * w_ij`` (``taylor``'s term, the batch's gradient x input);
- ``d``: ``sum_j g_ij * (w_ij - w0_ij)`` (the same against the weights'
  displacement from their initialisation: the first-order loss change of
  undoing what training added to the feature's weights).

It then scores candidate statistics of these terms offline (``g . (w - a w0)``
for ``a`` = 0, 1/2, 3/4, 1; the signal-to-noise weighting; the second half of
training only; signed means) and prints the ROC-AUC per data set, init and
length, beside Integrated Gradients on the same network. One CSV line per run.
The study is written up in ``research/real_data_modes/RESULTS.md``.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python research/real_data_terms_probe.py \\
        > research/real_data_modes/terms_probe_real.csv                 # real data, 20 / 100 epochs
    OMP_NUM_THREADS=1 .venv/bin/python research/real_data_terms_probe.py --epochs 15 60 \\
        --datasets classification friedman1 xor correlated_decoys multiplexer high_dim \\
        effect_shapes redundant_clusters redundant_regression \\
        > research/real_data_modes/terms_probe_planted.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.metrics import ranking_metrics  # noqa: E402
from benchmarks.real_data.data import (  # noqa: E402
    REAL_DATASETS,
    appended_metrics,
    make_real_problem,
    split_standardise,
)
from benchmarks.training import n_outputs, torch_loss, torch_mlp, torch_target  # noqa: E402


def _glorot(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(module.weight)
            torch.nn.init.zeros_(module.bias)


def _steady(terms: np.ndarray) -> np.ndarray:
    a = np.abs(terms)
    m = a.mean(0)
    sd = np.maximum(a.std(0, ddof=1), 1e-12 * m)
    return m * m / sd


def candidates(tw: np.ndarray, td: np.ndarray, t0: np.ndarray) -> dict[str, np.ndarray]:
    """Scores from the (reads, features) term matrices (``t0``: ``sum_j g_ij * w0_ij``)."""
    half = len(tw) // 2
    th = tw - 0.5 * t0
    tq = tw - 0.75 * t0

    def windowed(terms: np.ndarray, k: int) -> np.ndarray:
        # |sum of k consecutive reads| averaged over the windows: batch noise cancels
        # inside a window, a steady contribution adds up.
        n = len(terms) // k * k
        if n == 0:
            return np.abs(terms.sum(0))
        return np.abs(terms[:n].reshape(-1, k, terms.shape[1]).sum(1)).mean(0)

    return {
        "window_4": windowed(tw, 4),
        "window_16": windowed(tw, 16),
        "window_64": windowed(tw, 64),
        "half_disp": np.abs(th).mean(0),
        "q_disp": np.abs(tq).mean(0),
        "geo": np.sqrt(np.abs(tw).mean(0) * np.abs(td).mean(0)),
        "min_taylor_disp": np.minimum(np.abs(tw).mean(0), np.abs(td).mean(0)),
        "taylor": np.abs(tw).mean(0),
        "steady_taylor": _steady(tw),
        "taylor_disp": np.abs(td).mean(0),
        "steady_disp": _steady(td),
        "taylor_late": np.abs(tw[half:]).mean(0),
        "steady_late": _steady(tw[half:]),
        "disp_late": np.abs(td[half:]).mean(0),
        "steady_disp_late": _steady(td[half:]),
        "signed_disp": np.abs(td.mean(0)),
        "signed_w": np.abs(tw.mean(0)),
    }


def training_setup(data: Any, split: Any, seed: int, init: str) -> tuple[Any, ...]:
    """The benchmark's MLP (`init`: `torch` or `glorot`), Adam, its loss, rows and batch order.

    Returns ``(model, optimizer, loss_fn, X, y, generator)`` for the training rows of ``split``.
    """
    torch.manual_seed(seed)
    model = torch_mlp(data.X.shape[1], n_outputs(data.task, data.y), (64, 64))
    if init == "glorot":
        _glorot(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    X = torch.as_tensor(split.X_train, dtype=torch.float32)
    y = torch_target(data.task, split.y_train)
    return model, opt, torch_loss(data.task), X, y, torch.Generator().manual_seed(seed)


class _Planted:
    """A planted-truth data set in the shape the probe reads (standardised 75/25 split)."""

    def __init__(self, name: str, seed: int) -> None:
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        from neural_feature_importance.datasets.synthetic import make_synthetic

        data = make_synthetic(name, random_state=seed)
        self.task, self.X, self.y, self.informative = data.task, data.X, data.y, data.informative
        strat = data.y if data.task == "classification" else None
        X_tr, X_te, y_tr, y_te = train_test_split(
            data.X, data.y, test_size=0.25, random_state=seed, stratify=strat
        )
        scaler = StandardScaler().fit(X_tr)
        self.X_train, self.X_test = scaler.transform(X_tr), scaler.transform(X_te)
        self.y_train, y_test = np.asarray(y_tr), np.asarray(y_te)
        if data.task != "classification":
            mean, std = self.y_train.mean(), self.y_train.std()
            self.y_train, y_test = (self.y_train - mean) / std, (y_test - mean) / std
        # Half of the held-out rows, as the real data's split has them (a validation set).
        half = len(y_test) // 2
        self.X_a, self.y_a = self.X_test[:half], y_test[:half]


def load_problem(name: str, seed: int) -> tuple[Any, Any, bool]:
    """``(data, split, planted)``: a real data set with its split, or a planted-truth one."""
    if name in REAL_DATASETS:
        data = make_real_problem(name, seed)
        return data, split_standardise(data, seed), False
    planted = _Planted(name, seed)
    return planted, planted, True


def auc_of(scores: np.ndarray, data: Any, planted: bool) -> float:
    """ROC-AUC of the informative (planted) or real (real data) columns against the rest."""
    if planted:
        return float(ranking_metrics(scores, data.informative)["auc"])
    return float(appended_metrics(scores, data)["auc"])


def run(name: str, seed: int, epochs: int, init: str) -> dict[str, object]:
    """Train one network, record its terms and return each candidate's ROC-AUC.

    ``name`` is a real data set (AUC of real against appended columns) or a
    planted-truth one (AUC of the informative features against the rest).
    """
    data, split, planted = load_problem(name, seed)
    model, opt, loss_fn, X, y, gen = training_setup(data, split, seed, init)
    first = model[0]
    w0 = first.weight.detach().clone()
    tw, td, t0, step = [], [], [], 0
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X), 32):
            idx = order[i : i + 32]
            opt.zero_grad()
            loss_fn(model(X[idx]), y[idx]).backward()
            opt.step()
            if step % 4 == 0:
                g, w = first.weight.grad, first.weight.detach()
                tw.append((g * w).sum(0).double().numpy())
                td.append((g * (w - w0)).sum(0).double().numpy())
                t0.append((g * w0).sum(0).double().numpy())
            step += 1
    scores = candidates(np.array(tw), np.array(td), np.array(t0))
    # Integrated Gradients (zero baseline) on the held-out rows, mean |attr|.
    from captum.attr import IntegratedGradients

    Xt = torch.as_tensor(split.X_test, dtype=torch.float32)
    model.eval()
    out = model(Xt)
    target = out.argmax(1) if data.task == "classification" else 0
    attr = IntegratedGradients(model).attribute(Xt, target=target, n_steps=32)
    scores["ig"] = attr.abs().mean(0).detach().double().numpy()
    row: dict[str, object] = {"data": name, "seed": seed, "epochs": epochs, "init": init}
    for key, s in scores.items():
        row[key] = round(auc_of(s, data, planted), 4)
    return row


def probe_arguments() -> argparse.Namespace:
    """The real-data probes' command line: `--seeds`, `--epochs`, `--datasets`, `--inits`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--datasets", nargs="+", default=list(REAL_DATASETS))
    parser.add_argument("--inits", nargs="+", default=["torch", "glorot"])
    return parser.parse_args()


def main() -> None:
    """Command line: see `probe_arguments`; CSV on stdout."""
    args = probe_arguments()
    torch.set_num_threads(1)
    header = False
    for name in args.datasets:
        for init in args.inits:
            for epochs in args.epochs:
                for seed in args.seeds:
                    row = run(name, seed, epochs, init)
                    if not header:
                        print(",".join(row), flush=True)
                        header = True
                    print(",".join(str(v) for v in row.values()), flush=True)


if __name__ == "__main__":
    main()
