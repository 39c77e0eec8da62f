"""``mlp_step``: the training step of the planted-truth MLP, without and with each tracker.

The accuracy benchmark's network (``torch_mlp``: 500 inputs -> 64 -> 64 -> 1,
MSE, Adam and SGD) timed in paired, interleaved blocks of steps
(:mod:`benchmarks.cost.step_blocks`), each ``VarianceImportanceTorch`` on the
first ``Linear`` running alone in its blocks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from benchmarks.cost.step_blocks import (
    STEP_OPTIMIZERS,
    check_step_options,
    run_step_blocks,
    step_markdown,
    summarise_step_blocks,
)
from benchmarks.training import torch_mlp

MLP_STEP_VARIANTS: dict[str, dict[str, Any] | None] = {
    "plain": None,
    "viann_epoch": {"scoring": "viann"},
    "descent_taylor": {"scoring": "descent_taylor"},
    "taylor": {"scoring": "taylor"},
    "steady_taylor": {"scoring": "steady_taylor"},
    "taylor_every_step": {"scoring": "taylor", "gradient_every": 1},
    "steady_taylor_every_step": {"scoring": "steady_taylor", "gradient_every": 1},
}
"""Tracker keyword arguments of each ``mlp_step`` variant (``None``: no tracker)."""
MLP_STEP_LABELS = {
    "plain": "no tracker",
    "viann_epoch": "viann, per epoch",
    "descent_taylor": "descent_taylor (gradient_every=4)",
    "taylor": "taylor (gradient_every=4)",
    "steady_taylor": "steady_taylor (gradient_every=4)",
    "taylor_every_step": "taylor, gradient_every=1",
    "steady_taylor_every_step": "steady_taylor, gradient_every=1",
}
MLP_STEP_OPTIMIZERS = STEP_OPTIMIZERS


def run_mlp_step(
    *,
    n_features: int = 500,
    hidden: Sequence[int] = (64, 64),
    batch_size: int = 32,
    steps: int = 40,
    repeats: int = 7,
    optimizers: Sequence[str] = MLP_STEP_OPTIMIZERS,
    variants: Sequence[str] = tuple(MLP_STEP_VARIANTS),
    device: str = "cpu",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Training step time of the planted-truth benchmark's MLP without and with each tracker.

    The model is :func:`benchmarks.training.torch_mlp` (``Linear -> ReLU``
    blocks of widths ``hidden``, then ``Linear(., 1)``), trained with the
    mean squared error on 16 fixed batches of ``batch_size`` standard-normal
    rows (the target: a fixed linear combination of the first 10 inputs
    plus noise). Per optimizer name, every variant trains its own copy of
    the model (the same initial weights) with its own tracker
    (``VarianceImportanceTorch`` on the first ``Linear``, layer ``"0"``), so
    the plain blocks run with no tracker and no hook, and no tracker's cost
    depends on another's. Blocks and rounds are those
    of :func:`~benchmarks.cost.embedding_step.run_embedding_step` (a block =
    ``steps`` optimizer steps then ``on_epoch_end()``; rounds rotated; a
    warm-up round not recorded).

    Parameters
    ----------
    n_features : int
        Inputs of the network (features of the tracked layer).
    hidden : sequence of int
        Widths of the hidden layers.
    batch_size : int
        Rows per batch.
    steps : int
        Optimizer steps per block: a positive multiple of 4, so that every
        block of a ``gradient_every=4`` tracker reads the same number of
        gradients.
    repeats : int
        Recorded rounds.
    optimizers : sequence of str
        ``"adam"`` (lr 1e-3) and/or ``"sgd"`` (lr 0.1, no momentum).
    variants : sequence of str
        Keys of :data:`MLP_STEP_VARIANTS`; ``"plain"`` is needed for the
        paired differences.
    device : str
        Torch device; on CUDA the clock is read after ``torch.cuda.synchronize()``.
    seed : int
        Seed of the data and of each model's initial weights.
    progress : callable, optional
        Called with one line per optimizer when its rounds are done.

    Returns
    -------
    DataFrame
        One row per (optimizer, round, variant) block, with ``n_features``,
        ``hidden`` (e.g. ``"64-64"``), ``batch_size``, ``steps``, its seconds,
        seconds per step, the seconds inside the tracker's hooks and ``device``.

    Raises
    ------
    ValueError
        For an unknown variant or optimizer, variants without ``"plain"``, or
        ``steps`` not a positive multiple of 4.

    Examples
    --------
    >>> blocks = run_mlp_step(n_features=20, hidden=(8,), steps=4, repeats=2)  # doctest: +SKIP
    >>> print(mlp_step_markdown(summarise_mlp_step(blocks), blocks))  # doctest: +SKIP
    """
    import torch
    from torch import nn

    from neural_feature_importance.torch import VarianceImportanceTorch

    check_step_options("mlp_step", variants, MLP_STEP_VARIANTS, steps)
    widths = tuple(int(units) for units in hidden)
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn((16, batch_size, n_features), generator=generator)
    informative = min(10, n_features)
    coefficients = torch.linspace(1.0, 0.1, informative)
    noise = torch.randn((16, batch_size), generator=generator)
    target = (inputs[..., :informative] @ coefficients + 0.1 * noise).unsqueeze(-1)
    return run_step_blocks(
        "mlp_step",
        build_model=lambda: torch_mlp(n_features, 1, widths),
        build_tracker=lambda model, **options: VarianceImportanceTorch(model, layer="0", **options),
        batches=list(zip(inputs.to(device), target.to(device), strict=True)),
        loss_fn=nn.functional.mse_loss,
        optimizers=optimizers,
        variants=variants,
        options=MLP_STEP_VARIANTS,
        steps=steps,
        repeats=repeats,
        columns={
            "n_features": n_features,
            "hidden": "-".join(str(units) for units in widths),
            "batch_size": batch_size,
            "steps": steps,
        },
        device=device,
        seed=seed,
        progress=progress,
    )


