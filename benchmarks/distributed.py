"""1 against 2 processes: what the trackers cost under DDP and FSDP2, and whether they agree.

A small MLP and a small embedding model (``--models``) are each
trained for a few epochs under DistributedDataParallel and under FSDP2
(``fully_shard`` on the tracked first layer, then on the root), on one and
on two processes (``torch.multiprocessing.spawn``; gloo on the CPU, nccl with
``--device cuda`` and a GPU per process). Every process of a run sees the
same global batches: each optimizer step's global batch is split into one
contiguous part per process and the gradients are averaged across them, so
one and two processes train the same network up to rounding, and their
importances must agree.

In each process the runs are paired: round after round, a fresh model of
the same seed is trained without a tracker (``plain``), with
``scoring="viann"`` (a snapshot per epoch) and with ``scoring="taylor"``
(the gradient of one step in 4), in an order rotated from round to round.
Reported per setup (model, strategy, processes, tracker):

``s / epoch``
    Wall time of an epoch (the slowest process's), median over the epochs
    after the first, then median [IQR] over the rounds.
``overhead``
    ``100 * (tracker's epoch - plain epoch of the same round) / plain``,
    median [IQR] over the rounds; ``in tracker`` is the time measured inside
    the tracker's hooks per epoch, also as a share of the plain epoch (the
    precise measure: the paired overhead carries the machine's run-to-run noise).
``time to importances``
    Wall time of ``tracker.on_train_end()`` plus reading
    ``raw_importances_`` (the slowest process's); under FSDP2 this includes
    the all-reduce of the per-feature vectors.
``vs 1 process``
    The two-process importances against the one-process ones of the same
    strategy: the largest difference relative to the largest score, and
    Spearman's rank correlation.

Run ``python -m benchmarks.distributed`` (about 5 minutes on 2 cores) or
``python -m benchmarks.distributed --quick`` (a smoke run of about 15 s).
Writes ``results/distributed.csv`` (one row per setup),
``results/distributed_runs.csv`` (one row per process and run, with its
ten top features), ``results/distributed.md`` and the ``distributed`` section of
``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import report
from benchmarks.training import TORCH_HOOKS, limit_threads, time_hooks

STRATEGIES = ("ddp", "fsdp2")
VARIANTS = ("plain", "viann", "taylor")
MODELS = ("mlp", "embedding")
WORLD_SIZES = (1, 2)
AGREE_RTOL = 1e-4
"""Largest relative difference between 1- and 2-process importances that counts as agreeing."""

FULL: dict[str, Any] = {
    "models": MODELS,
    "rows": 8_192,
    "global_batch": 64,
    "epochs": 4,
    "repeats": 4,
}
QUICK: dict[str, Any] = {
    "models": ("mlp",),
    "rows": 512,
    "global_batch": 64,
    "epochs": 2,
    "repeats": 2,
}
N_FEATURES = 100
VOCAB = 5_000
SEQ_LEN = 20
WARMUP_BATCHES = 4


# ==================================================================== models
def make_data(model: str, rows: int, seed: int = 0) -> tuple[Any, Any]:
    """Inputs and class labels of ``model``, the same in every process (seeded).

    ``mlp``: ``rows`` x 100 Gaussian features, the label is whether the first
    five sum above 0. ``embedding``: ``rows`` documents of 20 token ids in
    ``1..4999``, the label is whether one of the tokens 1-50 occurs.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    if model == "mlp":
        x = torch.randn(rows, N_FEATURES, generator=generator)
        return x, (x[:, :5].sum(dim=1) > 0).long()
    if model == "embedding":
        tokens = torch.randint(1, VOCAB, (rows, SEQ_LEN), generator=generator)
        return tokens, (tokens <= 50).any(dim=1).long()
    raise ValueError(f"unknown model {model!r}; use one of {', '.join(MODELS)}")


def make_model(model: str, seed: int = 0) -> Any:
    """The initial network of ``model`` (the same in every process): MLP 64-64, or table -> head."""
    import torch

    from benchmarks.cost import _MeanEmbedding
    from benchmarks.training import torch_mlp

    torch.manual_seed(seed)
    if model == "mlp":
        return torch_mlp(N_FEATURES, 2)
    return _MeanEmbedding.build(VOCAB, 32, 2)


