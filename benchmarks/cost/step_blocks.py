"""Paired, interleaved blocks of optimizer steps without a tracker and with each variant.

The machinery shared by the ``embedding_step``, ``mlp_step`` and ``torch_step``
parts: per optimizer name, one model and optimizer per variant (the same
initial weights; the plain variant's has no tracker and no hook), rounds of one
block per variant in an order rotated from round to round, and the paired
summary.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.cost.models import device_sync
from benchmarks.cost.tables import cells, fmt_pct, markdown_table, quartiles, rotated
from benchmarks.training import TORCH_HOOKS, HookTimer, time_hooks

STEP_OPTIMIZERS = ("adam", "sgd")
# A block's steps are a multiple of the gradient modes' default gradient_every,
# so that every block of such a tracker reads the same number of gradients.
_STEP_MULTIPLE = 4

# Shared by both parts' Markdown: how the blocks, rounds and columns are made.
STEP_COLUMNS_NOTE = (
    "`extra per step` = median [IQR] over the rounds of (the tracker's block - the plain "
    "block of the same round) / steps; `of the step` = the same as a percentage of the plain "
    "step; `inside tracker` = time measured inside its hooks per step (median); "
    "`on_epoch_end` = that hook per block (median)."
)


def check_step_options(
    part: str, variants: Sequence[str], known: dict[str, Any], steps: int
) -> None:
    """Raise ``ValueError`` for an unknown variant, a missing ``"plain"`` or bad ``steps``."""
    unknown = sorted(set(variants) - set(known))
    if unknown:
        raise ValueError(f"{part}: unknown variant(s) {unknown}; use {', '.join(known)}")
    if "plain" not in variants:
        raise ValueError(
            f"{part}: variants must include 'plain': the differences are paired with it"
        )
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer):
        raise ValueError(f"{part}: steps must be an int, got {steps!r}")
    if steps < _STEP_MULTIPLE or steps % _STEP_MULTIPLE:
        raise ValueError(
            f"{part}: steps={steps} is not supported; use a positive multiple of "
            f"{_STEP_MULTIPLE} (every block of a gradient_every={_STEP_MULTIPLE} tracker "
            "then reads the same number of gradients)"
        )


def step_optimizer(opt_name: str, model: Any) -> Any:
    """Adam (lr 1e-3) or plain SGD (lr 0.1, no momentum) over ``model``'s parameters."""
    import torch

    if opt_name == "adam":
        return torch.optim.Adam(model.parameters(), lr=1e-3)
    if opt_name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.1)
    raise ValueError(f"unknown optimizer {opt_name!r}; use 'adam' or 'sgd'")


def step_trackers(
    variants: Sequence[str],
    options: dict[str, dict[str, Any] | None],
    build: Callable[..., Any],
    sync: Callable[[], None] | None,
) -> tuple[dict[str, Any], dict[str, HookTimer]]:
    """One tracker per variant with options (``build(variant, **options)``), timed and begun.

    The timer covers the tracker's hooks and the optimizer step hook with
    which it counts the updates of its layer (it runs inside
    ``optimizer.step()``, on the step path as much as ``on_step_end()``).
    """
    trackers: dict[str, Any] = {}
    timers: dict[str, HookTimer] = {}
    for variant in variants:
        kwargs = options[variant]
        if kwargs is None:
            continue
        tracker = build(variant, **kwargs)
        timers[variant] = time_hooks(tracker, TORCH_HOOKS, sync)
        tracker.on_train_begin()
        reader = getattr(tracker, "_reader", None)
        if reader is not None:
            time_hooks(reader, ("_on_optimizer_step",), sync, timers[variant])
        trackers[variant] = tracker
    return trackers, timers


