"""Scoring-mode probe: record training trajectories once, score many candidate statistics offline.

Exploratory harness (not the committed table): trains the issue's MLP (64-64,
Adam, batch 32) for E epochs on planted-truth data and, per run, records

* the first layer's weight after every epoch (and at init),
* per-step accumulators of gradient statistics of the first layer,
* the validation loss after every epoch,

then evaluates every candidate formula at several stopping epochs (prefixes of
the same run: with a constant learning rate a 15-epoch run *is* the first 15
epochs of a 200-epoch run with the same seed). The data are the suite's
(``make_synthetic``, default sizes); 20 % of the rows are held out as the
validation set of the "best validation epoch" variants, the rest trains.
The statistics are computed here in plain torch, independently of the
library's trackers; ``scoring_modes_truth.py`` measures the shipped modes.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python research/scoring_modes_probe.py --epochs 200 --seeds 5
    gzip -9 research/scoring_modes/probe.json
    .venv/bin/python research/scoring_modes_summarise.py research/scoring_modes/probe.json.gz
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

OUT = Path(__file__).resolve().parent / "scoring_modes"
STANDIN = False
RAW: dict = {}


# ----------------------------------------------------------------------------- data
def _standardise(X):
    X = np.asarray(X, dtype=np.float64)
    return (X - X.mean(0)) / (X.std(0) + 1e-12)


def make_data(name: str, seed: int, n: int | None = None):
    """The suite's planted-truth data (``make_synthetic``), or our stand-ins (``--standin``)."""
    if not STANDIN:
        from neural_feature_importance.datasets.synthetic import make_synthetic

        d = make_synthetic(name, n_samples=n, random_state=seed)
        return d.X, d.y, d.informative, d.task
    n = n or 1000
    from sklearn.datasets import make_classification, make_friedman1

    rng = np.random.default_rng(seed)
    if name == "classification":
        X, y = make_classification(
            n_samples=n,
            n_features=40,
            n_informative=6,
            n_redundant=0,
            n_repeated=0,
            shuffle=False,
            random_state=seed,
        )
        inf = np.zeros(40, bool)
        inf[:6] = True
        return _standardise(X), y, inf, "classification"
    if name == "friedman1":
        X, y = make_friedman1(n_samples=n, n_features=20, noise=1.0, random_state=seed)
        inf = np.zeros(20, bool)
        inf[:5] = True
        return _standardise(X), (y - y.mean()) / y.std(), inf, "regression"
    if name == "xor":
        X = rng.normal(size=(n, 20))
        logit = 3.0 * np.sign(X[:, 0] * X[:, 1]) + 1.0 * X[:, 2]
        y = (logit + rng.logistic(size=n) > 0).astype(int)
        inf = np.zeros(20, bool)
        inf[:3] = True
        return _standardise(X), y, inf, "classification"
    if name == "correlated_decoys":
        Z = rng.normal(size=(n, 4))
        decoys = Z + 0.3 * rng.normal(size=(n, 4))
        noise = rng.normal(size=(n, 12))
        X = np.hstack([Z, decoys, noise])
        y = Z @ np.array([1.0, -0.8, 0.6, 0.5]) + 0.3 * rng.normal(size=n)
        inf = np.zeros(20, bool)
        inf[:4] = True
        return _standardise(X), (y - y.mean()) / y.std(), inf, "regression"
    if name == "multiplexer":
        from mlxtend.data import make_multiplexer_dataset

        Xm, y = make_multiplexer_dataset(
            address_bits=2,
            sample_size=n,
            positive_class_ratio=0.5,
            shuffle=True,
            random_seed=seed,
        )
        noise = rng.integers(0, 2, size=(n, 14))
        X = np.hstack([Xm, noise]).astype(float)
        inf = np.zeros(20, bool)
        inf[:6] = True
        return _standardise(X), y, inf, "classification"
    if name == "high_dim":
        Z = rng.normal(size=(n, 10))
        decoys = np.repeat(Z, 3, axis=1) + 0.7 * rng.normal(size=(n, 30))
        noise = rng.normal(size=(n, 460))
        X = np.hstack([Z, decoys, noise])
        beta = rng.choice([-1, 1], 10) * rng.uniform(0.5, 1.0, 10)
        y = Z @ beta + 2.0 * rng.normal(size=n)
        inf = np.zeros(500, bool)
        inf[:10] = True
        return _standardise(X), (y - y.mean()) / y.std(), inf, "regression"
    raise ValueError(name)


# ------------------------------------------------------------------------ metrics
def auc(scores, inf):
    """ROC-AUC of informative vs the rest."""
    return float(roc_auc_score(inf.astype(int), scores))


def prec_at_k(scores, inf):
    """Share of informative features among the top k."""
    k = int(inf.sum())
    top = np.argsort(-scores, kind="stable")[:k]
    return float(inf[top].mean())


