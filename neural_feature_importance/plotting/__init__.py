"""Figures of importances: bar charts, convolution filters, tokens, trajectories.

Needs matplotlib (`pip install 'neural-feature-importance[plot]'`), which is
imported when a function is first called, never by the package root.

Every function takes plain numpy arrays (the trackers' attributes), returns the
`matplotlib.figure.Figure` it drew, and never calls `plt.show()`:
save it with `fig.savefig(...)`, or let a notebook display it.

```pycon
>>> from neural_feature_importance.plotting import plot_importances
>>> fig = plot_importances(tracker.feature_importances_, feature_names, top_k=10)
>>> fig.savefig("importances.png")
```
"""

from __future__ import annotations

import logging

# The parts: _common (colours, pyplot, shared checks), _importances (bar chart and
# trajectories of feature scores), _conv (convolution filters), _tokens (token scores).
from neural_feature_importance.plotting._common import HIGHLIGHT_COLOR as HIGHLIGHT_COLOR
from neural_feature_importance.plotting._common import IMPORTANCE_COLOR as IMPORTANCE_COLOR
from neural_feature_importance.plotting._common import MUTED_COLOR as MUTED_COLOR
from neural_feature_importance.plotting._conv import (
    plot_conv_filters,
    plot_conv_heatmap,
    plot_filter_ablation,
)
from neural_feature_importance.plotting._importances import (
    plot_importance_history,
    plot_importance_trajectory,
    plot_importances,
)
from neural_feature_importance.plotting._tokens import (
    plot_document_tokens,
    plot_recall_at_k,
    plot_top_tokens,
)

logger = logging.getLogger(__name__)

__all__ = [
    "plot_conv_filters",
    "plot_conv_heatmap",
    "plot_document_tokens",
    "plot_filter_ablation",
    "plot_importance_history",
    "plot_importance_trajectory",
    "plot_importances",
    "plot_recall_at_k",
    "plot_top_tokens",
]