def tracked_layer(model: str, strategy: str) -> str:
    """Name of the tracked first layer inside the (wrapped) model."""
    name = "0" if model == "mlp" else "embedding"
    return f"module.{name}" if strategy == "ddp" else name


def wrap(network: Any, model: str, strategy: str, device: str) -> Any:
    """``network`` as ``strategy`` trains it: DDP, or FSDP2 on the first layer and the root."""
    from torch import nn

    if strategy == "ddp":
        ids = [int(device.split(":")[1])] if device.startswith("cuda") else None
        return nn.parallel.DistributedDataParallel(network, device_ids=ids)
    if strategy == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        fully_shard(network[0] if model == "mlp" else network.embedding)
        fully_shard(network)
        return network
    raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")


# ==================================================================== one run
def train_once(
    model: str,
    strategy: str,
    variant: str,
    data: tuple[Any, Any],
    *,
    rank: int,
    world: int,
    device: str,
    epochs: int,
    global_batch: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Train a fresh network once in this process; its epoch times and importances.

    Every process must call it with the same arguments but its own ``rank``
    (the collectives of DDP, FSDP2 and the trackers pair them up).
    """
    import torch
    import torch.distributed as dist
    from torch import nn

    from neural_feature_importance.torch import (
        EmbeddingVarianceImportanceTorch,
        VarianceImportanceTorch,
    )

    sync = torch.cuda.synchronize if device.startswith("cuda") else None

    def clock() -> float:
        if sync is not None:
            sync()
        return time.perf_counter()

    network = wrap(make_model(model, seed).to(device), model, strategy, device)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    tracker = timer = None
    if variant != "plain":
        tracker_class = (
            VarianceImportanceTorch if model == "mlp" else EmbeddingVarianceImportanceTorch
        )
        tracker = tracker_class(network, tracked_layer(model, strategy), scoring=variant)
        timer = time_hooks(tracker, TORCH_HOOKS, sync)
        tracker.on_train_begin()
    inputs, labels = (t.to(device) for t in data)
    part = global_batch // world
    steps = len(labels) // global_batch
    epoch_seconds, tracker_seconds = [], []
    for epoch in range(epochs):
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(epoch))
        order = order.to(device)
        before = 0.0 if timer is None else timer.seconds
        dist.barrier()
        start = clock()
        for step in range(steps):
            rows = order[
                step * global_batch + rank * part : step * global_batch + (rank + 1) * part
            ]
            optimizer.zero_grad()
            nn.functional.cross_entropy(network(inputs[rows]), labels[rows]).backward()
            optimizer.step()
            if tracker is not None:
                tracker.on_step_end()
        if tracker is not None:
            tracker.on_epoch_end()
        epoch_seconds.append(clock() - start)
        tracker_seconds.append(0.0 if timer is None else timer.seconds - before)
    record: dict[str, Any] = {
        "epoch_seconds": epoch_seconds,
        "tracker_seconds": tracker_seconds,
        "steps_per_epoch": steps,
        "importances_seconds": np.nan,
        "importances": [],
        "n_updates": 0,
    }
    if tracker is not None:
        dist.barrier()
        start = clock()
        tracker.on_train_end()  # every process: the shards' scores are reduced
        raw = tracker.raw_importances_
        record["importances_seconds"] = clock() - start
        record["importances"] = [float(v) for v in np.asarray(raw, dtype=np.float64)]
        record["n_updates"] = int(tracker.n_updates_)
    return record


def _worker(rank: int, world: int, port: int, config: dict[str, Any], out: str) -> None:
    """One process: every (model, strategy) in paired, rotated rounds; records to JSON."""
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cuda = config["device"].startswith("cuda")
    device = f"cuda:{rank}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(rank)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    torch.set_num_threads(config["threads"])
    path = Path(out) / f"rank{rank}.json"
    records: list[dict[str, Any]] = []
    try:
        for model in config["models"]:
            data = make_data(model, config["rows"])
            warmup = tuple(t[: WARMUP_BATCHES * config["global_batch"]] for t in data)
            for strategy in config["strategies"]:
                # Warm-up: first calls (DTensor dispatch, gloo pairs) are not training.
                for variant in VARIANTS:
                    train_once(
                        model,
                        strategy,
                        variant,
                        warmup,
                        rank=rank,
                        world=world,
                        device=device,
                        epochs=2,
                        global_batch=config["global_batch"],
                    )
                for round_ in range(config["repeats"]):
                    shift = round_ % len(VARIANTS)
                    order = [*VARIANTS[shift:], *VARIANTS[:shift]]
                    for position, variant in enumerate(order):
                        record = train_once(
                            model,
                            strategy,
                            variant,
                            data,
                            rank=rank,
                            world=world,
                            device=device,
                            epochs=config["epochs"],
                            global_batch=config["global_batch"],
                        )
                        records.append(
                            {
                                "model": model,
                                "strategy": strategy,
                                "processes": world,
                                "rank": rank,
                                "round": round_,
                                "position": position,
                                "variant": variant,
                                "device": device,
                                "backend": dist.get_backend(),
                                **record,
                            }
                        )
        path.write_text(json.dumps({"records": records}), encoding="utf-8")
    except Exception:
        path.write_text(json.dumps({"error": traceback.format_exc()}), encoding="utf-8")
        raise
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_distributed(
    *,
    models: Sequence[str] = MODELS,
    strategies: Sequence[str] = STRATEGIES,
    world_sizes: Sequence[int] = WORLD_SIZES,
    rows: int = 8_192,
    global_batch: int = 64,
    epochs: int = 4,
    repeats: int = 4,
    device: str = "cpu",
    threads: int = 1,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Spawn each world size's processes and collect one row per process and run.

    Parameters
    ----------
    models, strategies, world_sizes : sequence
        What to run: ``"mlp"``/``"embedding"``, ``"ddp"``/``"fsdp2"``, process counts.
    rows, global_batch : int
        Training rows and rows per optimizer step (split across the processes;
        both world sizes must divide it).
    epochs, repeats : int
        Epochs per run (the first is left out of the epoch time) and paired rounds.
    device : str
        ``"cpu"`` (gloo) or ``"cuda"`` (nccl, one GPU per process).
    threads : int
        Torch threads per process.

    Returns
    -------
    DataFrame
        One row per (world size, rank, model, strategy, round, variant):
        epoch seconds, seconds inside the tracker per epoch, the time to
        importances and the importances (lists).
    """
    import torch

    for world in world_sizes:
        if global_batch % world:
            raise ValueError(f"global_batch={global_batch} does not split over {world} processes")
    config = {
        "models": list(models),
        "strategies": list(strategies),
        "rows": rows,
        "global_batch": global_batch,
        "epochs": epochs,
        "repeats": repeats,
        "device": device,
        "threads": threads,
    }
    frames = []
    for world in world_sizes:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="viann-distributed-") as out:
            try:
                torch.multiprocessing.spawn(
                    _worker, args=(world, _free_port(), config, out), nprocs=world
                )
            finally:
                errors = []
                for rank in range(world):
                    path = Path(out) / f"rank{rank}.json"
                    if path.exists():
                        saved = json.loads(path.read_text(encoding="utf-8"))
                        if "error" in saved:
                            errors.append(f"rank {rank}:\n{saved['error']}")
                if errors:
                    raise RuntimeError("a process failed:\n" + "\n".join(errors))
            for rank in range(world):
                saved = json.loads((Path(out) / f"rank{rank}.json").read_text(encoding="utf-8"))
                frames.append(pd.DataFrame(saved["records"]))
        if progress is not None:
            progress(f"distributed: {world} process(es), {time.perf_counter() - start:.0f} s")
    return pd.concat(frames, ignore_index=True)