# ----------------------------------------------------------------------- training
def train_record(X, y, task, seed, epochs, batch=32, lr=1e-3, input_grads=True):
    """Train one MLP; return snapshots, per-epoch accumulators, val losses, seconds."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1000)
    n = len(X)
    idx = rng.permutation(n)
    n_val = n // 5
    va, tr = idx[:n_val], idx[n_val:]
    Xt = torch.tensor(X[tr], dtype=torch.float32)
    Xv = torch.tensor(X[va], dtype=torch.float32)
    if task == "classification":
        n_out = int(y.max()) + 1
        yt = torch.tensor(y[tr], dtype=torch.long)
        yv = torch.tensor(y[va], dtype=torch.long)
        loss_fn = nn.CrossEntropyLoss()
    else:
        n_out = 1
        yt = torch.tensor(y[tr], dtype=torch.float32)[:, None]
        yv = torch.tensor(y[va], dtype=torch.float32)[:, None]
        loss_fn = nn.MSELoss()
    F = X.shape[1]
    model = nn.Sequential(
        nn.Linear(F, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, n_out)
    )
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    W = model[0].weight
    snaps = [W.detach().double().clone()]
    acc = {k: torch.zeros_like(W, dtype=torch.float64) for k in ("gw", "agw", "g2", "si")}
    grp2 = torch.zeros(F, dtype=torch.float64)
    gxi = torch.zeros(F, dtype=torch.float64)
    gx2 = torch.zeros(F, dtype=torch.float64)
    per_epoch = {k: [] for k in ("gw", "agw", "g2", "si")}
    per_epoch_f = {"grp2": [], "gxi": [], "gx2": [], "grpabs": [], "grpwin": []}
    grpwin = torch.zeros(F, dtype=torch.float64)
    window = torch.zeros(F, dtype=torch.float64)
    grpabs = torch.zeros(F, dtype=torch.float64)
    val_losses = []
    gen = torch.Generator().manual_seed(seed)
    t_train = 0.0
    for _ in range(epochs):
        perm = torch.randperm(len(Xt), generator=gen)
        t0 = time.perf_counter()
        for s in range(0, len(Xt), batch):
            b = perm[s : s + batch]
            xb = Xt[b]
            if input_grads:
                xb = xb.clone().requires_grad_(True)
            prev = W.detach().double().clone()
            opt.zero_grad()
            loss = loss_fn(model(xb), yt[b])
            loss.backward()
            opt.step()
            with torch.no_grad():
                g = W.grad.double()
                w = W.detach().double()
                gw = g * w
                acc["gw"] += gw
                acc["agw"] += gw.abs()
                acc["g2"] += g * g
                acc["si"] -= g * (w - prev)
                grp2 += gw.sum(0) ** 2
                grpabs += gw.sum(0).abs()
                window += gw.sum(0)
                if input_grads:
                    gi = (xb.grad * xb).double()
                    gxi += gi.abs().sum(0)
                    gx2 += (xb.grad.double() ** 2).sum(0)
        t_train += time.perf_counter() - t0
        with torch.no_grad():
            snaps.append(W.detach().double().clone())
            for k in per_epoch:
                per_epoch[k].append(acc[k].clone())
            per_epoch_f["grp2"].append(grp2.clone())
            per_epoch_f["gxi"].append(gxi.clone())
            per_epoch_f["gx2"].append(gx2.clone())
            per_epoch_f["grpabs"].append(grpabs.clone())
            grpwin += window.abs()
            window.zero_()
            per_epoch_f["grpwin"].append(grpwin.clone())
            val_losses.append(float(loss_fn(model(Xv), yv)))
    # to numpy (features, units)
    S = torch.stack(snaps).numpy().transpose(0, 2, 1)
    P = {k: torch.stack(v).numpy().transpose(0, 2, 1) for k, v in per_epoch.items()}
    Pf = {k: torch.stack(v).numpy() for k, v in per_epoch_f.items()}
    return S, P, Pf, np.array(val_losses), t_train


# ----------------------------------------------------------------------- variants
def variants(S, P, Pf, val, E):
    """All candidate scores after E epochs. S[0] is init, S[e] after epoch e."""
    out = {}
    traj = S[1 : E + 1]
    last, init = S[E], S[0]
    var = traj.var(0, ddof=1)
    out["viann"] = (var * np.abs(last)).sum(1)
    var_i = S[: E + 1].var(0, ddof=1)
    out["viann_init"] = (var_i * np.abs(last)).sum(1)
    out["var_only"] = var.sum(1)
    out["magnitude"] = np.abs(last).sum(1)
    out["magnitude_l2"] = np.sqrt((last**2).sum(1))
    out["displacement"] = np.abs(last - init).sum(1)
    out["displacement_l2"] = np.sqrt(((last - init) ** 2).sum(1))
    out["growth"] = (last**2 - init**2).sum(1)
    steps = np.diff(S[: E + 1], axis=0)
    out["path"] = np.abs(steps).sum((0, 2))
    out["directed"] = (np.abs(last - init) ** 2 / (np.abs(steps).sum(0) + 1e-12)).sum(1)
    # discrete movement from snapshots: sum_t w_t * (w_t - w_{t-1})
    out["snap_movement"] = (S[1 : E + 1] * steps).sum((0, 2))
    out["snap_movement_abs"] = np.abs((S[1 : E + 1] * steps).sum(0)).sum(1)
    # EMA variance (halflife 10 epochs)
    alpha = 1 - 0.5 ** (1 / 10)
    m, v = traj[0].copy(), np.zeros_like(traj[0])
    for x in traj[1:]:
        d = x - m
        m += alpha * d
        v = (1 - alpha) * (v + alpha * d * d)
    out["ema_var_viann"] = (v * np.abs(last)).sum(1)
    # best validation epoch (among 1..E)
    eb = int(np.argmin(val[:E])) + 1
    eb2 = max(eb, 2)
    tb = S[1 : eb2 + 1]
    out["best_viann"] = (tb.var(0, ddof=1) * np.abs(S[eb2])).sum(1)
    out["best_magnitude"] = np.abs(S[eb]).sum(1)
    out["best_displacement"] = np.abs(S[eb] - init).sum(1)
    out["best_displacement_l2"] = np.sqrt(((S[eb] - init) ** 2).sum(1))
    out["best_growth"] = (S[eb] ** 2 - init**2).sum(1)
    # gradient statistics
    gw = P["gw"][E - 1]
    out["movement"] = -gw.sum(1)
    out["movement_pos"] = np.maximum(-gw, 0).sum(1)
    out["movement_abs"] = np.abs(gw).sum(1)
    out["taylor_abs"] = P["agw"][E - 1].sum(1)
    out["taylor_group2"] = Pf["grp2"][E - 1]
    out["taylor_group_abs"] = Pf["grpabs"][E - 1]
    out["taylor_epoch_window"] = Pf["grpwin"][E - 1]

    def mm(a):
        return (a - a.min()) / (np.ptp(a) + 1e-300)

    def rk(a):
        return np.argsort(np.argsort(a)) / (len(a) - 1)

    out["combo_taylor_x_growth"] = mm(Pf["grpabs"][E - 1]) * mm(out["growth"])
    out["combo_rank_taylor_growth"] = rk(Pf["grpabs"][E - 1]) + rk(out["growth"])
    out["combo_taylor_plus_gxi"] = mm(Pf["grpabs"][E - 1]) + mm(Pf["gxi"][E - 1])
    out["best_snap_movement"] = (S[1 : eb + 1] * np.diff(S[: eb + 1], axis=0)).sum((0, 2))
    out["fisher"] = P["g2"][E - 1].sum(1)
    out["si"] = P["si"][E - 1].sum(1)
    out["si_norm"] = (P["si"][E - 1] / ((last - init) ** 2 + 1e-3)).sum(1)
    out["grad_x_input"] = Pf["gxi"][E - 1]
    out["input_fisher"] = Pf["gx2"][E - 1]
    out["best_movement"] = -P["gw"][eb - 1].sum(1)
    out["best_taylor_abs"] = P["agw"][eb - 1].sum(1)
    out["best_grad_x_input"] = Pf["gxi"][eb - 1]
    out["best_taylor_group2"] = Pf["grp2"][eb - 1]
    out["_best_epoch"] = eb
    return out


def main():
    """Command line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--standin", action="store_true")
    ap.add_argument("--raw", help="also save every raw score vector to this .npz")
    ap.add_argument(
        "--datasets", default="classification,friedman1,xor,correlated_decoys,multiplexer,high_dim"
    )
    ap.add_argument("--checkpoints", default="15,60,200")
    ap.add_argument("--out", default=str(OUT / "probe.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    global STANDIN
    STANDIN = args.standin
    cps = [int(c) for c in args.checkpoints.split(",") if int(c) <= args.epochs]
    rows = []
    for name in args.datasets.split(","):
        for seed in range(args.seeds):
            X, y, inf, task = make_data(name, seed, args.n)
            t0 = time.perf_counter()
            S, P, Pf, val, ttrain = train_record(X, y, task, seed, args.epochs)
            for E in cps:
                sc = variants(S, P, Pf, val, E)
                eb = sc.pop("_best_epoch")
                for k, s in sc.items():
                    RAW[(name, seed, E, k)] = np.asarray(s, dtype=np.float32)
                    rows.append(
                        dict(
                            dataset=name,
                            seed=seed,
                            epochs=E,
                            variant=k,
                            auc=auc(s, inf),
                            p_at_k=prec_at_k(s, inf),
                            best_epoch=eb,
                        )
                    )
            print(
                f"{name} seed {seed}: {time.perf_counter() - t0:.1f}s (train {ttrain:.1f}s), "
                f"best val epoch {int(np.argmin(val)) + 1}",
                flush=True,
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows))
    if args.raw:
        np.savez_compressed(args.raw, **{"|".join(map(str, k)): v for k, v in RAW.items()})


if __name__ == "__main__":
    main()
