"""``torch_step``: what the gradient modes cost per training step, on four PyTorch networks.

The gradient modes ``descent_taylor`` (the recommended mode), ``taylor`` and
``steady_taylor`` against no tracker, in paired, interleaved blocks of steps
(:mod:`benchmarks.cost.step_blocks`), on

- ``mlp``: the planted-truth benchmark's MLP (500 inputs, 64-64);
- ``mlp_1m``: an MLP of about a million weights (1,000 inputs, 768-256);
- ``conv2d``: the small image network of the overhead part (28 x 28, two
  convolutions), tracked at its first convolution;
- ``embedding``: a 50,000 x 256 embedding table (12.8 million weights).

Each network's step is timed with Adam on the CPU by default, and on a GPU
with ``--device cuda`` (the clock read after ``torch.cuda.synchronize()``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from benchmarks.cost.embedding_step import run_embedding_step
from benchmarks.cost.mlp_step import run_mlp_step
from benchmarks.cost.models import _torch_conv
from benchmarks.cost.step_blocks import run_step_blocks, step_table, summarise_step_blocks
from benchmarks.cost.tables import cells, markdown_table
from neural_feature_importance.core.modes import RECOMMENDED_MODE

TORCH_STEP_VARIANTS: dict[str, dict[str, Any] | None] = {
    "plain": None,
    "descent_taylor": {"scoring": "descent_taylor"},
    "taylor": {"scoring": "taylor"},
    "steady_taylor": {"scoring": "steady_taylor"},
}
"""Tracker keyword arguments of each variant (``None``: no tracker)."""

TORCH_STEP_MODELS = ("mlp", "mlp_1m", "conv2d", "embedding")

TORCH_STEP_GOALS = {"mlp": 1.0, "conv2d": 0.5}
"""Most time inside the recommended mode's hooks, in % of the plain step, per network."""

_DESCRIPTIONS = {
    "mlp": "`Linear(500, 64)` -> 64 -> 1, batches of 32 (the planted-truth MLP, 36,000 weights)",
    "mlp_1m": "`Linear(1000, 768)` -> 256 -> 1, batches of 32 (965,000 weights)",
    "conv2d": "`Conv2d(1, 16, 3)` -> pool -> `Conv2d(16, 32, 3)` -> pool -> `Linear`, "
    "batches of 64 images 28 x 28 (20,000 weights; the first convolution is tracked)",
    "embedding": "`nn.Embedding(50000, 256)` -> mean -> `Linear(256, 2)`, batches of 64 x 32 "
    "token ids (12.8 million weights, dense gradient)",
}


def _run_conv(
    *,
    steps: int,
    repeats: int,
    variants: Sequence[str],
    device: str,
    seed: int,
    progress: Callable[[str], None] | None,
) -> pd.DataFrame:
    import torch
    from torch import nn

    from neural_feature_importance.torch import ConvVarianceImportanceTorch

    generator = torch.Generator().manual_seed(seed)
    images = torch.randn((16, 64, 1, 28, 28), generator=generator)
    # A learnable label: whether the image's top half is brighter than 0 (class 5 or 0).
    labels = (images[:, :, 0, :14].mean(dim=(2, 3)) > 0).long() * 5
    return run_step_blocks(
        "torch_step conv2d",
        build_model=_torch_conv,
        build_tracker=lambda model, **options: ConvVarianceImportanceTorch(
            model, layer="0", **options
        ),
        batches=list(zip(images.to(device), labels.to(device), strict=True)),
        loss_fn=nn.functional.cross_entropy,
        optimizers=("adam",),
        variants=variants,
        options=TORCH_STEP_VARIANTS,
        steps=steps,
        repeats=repeats,
        columns={"steps": steps},
        device=device,
        seed=seed,
        progress=progress,
    )