def paired_rounds(
    opt_name: str,
    setups: dict[str, tuple[Any, Any]],
    batches: Sequence[tuple[Any, Any]],
    loss_fn: Callable[[Any, Any], Any],
    trackers: dict[str, Any],
    timers: dict[str, HookTimer],
    variants: Sequence[str],
    steps: int,
    repeats: int,
    sync: Callable[[], None] | None,
    columns: dict[str, Any],
    part: str = "step blocks",
) -> list[dict[str, Any]]:
    """Blocks of optimizer steps in rotated rounds, one block per variant and round.

    Every variant trains its own model (the same initial weights), with its
    own optimizer: the plain blocks run with no tracker and no hook at all. A
    block is ``steps`` optimizer steps (cycling through ``batches``, each
    step followed by the variant's ``on_step_end()``) then its
    ``on_epoch_end()``, timed as a whole; a variant without a tracker (not
    in ``trackers``) runs the steps alone. Round ``r`` runs the variants in
    the order of ``variants`` rotated by ``r``; round 0 is a warm-up (the
    first snapshots allocate the statistics) and is not recorded, rounds 1
    to ``repeats`` are. At the end every tracker's ``on_train_end()`` is
    called and its importances must be finite.

    Parameters
    ----------
    opt_name : str
        The optimizer's name, written in each row.
    setups : dict
        By variant: its ``(model, optimizer)``.
    batches : sequence of (inputs, target)
        The batches, cycled through across blocks.
    loss_fn : callable
        ``loss_fn(model(inputs), target)`` is the loss of one step.
    trackers, timers : dict
        By variant: the tracker (its ``on_train_begin()`` already called) and
        the :class:`~benchmarks.training.HookTimer` around its hooks.
    variants : sequence of str
        The variants of a round, in the order of round 0.
    steps, repeats : int
        Optimizer steps per block, and recorded rounds.
    sync : callable or None
        Called before each clock read (``torch.cuda.synchronize`` on a GPU).
    columns : dict
        Extra columns of every row (the model's sizes).
    part : str
        The part's name, in the error raised for non-finite importances.

    Returns
    -------
    list of dict
        One row per recorded block: ``optimizer``, ``variant``, ``round``,
        ``position`` (in its round), ``columns``, then ``seconds``,
        ``ms_per_step``, ``step_end_seconds``, ``epoch_end_seconds`` and
        ``tracker_ms_per_step`` (the time inside the tracker's hooks).
    """
    n_batches = len(batches)
    counters = dict.fromkeys(variants, 0)

    def block(variant: str) -> dict[str, float]:
        model, optimizer = setups[variant]
        tracker = trackers.get(variant)
        timer = timers.get(variant)
        before = dict(timer.per_hook) if timer is not None else {}
        inside_before = timer.seconds if timer is not None else 0.0
        if sync is not None:
            sync()
        start = time.perf_counter()
        for _ in range(steps):
            inputs, target = batches[counters[variant] % n_batches]
            counters[variant] += 1
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), target)
            loss.backward()
            optimizer.step()
            if tracker is not None:
                tracker.on_step_end()
        if tracker is not None:
            tracker.on_epoch_end()
        if sync is not None:
            sync()
        seconds = time.perf_counter() - start
        after = timer.per_hook if timer is not None else {}
        inside = (timer.seconds if timer is not None else 0.0) - inside_before

        def spent(hook: str) -> float:
            return after.get(hook, 0.0) - before.get(hook, 0.0)

        return {
            "seconds": seconds,
            "ms_per_step": 1e3 * seconds / steps,
            "step_end_seconds": spent("on_step_end") + spent("_on_optimizer_step"),
            "epoch_end_seconds": spent("on_epoch_end"),
            "tracker_ms_per_step": 1e3 * inside / steps,
        }

    out = []
    for round_ in range(repeats + 1):
        order = rotated(variants, round_)
        for position, variant in enumerate(order):
            gc.collect()
            timing = block(variant)
            if round_ == 0:
                continue  # warm-up: the first snapshots allocate the statistics
            out.append(
                {
                    "optimizer": opt_name,
                    "variant": variant,
                    "round": round_,
                    "position": position,
                    **columns,
                    **timing,
                }
            )
    for variant, tracker in trackers.items():
        tracker.on_train_end()
        if not np.all(np.isfinite(tracker.raw_importances_)):
            raise RuntimeError(f"{part} {variant}: non-finite importances")
    return out


def summarise_step_blocks(
    blocks: pd.DataFrame, variants: Iterable[str] | None = None
) -> pd.DataFrame:
    """Per optimizer and variant: step time and the tracker's extra time, paired by round.

    ``extra_ms`` is the median [quartiles] over the rounds of (the variant's
    time per step - the plain block's of the same round), ``extra_pct`` the
    same difference as a percentage of the plain step; ``inside_ms`` is the
    time measured inside the tracker's hooks per step (median over rounds).

    Parameters
    ----------
    blocks : DataFrame
        The rows of :func:`~benchmarks.cost.embedding_step.run_embedding_step`
        or :func:`~benchmarks.cost.mlp_step.run_mlp_step`.
    variants : iterable of str, optional
        The order of the variants in the result (default: that of
        ``EMBEDDING_STEP_VARIANTS``, then of ``MLP_STEP_VARIANTS``); variants
        of ``blocks`` not named follow in the order they first appear.

    Examples
    --------
    >>> from benchmarks.cost.mlp_step import MLP_STEP_VARIANTS, run_mlp_step
    >>> blocks = run_mlp_step(n_features=20, hidden=(8,), steps=4, repeats=2)  # doctest: +SKIP
    >>> summarise_step_blocks(blocks, MLP_STEP_VARIANTS)[["variant", "extra_ms"]]  # doctest: +SKIP
    """
    if blocks.empty:
        return pd.DataFrame()
    if variants is None:  # imported here: both parts import this module
        from benchmarks.cost.embedding_step import EMBEDDING_STEP_VARIANTS
        from benchmarks.cost.mlp_step import MLP_STEP_VARIANTS

        variants = (*EMBEDDING_STEP_VARIANTS, *MLP_STEP_VARIANTS)
    order = list(dict.fromkeys(variants))
    out = []
    for opt_name, group in blocks.groupby("optimizer", sort=False):
        wide = group.pivot(index="round", columns="variant", values="ms_per_step")
        inside = group.pivot(index="round", columns="variant", values="tracker_ms_per_step")
        epoch_end = group.pivot(index="round", columns="variant", values="epoch_end_seconds")
        plain = wide["plain"]
        present = list(dict.fromkeys(group["variant"]))
        ordered = [v for v in order if v in present] + [v for v in present if v not in order]
        for variant in ordered:
            step = quartiles(wide[variant])
            extra = quartiles(wide[variant] - plain)
            pct = quartiles(100.0 * (wide[variant] - plain) / plain)
            out.append(
                {
                    "optimizer": opt_name,
                    "variant": variant,
                    "rounds": len(wide),
                    "steps": int(group["steps"].iloc[0]),
                    "step_ms": step[0],
                    "step_ms_q1": step[1],
                    "step_ms_q3": step[2],
                    "extra_ms": extra[0],
                    "extra_ms_q1": extra[1],
                    "extra_ms_q3": extra[2],
                    "extra_pct": pct[0],
                    "extra_pct_q1": pct[1],
                    "extra_pct_q3": pct[2],
                    "inside_ms": float(inside[variant].median()),
                    "epoch_end_ms": 1e3 * float(epoch_end[variant].median()),
                }
            )
    return pd.DataFrame(out)


