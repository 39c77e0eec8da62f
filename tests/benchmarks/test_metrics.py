import numpy as np
import pytest

from benchmarks.metrics import precision_at_k, ranking_metrics, roc_auc


def test_roc_auc_by_hand():
    # Positives score 0.9 and 0.5; negatives 0.1 and 0.5. Pairs (pos, neg):
    # (0.9,0.1)=1, (0.9,0.5)=1, (0.5,0.1)=1, (0.5,0.5)=0.5 -> 3.5 / 4.
    scores = np.array([0.9, 0.1, 0.5, 0.5])
    positive = np.array([True, False, True, False])
    assert roc_auc(scores, positive) == 0.875
    assert roc_auc(-scores, positive) == 0.125
    assert roc_auc(np.ones(4), positive) == 0.5


def test_roc_auc_matches_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = rng.integers(0, 4, size=25).astype(float)
        positive = rng.random(25) < 0.3
        if positive.any() and (~positive).any():
            assert roc_auc(scores, positive) == pytest.approx(roc_auc_score(positive, scores))


def test_nan_scores_rank_last_and_empty_groups_give_nan():
    scores = np.array([np.nan, 1.0, 2.0])
    assert roc_auc(scores, np.array([True, False, False])) == 0.0
    assert np.isnan(roc_auc(np.array([1.0, 2.0]), np.array([True, True])))


def test_precision_at_k_shares_ties_at_the_cut():
    positive = np.array([True, False, True, False])
    assert precision_at_k(np.array([3.0, 2.0, 1.0, 0.0]), positive) == 0.5
    assert precision_at_k(np.array([3.0, 0.0, 2.0, 1.0]), positive) == 1.0
    # k = 1; three features tie at the top, one of them positive -> 1/3.
    assert precision_at_k(np.array([1.0, 1.0, 1.0, 0.0]), np.array([1, 0, 0, 0], bool)) == (
        pytest.approx(1 / 3)
    )
    with pytest.raises(ValueError, match="between 1 and the number of features"):
        precision_at_k(np.ones(3), np.zeros(3, bool))


def test_ranking_metrics_scores_decoys_separately():
    informative = np.array([True, True, False, False, False])
    decoys = np.array([False, False, True, True, False])
    scores = np.array([5.0, 1.0, 4.0, 0.5, 0.0])
    out = ranking_metrics(scores, informative, decoys)
    # vs all: pairs won 3+3 of (2 pos x 3 neg) minus: 1.0 loses to 4.0 -> (3 + 2) / 6.
    assert out["auc"] == pytest.approx(5 / 6)
    assert out["precision_at_k"] == 0.5
    # vs decoys only: (5 > 4, 5 > 0.5, 1 < 4, 1 > 0.5) -> 3 / 4.
    assert out["auc_vs_decoys"] == 0.75
    assert np.isnan(ranking_metrics(scores, informative)["auc_vs_decoys"])
