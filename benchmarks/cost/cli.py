"""Cost and scale: what VIANN costs during training, and how its cost grows with data.

The command line, ``python -m benchmarks.cost [--quick] [--parts ...]``: the
sizes of the full and the quick run, and the files each part writes (see the
package's docstring, :mod:`benchmarks.cost`).
"""

from __future__ import annotations

import argparse
import functools
import logging
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks import report
from benchmarks.cost.default_parts import markdown, plot
from benchmarks.cost.embedding_step import (
    embedding_step_markdown,
    run_embedding_step,
    summarise_embedding_step,
)
from benchmarks.cost.keras_gradients import (
    BACKEND_MODULES,
    KERAS_GRADIENT_BACKENDS,
    KERAS_GRADIENT_MODELS,
    KERAS_GRADIENT_ROWS,
    run_keras_gradients,
)
from benchmarks.cost.keras_gradients_report import (
    keras_gradients_markdown,
    summarise_keras_gradients,
)
from benchmarks.cost.memory import MEMORY_INPUTS, MEMORY_LAYERS, run_memory, run_memory_modes
from benchmarks.cost.mlp_step import mlp_step_markdown, run_mlp_step, summarise_mlp_step
from benchmarks.cost.models import OVERHEAD_MODELS
from benchmarks.cost.overhead import OVERHEAD_ROWS, run_overhead
from benchmarks.cost.scale import FEATURE_SIZES, ROW_SIZES, run_scale
from benchmarks.cost.torch_step import (
    TORCH_STEP_MODELS,
    run_torch_step,
    summarise_torch_step,
    torch_step_markdown,
)
from benchmarks.training import limit_threads

PARTS = ("overhead", "scale", "memory")
# Parts run only when named in --parts (not by default): keras_gradients runs one
# subprocess per Keras backend, embedding_step trains a 12.8-million-weight table,
# mlp_step times the planted-truth MLP's step with each scoring mode, torch_step the
# gradient modes' step on four networks.
OPTIONAL_PARTS = ("keras_gradients", "embedding_step", "mlp_step", "torch_step")

FULL: dict[str, Any] = {
    "overhead_rows": OVERHEAD_ROWS,
    "overhead_epochs": 3,
    "feature_sizes": FEATURE_SIZES,
    "row_sizes": ROW_SIZES,
    "scale_epochs": 3,
    "feature_rows": 5_000,
    "feature_explain": 1_000,
    "row_features": 50,
    "memory_inputs": MEMORY_INPUTS,
    "memory_layers": MEMORY_LAYERS,
    "memory_epochs": 3,
    "method_budget": 90.0,
    "keras_gradient_rows": KERAS_GRADIENT_ROWS,
    "keras_gradient_epochs": 3,
    "keras_gradient_repeats": 6,
    "keras_gradient_models": KERAS_GRADIENT_MODELS,
    "keras_gradient_step_blocks": 20,
    "embedding_step": {"vocab": 50_000, "dim": 256, "steps": 20, "repeats": 7},
    "mlp_step": {"n_features": 500, "steps": 200, "repeats": 9},
    "torch_step": {"steps": 200, "conv_steps": 40, "embedding_steps": 20, "repeats": 9},
}
QUICK: dict[str, Any] = {
    "overhead_rows": {"mlp": 600, "conv2d": 200, "embedding": 200},
    "overhead_epochs": 2,
    "feature_sizes": (10, 40),
    "row_sizes": (500, 1_000),
    "scale_epochs": 2,
    "feature_rows": 400,
    "feature_explain": 50,
    "row_features": 10,
    "memory_inputs": (10, 100),
    "memory_layers": {"dense": ("dense", (64, 100)), "embedding": ("embedding", (1_000, 32))},
    "memory_epochs": 2,
    "method_budget": 30.0,
    "keras_gradient_rows": {"mlp": 256, "conv2d": 128, "embedding": 128},
    "keras_gradient_epochs": 1,
    "keras_gradient_repeats": 2,
    "keras_gradient_models": ("mlp",),
    "keras_gradient_step_blocks": 4,
    "embedding_step": {"vocab": 2_000, "dim": 32, "steps": 8, "repeats": 2},
    "mlp_step": {"n_features": 50, "steps": 8, "repeats": 2},
    "torch_step": {
        "steps": 8,
        "conv_steps": 4,
        "embedding_steps": 4,
        "repeats": 2,
        "quick": True,
    },
}
# The paired step-block parts: how each runs, summarises and writes its table.
STEP_PARTS: dict[
    str,
    tuple[
        Callable[..., pd.DataFrame],
        Callable[[pd.DataFrame], pd.DataFrame],
        Callable[[pd.DataFrame, pd.DataFrame], str],
    ],
] = {
    "embedding_step": (run_embedding_step, summarise_embedding_step, embedding_step_markdown),
    "mlp_step": (run_mlp_step, summarise_mlp_step, mlp_step_markdown),
    "torch_step": (run_torch_step, summarise_torch_step, torch_step_markdown),
}


