"""The importances of one run as a small result object that carries its names.

[`FeatureImportances`][] is what a tracker's `importances_` returns: in
scikit-learn's `Bunch` style (a dict whose keys are also attributes, like
`permutation_importance`'s result) it holds the column names, the normalised
and the raw scores, and the inputs each column sums. `to_frame()` gives a
pandas DataFrame sorted by importance and `plot()` a matplotlib Figure;
neither library is imported until it is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neural_feature_importance._optional import import_optional


class FeatureImportances(dict[str, Any]):
    """Named importances of a tracked layer's columns (a dict with attribute access).

    Attributes
    ----------
    feature_names : ndarray of str, shape (n_columns,)
        Name of every column (`feature_names_in_` of the tracker).
    importances : ndarray of shape (n_columns,)
        Normalised scores (`feature_importances_`).
    raw_importances : ndarray of shape (n_columns,)
        Scores before normalisation (`raw_importances_`); a grouped column's
        raw score is the sum of its inputs' raw scores.
    members : dict of str to list of int
        The tracked inputs each column sums.
    scoring : str
        The statistic that produced the scores.
    normalize : {"minmax", "sum", None}
        How `importances` were scaled.

    Examples
    --------
    >>> result = FeatureImportances(
    ...     feature_names=np.array(["age", "colour"]), importances=np.array([0.0, 1.0]),
    ...     raw_importances=np.array([0.2, 0.9]), members={"age": [0], "colour": [1, 2]},
    ...     scoring="taylor", normalize="minmax")
    >>> result.feature_names[np.argmax(result.importances)]
    np.str_('colour')
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self))

    def ranking(self) -> np.ndarray:
        """Column indices from the most to the least important (ties keep input order)."""
        return np.argsort(-np.asarray(self["importances"]), kind="stable")

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per column, sorted by importance (highest first).

        Columns: `feature`, `importance`, `raw_importance` and
        `n_inputs` (how many tracked inputs the column sums).
        """
        pandas = import_optional("pandas", "FeatureImportances.to_frame()")
        order = self.ranking()
        names = np.asarray(self["feature_names"])[order]
        return pandas.DataFrame(
            {
                "feature": names,
                "importance": np.asarray(self["importances"])[order],
                "raw_importance": np.asarray(self["raw_importances"])[order],
                "n_inputs": [len(self["members"][str(name)]) for name in names],
            }
        ).reset_index(drop=True)

    def plot(self, top_k: int | None = None, ax: Any = None, title: str | None = None) -> Any:
        """Horizontal bar chart, most important column on top; returns the Figure.

        Parameters
        ----------
        top_k : int, optional
            Show only the `top_k` most important columns.
        ax : matplotlib Axes, optional
            Draw into this axes instead of a new figure.
        title : str, optional
            Axes title (default: the scoring mode and how many columns).
        """
        from neural_feature_importance.plotting import plot_importances

        n_columns = len(self["feature_names"])
        shown = n_columns if top_k is None else min(top_k, n_columns)
        return plot_importances(
            self["importances"],
            list(self["feature_names"]),
            top_k=top_k,
            ax=ax,
            title=title or f"Importance per column (scoring={self['scoring']!r}, {shown} shown)",
        )