def run_torch_step(
    *,
    models: Sequence[str] = TORCH_STEP_MODELS,
    steps: int = 200,
    conv_steps: int = 40,
    embedding_steps: int = 20,
    repeats: int = 9,
    variants: Sequence[str] = tuple(TORCH_STEP_VARIANTS),
    quick: bool = False,
    device: str = "cpu",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Blocks of training steps of each network, with no tracker and with each gradient mode.

    Parameters
    ----------
    models : sequence of str
        Names from :data:`TORCH_STEP_MODELS`.
    steps : int
        Optimizer steps per block (a multiple of 4), for every network but the
        embedding table.
    conv_steps, embedding_steps : int
        Steps per block of the image network and of the embedding table (their
        steps take about 40 and 100 ms on a CPU core).
    repeats : int
        Recorded rounds per network.
    variants : sequence of str
        Keys of :data:`TORCH_STEP_VARIANTS` (``"plain"`` included).
    quick : bool
        Tiny networks (a smoke run): 50 inputs, a 2,000-row table.
    device : str
        Torch device (``"cuda"`` on a GPU machine).
    seed : int
        Seed of the data and of the initial weights.
    progress : callable, optional
        Called with one line per network.

    Returns
    -------
    DataFrame
        The rows of :func:`~benchmarks.cost.step_blocks.run_step_blocks`, with a
        ``model`` column.
    """
    unknown = sorted(set(models) - set(TORCH_STEP_MODELS))
    if unknown:
        raise ValueError(f"torch_step: unknown model(s) {unknown}; use {TORCH_STEP_MODELS}")
    common = {"repeats": repeats, "device": device, "seed": seed, "progress": progress}
    frames = []
    for name in models:
        if name == "mlp":
            blocks = run_mlp_step(
                n_features=50 if quick else 500,
                steps=steps,
                optimizers=("adam",),
                variants=variants,
                **common,
            )
        elif name == "mlp_1m":
            blocks = run_mlp_step(
                n_features=60 if quick else 1000,
                hidden=(16, 8) if quick else (768, 256),
                steps=steps,
                optimizers=("adam",),
                variants=variants,
                **common,
            )
        elif name == "conv2d":
            blocks = _run_conv(steps=conv_steps, variants=variants, **common)
        else:
            blocks = run_embedding_step(
                vocab=2_000 if quick else 50_000,
                dim=32 if quick else 256,
                steps=embedding_steps,
                optimizers=("adam",),
                variants=variants,
                **common,
            )
        frames.append(blocks.assign(model=name)[["model", *blocks.columns]])
    return pd.concat(frames, ignore_index=True)


def summarise_torch_step(blocks: pd.DataFrame) -> pd.DataFrame:
    """Per network and variant: :func:`summarise_step_blocks`, plus the hooks' share of the step.

    ``inside_pct`` = the median time inside the tracker's hooks per step, in %
    of the median plain step of the same network.
    """
    out = []
    for name, group in blocks.groupby("model", sort=False):
        summary = summarise_step_blocks(group, TORCH_STEP_VARIANTS)
        plain = float(summary.loc[summary["variant"] == "plain", "step_ms"].iloc[0])
        summary.insert(0, "model", name)
        summary["inside_pct"] = 100.0 * summary["inside_ms"] / plain
        out.append(summary)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def torch_step_markdown(summary: pd.DataFrame, blocks: pd.DataFrame) -> str:
    """The table of the ``torch_step`` part, with the goals of the recommended mode."""
    if summary.empty:
        return "Nothing ran."
    tracked = summary["variant"] != "plain"

    def verdict(model: str, variant: str, inside_pct: float) -> str:
        goal = TORCH_STEP_GOALS.get(model)
        if variant != RECOMMENDED_MODE or goal is None:
            return ""
        return f"{'meets' if inside_pct <= goal else 'misses'} {goal:g} %"

    table = step_table(summary, {"plain": "no tracker"}, key="model", digits=2)
    table = table.drop(columns="on_epoch_end").rename(
        columns={"model: tracker": "network: tracker"}
    )
    table["inside, of the step"] = cells(summary, "{:.2f} %".format, "inside_pct")
    table["goal"] = cells(summary, verdict, "model", "variant", "inside_pct")
    table.loc[~tracked.to_numpy(), table.columns[-2:]] = ""
    first = blocks.iloc[0]
    rounds = int(summary["rounds"].iloc[0])
    steps_text = ", ".join(
        f"{int(group['steps'].iloc[0])} ({name})"
        for name, group in summary.groupby("model", sort=False)
    )
    networks = "\n".join(
        f"- {name}: {_DESCRIPTIONS[name]}" for name in dict.fromkeys(summary["model"])
    )
    return "\n".join(
        [
            "### Per-step cost of the gradient modes on four PyTorch networks",
            "",
            f"Adam (lr 1e-3), on {first['device']}, float64 statistics, the default "
            "`gradient_every=4`. Each variant trains its own copy of the network (the same "
            "initial weights), so the `no tracker` blocks run with no tracker and no hook; a "
            f"block = {steps_text} optimizer steps then "
            f"`on_epoch_end()`, timed as a whole; {rounds} rounds of one block per variant, "
            "in an order rotated from round to round, after a warm-up round.",
            "",
            networks,
            "",
            "`extra per step` = median [IQR] over the rounds of (the variant's block - the "
            "plain block of the same round) / steps; `of the step` = the same in % of the "
            "plain step; `inside tracker / step` = the time measured inside the tracker's hooks "
            "(`on_step_end`, `on_epoch_end` and the optimizer step hook that counts the "
            "layer's updates) per step, median over the rounds; `inside, of the step` = that "
            "in % of the median plain step; `goal` = the recommended mode's target on that "
            "share.",
            "",
            markdown_table(table),
        ]
    )