def _names(option: str | None, default: Sequence[str] = ()) -> list[str]:
    """The names of a comma list option (``default`` when it is not given)."""
    if option is None:
        return list(default)
    return [name.strip() for name in option.split(",") if name.strip()]


def _publish(out: Path, section: str, body: str, update: bool, wrote: str) -> None:
    """Write ``body`` to ``out/{section}.md``, print it and, if ``update``, into RESULTS.md."""
    (out / f"{section}.md").write_text(body + "\n", encoding="utf-8")
    print(body)
    print(f"\nwrote {out}/{wrote}")
    if update:
        report.update_section(section, body)
        print(f"updated {report.RESULTS_MD} ({section})")


def _step_part(
    part: str,
    run_part: Callable[[], pd.DataFrame],
    summarise_part: Callable[[pd.DataFrame], pd.DataFrame],
    part_markdown: Callable[[pd.DataFrame, pd.DataFrame], str],
    *,
    command: str,
    device: str,
    out: Path,
    update: bool,
) -> dict[str, pd.DataFrame]:
    """Run one paired step-block part and write its files (and RESULTS.md section).

    Writes ``cost_{part}.csv`` (one row per block), ``cost_{part}_summary.csv``
    and ``cost_{part}.md`` to ``out``, prints the Markdown and, when
    ``update``, replaces the ``cost_{part}`` section of ``RESULTS.md``.
    Returns ``{part: blocks, part + "_summary": summary}``.
    """
    start = time.perf_counter()
    blocks = run_part()
    summary = summarise_part(blocks)
    blocks.to_csv(out / f"cost_{part}.csv", index=False)
    summary.to_csv(out / f"cost_{part}_summary.csv", index=False)
    minutes = (time.perf_counter() - start) / 60
    machine = report.machine_info(None if device == "cpu" else device)
    body = f"Command: `{command}` ({minutes:.1f} min).\n\n{machine}\n\n" + part_markdown(
        summary, blocks
    )
    _publish(out, f"cost_{part}", body, update, f"cost_{part}.md, .csv and _summary.csv")
    return {part: blocks, f"{part}_summary": summary}


