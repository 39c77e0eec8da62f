r"""Probe of read weightings, the validation loss's sign and output attribution on real data.

Trains the real-data benchmark's PyTorch MLP (64-64, ReLU, Adam 1e-3, batch 32)
on each bundled data set with appended irrelevant columns, under PyTorch's
default initialisation and Keras's (Glorot-uniform kernels, zero biases), and
records at every 4th optimizer step (the trackers' ``gradient_every``):

- ``T``: the first layer's per-feature term ``sum_j g_ij * w_ij`` (``taylor``'s);
- ``T0``: the same against the initial weights, ``sum_j g_ij * w0_ij``;
- the batch's loss;
- ``O``: the batch's *output* attribution, mean ``|x * d(output)/dx|`` (the
  predicted class's logit, or the regression output), from one more backward
  pass: what Integrated Gradients and SHAP measure, read during training;
- ``R`` and ``R2``: the sum over the batch's rows of the per-row loss terms
  ``x_bi * dL/dx_bi`` (whose sum is ``taylor``'s term, with the weights before
  the step) and of their squares, from the input's gradient in the same
  backward pass: how consistent a feature's effect is across the batch's rows;

and at every epoch's end ``V``: the same term on the validation loss
(``sum_j g_val_ij * w_ij``, half ``a`` of the held-out rows), the signed
first-order change of the validation loss when a feature's weights are scaled
up, as a validation loop (Keras ``validation_data``, Lightning, the Hugging
Face Trainer's evaluation) would allow to read it.

Each candidate statistic is scored offline (plain numpy, not the library) by
its ROC-AUC of the real columns against the appended permuted and Gaussian ones,
beside Integrated Gradients (zero baseline, 32 steps) on the held-out rows; on a
planted-truth data set (``--datasets high_dim ...``), of the informative
features against the rest.
One CSV line per (data set, initialisation, epochs, seed, candidate). The study
is written up in ``research/real_data_modes/RESULTS.md``.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python research/real_data_weighting_probe.py \\
        > research/real_data_modes/weighting_probe.csv     # about 8 min per initialisation

(the planted-truth command is in the write-up's Reproduce section).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.training import torch_target  # noqa: E402
from research.real_data_terms_probe import (  # noqa: E402
    auc_of,
    load_problem,
    probe_arguments,
    training_setup,
)


def _selected_output(out: torch.Tensor, task: str) -> torch.Tensor:
    """The predicted class's logit (classification) or the output (regression), summed."""
    if task == "classification":
        return out.gather(1, out.argmax(1, keepdim=True)).sum()
    return out.sum()


def record(name: str, seed: int, epochs: int, init: str) -> dict[str, np.ndarray]:
    """Train one network and return its per-read and per-epoch term matrices."""
    data, split, _ = load_problem(name, seed)
    model, opt, loss_fn, X, y, gen = training_setup(data, split, seed, init)
    first = model[0]
    w0 = first.weight.detach().clone()
    X_val = torch.as_tensor(split.X_a, dtype=torch.float32)
    y_val = torch_target(data.task, split.y_a)
    keys = ("T", "T0", "L", "O", "V", "R", "R2")
    rows: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X), 32):
            idx = order[i : i + 32]
            read = step % 4 == 0
            opt.zero_grad()
            # The input's gradient on read steps only; the weights' gradient is unchanged.
            xb = X[idx].clone().requires_grad_(read)
            loss = loss_fn(model(xb), y[idx])
            loss.backward()
            opt.step()
            if read:
                row_terms = (xb.grad * xb.detach()).double()
                rows["R"].append(row_terms.sum(0).numpy())
                rows["R2"].append((row_terms * row_terms).sum(0).numpy())
                g, w = first.weight.grad, first.weight.detach()
                rows["T"].append((g * w).sum(0).double().numpy())
                rows["T0"].append((g * w0).sum(0).double().numpy())
                rows["L"].append(np.array(loss.item()))
                xo = X[idx].clone().requires_grad_(True)
                (gx,) = torch.autograd.grad(_selected_output(model(xo), data.task), xo)
                rows["O"].append((gx * xo.detach()).abs().mean(0).double().numpy())
            step += 1
        opt.zero_grad()
        loss_fn(model(X_val), y_val).backward()
        rows["V"].append((first.weight.grad * first.weight.detach()).sum(0).double().numpy())
    out = {key: np.array(value) for key, value in rows.items()}
    # Each feature's first-layer weight norm, at the end and at initialisation.
    out["norm"] = first.weight.detach().double().norm(dim=0).numpy()
    out["norm0"] = w0.double().norm(dim=0).numpy()
    from captum.attr import IntegratedGradients

    X_test = torch.as_tensor(split.X_test, dtype=torch.float32)
    model.eval()
    target = model(X_test).argmax(1) if data.task == "classification" else 0
    attr = IntegratedGradients(model).attribute(X_test, target=target, n_steps=32)
    out["ig"] = attr.abs().mean(0).detach().double().numpy()
    return out


def candidates(r: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Scores of every candidate from one run's recorded terms."""
    T, T0, L, V = r["T"], r["T0"], r["L"], r["V"]
    weights = np.abs(T).sum(1)  # a read's total |term|: a loss proxy the tracker could form
    half = T - 0.5 * T0
    # |sum of the batch's row terms| / their root sum of squares: about 1 for terms of
    # random sign (a column the network uses differently on every row), sqrt(rows) for
    # terms of one sign.
    consistency = (np.abs(r["R"]) / np.sqrt(np.maximum(r["R2"], 1e-300))).mean(0)
    return {
        "taylor": np.abs(T).mean(0),
        "half_disp": np.abs(half).mean(0),
        "taylor_minus_half_init": np.abs(T).mean(0) - 0.5 * np.abs(T0).mean(0),
        "rms": np.sqrt((T * T).mean(0)),
        "first_quarter": np.abs(T[: max(1, len(T) // 4)]).mean(0),
        "loss_weighted": (np.abs(T) * L[:, None]).sum(0) / L.sum(),
        "loss_weighted_half_disp": (np.abs(half) * L[:, None]).sum(0) / L.sum(),
        "loss_weighted_disp": (np.abs(T - T0) * L[:, None]).sum(0) / L.sum(),
        "term_weighted": (np.abs(T) * weights[:, None]).sum(0) / weights.sum(),
        "output_attribution": r["O"].mean(0),
        "validation_signed": -V.mean(0),
        "validation_last": -V[-1],
        "taylor_validation_penalty": np.abs(T).mean(0) - np.maximum(V.mean(0), 0.0),
        "one_sided": np.maximum(-T, 0.0).mean(0),
        "signed_growth_pressure": -T.mean(0),
        "row_consistency": np.sqrt(consistency * np.abs(T).mean(0)),
        "taylor_x_norm_growth": np.abs(T).mean(0) * r["norm"] / r["norm0"],
        "weight_growth": r["norm"] ** 2 - r["norm0"] ** 2,
        "ig": r["ig"],
    }


def main() -> None:
    """Command line: as the terms probe's (`probe_arguments`); CSV on stdout."""
    args = probe_arguments()
    torch.set_num_threads(1)
    print("data,init,epochs,seed,candidate,auc", flush=True)
    for name in args.datasets:
        for init in args.inits:
            for epochs in args.epochs:
                for seed in args.seeds:
                    data, _, planted = load_problem(name, seed)
                    for key, scores in candidates(record(name, seed, epochs, init)).items():
                        auc = auc_of(scores, data, planted)
                        print(f"{name},{init},{epochs},{seed},{key},{auc:.4f}", flush=True)


if __name__ == "__main__":
    main()
