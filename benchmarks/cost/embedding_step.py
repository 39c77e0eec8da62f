"""``embedding_step``: the training step on a large embedding table, without and with trackers.

``nn.Embedding(50000, 256)`` -> mean -> ``Linear`` (Adam and SGD, dense
gradients), timed in paired, interleaved blocks of steps
(:mod:`benchmarks.cost.step_blocks`) without a tracker and with each variant
of :data:`EMBEDDING_STEP_VARIANTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from benchmarks.cost.models import _MeanEmbedding
from benchmarks.cost.step_blocks import (
    STEP_OPTIMIZERS,
    check_step_options,
    run_step_blocks,
    step_markdown,
    summarise_step_blocks,
)

EMBEDDING_STEP_VARIANTS: dict[str, dict[str, Any] | None] = {
    "plain": None,
    "viann_epoch": {"scoring": "viann"},
    "viann_step": {"scoring": "viann", "update_every": 1},
    "descent_taylor": {"scoring": "descent_taylor"},
    "taylor": {"scoring": "taylor"},
    "taylor_every_step": {"scoring": "taylor", "gradient_every": 1},
    "steady_taylor": {"scoring": "steady_taylor"},
}
"""Tracker keyword arguments of each variant (``None``: no tracker)."""
EMBEDDING_STEP_LABELS = {
    "plain": "no tracker",
    "viann_epoch": "viann, per epoch",
    "viann_step": "viann, update_every=1",
    "descent_taylor": "descent_taylor (gradient_every=4)",
    "taylor": "taylor (gradient_every=4)",
    "taylor_every_step": "taylor, gradient_every=1",
    "steady_taylor": "steady_taylor (gradient_every=4)",
}
EMBEDDING_STEP_OPTIMIZERS = STEP_OPTIMIZERS


def run_embedding_step(
    *,
    vocab: int = 50_000,
    dim: int = 256,
    n_classes: int = 2,
    batch_size: int = 64,
    seq_len: int = 32,
    steps: int = 20,
    repeats: int = 7,
    optimizers: Sequence[str] = EMBEDDING_STEP_OPTIMIZERS,
    variants: Sequence[str] = tuple(EMBEDDING_STEP_VARIANTS),
    device: str = "cpu",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Training step time on an embedding table without a tracker and with each variant.

    The model is ``nn.Embedding(vocab, dim)`` -> mean over the sequence ->
    ``nn.Linear(dim, n_classes)`` (cross-entropy), trained on batches of
    ``batch_size`` x ``seq_len`` random token ids. Per optimizer name, every
    variant trains its own copy of the model (the same initial weights), so
    the plain blocks run with no tracker and no hook. A block is one "epoch" of
    ``steps`` optimizer steps followed by ``on_epoch_end()`` (the per-epoch
    snapshot), timed as a whole; a round runs one block per variant, in an
    order rotated from round to round, so that the machine's drift falls on
    every variant alike. One warm-up round (the first snapshots allocate the
    statistics) is not recorded.

    Parameters
    ----------
    vocab, dim, n_classes : int
        The table's rows and width, and the classes of the head.
    batch_size, seq_len : int
        Token ids per batch.
    steps : int
        Optimizer steps per block (a multiple of 4, so that every block of
        ``taylor`` reads the same number of gradients).
    repeats : int
        Recorded rounds.
    optimizers : sequence of str
        ``"adam"`` (lr 1e-3) and/or ``"sgd"`` (lr 0.1, no momentum).
    variants : sequence of str
        Keys of :data:`EMBEDDING_STEP_VARIANTS`; ``"plain"`` is needed for the
        paired differences.
    device : str
        Torch device; on CUDA the clock is read after ``torch.cuda.synchronize()``.

    Returns
    -------
    DataFrame
        One row per (optimizer, round, variant) block: its seconds, seconds
        per step, and the seconds inside the tracker's hooks (``on_step_end``,
        ``on_epoch_end``) measured around them.
    """
    import torch
    from torch import nn

    from neural_feature_importance.torch import EmbeddingVarianceImportanceTorch

    check_step_options("embedding_step", variants, EMBEDDING_STEP_VARIANTS, steps)
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, vocab, (16, batch_size, seq_len), generator=generator)
    # A learnable label: whether most of the document's tokens are in the lower half.
    labels = ((tokens < vocab // 2).float().mean(dim=2) > 0.5).long() % n_classes
    tokens, labels = tokens.to(device), labels.to(device)
    return run_step_blocks(
        "embedding_step",
        build_model=lambda: _MeanEmbedding.build(vocab, dim, n_classes),
        build_tracker=lambda model, **options: EmbeddingVarianceImportanceTorch(
            model, "embedding", **options
        ),
        batches=list(zip(tokens, labels, strict=True)),
        loss_fn=nn.functional.cross_entropy,
        optimizers=optimizers,
        variants=variants,
        options=EMBEDDING_STEP_VARIANTS,
        steps=steps,
        repeats=repeats,
        columns={
            "vocab": vocab,
            "dim": dim,
            "batch_size": int(tokens.shape[1]),
            "seq_len": int(tokens.shape[2]),
            "steps": steps,
        },
        device=device,
        seed=seed,
        progress=progress,
    )


def summarise_embedding_step(blocks: pd.DataFrame) -> pd.DataFrame:
    """:func:`summarise_step_blocks` in the order of :data:`EMBEDDING_STEP_VARIANTS`."""
    return summarise_step_blocks(blocks, EMBEDDING_STEP_VARIANTS)


def embedding_step_markdown(summary: pd.DataFrame, blocks: pd.DataFrame) -> str:
    """The table of the ``embedding_step`` part."""
    if summary.empty:
        return "Nothing ran."
    first = blocks.iloc[0]
    rounds = int(summary["rounds"].iloc[0])
    steps = int(summary["steps"].iloc[0])
    vocab, dim = int(first["vocab"]), int(first["dim"])
    return step_markdown(
        summary,
        EMBEDDING_STEP_LABELS,
        "### Per-step cost on a large embedding table",
        f"`nn.Embedding({vocab}, {dim})` ({vocab * dim * 4 / 1e6:.1f} MB in float32) -> mean "
        f"over the sequence -> `nn.Linear({dim}, 2)`, cross-entropy, batches "
        f"of {int(first['batch_size'])} x {int(first['seq_len'])} random token ids, on "
        f"{first['device']}; Adam (lr 1e-3) and plain SGD (lr 0.1), each its own model. "
        "The embedding's gradient is dense (`sparse=False`, the default), so every step "
        "updates the whole table. The trackers (`EmbeddingVarianceImportanceTorch`, float64 "
        "statistics) each follow their own copy of the model (the same initial weights). A block "
        f"= {steps} optimizer steps then `on_epoch_end()` (an epoch of {steps} steps: the "
        "per-epoch snapshot's cost per step shrinks as epochs get longer), timed as a whole; "
        f"{rounds} rounds of one block per tracker, in an order rotated from round to round, "
        "after a warm-up round. ",
    )
