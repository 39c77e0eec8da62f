import logging

import numpy as np
import pytest

from neural_feature_importance.core import (
    normalize_scores,
    top_features,
    unit_scores,
    variance_sum_scores,
    viann_scores,
)


def test_viann_scores_by_hand():
    variance = np.array([[1.0, 2.0], [0.5, 0.0], [0.0, 0.0]])
    last = np.array([[1.0, -3.0], [-4.0, 9.0], [5.0, 5.0]])
    # feature 0: 1*1 + 2*3 = 7; feature 1: 0.5*4 + 0 = 2; feature 2: 0
    np.testing.assert_array_equal(viann_scores(variance, last), [7.0, 2.0, 0.0])
    np.testing.assert_array_equal(unit_scores(variance, last), [1.0 + 2.0, 6.0])
    np.testing.assert_array_equal(variance_sum_scores(variance), [3.0, 0.5, 0.0])


def test_normalizations():
    scores = np.array([2.0, 4.0, 10.0])
    np.testing.assert_allclose(normalize_scores(scores, "minmax"), [0.0, 0.25, 1.0])
    np.testing.assert_allclose(normalize_scores(scores, "sum"), [0.125, 0.25, 0.625])
    raw = normalize_scores(scores, None)
    np.testing.assert_array_equal(raw, scores)
    assert raw is not scores


@pytest.mark.parametrize(("method", "expected"), [("minmax", 1.0), ("sum", 0.25)])
def test_equal_scores_stay_equal_without_division_by_zero(method, expected, caplog):
    with caplog.at_level(logging.WARNING), np.errstate(all="raise"):
        result = normalize_scores(np.zeros(4), method)
    np.testing.assert_array_equal(result, np.full(4, expected))
    assert "same raw score" in caplog.text


def test_unknown_normalization_is_rejected():
    with pytest.raises(ValueError, match="normalize='max' is not supported; use 'minmax'"):
        normalize_scores(np.ones(3), "max")


def test_top_features_order():
    np.testing.assert_array_equal(top_features(np.array([0.1, 0.9, 0.5]), 2), [1, 2])
