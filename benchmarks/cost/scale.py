"""``scale``: time to importances as the data grows, VIANN against post-hoc methods.

VIANN's time is the time inside its tracker over the whole training;
permutation importance, Captum's Integrated Gradients and SHAP (Deep and
Gradient explainers) are timed on their own run after training. Features 10
to 2,000 at 5,000 training rows; rows 1,000 to 1,000,000 at 50 features.
"""

from __future__ import annotations

import gc
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import report
from benchmarks.cost.tables import markdown_table
from benchmarks.methods import (
    Trained,
    integrated_gradients,
    shap_deep,
    shap_gradient,
)
from benchmarks.training import (
    TORCH_HOOKS,
    time_hooks,
    timed_read,
    torch_loss,
    torch_mlp,
    train_torch,
)

FEATURE_SIZES = (10, 30, 100, 300, 1000, 2000)
ROW_SIZES = (1_000, 10_000, 100_000, 1_000_000)
SCALE_METHODS = (
    "viann_epoch",
    "viann_step",
    "permutation",
    "integrated_gradients",
    "shap_deep",
    "shap_gradient",
)
POSTHOC_SCALE_METHODS = frozenset(SCALE_METHODS[2:])


def _scale_data(n_train: int, n_explain: int, n_features: int, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_train + n_explain, n_features)).astype(np.float32)
    k = min(5, n_features)
    beta = np.linspace(1.0, 0.2, k).astype(np.float32)
    y = X[:, :k] @ beta + 0.5 * rng.normal(size=len(X)).astype(np.float32)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def _scale_point(
    n_train: int,
    n_explain: int,
    n_features: int,
    methods: Sequence[str],
    epochs: int,
    skip: set[str],
) -> list[dict[str, Any]]:
    """Train once at this size and time every method not in ``skip``."""
    import torch

    from neural_feature_importance.baselines import permutation_importance
    from neural_feature_importance.torch import VarianceImportanceTorch

    X, y, X_test, y_test = _scale_data(n_train, n_explain, n_features)
    torch.manual_seed(0)
    model = torch_mlp(n_features, 1)
    trackers = {}
    for name, every in (("viann_epoch", None), ("viann_step", 1)):
        if name in methods:
            tracker = VarianceImportanceTorch(model, update_every=every, scoring="viann")
            trackers[name] = (tracker, time_hooks(tracker, TORCH_HOOKS))
    train_s = train_torch(
        model,
        X,
        y,
        "regression",
        epochs=epochs,
        batch_size=256,
        hooks=[t for t, _ in trackers.values()],
    )
    train_s -= sum(timer.seconds for _, timer in trackers.values())
    base = {"n_train": n_train, "n_explain": n_explain, "n_features": n_features}
    rows = [{**base, "method": "training (no tracker)", "seconds": train_s, "status": "ok"}]
    for name, (tracker, timer) in trackers.items():
        timed_read(tracker, timer)
        rows.append({**base, "method": name, "seconds": timer.seconds, "status": "ok"})

    trained = Trained(model, "regression", X, y, X_test, y_test, seed=0)
    post = {
        "permutation": lambda: permutation_importance(
            model, X_test, y_test, n_repeats=5, random_state=0, loss=torch_loss("regression")
        ),
        "integrated_gradients": lambda: integrated_gradients(trained),
        "shap_deep": lambda: shap_deep(trained),
        "shap_gradient": lambda: shap_gradient(trained),
    }
    for name in methods:
        if name not in post:
            continue
        if name in skip:
            rows.append({**base, "method": name, "seconds": np.nan, "status": "skipped"})
            continue
        # The per-sample methods explain every held-out row here, not 500.
        with _explain_all(n_explain), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            post[name]()
            seconds = time.perf_counter() - start
        rows.append({**base, "method": name, "seconds": seconds, "status": "ok"})
    return rows


class _explain_all:
    """Context manager raising the per-sample methods' row cap to ``n``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        import benchmarks.methods as m

        self.saved = m.MAX_EXPLAIN_ROWS
        m.MAX_EXPLAIN_ROWS = self.n

    def __exit__(self, *exc: object) -> None:
        import benchmarks.methods as m

        m.MAX_EXPLAIN_ROWS = self.saved


def run_scale(
    *,
    feature_sizes: Sequence[int] = FEATURE_SIZES,
    row_sizes: Sequence[int] = ROW_SIZES,
    methods: Sequence[str] = SCALE_METHODS,
    epochs: int = 3,
    feature_rows: int = 5_000,
    feature_explain: int = 1_000,
    row_features: int = 50,
    method_budget: float = 90.0,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Seconds to importances per method as features, then rows, grow.

    A method whose time at one size, scaled linearly to the next size, would
    exceed ``method_budget`` seconds is skipped from then on (``status``).
    """
    out = []
    for sweep, sizes in (("features", feature_sizes), ("rows", row_sizes)):
        skip: set[str] = set()
        previous: dict[str, tuple[int, float]] = {}
        for size in sizes:
            for name, (last_size, seconds) in previous.items():
                if seconds * size / last_size > method_budget:
                    skip.add(name)
            if sweep == "features":
                shape = (feature_rows, feature_explain, size)
            else:
                shape = (size, max(size // 5, 100), row_features)
            gc.collect()
            start = time.perf_counter()
            rows = _scale_point(*shape, methods, epochs, skip)
            for row in rows:
                row["sweep"] = sweep
                row["size"] = size
                # Only post-hoc calls are skipped: training and the trackers run anyway.
                if row["status"] == "ok" and row["method"] in POSTHOC_SCALE_METHODS:
                    previous[row["method"]] = (size, row["seconds"])
            out.extend(rows)
            if progress is not None:
                progress(f"scale {sweep}={size:,}: {time.perf_counter() - start:.1f} s")
    return pd.DataFrame(out)


def scale_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """One sweep as a table: a row per method (in order of appearance), a column per size.

    A cell is the method's seconds, ``skipped`` past the budget, or empty
    where the method did not run at that size.
    """
    cells = sweep["seconds"].astype(float).map(report.fmt_seconds)
    cells = cells.where(sweep["status"] == "ok", "skipped")
    wide = (
        sweep.assign(cell=cells)
        .pivot(index="method", columns="size", values="cell")
        .reindex(index=list(dict.fromkeys(sweep["method"])), columns=sorted(sweep["size"].unique()))
        .fillna("")
    )
    wide.columns = [f"{size:,}" for size in wide.columns]
    return wide.rename_axis("method").reset_index()


def scale_markdown(scale: pd.DataFrame) -> list[str]:
    """The ``scale`` sections of ``cost.md`` (one table per sweep), as Markdown lines."""
    parts: list[str] = []
    for sweep, label in (("features", "features"), ("rows", "training rows")):
        sub = scale[scale["sweep"] == sweep]
        if sub.empty:
            continue
        fixed = sub.iloc[0]
        if sweep == "features":
            note = (
                f"{int(fixed['n_train']):,} training rows, {int(fixed['n_explain']):,} "
                "held-out rows explained"
            )
        else:
            note = (
                f"{int(fixed['n_features'])} features; held-out rows explained = a fifth "
                "of the training rows"
            )
        parts += [
            f"### Time to importances against the number of {label}",
            "",
            f"MLP 64-64, 3 epochs, batch 256; {note}. VIANN = time inside the tracker over "
            "the whole training; the others = their own run after training. `skipped` = "
            "projected past the per-method budget.",
            "",
            markdown_table(scale_table(sub)),
            "",
        ]
    return parts
