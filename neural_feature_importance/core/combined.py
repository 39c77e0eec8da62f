"""One result for a model whose inputs reach several layers.

A model with several inputs (two branches, or an `Embedding` for a
categorical input beside a `Linear` for the numeric ones) has several input
layers. The core tracks each with its own statistics ([`CombinedStatistics`][]
holds them); this module turns
their per-input raw scores into one vector of *model inputs*, on which
`feature_names=` / `groups=` ([`columns`][]) and the normalisation then
act as for a single layer:

* a dense or convolution layer contributes one input per input feature,
  named `"<layer>[i]"`;
* an embedding that reads a categorical input is *one* column: it contributes
  one input, named `"<layer>"`, whose raw score is the sum of its tokens'
  raw scores (for `taylor` that is the summed gradient x input of the
  embedded vectors, on the scale of a numeric input's gradient x input).

Only `taylor` (gradient x input) and `steady_taylor` (the same times a
dimensionless ratio) put the inputs of different layers on one scale. The
snapshot modes score weights, whose scale depends on each layer's
initialisation and width: measured on two Keras Dense branches (5 and 3
inputs, 5 seeds), `growth` ranked the narrower branch's noise inputs above an
informative input of the wider one in 3 seeds, while `viann` ranked the
three informative inputs first in all 5.

A layer in which nothing was measured (its raw scores are all zero) adds
zeros: one silent branch is a finding. Only when *every* layer is silent does
reading the importances raise [`NoSignalError`][].
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neural_feature_importance.core.errors import NoSignalError
from neural_feature_importance.core.state import layers_state
from neural_feature_importance.core.statistics import LayerStatistics
from neural_feature_importance.core.views import Kind, WeightView


@dataclass(frozen=True)
class LayerScores:
    """Per-input raw scores of one tracked input layer.

    Attributes
    ----------
    name : str
        The layer's name.
    kind : {"dense", "conv", "embedding"}
        What the layer is.
    raw : ndarray of shape (n_inputs,)
        Its raw score per input (per token for an embedding); zeros when the
        layer recorded no signal.
    """

    name: str
    kind: Kind
    raw: np.ndarray


def n_combined_inputs(views: Iterable[WeightView]) -> int:
    """How many model inputs the tracked layers give (an embedding counts as one column).

    Lets the adapters check `feature_names`/`groups` against the combined
    inputs before any score exists; [`combined_inputs()`][combined_inputs] lays them out.
    """
    return sum(1 if view.kind == "embedding" else view.n_features for view in views)


def combined_inputs(layers: Sequence[LayerScores]) -> tuple[np.ndarray, np.ndarray]:
    """Names and raw scores of the model's inputs over several input layers.

    Returns
    -------
    names : ndarray of str
        `"<layer>[i]"` per input of a dense or convolution layer, `"<layer>"`
        for an embedding (one categorical column).
    raw : ndarray of float64
        The matching raw scores, in the order of `layers`.

    Examples
    --------
    >>> names, raw = combined_inputs([
    ...     LayerScores("city", "embedding", np.array([0.1, 0.2, 0.3])),
    ...     LayerScores("numeric", "dense", np.array([0.5, 0.0])),
    ... ])
    >>> names.tolist(), raw.round(6).tolist()
    (['city', 'numeric[0]', 'numeric[1]'], [0.6, 0.5, 0.0])
    """
    names: list[str] = []
    values: list[float] = []
    for layer in layers:
        raw = np.asarray(layer.raw, dtype=np.float64)
        if layer.kind == "embedding":
            names.append(layer.name)
            values.append(float(raw.sum()))
        else:
            names.extend(f"{layer.name}[{i}]" for i in range(raw.size))
            values.extend(raw.tolist())
    return np.array(names, dtype=str), np.array(values, dtype=np.float64)


class CombinedStatistics:
    """The statistics of several input layers, read as one vector of model inputs.

    Holds one [`LayerStatistics`][] per layer (in the order the
    result lists them) and offers what a single layer's statistics offer to
    the tracker that holds it: raw scores of the model's inputs
    ([`raw_inputs()`][raw_inputs], laid out by [`combined_inputs()`][combined_inputs]), counts, the
    per-epoch checks, merging and state.

    Parameters
    ----------
    members : dict of str to LayerStatistics
        The layers' statistics by layer name.
    owner : str
        Name used in messages.
    """

    def __init__(self, members: dict[str, LayerStatistics], owner: str) -> None:
        if not members:
            raise ValueError("several input layers need at least one layer.")
        self.members = members
        self.owner = owner

    @property
    def name(self) -> str:
        """The layers' names, comma-separated (messages and logs)."""
        return ", ".join(self.members)

    def n_inputs(self) -> int | None:
        """How many model inputs the layers give, or `None` while a layer has no weight."""
        views = [layer.view for layer in self.members.values()]
        if any(view is None for view in views):
            return None
        return n_combined_inputs(layer.whole_view for layer in self.members.values())

    def raw_inputs(self) -> tuple[np.ndarray, np.ndarray]:
        """Default names and raw scores of the model's inputs over the layers.

        A layer in which nothing was measured adds zeros; only when every
        layer is silent is [`NoSignalError`][] raised.
        """
        scores, silent = [], []
        for name, layer in self.members.items():
            try:
                raw = layer.feature_raw()
            except NoSignalError as error:
                raw = np.zeros(layer.whole_view.n_features)  # a silent layer is a finding
                silent.append(error)
            scores.append(LayerScores(name, layer.kind, raw))
        names, raw = combined_inputs(scores)
        if len(silent) == len(self.members):
            raise NoSignalError(
                f"{self.owner}: none of the layers {list(self.members)} recorded a "
                f"signal. {silent[0]}"
            )
        return names, raw

    @property
    def n_snapshots(self) -> int:
        """Snapshots in the statistics (the same in every layer; the smallest if not)."""
        return min(layer.n_snapshots for layer in self.members.values())

    @property
    def skipped(self) -> int:
        """Gradient reads skipped over every layer."""
        return sum(layer.skipped for layer in self.members.values())

    def end_epoch(self) -> None:
        """Each layer's per-epoch report and NaN/Inf check."""
        for layer in self.members.values():
            layer.end_epoch()

    def merge(self, other: CombinedStatistics) -> None:
        """Absorb another stream's statistics of the same layers, layer by layer."""
        if list(other.members) != list(self.members):
            raise ValueError(
                f"cannot merge a tracker of the layers {list(other.members)} into one of the "
                f"layers {list(self.members)}; both must track the same input layers."
            )
        for name, layer in self.members.items():
            layer.merge(other.members[name])

    def state_dict(self, kind: str, layout: str) -> dict[str, Any]:
        """Every layer's state under `layers` (see [`state`][])."""
        return layers_state(
            kind,
            layout,
            {name: (layer.kind, layer.state_dict()) for name, layer in self.members.items()},
        )