def step_table(
    summary: pd.DataFrame,
    labels: dict[str, str],
    key: str = "optimizer",
    digits: int = 1,
) -> pd.DataFrame:
    """One formatted row per (``key``, variant) of a :func:`summarise_step_blocks` summary.

    ``key`` is the column that names the run (the optimizer, or the network);
    times are in ms with ``digits`` decimals (one more for the differences). The
    plain rows show their step time only (the differences are against them).
    """
    s = summary
    tracked = s["variant"] != "plain"
    d, e = digits, digits + 1
    step = f"{{:.{d}f}} ms [{{:.{d}f}}, {{:.{d}f}}]"
    extra = f"{{:+.{e}f}} ms [{{:+.{e}f}}, {{:+.{e}f}}]"
    table = pd.DataFrame(
        {
            f"{key}: tracker": cells(s, lambda o, v: f"{o}: {labels.get(v, v)}", key, "variant"),
            "step (median [IQR])": cells(s, step.format, "step_ms", "step_ms_q1", "step_ms_q3"),
            "extra per step": cells(s, extra.format, "extra_ms", "extra_ms_q1", "extra_ms_q3"),
            "of the step": cells(s, fmt_pct, "extra_pct", "extra_pct_q1", "extra_pct_q3"),
            "inside tracker / step": cells(s, f"{{:.{e}f}} ms".format, "inside_ms"),
            "on_epoch_end": cells(s, "{:.1f} ms".format, "epoch_end_ms"),
        }
    )
    table.loc[~tracked.to_numpy(), table.columns[2:]] = ""
    return table


def step_markdown(summary: pd.DataFrame, labels: dict[str, str], heading: str, text: str) -> str:
    """A step part's Markdown: heading, description, :data:`STEP_COLUMNS_NOTE` and its table."""
    return "\n".join(
        [heading, "", text + STEP_COLUMNS_NOTE, "", markdown_table(step_table(summary, labels))]
    )


def run_step_blocks(
    part: str,
    *,
    build_model: Callable[[], Any],
    build_tracker: Callable[..., Any],
    batches: Sequence[tuple[Any, Any]],
    loss_fn: Callable[[Any, Any], Any],
    optimizers: Sequence[str],
    variants: Sequence[str],
    options: dict[str, dict[str, Any] | None],
    steps: int,
    repeats: int,
    columns: dict[str, Any],
    device: str,
    seed: int,
    progress: Callable[[str], None] | None,
) -> pd.DataFrame:
    """:func:`paired_rounds` once per optimizer, each variant on its own model of the same seed.

    ``build_model()`` makes a model (moved to ``device`` here), one per variant;
    ``build_tracker(model, **options[variant])`` one variant's tracker.
    Returns the blocks of every optimizer, with a ``device`` column.
    """
    import torch

    sync = device_sync(device)
    out = []
    for opt_name in optimizers:
        start = time.perf_counter()
        setups = {}
        for variant in variants:
            torch.manual_seed(seed)  # every variant's model starts from the same weights
            model = build_model().to(device)
            setups[variant] = (model, step_optimizer(opt_name, model))

        def build(variant: str, setups: dict[str, Any] = setups, **kwargs: Any) -> Any:
            return build_tracker(setups[variant][0], **kwargs)

        trackers, timers = step_trackers(variants, options, build, sync)
        rows = paired_rounds(
            opt_name,
            setups,
            batches,
            loss_fn,
            trackers,
            timers,
            variants,
            steps,
            repeats,
            sync,
            columns,
            part=part,
        )
        out += [{**row, "device": str(device)} for row in rows]
        if progress is not None:
            progress(f"{part} {opt_name}: {time.perf_counter() - start:.0f} s")
    return pd.DataFrame(out)
