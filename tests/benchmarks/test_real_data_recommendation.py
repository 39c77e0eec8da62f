"""The recommended mode and the default tracker on real data with appended irrelevant columns.

The fast CI variant of ``python -m benchmarks.real_data``: bundled scikit-learn
data, permuted copies of every real column and as many Gaussian columns, the
benchmark's MLP 64-64 (Adam 1e-3, batch 32) for 20 epochs, seeds 0-2. The
ROC-AUC of the real columns against the appended ones is 0.5 for scores
unrelated to the columns (0.50 +- 0.07 over random scores here), 1 when every
real column ranks above every appended one.
"""

import numpy as np
import pytest

from benchmarks.real_data.data import appended_metrics, make_real_problem, split_standardise

SEEDS = (0, 1, 2)
APPENDED = {"permuted": 1.0, "gaussian": 1.0}


def _train(name: str, seed: int, **trackers: dict) -> tuple:
    """Train the benchmark's network on ``name`` with one tracker per keyword, all attached."""
    import torch

    from benchmarks.training import n_outputs, torch_mlp, train_torch
    from neural_feature_importance import VarianceImportanceTorch

    data = make_real_problem(name, seed, appended=APPENDED)
    split = split_standardise(data, seed)
    torch.manual_seed(seed)
    model = torch_mlp(data.X.shape[1], n_outputs(data.task, data.y))
    built = {key: VarianceImportanceTorch(model, **kwargs) for key, kwargs in trackers.items()}
    train_torch(
        model, split.X_train, split.y_train, data.task, epochs=20, seed=seed, hooks=built.values()
    )
    return data, split, model, built


def test_default_tracker_tells_real_from_appended_on_a_regression_data_set():
    """A tracker built without ``scoring=`` is above chance where the paper's VIANN is below it.

    Measured (diabetes: 10 real, 20 appended columns, 309 training rows), mean AUC over
    seeds 0-2: the default 0.89 (per seed 0.87-0.93; ``scoring="taylor"`` 0.84),
    ``scoring="viann"`` 0.53 on the
    same networks (0.46-0.61; at 100 epochs it falls to 0.18 in the benchmark: the
    appended columns' weights keep moving while the network memorises the 309 rows).
    """
    default, viann = [], []
    for seed in SEEDS:
        data, _, _, built = _train("diabetes", seed, default={}, viann={"scoring": "viann"})
        default.append(appended_metrics(built["default"].feature_importances_, data)["auc"])
        viann.append(appended_metrics(built["viann"].feature_importances_, data)["auc"])
    assert np.mean(default) >= 0.8, default
    assert np.mean(viann) < 0.65, viann  # the measure tells a failing scorer apart


def test_recommended_mode_ranks_at_least_as_well_as_integrated_gradients_on_breast_cancer():
    """The recommended mode against Integrated Gradients explaining the same trained network.

    Breast cancer: 30 real, 60 appended columns. Measured, mean AUC over seeds 0-2: the
    recommended mode 0.95 (per seed 0.92-0.98), Integrated Gradients on the held-out rows
    0.86 (0.81-0.91). Integrated Gradients costs a pass of 50 interpolated batches; the
    tracker's statistics come from gradients training computed anyway.
    """
    pytest.importorskip("captum")
    import torch
    from captum.attr import IntegratedGradients

    from neural_feature_importance.core.modes import RECOMMENDED_MODE

    tracker_auc, ig_auc = [], []
    for seed in SEEDS:
        data, split, model, built = _train(
            "breast_cancer", seed, recommended={"scoring": RECOMMENDED_MODE}
        )
        tracker_auc.append(appended_metrics(built["recommended"].feature_importances_, data)["auc"])
        X = torch.as_tensor(split.X_test, dtype=torch.float32)
        model.eval()
        attributions = IntegratedGradients(model).attribute(
            X, baselines=torch.zeros_like(X), target=torch.as_tensor(split.y_test), n_steps=50
        )
        ig = attributions.abs().mean(dim=0).detach().double().numpy()
        ig_auc.append(appended_metrics(ig, data)["auc"])
    assert np.mean(tracker_auc) >= 0.9, tracker_auc
    assert np.mean(tracker_auc) >= np.mean(ig_auc), (tracker_auc, ig_auc)
