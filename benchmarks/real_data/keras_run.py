"""Keras trackers and peers on the real data sets, in a subprocess (``KERAS_BACKEND=tensorflow``).

TensorFlow and PyTorch are kept apart (importing TensorFlow before torch can
break torch's import), as in :mod:`benchmarks.cost.keras_gradients`: the
parent process never imports TensorFlow; one child trains, for every (data
set, seed, epochs), a Keras MLP of the benchmark's architecture (Glorot
initialisation, Keras' default, where PyTorch draws from its own default) with
the Keras trackers attached, on the same appended columns, split and
standardisation as the PyTorch runs (they are rebuilt from the seed). The
child returns each tracker's scores; the parent scores them with the same
metrics, and their selection is retrained in PyTorch like every other
method's. After training, the post-hoc peers of
:mod:`benchmarks.real_data.keras_peers` explain the same Keras network,
cross-fitted on the two held-out halves; their records carry both halves'
importances (``scores_a``, ``scores_b``), which the parent scores as it
scores the PyTorch peers', and their ``method_seconds`` is both halves'
compute time.

A tracker's ``method_seconds`` is the time inside its callback hooks plus
reading the importances. For ``taylor`` and ``steady_taylor`` the per-step work
runs inside the compiled train step (the gradient tap), where no hook timing
sees it; that cost is measured by ``python -m benchmarks.cost --parts
keras_gradients``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import report
from benchmarks.real_data.data import make_real_problem, split_standardise
from benchmarks.training import (
    KERAS_HOOKS,
    holdout_score,
    keras_backend_env,
    keras_mlp,
    keras_predict,
    n_outputs,
    start_keras_child,
    time_hooks,
    timed_read,
    train_keras,
)

KERAS_BACKEND = "tensorflow"


def keras_networks(
    datasets: Iterable[str],
    seeds: Iterable[int],
    epochs: Iterable[int],
    methods: Sequence[str],
    settings: dict[str, Any],
    test_size: float,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Train the Keras networks with ``methods``' trackers, then run its post-hoc ones on them.

    One record per method and network. Runs in the process that has Keras
    loaded. The first network is trained once for 4 epochs on 260 rows and
    thrown away, its peers run too (Keras' first trace, the trackers' and the
    peers' first calls are not timed).
    """
    import keras

    from benchmarks.real_data.keras_peers import explain_halves
    from benchmarks.real_data.run import REAL_METHODS

    trackers = [REAL_METHODS[name] for name in methods if REAL_METHODS[name].family == "viann"]
    peers = [REAL_METHODS[name] for name in methods if REAL_METHODS[name].family != "viann"]
    seed_list, epoch_list = list(seeds), [int(e) for e in epochs]
    out: list[dict[str, Any]] = []

    def network(name: str, seed: int, n_epochs: int, rows: int | None) -> list[dict[str, Any]]:
        data = make_real_problem(name, seed)
        if rows is not None:
            keep = np.random.default_rng(0).permutation(len(data.y))[:rows]
            data.X, data.y = data.X[keep], data.y[keep]
        split = split_standardise(data, seed, test_size if rows is None else 0.5)
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        model = keras_mlp(data.X.shape[1], n_outputs(data.task, data.y), settings["hidden"])
        built = [(m, m.make_tracker(None)) for m in trackers]
        timers = [time_hooks(t, KERAS_HOOKS) for _, t in built]
        train_s = train_keras(
            model,
            split.X_train,
            split.y_train,
            data.task,
            epochs=n_epochs,
            batch_size=settings["batch_size"],
            lr=settings["lr"],
            callbacks=[t for _, t in built],
            seed=seed,
        )
        halves = [
            holdout_score(data.task, keras_predict(model, X), y)
            for X, y in ((split.X_a, split.y_a), (split.X_b, split.y_b))
        ]

        def record_of(method: Any) -> dict[str, Any]:
            return {
                "dataset": name,
                "seed": seed,
                "epochs": n_epochs,
                "method": method.name,
                "test_score": float(np.mean(halves)),
                "train_seconds": train_s - sum(t.seconds for t in timers),
            }

        records = []
        for (method, tracker), timer in zip(built, timers, strict=True):
            record = {**record_of(method), "scores": None, "error": ""}
            try:
                record["scores"] = timed_read(tracker, timer).tolist()
            except Exception as exc:  # a benchmark records failures and goes on
                record["error"] = f"{type(exc).__name__}: {exc}"
            record["method_seconds"] = timer.seconds
            records.append(record)
        for method in peers:
            record = record_of(method)
            peer_settings = {**settings, "epochs": n_epochs}
            record.update(explain_halves(method, model, data.task, split, seed, peer_settings))
            records.append(record)
        return records

    dataset_list = list(datasets)
    network(dataset_list[0], seed_list[0], 4, rows=260)  # warm-up, discarded
    for name in dataset_list:
        for seed in seed_list:
            start = time.perf_counter()
            for n_epochs in epoch_list:
                out.extend(network(name, seed, n_epochs, rows=None))
            if progress is not None:
                progress(f"keras {name} seed {seed}: {time.perf_counter() - start:.1f} s")
    return out