def summarise_mlp_step(blocks: pd.DataFrame) -> pd.DataFrame:
    """:func:`summarise_step_blocks` in the order of :data:`MLP_STEP_VARIANTS`."""
    return summarise_step_blocks(blocks, MLP_STEP_VARIANTS)


def mlp_step_markdown(summary: pd.DataFrame, blocks: pd.DataFrame) -> str:
    """The table of the ``mlp_step`` part."""
    if summary.empty:
        return "Nothing ran."
    first = blocks.iloc[0]
    rounds = int(summary["rounds"].iloc[0])
    steps = int(summary["steps"].iloc[0])
    n_features = int(first["n_features"])
    hidden = [int(units) for units in str(first["hidden"]).split("-") if units.strip()]
    widths = [n_features, *hidden, 1]
    layers = " -> ReLU -> ".join(f"Linear({a}, {b})" for a, b in itertools.pairwise(widths))
    return step_markdown(
        summary,
        MLP_STEP_LABELS,
        "### Per-step cost on the planted-truth MLP",
        f"`{layers}` (the accuracy benchmark's network, `torch_mlp`, hidden widths "
        f"{'-'.join(str(h) for h in hidden) or 'none'}), mean squared error on 16 fixed "
        f"batches of {int(first['batch_size'])} rows of {n_features} standard-normal inputs "
        "(target: a fixed linear combination of the first 10 inputs plus noise), on "
        f"{first['device']}; Adam (lr 1e-3) and plain SGD (lr 0.1), each its own model. The "
        'trackers (`VarianceImportanceTorch` on the first layer, `layer="0"`: '
        f"{n_features} x {widths[1]} weights, float64 statistics) each follow their own "
        "copy of the model (the same initial weights), so the plain blocks run with no "
        "tracker and no hook, and no tracker's cost depends on another's. A block = "
        f"{steps} optimizer steps then `on_epoch_end()`, timed as a whole; {rounds} rounds of "
        "one block per tracker, in an order rotated from round to round, after a warm-up "
        "round. ",
    )
