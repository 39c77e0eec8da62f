"""Text classification data for the token-importance examples.

- [`make_sentiment_corpus()`][make_sentiment_corpus]: a generated corpus whose labels are decided by
  a known set of sentiment tokens hidden in a large, Zipf-distributed neutral
  vocabulary. The planted tokens are returned, so a token ranking can be
  scored (recall@k) against the truth. No network, fully seeded.
- [`load_imdb()`][load_imdb]: the IMDB movie reviews from `keras.datasets.imdb`
  (downloaded on first use), for when a network is available.

Both return a [`TextDataset`][] in the Keras IMDB conventions: token `0`
pads, `1` starts a document, `2` stands for out-of-vocabulary words, and
real words start at `3`; sequences are padded and truncated at the front to
`maxlen` (like `keras.utils.pad_sequences`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

PAD, START, OOV = 0, 1, 2
SPECIAL_TOKENS: tuple[int, ...] = (PAD, START, OOV)
SPECIAL_WORDS: tuple[str, ...] = ("<pad>", "<start>", "<unk>")
INDEX_FROM = 3
TEXT_DATASETS: tuple[str, ...] = ("synthetic", "imdb")

POSITIVE_WORDS: tuple[str, ...] = (
    "great", "excellent", "wonderful", "superb", "brilliant", "loved", "amazing",
    "perfect", "delightful", "masterpiece", "touching", "gripping", "charming",
    "stunning", "hilarious", "beautiful", "enjoyable", "fantastic", "moving", "terrific",
)  # fmt: skip
NEGATIVE_WORDS: tuple[str, ...] = (
    "awful", "terrible", "boring", "worst", "waste", "dull", "poor", "horrible",
    "stupid", "mess", "lame", "pointless", "tedious", "bland", "annoying", "dreadful",
    "forgettable", "clumsy", "predictable", "disappointing",
)  # fmt: skip
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")


@dataclass(frozen=True)
class TextDataset:
    """A train/test split of padded token sequences with binary labels.

    Attributes
    ----------
    x_train, x_test : ndarray of int32, shape (n, maxlen)
        Token indices, padded with `0` at the front.
    y_train, y_test : ndarray of int64
        Labels, `1` positive and `0` negative.
    vocabulary : tuple of str
        `vocabulary[i]` is the word of token `i`.
    special_tokens : tuple of int
        Indices that are not words (padding, start, out-of-vocabulary).
    planted_tokens : ndarray of int or None
        The tokens that decide the label (generated corpus only).
    positive_tokens, negative_tokens : ndarray of int or None
        The planted tokens of each polarity.
    name, source : str
        `"synthetic"` or `"imdb"`, and a description for titles and logs.
    """

    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    vocabulary: tuple[str, ...]
    special_tokens: tuple[int, ...]
    name: str
    source: str
    planted_tokens: np.ndarray | None = None
    positive_tokens: np.ndarray | None = None
    negative_tokens: np.ndarray | None = None

    @property
    def vocab_size(self) -> int:
        """Number of token indices (rows of an embedding table), specials included."""
        return len(self.vocabulary)

    @property
    def maxlen(self) -> int:
        """Length of every padded sequence."""
        return int(self.x_train.shape[1])

    def decode(self, sequence: np.ndarray, *, skip_special: bool = True) -> str:
        """The words of one token sequence, separated by spaces."""
        special = set(self.special_tokens) if skip_special else set()
        return " ".join(self.vocabulary[int(t)] for t in sequence if int(t) not in special)


def _pseudo_words(n: int, rng: np.random.Generator, taken: set[str]) -> list[str]:
    """`n` distinct pronounceable nonsense words (the neutral vocabulary)."""
    words: list[str] = []
    seen = set(taken)
    while len(words) < n:
        n_syllables = int(rng.integers(2, 4))
        word = "".join(
            _ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
            for _ in range(n_syllables)
        )
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def pad_sequences(sequences: list[np.ndarray], maxlen: int) -> np.ndarray:
    """Pad (with `0`) and truncate token sequences at the front to `maxlen`."""
    out = np.zeros((len(sequences), maxlen), dtype=np.int32)
    for row, sequence in enumerate(sequences):
        tail = np.asarray(sequence, dtype=np.int32)[-maxlen:]
        if tail.size:
            out[row, -tail.size :] = tail
    return out


def make_sentiment_corpus(
    n_documents: int = 2000,
    *,
    vocab_size: int = 2000,
    n_sentiment_tokens: int = 20,
    doc_length: tuple[int, int] = (30, 80),
    zipf_exponent: float = 1.1,
    noise_rate: float = 0.3,
    test_size: float = 0.25,
    random_state: int | None = 0,
) -> TextDataset:
    """A generated review corpus where planted sentiment tokens decide the label.

    Every document is a run of neutral words drawn from a Zipf distribution
    over a large nonsense vocabulary, with one to three *planted* tokens of its
    label's polarity at random positions (`great`, `superb`, ... for
    positive; `awful`, `boring`, ... for negative). A document with two or
    three of them also holds, with probability `noise_rate`, one token of the
    other polarity: the label is the majority polarity, not any single token.
    Neutral tokens carry no signal; the most frequent of them occur far more
    often than any planted token, so a frequency ranking cannot find the
    planted set.

    Parameters
    ----------
    n_documents : int, default=2000
        Documents in total (train and test), half of each label.
    vocab_size : int, default=2000
        Size of the token index, the three special tokens included.
    n_sentiment_tokens : int, default=20
        Planted tokens, half positive and half negative (even, at most 40).
    doc_length : (int, int), default=(30, 80)
        Range of document lengths in words; `maxlen` is the upper end plus one.
    zipf_exponent : float, default=1.1
        Exponent of the neutral words' rank-frequency law.
    noise_rate : float, default=0.3
        Probability that a document with two or more planted tokens also holds
        one token of the other polarity.
    test_size : float, default=0.25
        Fraction of documents held out.
    random_state : int or None, default=0
        Seed of everything.

    Returns
    -------
    TextDataset
        With `planted_tokens`, `positive_tokens` and `negative_tokens`.

    Examples
    --------
    >>> data = make_sentiment_corpus(200, vocab_size=300)
    >>> data.planted_tokens.size, data.vocab_size, data.x_train.shape[1]
    (20, 300, 81)
    """
    n_half = n_sentiment_tokens // 2
    if n_sentiment_tokens % 2 or not 2 <= n_sentiment_tokens <= 2 * len(POSITIVE_WORDS):
        raise ValueError(
            f"n_sentiment_tokens={n_sentiment_tokens!r}; use an even number from 2 to "
            f"{2 * len(POSITIVE_WORDS)} (half positive, half negative)."
        )
    n_neutral = vocab_size - INDEX_FROM - n_sentiment_tokens
    if n_neutral < 10 * n_sentiment_tokens:
        raise ValueError(
            f"vocab_size={vocab_size!r} leaves {n_neutral} neutral words for "
            f"{n_sentiment_tokens} planted ones; use vocab_size >= "
            f"{INDEX_FROM + 11 * n_sentiment_tokens} so the planted tokens are a small minority."
        )
    low, high = doc_length
    if not 3 <= low <= high:
        raise ValueError(f"doc_length={doc_length!r}; use (min, max) with 3 <= min <= max.")
    if n_documents < 20:
        raise ValueError(f"n_documents={n_documents!r}; use at least 20.")
    if not 0.0 <= noise_rate <= 1.0:
        raise ValueError(f"noise_rate={noise_rate!r}; use a probability in [0, 1].")
    rng = np.random.default_rng(random_state)

    # Token indices: the planted ones sit at random places in the word range,
    # so neither their index nor their position in the vocabulary gives them away.
    word_index = rng.permutation(np.arange(INDEX_FROM, vocab_size))
    positive = np.sort(word_index[:n_half])
    negative = np.sort(word_index[n_half:n_sentiment_tokens])
    neutral = word_index[n_sentiment_tokens:]  # neutral[r] is the word of frequency rank r
    vocabulary = list(SPECIAL_WORDS) + [""] * (vocab_size - INDEX_FROM)
    for token, word in zip(positive, POSITIVE_WORDS[:n_half], strict=True):
        vocabulary[token] = word
    for token, word in zip(negative, NEGATIVE_WORDS[:n_half], strict=True):
        vocabulary[token] = word
    taken = set(POSITIVE_WORDS) | set(NEGATIVE_WORDS)
    for token, word in zip(neutral, _pseudo_words(n_neutral, rng, taken), strict=True):
        vocabulary[token] = word

    ranks = np.arange(1, n_neutral + 1, dtype=np.float64)
    neutral_p = ranks**-zipf_exponent
    neutral_p /= neutral_p.sum()

    labels = rng.permutation(np.arange(n_documents) % 2).astype(np.int64)
    documents = []
    for label in labels:
        length = int(rng.integers(low, high + 1))
        words = neutral[rng.choice(n_neutral, size=length, p=neutral_p)]
        same, other = (positive, negative) if label == 1 else (negative, positive)
        planted = list(rng.choice(same, size=int(rng.integers(1, 4))))
        if rng.random() < noise_rate and len(planted) >= 2:
            planted.append(rng.choice(other))
        slots = rng.choice(length, size=len(planted), replace=False)
        words[slots] = planted
        documents.append(np.concatenate([[START], words]))
    sequences = pad_sequences(documents, high + 1)

    n_test = max(1, round(test_size * n_documents))
    return TextDataset(
        x_train=sequences[n_test:],
        x_test=sequences[:n_test],
        y_train=labels[n_test:],
        y_test=labels[:n_test],
        vocabulary=tuple(vocabulary),
        special_tokens=SPECIAL_TOKENS,
        name="synthetic",
        source=(
            f"generated corpus: {n_documents} documents, {vocab_size} tokens, "
            f"{n_sentiment_tokens} planted sentiment tokens"
        ),
        planted_tokens=np.sort(np.concatenate([positive, negative])),
        positive_tokens=positive,
        negative_tokens=negative,
    )


def load_imdb(
    *,
    num_words: int = 10000,
    maxlen: int = 200,
    n_train: int | None = None,
    n_test: int | None = None,
    random_state: int | None = 0,
) -> TextDataset:
    """IMDB movie reviews from `keras.datasets.imdb` (needs the network once).

    Parameters
    ----------
    num_words : int, default=10000
        Keep the most frequent words; rarer ones become token `2`.
    maxlen : int, default=200
        Pad or truncate (at the front) every review to this many tokens.
    n_train, n_test : int, optional
        Use random subsets of the 25,000 train and test reviews.
    random_state : int or None, default=0
        Seed of the subsets.

    Raises
    ------
    RuntimeError
        If Keras cannot download the reviews or the word index; use
        [`make_sentiment_corpus()`][make_sentiment_corpus] offline.
    """
    try:
        from keras.datasets import imdb

        (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=num_words)
        word_index = imdb.get_word_index()
    except Exception as error:
        raise RuntimeError(
            f"could not load IMDB from keras.datasets.imdb ({type(error).__name__}: {error}). "
            "It downloads on first use; without a network use make_sentiment_corpus() "
            "(the scripts' --dataset synthetic)."
        ) from error
    vocabulary = list(SPECIAL_WORDS) + ["<unused>"] * (num_words - INDEX_FROM)
    for word, index in word_index.items():
        token = index + INDEX_FROM
        if token < num_words:
            vocabulary[token] = word
    rng = np.random.default_rng(random_state)

    def subset(x: np.ndarray, y: np.ndarray, n: int | None) -> tuple[np.ndarray, np.ndarray]:
        index = np.arange(len(y)) if n is None else rng.choice(len(y), size=n, replace=False)
        return pad_sequences([np.asarray(x[i]) for i in index], maxlen), np.asarray(
            y, dtype=np.int64
        )[index]

    x_train, y_train = subset(x_train, y_train, n_train)
    x_test, y_test = subset(x_test, y_test, n_test)
    return TextDataset(
        x_train,
        x_test,
        y_train,
        y_test,
        vocabulary=tuple(vocabulary),
        special_tokens=SPECIAL_TOKENS,
        name="imdb",
        source=f"keras.datasets.imdb ({len(y_train)} train reviews, {num_words} words)",
    )
