"""The token example: recall@k by hand, and the script on both frameworks finding planted tokens."""

import csv

import numpy as np
import pytest

from neural_feature_importance.examples.tokens import (
    expected_random_recall,
    rank_tokens,
    recall_at_k,
    token_frequencies,
)


def test_recall_at_k_by_hand():
    scores = np.array([9.0, 0.9, 0.1, 0.8, 0.5, 0.7])  # token 0 is special
    # Without token 0 the ranking is 1, 3, 5, 4, 2.
    np.testing.assert_array_equal(rank_tokens(scores, exclude=[0]), [1, 3, 5, 4, 2])
    recall = recall_at_k(scores, [2, 3], [1, 2, 4, 5, 50], exclude=[0])
    np.testing.assert_allclose(recall, [0.0, 0.5, 0.5, 1.0, 1.0])
    # The special token would otherwise take the first place.
    assert recall_at_k(scores, [0], 1)[0] == 1.0
    with pytest.raises(ValueError, match="relevant is empty"):
        recall_at_k(scores, [], 3)
    with pytest.raises(ValueError, match="at least 1"):
        recall_at_k(scores, [1], [0])


def test_frequency_and_random_baselines():
    sequences = np.array([[0, 1, 3, 3], [0, 0, 1, 4]])
    np.testing.assert_array_equal(token_frequencies(sequences, 6), [3, 2, 0, 2, 1, 0])
    np.testing.assert_allclose(expected_random_recall([10, 100, 1000], 500), [0.02, 0.2, 1.0])


def _read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_script_finds_the_planted_tokens(framework, token_script, tmp_path, capsys):
    pytest.importorskip(framework)
    pytest.importorskip("matplotlib")
    result = token_script.main(["--framework", framework, "--quick", "--output-dir", str(tmp_path)])
    recall = result["recall"]
    n = recall.n_relevant
    assert n == 20 and list(recall.ks) == [10, 20, 40, 80]
    # Fixed seed, 1,000 generated documents, 8 epochs: the planted tokens fill the top.
    viann = dict(zip(recall.ks.tolist(), recall.viann, strict=True))
    assert viann[20] >= 0.8 and viann[40] >= 0.9, recall.to_text()
    # Frequency cannot find them (the frequent neutral words come first), chance neither.
    assert recall.frequency[1] == 0.0 and recall.random[1] == pytest.approx(20 / 1997)
    assert result["run"].test_accuracy > 0.75  # chance is 0.5

    top = result["top_tokens"]
    assert len(top) == 20 and top[0]["importance"] == 1.0
    assert not {"<pad>", "<start>", "<unk>"} & {row["word"] for row in top}
    assert sum(row["planted"] for row in top) >= 16
    out = capsys.readouterr().out
    assert "recall@k of the 20 planted sentiment tokens" in out
    assert "document 1 (" in out and "top tokens:" in out
    rows = _read_csv(tmp_path / f"synthetic_{framework}_recall.csv")
    assert float(rows[1]["viann"]) == pytest.approx(viann[20])
    for name in ("top_tokens", "documents", "history", "recall"):
        png = tmp_path / f"synthetic_{framework}_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_imdb_falls_back_to_the_generated_corpus_offline(token_script, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import neural_feature_importance.datasets.text as text

    def offline(**kwargs):
        raise RuntimeError("could not load IMDB (simulated: no network)")

    monkeypatch.setattr(token_script, "load_imdb", offline)
    argv = ["--framework", "torch", "--dataset", "imdb", "--quick", "--epochs", "2"]
    result = token_script.main([*argv, "--output-dir", str(tmp_path)])
    assert result["run"].data.name == "synthetic"
    assert text.SPECIAL_TOKENS == (0, 1, 2)