def _keras_gradients_part(
    args: argparse.Namespace,
    settings: dict[str, Any],
    backends: list[str],
    *,
    command: str,
    out: Path,
    update: bool,
    progress: Callable[[str], None],
) -> dict[str, pd.DataFrame]:
    """Run ``keras_gradients`` (one process per backend) and write its files."""
    start = time.perf_counter()
    fits = run_keras_gradients(
        backends,
        _names(args.models, settings["keras_gradient_models"]),
        rows=settings["keras_gradient_rows"],
        epochs=settings["keras_gradient_epochs"],
        repeats=args.repeats or settings["keras_gradient_repeats"],
        step_blocks=settings["keras_gradient_step_blocks"],
        threads=args.threads,
        progress=progress,
    )
    fits.to_csv(out / "cost_keras_gradients.csv", index=False)
    summary = summarise_keras_gradients(fits)
    summary.to_csv(out / "cost_keras_gradients_summary.csv", index=False)
    minutes = (time.perf_counter() - start) / 60
    # One process per backend: the parent's KERAS_BACKEND says nothing here.
    machine = report.machine_info().split(". The machine was shared")[0]
    machine = re.sub(r" \(backend \w+\)", "", machine)
    versions = ", ".join(f"{m} {report._version(m)}" for m in ("jax", "jaxlib"))
    body = (
        f"Command: `{command}` ({minutes:.1f} min).\n\n{machine}; {versions}; backends "
        f"{', '.join(backends)}, each in its own process ({args.threads} thread(s): "
        "OMP/MKL/OpenBLAS and torch; TensorFlow's intra- and inter-op pools; XLA's CPU "
        "Eigen pool off for JAX). The machine was shared with other jobs while this ran: "
        "the runs are paired and interleaved so that its load falls on both sides of each "
        "difference.\n\n" + keras_gradients_markdown(summary, fits)
    )
    _publish(
        out, "cost_keras_gradients", body, update, "cost_keras_gradients.md, .csv and _summary.csv"
    )
    return {"keras_gradients": fits, "keras_gradients_summary": summary}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cost", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny sizes")
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help="comma list of " + ", ".join(PARTS + OPTIONAL_PARTS) + f" (default {','.join(PARTS)})",
    )
    parser.add_argument(
        "--models",
        help=f"models of the overhead parts (default {','.join(OVERHEAD_MODELS)}; "
        f"keras_gradients: {','.join(KERAS_GRADIENT_MODELS)}; "
        f"torch_step: {','.join(TORCH_STEP_MODELS)})",
    )
    parser.add_argument(
        "--backends",
        default=",".join(KERAS_GRADIENT_BACKENDS),
        help="Keras backends of the keras_gradients part (tensorflow, jax, torch)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help="paired rounds of keras_gradients (default 6), embedding_step and mlp_step "
        "(default 7)",
    )
    parser.add_argument("--frameworks", default="torch,keras")
    parser.add_argument("--max-rows", type=int, help="largest row count of the scale sweep")
    parser.add_argument("--max-features", type=int, help="largest feature count of the sweep")
    parser.add_argument("--method-budget", type=float, help="seconds per method call, projected")
    parser.add_argument(
        "--device",
        default="cpu",
        help="torch device of the overhead, embedding_step, mlp_step and torch_step parts",
    )
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results)")
    parser.add_argument("--no-update", action="store_true", help="do not edit RESULTS.md")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (default 1)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Command line: ``python -m benchmarks.cost [--quick] [--parts ...]``."""
    parser = _parser()
    args = parser.parse_args(argv)

    parts = _names(args.parts)
    unknown = sorted(set(parts) - set(PARTS) - set(OPTIONAL_PARTS))
    if unknown:
        parser.error(f"unknown part(s) {unknown}; use {', '.join(PARTS + OPTIONAL_PARTS)}")
    backends = _names(args.backends)
    if "keras_gradients" in parts:
        bad = sorted(set(backends) - set(BACKEND_MODULES))
        if bad:
            parser.error(f"unknown Keras backend(s) {bad}; use {', '.join(BACKEND_MODULES)}")
    if args.repeats is not None and args.repeats < 2:
        parser.error("--repeats must be at least 2 (the spread needs rounds)")
    limit_threads(args.threads)
    if args.device != "cpu":
        import torch

        if args.device.startswith("cuda") and not torch.cuda.is_available():
            parser.error(f"--device {args.device}: torch sees no CUDA device; use --device cpu.")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = dict(QUICK if args.quick else FULL)
    if args.max_rows:
        settings["row_sizes"] = tuple(s for s in settings["row_sizes"] if s <= args.max_rows)
    if args.max_features:
        settings["feature_sizes"] = tuple(
            s for s in settings["feature_sizes"] if s <= args.max_features
        )
    if args.method_budget:
        settings["method_budget"] = args.method_budget
    out = args.out
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="viann-cost-")) if args.quick else report.RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)

    def say(line: str) -> None:
        print(line, flush=True)

    start = time.perf_counter()
    results: dict[str, pd.DataFrame] = {}
    if "overhead" in parts:
        results["overhead"] = run_overhead(
            _names(args.models, OVERHEAD_MODELS),
            _names(args.frameworks),
            rows=settings["overhead_rows"],
            epochs=settings["overhead_epochs"],
            device=args.device,
            progress=say,
        )
    if "scale" in parts:
        results["scale"] = run_scale(
            feature_sizes=settings["feature_sizes"],
            row_sizes=settings["row_sizes"],
            epochs=settings["scale_epochs"],
            feature_rows=settings["feature_rows"],
            feature_explain=settings["feature_explain"],
            row_features=settings["row_features"],
            method_budget=settings["method_budget"],
            progress=say,
        )
    if "memory" in parts:
        results["memory"] = run_memory(settings["memory_inputs"])
        results["memory_modes"] = run_memory_modes(
            settings["memory_layers"], epochs=settings["memory_epochs"], progress=say
        )
        say("memory: done")
    elapsed = time.perf_counter() - start
    command = (
        "python -m benchmarks.cost"
        + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    )
    update = not args.quick and not args.no_update
    update = update and out.resolve() == report.RESULTS_DIR.resolve()
    if "keras_gradients" in parts:
        results.update(
            _keras_gradients_part(
                args, settings, backends, command=command, out=out, update=update, progress=say
            )
        )
    for part, (run_part, summarise_part, part_markdown) in STEP_PARTS.items():
        if part not in parts:
            continue
        options = dict(settings[part])
        if args.repeats:
            options["repeats"] = args.repeats
        if part == "torch_step" and args.models:
            options["models"] = _names(args.models)
        results.update(
            _step_part(
                part,
                functools.partial(run_part, **options, device=args.device, progress=say),
                summarise_part,
                part_markdown,
                command=command,
                device=args.device,
                out=out,
                update=update,
            )
        )
    if not any(part in PARTS for part in parts):
        return results
    for name in (*PARTS, "memory_modes"):
        if name in results:
            results[name].to_csv(out / f"cost_{name}.csv", index=False)
    plots = plot(results.get("overhead"), results.get("scale"), results.get("memory"), out)
    text = markdown(
        results.get("overhead"),
        results.get("scale"),
        results.get("memory"),
        plots,
        memory_modes=results.get("memory_modes"),
    )
    device = None if args.device == "cpu" else args.device
    body = (
        f"Command: `{command}` ({elapsed / 60:.1f} min).\n\n{report.machine_info(device)}\n\n{text}"
    )
    _publish(out, "cost", body, update, f"cost_*.csv, cost.md and {len(plots)} plot(s)")
    return results