# ================================================================== summary
def _quartiles(values: Any) -> tuple[float, float, float]:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return (np.nan, np.nan, np.nan)
    q1, q2, q3 = np.percentile(arr, [25, 50, 75])
    return float(q2), float(q1), float(q3)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1])


def per_run(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run (all its processes): the slowest process's times, rank 0's importances.

    ``epoch_s`` is the median over the epochs after the first of the slowest
    process's epoch time; ``tracker_s`` the same for the time inside the
    tracker's hooks; ``ranks_agree`` whether every process read the same
    importances.
    """
    keys = ["model", "strategy", "processes", "round", "variant"]
    out = []
    for key, group in runs.groupby(keys, sort=False):
        epochs = np.max(np.stack(group["epoch_seconds"].map(np.asarray).to_list()), axis=0)
        inside = np.max(np.stack(group["tracker_seconds"].map(np.asarray).to_list()), axis=0)
        steady = slice(1, None) if len(epochs) > 1 else slice(None)
        ordered = group.sort_values("rank")
        importances = [np.asarray(v, dtype=np.float64) for v in ordered["importances"]]
        agree = all(np.array_equal(importances[0], other) for other in importances[1:])
        out.append(
            {
                **dict(zip(keys, key, strict=True)),
                "epoch_s": float(np.median(epochs[steady])),
                "first_epoch_s": float(epochs[0]),
                "tracker_s": float(np.median(inside[steady])),
                "importances_s": float(group["importances_seconds"].max()),
                "steps_per_epoch": int(group["steps_per_epoch"].iloc[0]),
                "n_updates": int(group["n_updates"].iloc[0]),
                "importances": importances[0],
                "ranks_agree": agree,
            }
        )
    return pd.DataFrame(out)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, strategy, processes, tracker): the reported figures.

    ``max_rel_diff`` is ``max |I_2 - I_1| / max |I_1|`` between the
    importances of this setup and of the same strategy and tracker on one
    process (round 0 of each; every round trains the same network), and
    ``spearman`` their rank correlation; ``agrees`` = ``max_rel_diff <=``
    :data:`AGREE_RTOL` (empty for one process, the reference, and for ``plain``).
    """
    table = per_run(runs)
    out = []
    for (model, strategy, processes), group in table.groupby(
        ["model", "strategy", "processes"], sort=False
    ):
        wide = group.pivot(index="round", columns="variant", values="epoch_s")
        plain_epoch = wide["plain"].median()
        for variant in [v for v in VARIANTS if v in wide.columns]:
            rows = group[group["variant"] == variant]
            epoch = _quartiles(wide[variant])
            overhead = _quartiles(100.0 * (wide[variant] - wide["plain"]) / wide["plain"])
            importances_s = _quartiles(rows["importances_s"])
            row: dict[str, Any] = {
                "model": model,
                "strategy": strategy,
                "processes": processes,
                "variant": variant,
                "rounds": len(wide),
                "steps_per_epoch": int(rows["steps_per_epoch"].iloc[0]),
                "epoch_s": epoch[0],
                "epoch_s_q1": epoch[1],
                "epoch_s_q3": epoch[2],
                "overhead_pct": overhead[0],
                "overhead_pct_q1": overhead[1],
                "overhead_pct_q3": overhead[2],
                "tracker_ms_per_epoch": 1e3 * float(rows["tracker_s"].median()),
                "tracker_pct": 100.0 * float(rows["tracker_s"].median()) / float(plain_epoch),
                "importances_ms": 1e3 * importances_s[0],
                "importances_ms_q1": 1e3 * importances_s[1],
                "importances_ms_q3": 1e3 * importances_s[2],
                "n_updates": int(rows["n_updates"].iloc[0]),
                "ranks_agree": bool(rows["ranks_agree"].all()),
                "max_rel_diff": np.nan,
                "spearman": np.nan,
                "agrees": None,
            }
            if variant != "plain" and processes != 1:
                mine = rows.sort_values("round")["importances"].iloc[0]
                single = table[
                    (table["model"] == model)
                    & (table["strategy"] == strategy)
                    & (table["processes"] == 1)
                    & (table["variant"] == variant)
                ].sort_values("round")
                if not single.empty:
                    reference = single["importances"].iloc[0]
                    diff = float(np.max(np.abs(mine - reference)) / np.max(np.abs(reference)))
                    row["max_rel_diff"] = diff
                    row["spearman"] = _spearman(mine, reference)
                    row["agrees"] = diff <= AGREE_RTOL
            out.append(row)
    return pd.DataFrame(out)


# ================================================================== report
def _seconds(value: float) -> str:
    return report.fmt_seconds(value)


def markdown(summary: pd.DataFrame) -> str:
    """The distributed table, with what each column means."""
    rows = []
    for _, r in summary.iterrows():
        plain = r["variant"] == "plain"
        if plain:
            versus = ""
        elif r["processes"] == 1:
            versus = "(reference)"
        else:
            versus = f"{r['max_rel_diff']:.1e}; rho {r['spearman']:.4f}"
        rows.append(
            [
                f"{r['model']} {r['strategy']}, {int(r['processes'])} proc.",
                r["variant"],
                f"{_seconds(r['epoch_s'])} [{_seconds(r['epoch_s_q1'])}, "
                f"{_seconds(r['epoch_s_q3'])}]",
                ""
                if plain
                else f"{r['overhead_pct']:+.1f} % [{r['overhead_pct_q1']:+.1f}, "
                f"{r['overhead_pct_q3']:+.1f}]",
                "" if plain else f"{r['tracker_ms_per_epoch']:.1f} ms ({r['tracker_pct']:.1f} %)",
                ""
                if plain
                else f"{r['importances_ms']:.1f} ms [{r['importances_ms_q1']:.1f}, "
                f"{r['importances_ms_q3']:.1f}]",
                versus,
                "" if plain else ("yes" if r["ranks_agree"] else "NO"),
            ]
        )
    first = summary.iloc[0]
    rounds = int(first["rounds"])
    text = [
        "### Trackers on 1 and 2 processes (DDP, FSDP2)",
        "",
        "MLP 100 -> 64 -> 64 -> 2 (ReLU, Adam 1e-3, cross-entropy) on Gaussian features; the "
        "tracked layer is the first `Linear` (100 input features). Each optimizer step's global "
        "batch is split into one part per process and the gradients are averaged, so 1 and 2 "
        "processes train the same network up to rounding. DDP wraps the whole model; FSDP2 is "
        "`fully_shard` on the first layer, then on the root (each process holds 32 of the 64 "
        "rows of the tracked weight, and the trackers keep the statistics of their shard). "
        f"{rounds} rounds, each a fresh model of the same seed trained without a tracker, with "
        '`scoring="viann"` (a snapshot per epoch) and with `scoring="taylor"` '
        "(`gradient_every=4`), in an order rotated from round to round, after a warm-up round "
        "on 4 batches. `s / epoch` = the slowest process's epoch time, median over the epochs "
        "after the first, then median [IQR] over the rounds; `overhead` = median [IQR] over "
        "the rounds of `100 * (tracker's epoch - plain epoch) / plain`; `in tracker` = time "
        "inside the tracker's hooks per epoch (median), in brackets as a share of the "
        "plain epoch (the precise measure: the paired overhead carries the machine's "
        "run-to-run noise); `time to importances` = "
        "`tracker.on_train_end()` plus reading `raw_importances_`, the slowest process's "
        "(under FSDP2 it includes the all-reduce of the per-feature vectors); `vs 1 process` "
        "= `max |I_2 - I_1| / max |I_1|` against the same strategy on one process, and "
        "Spearman's rho; `ranks agree` = every process read identical importances.",
        "",
        report.markdown_table(
            [
                "setup",
                "tracker",
                "s / epoch",
                "overhead",
                "in tracker / epoch",
                "time to importances",
                "vs 1 process",
                "ranks agree",
            ],
            rows,
        ),
    ]
    if "embedding" in set(summary["model"]):
        text += [
            "",
            f"`embedding`: `nn.Embedding({VOCAB}, 32)` -> mean over {SEQ_LEN} tokens -> "
            "`nn.Linear(32, 2)`, FSDP2 shards the table on its rows (tokens).",
        ]
    return "\n".join(text)


def _runs_csv(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs as written to CSV: the ten top features and the largest score, not every score.

    The embedding model has 5,000 features per run; the agreement figures of
    :func:`summarise` are computed from the full vectors before writing.
    """
    table = runs.copy()
    scores = [np.asarray(v, dtype=np.float64) for v in table.pop("importances")]
    table["top10"] = [" ".join(map(str, np.argsort(-v)[:10])) if v.size else "" for v in scores]
    table["max_importance"] = [float(v.max()) if v.size else np.nan for v in scores]
    for column in ("epoch_seconds", "tracker_seconds"):
        table[column] = [" ".join(f"{x:.6f}" for x in v) for v in table[column]]
    return table


# ===================================================================== CLI
def main(argv: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Command line: ``python -m benchmarks.distributed [--quick] [--device cpu|cuda]``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.distributed", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny sizes")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--models", help=f"comma list of {', '.join(MODELS)} (default both)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--repeats", type=int, help=f"paired rounds (default {FULL['repeats']})")
    parser.add_argument("--epochs", type=int, help=f"epochs per run (default {FULL['epochs']})")
    parser.add_argument("--rows", type=int, help=f"training rows (default {FULL['rows']:,})")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results)")
    parser.add_argument("--no-update", action="store_true", help="do not edit RESULTS.md")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = parser.parse_args(argv)

    settings = dict(QUICK if args.quick else FULL)
    if args.models:
        settings["models"] = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = sorted(set(settings["models"]) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; use {', '.join(MODELS)}")
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if sorted(set(strategies) - set(STRATEGIES)):
        parser.error(f"--strategies takes {', '.join(STRATEGIES)}")
    for name in ("repeats", "epochs", "rows"):
        if getattr(args, name):
            settings[name] = getattr(args, name)
    if settings["repeats"] < 2:
        parser.error("--repeats must be at least 2 (the spread needs rounds)")
    limit_threads(args.threads)
    import torch

    if not torch.distributed.is_available():
        parser.error("torch.distributed is not available in this build of torch")
    world_sizes = list(WORLD_SIZES)
    note = ""
    if args.device == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device; use --device cpu.")
        gpus = torch.cuda.device_count()
        world_sizes = [w for w in WORLD_SIZES if w <= gpus]
        if len(world_sizes) < len(WORLD_SIZES):
            note = f" Only {gpus} GPU: the 2-process setups need one GPU per process (nccl)."
    out = args.out
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="viann-distributed-")) if args.quick else None
        out = out or report.RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    runs = run_distributed(
        models=settings["models"],
        strategies=strategies,
        world_sizes=world_sizes,
        rows=settings["rows"],
        global_batch=settings["global_batch"],
        epochs=settings["epochs"],
        repeats=settings["repeats"],
        device=args.device,
        threads=args.threads,
        progress=lambda line: print(line, flush=True),
    )
    summary = summarise(runs)
    minutes = (time.perf_counter() - start) / 60
    _runs_csv(runs).to_csv(out / "distributed_runs.csv", index=False)
    summary.to_csv(out / "distributed.csv", index=False)
    command = (
        "python -m benchmarks.distributed"
        + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    )
    backend = "nccl, one GPU per process" if args.device == "cuda" else "gloo on the CPU"
    machine = report.machine_info(None if args.device == "cpu" else args.device)
    body = (
        f"Command: `{command}` ({minutes:.1f} min).\n\n{machine} Processes: "
        f"{', '.join(map(str, world_sizes))}, {backend}, {args.threads} torch thread(s) "
        f"each; {settings['rows']:,} rows, global batch {settings['global_batch']}, "
        f"{settings['epochs']} epochs per run.{note}\n\n" + markdown(summary)
    )
    (out / "distributed.md").write_text(body + "\n", encoding="utf-8")
    print(body)
    print(f"\nwrote {out}/distributed.md, distributed.csv and distributed_runs.csv")
    update = not args.quick and not args.no_update
    if update and out.resolve() == report.RESULTS_DIR.resolve():
        report.update_section("distributed", body)
        print(f"updated {report.RESULTS_MD} (distributed)")
    return {"runs": runs, "summary": summary}


if __name__ == "__main__":
    main()
