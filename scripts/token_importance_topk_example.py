"""Token importance (VIANN) of a text classifier: top-k tokens overall and per document.

Trains Embedding -> Conv1D -> GlobalMaxPooling -> Dense with
EmbeddingVarianceImportanceKeras (or EmbeddingVarianceImportanceTorch with
--framework torch), which scores every row of the embedding table, and shows
the most important tokens overall and in a few documents (padding, start and
unknown-word tokens filtered out).

Data: a generated corpus (default, offline) where a known set of sentiment
tokens decides the label among a large neutral vocabulary -- the script then
prints recall@k of those planted tokens, beside a frequency ranking and chance;
or, with --dataset imdb, the IMDB reviews from keras.datasets.imdb (downloaded
once; falls back to the generated corpus when offline).

    python scripts/token_importance_topk_example.py --framework torch
    python scripts/token_importance_topk_example.py --dataset imdb --epochs 3
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

from neural_feature_importance.datasets.text import load_imdb, make_sentiment_corpus
from neural_feature_importance.examples import markdown_table, write_csv, write_figures
from neural_feature_importance.examples.tokens import (
    TokenRun,
    planted_recall,
    rank_tokens,
    train_tokens,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--framework", choices=("keras", "torch"), default="keras")
    parser.add_argument("--dataset", choices=("synthetic", "imdb"), default="synthetic")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--top-k", type=int, default=20, help="tokens in the overall ranking")
    parser.add_argument("--documents", type=int, default=4, help="documents shown")
    parser.add_argument("--n-documents", type=int, default=2000, help="generated corpus size")
    parser.add_argument("--vocab-size", type=int, default=2000, help="generated corpus vocabulary")
    parser.add_argument("--num-words", type=int, default=10000, help="IMDB vocabulary")
    parser.add_argument("--maxlen", type=int, default=200, help="IMDB review length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a fast run for tests and CI: 1,000 generated documents (5,000 IMDB reviews)",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("results/tokens"))
    parser.add_argument("--show", action="store_true", help="also show the figures in a window")
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def load_data(args: argparse.Namespace) -> Any:
    if args.dataset == "imdb":
        try:
            return load_imdb(
                num_words=args.num_words,
                maxlen=args.maxlen,
                n_train=5000 if args.quick else None,
                n_test=2000 if args.quick else None,
                random_state=args.seed,
            )
        except RuntimeError as error:
            print(f"{error}\nfalling back to the generated corpus.\n")
    return make_sentiment_corpus(
        1000 if args.quick else args.n_documents,
        vocab_size=args.vocab_size,
        random_state=args.seed,
    )


def save_figures(
    run: TokenRun, prefix: str, output: Path, args: argparse.Namespace, recall: Any
) -> list[Path]:
    import matplotlib

    if not args.show:
        matplotlib.use("Agg")

    from neural_feature_importance.plotting import (
        plot_document_tokens,
        plot_importance_history,
        plot_recall_at_k,
        plot_top_tokens,
    )

    data, tracker = run.data, run.tracker
    scores = tracker.feature_importances_
    planted = data.planted_tokens
    name = f"{data.name} ({run.framework}, test accuracy {run.test_accuracy:.3f})"
    documents = data.x_test[: args.documents]
    probabilities = run.predict_proba(documents)
    labels = [
        f"{'positive' if y else 'negative'}, predicted {p:.2f}"
        for y, p in zip(data.y_test[: args.documents], probabilities, strict=True)
    ]
    figures = {
        "top_tokens": plot_top_tokens(
            scores,
            data.vocabulary,
            top_k=args.top_k,
            exclude=data.special_tokens,
            highlight=planted,
            title=f"Top {args.top_k} tokens by VIANN importance\n{name}",
        ),
        "documents": plot_document_tokens(
            documents,
            scores,
            data.vocabulary,
            top_k=6,
            exclude=data.special_tokens,
            labels=labels,
            highlight=planted,
            title=f"Most important tokens of {len(documents)} test documents: {name}",
        ),
    }
    if tracker.n_updates_ >= 3:
        figures["history"] = plot_importance_history(
            tracker.history_,
            data.vocabulary,
            top_k=8,
            exclude=data.special_tokens,
            highlight=planted,
            xlabel="epoch",
            title=f"Token importance during training\n{name}",
        )
    if recall is not None:
        curve = planted_recall(run, ks=np.arange(1, 4 * recall.n_relevant + 1))
        figures["recall"] = plot_recall_at_k(
            curve.ks,
            {
                "VIANN": curve.viann,
                "token frequency": curve.frequency,
                "random ranking": curve.random,
            },
            n_relevant=recall.n_relevant,
            title=f"Recall@k of the {recall.n_relevant} planted tokens\n{name}",
        )
    return write_figures(figures, output, prefix, show=args.show)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    epochs = args.epochs
    output: Path = args.output_dir
    output.mkdir(parents=True, exist_ok=True)

    data = load_data(args)
    prefix = f"{data.name}_{args.framework}"
    print(f"data: {data.source}; {len(data.y_train)} train / {len(data.y_test)} test documents")
    print(
        f"model: Embedding({data.vocab_size}, {args.embedding_dim}) -> Conv1D({args.filters}, 3) "
        f"-> GlobalMaxPooling -> Dense(1); {args.framework}, {epochs} epochs, Adam lr "
        f"{args.learning_rate}\n"
    )
    start = time.perf_counter()
    run = train_tokens(
        args.framework,
        data,
        embedding_dim=args.embedding_dim,
        n_filters=args.filters,
        epochs=epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        record_history=True,
        seed=args.seed,
    )
    print(f"test accuracy {run.test_accuracy:.3f} ({time.perf_counter() - start:.1f} s)\n")

    scores = run.tracker.feature_importances_
    planted = set() if data.planted_tokens is None else set(data.planted_tokens.tolist())
    top = rank_tokens(scores, data.special_tokens)[: args.top_k]
    top_rows = [
        {
            "rank": rank + 1,
            "token": int(t),
            "word": data.vocabulary[t],
            "importance": float(scores[t]),
            **({"planted": int(t) in planted} if planted else {}),
        }
        for rank, t in enumerate(top)
    ]
    print(f"top {args.top_k} tokens (special tokens filtered):")
    print(markdown_table(top_rows) + "\n")
    write_csv(top_rows, output / f"{prefix}_top_tokens.csv")

    document_rows = []
    for index, sequence in enumerate(data.x_test[: args.documents]):
        present = np.setdiff1d(np.unique(sequence), data.special_tokens)
        tokens = present[np.argsort(-scores[present], kind="stable")][:5]
        words = ", ".join(data.vocabulary[t] for t in tokens)
        label = "positive" if data.y_test[index] else "negative"
        print(f"document {index + 1} ({label}): {data.decode(sequence)[:90]}...")
        print(f"  top tokens: {words}")
        document_rows.append({"document": index + 1, "label": label, "top_tokens": words})
    write_csv(document_rows, output / f"{prefix}_documents.csv")

    recall = None
    report = [
        f"# Token importance: {data.name}, {args.framework}",
        "",
        "Command: `python scripts/token_importance_topk_example.py "
        + shlex.join(sys.argv[1:] if argv is None else argv)
        + "`",
        "",
        f"Data: {data.source}. Test accuracy {run.test_accuracy:.3f}.",
        "",
        markdown_table(top_rows),
    ]
    if data.planted_tokens is not None:
        recall = planted_recall(run)
        print(f"\nrecall@k of the {recall.n_relevant} planted sentiment tokens:")
        print(recall.to_text())
        write_csv(recall.rows(), output / f"{prefix}_recall.csv")
        report += [
            "",
            f"Recall@k of the {recall.n_relevant} planted sentiment tokens "
            f"(of {data.vocab_size - len(data.special_tokens)} candidate tokens):",
            "",
            markdown_table(recall.rows()),
        ]
    (output / f"{prefix}_tokens.md").write_text("\n".join(report) + "\n", encoding="utf-8")
    figures = save_figures(run, prefix, output, args, recall)
    print("\nsaved: " + ", ".join(str(p) for p in figures))
    return {"run": run, "recall": recall, "top_tokens": top_rows, "figures": figures}


if __name__ == "__main__":
    main()