def _child(config_path: str, out_path: str) -> None:
    """Entry point of the subprocess (``KERAS_BACKEND`` is set by the parent)."""
    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    start_keras_child(int(config["threads"]))
    records = keras_networks(
        config["datasets"],
        config["seeds"],
        config["epochs"],
        config["methods"],
        config["settings"],
        config["test_size"],
        progress=lambda line: print(line, flush=True),
    )
    Path(out_path).write_text(json.dumps(records), encoding="utf-8")


def run_keras(
    datasets: Iterable[str],
    seeds: Iterable[int],
    epochs: Iterable[int],
    methods: Sequence[str],
    *,
    hidden: Sequence[int] = (64, 64),
    batch_size: int = 32,
    lr: float = 1e-3,
    test_size: float = 0.3,
    threads: int = 1,
) -> dict[tuple[str, int, int, str], dict[str, Any]]:
    """Run :func:`keras_networks` in a fresh interpreter with ``KERAS_BACKEND=tensorflow``.

    Returns
    -------
    dict
        ``(dataset, seed, epochs, method) -> record`` with ``scores`` (an array,
        one per column, or ``None`` when the method failed), ``test_score``,
        ``method_seconds``, ``train_seconds`` and ``error``; a peer's record
        also has ``scores_a`` and ``scores_b``, its importances on each
        held-out half. The ``keras_scores`` argument of
        :func:`benchmarks.real_data.run.run_real`.

    Raises
    ------
    ImportError
        Without TensorFlow, with the command that installs it.
    subprocess.CalledProcessError
        When the child fails (its output is printed above).
    """
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise ImportError(
            "the Keras rows need TensorFlow: pip install 'neural-feature-importance[tensorflow]', "
            "or leave the *_keras methods out of --methods."
        )
    repo = report.BENCHMARKS_DIR.parent
    env = keras_backend_env(KERAS_BACKEND, threads, repo)
    config = {
        "datasets": list(datasets),
        "seeds": [int(s) for s in seeds],
        "epochs": [int(e) for e in epochs],
        "methods": list(methods),
        "settings": {"hidden": list(hidden), "batch_size": batch_size, "lr": lr},
        "test_size": test_size,
        "threads": threads,
    }
    with tempfile.TemporaryDirectory(prefix="viann-real-keras-") as tmp:
        config_path, out_path = Path(tmp) / "config.json", Path(tmp) / "scores.json"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        code = f"import sys; from {__name__} import _child; _child(sys.argv[1], sys.argv[2])"
        subprocess.run(
            [sys.executable, "-c", code, str(config_path), str(out_path)],
            cwd=repo,
            env=env,
            check=True,
        )
        records = json.loads(out_path.read_text(encoding="utf-8"))
    out = {}
    for record in records:
        for field in ("scores", "scores_a", "scores_b"):
            if record.get(field) is not None:
                record[field] = np.asarray(record[field], dtype=np.float64)
        key = (record["dataset"], int(record["seed"]), int(record["epochs"]), record["method"])
        out[key] = record
    return out
