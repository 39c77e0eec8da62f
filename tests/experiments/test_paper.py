import itertools

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from neural_feature_importance.experiments.paper import (  # noqa: E402
    COMPARISONS,
    PUBLISHED,
    QUICK_BUDGET,
    format_markdown,
    mean_abs_gap,
    pearson,
    summarize,
)


def _results(rows):
    return pd.DataFrame(
        [
            {"model": m, "dataset": d, "seed": s, **dict(zip(COMPARISONS, values, strict=True))}
            for m, d, s, values in rows
        ]
    )


def test_published_table_is_complete_and_matches_the_issue():
    assert len(PUBLISHED) == 18
    assert PUBLISHED[("NN1", "breastcancer")] == (0.43, 0.85, 0.17, 0.20)
    assert PUBLISHED[("NN2", "diabetes")] == (0.98, 0.90, 0.64, 0.60)
    assert PUBLISHED[("DeepNN", "wine")] == (0.41, 0.43, 0.74, 0.51)


def test_summary_mean_std_and_gaps_by_hand():
    results = _results(
        [
            ("NN1", "iris", 0, (0.9, 0.8, 0.7, 0.6)),
            ("NN1", "iris", 1, (1.0, 0.8, 0.5, 0.6)),
            ("NN1", "wine", 0, (0.93, 0.64, 0.91, 0.85)),
            ("NN1", "wine", 1, (0.93, 0.64, 0.91, 0.85)),
        ]
    )
    summary = summarize(results)
    assert len(summary) == 8
    cell = summary.set_index(["dataset", "comparison"]).loc[("iris", "VIANN-LOFO")]
    assert cell["mean"] == pytest.approx(0.95)
    assert cell["std"] == pytest.approx(np.std([0.9, 1.0], ddof=1))
    assert cell["published"] == 0.99 and cell["gap"] == pytest.approx(-0.04)
    # iris gaps: |0.95-.99| + |.8-.88| + |.6-.73| + |.6-.62| = .04+.08+.13+.02; wine: all 0.
    assert mean_abs_gap(summary) == {"NN1": pytest.approx(0.27 / 8)}
    text = format_markdown(summary, title="T", command="python x.py --seeds 2", notes=["env"])
    assert "| iris | 0.95 ± 0.07 (0.99) | 0.80 ± 0.00 (0.88) |" in text
    assert "python x.py --seeds 2" in text and "env" in text
    assert "over 8 cells: **0.034**" in text


def test_single_seed_has_no_std():
    summary = summarize(_results([("NN2", "boston", 3, (0.5, 0.5, 0.5, 0.5))]))
    assert summary["std"].isna().all()
    assert "| boston | 0.50 (0.96) |" in format_markdown(summary)


def test_pearson_by_hand_and_constant_vectors():
    # x = [1, 2, 3], y = [2, 4, 7]: cov = 2.5, sd_x = 1, sd_y = sqrt(6.333..).
    assert pearson(np.array([1.0, 2, 3]), np.array([2.0, 4, 7])) == pytest.approx(
        2.5 / np.sqrt(19 / 3)
    )
    assert np.isnan(pearson(np.ones(3), np.arange(3.0)))


@pytest.mark.keras
def test_models_have_the_papers_architecture():
    pytest.importorskip("keras")
    from neural_feature_importance.experiments.paper import build_model

    nn1 = build_model("NN1", 4, 3, "classification")
    # 4*50+50 + 50*100+100 + 100*50+50 + 50*3+3
    assert nn1.count_params() == 10553
    assert [layer.activation.__name__ for layer in nn1.layers] == ["linear"] * 3 + ["softmax"]
    nn2 = build_model("NN2", 13, 1, "regression")
    assert [layer.activation.__name__ for layer in nn2.layers] == ["relu"] * 3 + ["linear"]
    assert nn2.loss == "mean_squared_error"
    deep = build_model("DeepNN", 10, 1, "regression", width_scale=QUICK_BUDGET.width_scale)
    dense = [layer for layer in deep.layers if type(layer).__name__ == "Dense"]
    assert [d.units for d in dense] == [31, 64, 128, 256, 128, 64, 31, 1]
    regularized = [d.kernel_regularizer is not None for d in dense]
    assert regularized == [False, False, True, True, True, True, False, False]
    dropout = [layer.rate for layer in deep.layers if type(layer).__name__ == "Dropout"]
    assert dropout == [0.5] * 6 + [0.2]
    assert type(deep.layers[-2]).__name__ == "PReLU"
    with pytest.raises(ValueError, match="NN1, NN2, DeepNN"):
        build_model("NN3", 4, 3, "classification")


@pytest.mark.keras
def test_full_size_deep_network_parameter_count():
    pytest.importorskip("keras")
    from neural_feature_importance.experiments.paper import DEEP_WIDTHS, build_model

    deep = build_model("DeepNN", 13, 3, "classification")
    widths = [13, *DEEP_WIDTHS]
    dense = sum(a * b + b for a, b in itertools.pairwise(widths)) + 500 * 3 + 3
    batchnorm = 4 * sum(DEEP_WIDTHS)
    assert deep.count_params() == dense + batchnorm + 500  # + PReLU's alphas
