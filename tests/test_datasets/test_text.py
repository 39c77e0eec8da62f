"""The generated sentiment corpus: planted tokens decide every label; IMDB fails clearly offline."""

import numpy as np
import pytest

from neural_feature_importance.datasets import text
from neural_feature_importance.datasets.text import (
    NEGATIVE_WORDS,
    POSITIVE_WORDS,
    load_imdb,
    make_sentiment_corpus,
    pad_sequences,
)


@pytest.fixture(scope="module")
def corpus():
    return make_sentiment_corpus(600, vocab_size=800, random_state=0)


def test_the_planted_majority_decides_every_label(corpus):
    x = np.concatenate([corpus.x_train, corpus.x_test])
    y = np.concatenate([corpus.y_train, corpus.y_test])
    positive = np.isin(x, corpus.positive_tokens).sum(axis=1)
    negative = np.isin(x, corpus.negative_tokens).sum(axis=1)
    np.testing.assert_array_equal(y, (positive > negative).astype(int))
    assert np.all(positive != negative) and np.all(positive + negative >= 1)
    assert np.all(np.maximum(positive, negative) <= 3)
    # Some documents hold a token of the other polarity, so no single token decides.
    assert 0 < np.sum(np.minimum(positive, negative) == 1) < len(y) / 2
    assert abs(y.mean() - 0.5) < 0.01


def test_vocabulary_and_special_tokens(corpus):
    assert corpus.vocab_size == 800 and len(set(corpus.vocabulary)) == 800
    assert corpus.vocabulary[:3] == ("<pad>", "<start>", "<unk>")
    words = {corpus.vocabulary[t] for t in corpus.planted_tokens}
    assert words == set(POSITIVE_WORDS[:10]) | set(NEGATIVE_WORDS[:10])
    assert {corpus.vocabulary[t] for t in corpus.positive_tokens} == set(POSITIVE_WORDS[:10])
    # Padding in front, then the start token, then words (no OOV in a generated corpus).
    row = corpus.x_train[0]
    start = int(np.argmax(row == 1))
    assert np.all(row[:start] == 0) and np.all(row[start + 1 :] >= 3)
    assert corpus.maxlen == 81
    assert corpus.decode(row).split()[0] == corpus.vocabulary[row[start + 1]]


def test_frequent_neutral_words_outnumber_the_planted_ones(corpus):
    counts = np.bincount(corpus.x_train.ravel(), minlength=corpus.vocab_size)
    counts[:3] = 0
    top20 = np.argsort(-counts)[:20]
    assert not np.isin(top20, corpus.planted_tokens).any()
    assert counts[corpus.planted_tokens].min() > 0


def test_seeded():
    a = make_sentiment_corpus(100, vocab_size=400, random_state=5)
    b = make_sentiment_corpus(100, vocab_size=400, random_state=5)
    c = make_sentiment_corpus(100, vocab_size=400, random_state=6)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.vocabulary == b.vocabulary
    assert not np.array_equal(a.planted_tokens, c.planted_tokens)


def test_pad_sequences_pads_and_truncates_at_the_front():
    out = pad_sequences([np.array([5, 6]), np.array([1, 2, 3, 4])], 3)
    np.testing.assert_array_equal(out, [[0, 5, 6], [2, 3, 4]])


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="even number"):
        make_sentiment_corpus(100, n_sentiment_tokens=3)
    with pytest.raises(ValueError, match="vocab_size >= "):
        make_sentiment_corpus(100, vocab_size=100)
    with pytest.raises(ValueError, match="doc_length"):
        make_sentiment_corpus(100, doc_length=(10, 5))


def test_imdb_without_network_raises_a_clear_error(monkeypatch):
    keras = pytest.importorskip("keras")

    def offline(**kwargs):
        raise OSError("URL fetch failure (simulated)")

    monkeypatch.setattr(keras.datasets.imdb, "load_data", offline)
    with pytest.raises(RuntimeError, match="make_sentiment_corpus"):
        load_imdb()
    assert text.INDEX_FROM == 3
