r"""Probe: cheap first-layer statistics on high-dimensional and redundant problems.

Exploratory harness behind ``research/selector_gap/RESULTS.md`` (not the
committed table). It trains the benchmark's MLP (64-64 ReLU, Adam 1e-3,
batch 32, the benchmark's 75/25 split) once per data set and seed, records
on *every* optimizer step

* ``s_t[i] = sum_j g_ij w_ij``, the per-feature group Taylor term that
  ``scoring="taylor"`` accumulates (the batch's gradient x input),
* per-sample gradient x input ``u_ni = x_ni (delta_n W)_i`` (from a hook on
  the first layer's output): its batch sums of ``|u|`` and ``u^2``,

and the first layer's weights after every epoch, then scores every
candidate at several stopping epochs (prefixes of one run: with a constant
learning rate a 15-epoch run is the first 15 epochs of a longer one). All
statistics are plain numpy on the recorded arrays, independent of the
library.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python research/selector_gap_probe.py --epochs 60 --seeds 3 \\
        --out research/selector_gap/probe_60.csv
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.metrics import ranking_metrics  # noqa: E402
from neural_feature_importance.datasets.synthetic import make_synthetic  # noqa: E402

OUT = Path(__file__).resolve().parent / "selector_gap"


def train_record(data, seed: int, epochs: int, batch: int = 32, lr: float = 1e-3) -> dict:
    """Train one MLP on the benchmark split; return the per-step records."""
    stratify = data.y if data.task == "classification" else None
    X_tr, _, y_tr, _ = train_test_split(
        data.X, data.y, test_size=0.25, random_state=seed, stratify=stratify
    )
    torch.manual_seed(seed)
    Xt = torch.tensor(X_tr, dtype=torch.float32)
    if data.task == "classification":
        yt = torch.tensor(y_tr, dtype=torch.long)
        loss_fn: Callable = nn.CrossEntropyLoss()
        n_out = int(data.y.max()) + 1
    else:
        yt = torch.tensor(y_tr, dtype=torch.float32)[:, None]
        loss_fn = nn.MSELoss()
        n_out = 1
    F = Xt.shape[1]
    model = nn.Sequential(
        nn.Linear(F, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, n_out)
    )
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    first = model[0]
    W = first.weight
    grads: dict[str, torch.Tensor] = {}

    def keep(out: torch.Tensor) -> None:
        out.register_hook(lambda g: grads.__setitem__("delta", g))

    first.register_forward_hook(lambda m, i, o: keep(o))
    s_steps, abs_u, sq_u, epoch_end = [], [], [], []
    snaps = [W.detach().double().numpy().T.copy()]
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(Xt), generator=gen)
        for start in range(0, len(Xt), batch):
            b = perm[start : start + batch]
            xb = Xt[b]
            opt.zero_grad()
            loss = loss_fn(model(xb), yt[b])
            loss.backward()
            with torch.no_grad():
                s_steps.append((W.grad * W).sum(0).double().numpy())
                u = (xb * (grads["delta"] @ W)).double()
                abs_u.append(u.abs().sum(0).numpy())
                sq_u.append((u * u).sum(0).numpy())
            opt.step()
        epoch_end.append(len(s_steps))
        snaps.append(W.detach().double().numpy().T.copy())
    return {
        "s": np.asarray(s_steps, dtype=np.float32),
        "abs_u": np.asarray(abs_u, dtype=np.float32),
        "sq_u": np.asarray(sq_u, dtype=np.float32),
        "epoch_end": np.asarray(epoch_end),
        "snaps": np.asarray(snaps),
    }


def _mm(a: np.ndarray) -> np.ndarray:
    return (a - a.min()) / (np.ptp(a) + 1e-300)


def candidates(rec: dict, epochs: int) -> dict[str, np.ndarray]:
    """Every candidate score after ``epochs`` epochs."""
    T = int(rec["epoch_end"][epochs - 1])
    s, abs_u, sq_u = (rec[k][:T].astype(np.float64) for k in ("s", "abs_u", "sq_u"))
    per_epoch = int(rec["epoch_end"][0])
    init, last = rec["snaps"][0], rec["snaps"][epochs]
    out: dict[str, np.ndarray] = {}
    a = np.abs(s)
    out["taylor_every_step"] = a.mean(0)
    out["taylor_every_4"] = a[3::4].mean(0)
    out["taylor_squared"] = (s * s).mean(0)
    mean, std = s.mean(0), s.std(0, ddof=1)
    out["signed_snr"] = np.abs(mean) / std
    out["abs_snr"] = a.mean(0) / a.std(0, ddof=1)
    out["taylor_sqrt_mean_sq"] = np.sqrt((s * s).mean(0))
    # Within-batch consistency: s^2 - sum u^2 = sum over pairs n != m of u_n u_m,
    # an unbiased estimate (up to B(B-1)) of the squared expected contribution.
    pairs = s * s - sq_u
    out["pairwise"] = pairs.mean(0)
    out["pairwise_pos"] = np.maximum(pairs, 0).mean(0)
    out["per_sample_gxi"] = abs_u.mean(0)
    out["per_sample_rms"] = np.sqrt(sq_u.mean(0))
    out["ratio_batch_to_sample"] = a.mean(0) / abs_u.mean(0)
    # Windows over training.
    half = T // 2
    out["late_half"] = a[half:].mean(0)
    out["early_half"] = a[:half].mean(0)
    out["first_epoch"] = a[:per_epoch].mean(0)
    out["first_5_epochs"] = a[: 5 * per_epoch].mean(0)
    # Per-step normalisation: each step's |s| relative to its mean over features.
    out["step_normalised"] = (a / a.mean(1, keepdims=True)).mean(0)
    out["step_rank"] = np.argsort(np.argsort(a, axis=1), axis=1).mean(0)
    # Weight-based companions.
    growth = (last**2 - init**2).sum(1)
    out["growth"] = growth
    out["taylor_x_growth"] = _mm(a.mean(0)) * _mm(growth)
    out["taylor_x_magnitude"] = a.mean(0) * np.abs(last).sum(1)
    out["taylor_times_snr"] = a.mean(0) * out["abs_snr"]
    # Weight movement, and products with the gradient statistics (a feature must
    # look relevant to both; their noise is largely independent).
    steady = out["taylor_times_snr"]
    taylor = a.mean(0)
    displacement = np.sqrt(((last - init) ** 2).sum(1))
    out["displacement_l2"] = displacement
    steps = np.diff(rec["snaps"][: epochs + 1], axis=0)
    out["path"] = np.abs(steps).sum((0, 2))
    out["update_variance"] = (steps.var(0, ddof=1) * np.abs(last)).sum(1) if epochs > 2 else taylor
    for label, stat in (
        ("growth_pos", np.maximum(growth, 0.0)),
        ("displacement", displacement),
        ("path", out["path"]),
        ("update_variance", out["update_variance"]),
        ("magnitude", np.abs(last).sum(1)),
    ):
        out[f"taylor_times_{label}"] = taylor * stat
        out[f"steady_times_{label}"] = steady * stat
    # Accumulated signed contributions per epoch, then |.|: consistent pushes add up.
    ends = rec["epoch_end"][:epochs]
    starts = np.r_[0, ends[:-1]]
    epoch_sums = np.stack([s[b:e].sum(0) for b, e in zip(starts, ends, strict=True)])
    out["epoch_window"] = np.abs(epoch_sums).mean(0)
    return out


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument(
        "--datasets",
        default="high_dim,redundant_clusters,redundant_regression,effect_shapes,"
        "correlated_decoys,xor",
    )
    ap.add_argument("--checkpoints", default="15,60,200")
    ap.add_argument("--out", default=str(OUT / "probe.csv"))
    ap.add_argument("--cache", help="keep each run's records here (.npz) and reuse them")
    args = ap.parse_args()
    torch.set_num_threads(1)
    checkpoints = [int(c) for c in args.checkpoints.split(",") if int(c) <= args.epochs]
    rows = []
    for name in args.datasets.split(","):
        for seed in range(args.seeds):
            data = make_synthetic(name, random_state=seed)
            start = time.perf_counter()
            cache = Path(args.cache) / f"{name}_{seed}_{args.epochs}.npz" if args.cache else None
            if cache is not None and cache.exists():
                rec = dict(np.load(cache))
            else:
                rec = train_record(data, seed, args.epochs)
                if cache is not None:
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    np.savez(
                        cache, **{k: rec[k] for k in ("s", "abs_u", "sq_u", "epoch_end", "snaps")}
                    )
            for epochs in checkpoints:
                for variant, scores in candidates(rec, epochs).items():
                    metrics = ranking_metrics(scores, data.informative, data.decoys)
                    rows.append(
                        {"dataset": name, "seed": seed, "epochs": epochs, "variant": variant}
                        | metrics
                    )
            print(f"{name} seed {seed}: {time.perf_counter() - start:.1f} s", flush=True)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
