"""The experiment of the VIANN paper (de Sá, Discovery Science 2019), reproducible.

Protocol, as in the paper's notebook:

- Data: the six sets of [`neural_feature_importance.datasets.tabular`][],
  `X` standardised, classification targets one-hot, regression targets
  standardised.
- Models (Keras, `kernel_initializer="normal"`): `NN1` = Dense 50 -> 100 ->
  50, linear, `l2(0.01)`, SGD; `NN2` = the same with ReLU; `DeepNN` =
  500 -> 1024 -> 2048 -> 4096 -> 2048 -> 1024 -> 500 with batch normalisation and
  dropout (0.5, last 0.2), `l2(0.1)` on the four middle layers, PReLU, Adam.
  Softmax + categorical cross-entropy, or one linear unit + MSE.
- `fit(validation_split=0.05, batch_size=round(n / 7), shuffle=True)`;
  classification for up to 1000 epochs, stopped once `val_accuracy` reaches
  0.95 after the 7th epoch at the earliest (the notebook's `AccuracyMonitor`
  stopped when `epoch > 5`, 0-based, i.e. `MetricThreshold(min_epochs=7)`);
  regression for 100 epochs.
- Importances: VIANN (`VarianceImportanceKeras`
  on the first layer), Garson on the first and last layers, LOFO as the paper
  did it (zero one standardised column, record `model.evaluate`'s loss) and a
  100-tree random forest fitted on the same (one-hot) targets.
- Reported: Pearson correlations VIANN-LOFO, VIANN-RF, Garson-LOFO and
  Garson-VIANN, per model and data set, here as mean and standard deviation
  over seeds beside the published values.

Keras is imported when a model is built, with the backend chosen by
`KERAS_BACKEND` (set it before the first import of Keras).
"""

from __future__ import annotations

# The parts: _protocol (networks, budgets, published values), _runs (training runs
# and the four importances), _report (summaries, tables and files).
from neural_feature_importance.experiments.paper._protocol import (
    COMPARISONS,
    MODELS,
    PAPER_BUDGET,
    PUBLISHED,
    QUICK_BUDGET,
    Budget,
    build_model,
)
from neural_feature_importance.experiments.paper._protocol import DEEP_WIDTHS as DEEP_WIDTHS
from neural_feature_importance.experiments.paper._report import (
    format_markdown,
    format_text,
    mean_abs_gap,
    summarize,
    write_results,
)
from neural_feature_importance.experiments.paper._runs import (
    RunResult,
    pearson,
    run_experiment,
    run_once,
)

__all__ = [
    "COMPARISONS",
    "MODELS",
    "PAPER_BUDGET",
    "PUBLISHED",
    "QUICK_BUDGET",
    "Budget",
    "RunResult",
    "build_model",
    "format_markdown",
    "format_text",
    "mean_abs_gap",
    "pearson",
    "run_experiment",
    "run_once",
    "summarize",
    "write_results",
]
