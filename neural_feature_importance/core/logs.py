"""Importances per epoch: what a tracker records at each epoch's end, and what it logs.

Training-time importance is the one kind that can be watched while the network trains.
With `log_importances=` (every tracker and callback), or `record_history=True`, the core
tracker keeps the raw score of every column at the end of every epoch
([`EpochImportances`][]): one host read per epoch, in the tracker's `end_epoch()`, never in
the step path. From them come

* the importances at any epoch (`importances_at(epoch)`), equal to those of a run that
  stopped at that epoch: the row is read from the statistics accumulated up to it;
* the trajectory of every column (`epoch_importances_`,
  [`plot_importance_trajectory()`][neural_feature_importance.plotting.plot_importance_trajectory]);
* the epoch's logs ([`EpochImportances.logs()`][EpochImportances.logs]): the normalised
  importances under the keys `importance/<column>`, which each adapter hands to its
  framework's loggers (Keras's epoch `logs`, Lightning's `log_dict`, the Hugging Face
  `Trainer`'s `log`; a PyTorch loop gets them from `on_epoch_end()`).

Which columns are logged (`log_importances=`):

* `False` (the default): none. The Keras progress bar prints every key of an epoch's
  logs, and a model with hundreds of inputs would fill the screen; logging is asked for.
* `True`: every column, from the first epoch on. Before the statistics can score (VIANN's
  first epoch: a variance needs two snapshots) the values are NaN, so that every epoch has
  the same keys: Keras's `CSVLogger` fixes its columns at the first epoch, and
  `History`'s lists stay aligned with the epochs.
* an int `k`: the `k` columns with the highest importance at the first epoch that has
  importances, kept for the rest of training (and in the saved state, so a resumed run logs
  the same keys). A per-epoch top `k` would change the keys between epochs, which a CSV
  header cannot follow and which scatters TensorBoard's plots into fragments. When the first
  epoch has no importances yet, its logs hold no importance key (a warning says so once):
  pass `log_importances=True` or, for VIANN, `include_initial=True` to log from the first
  epoch on.

A value is NaN where the statistics cannot score yet, or where every raw score is zero
(nothing was measured): the same epochs for which `importances_at(epoch)` raises.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from neural_feature_importance.core.errors import StateDictError
from neural_feature_importance.core.scoring import Normalize, normalize_scores, top_features

if TYPE_CHECKING:
    from neural_feature_importance.core.arrays import ArrayOps

logger = logging.getLogger(__name__)

LOG_PREFIX = "importance/"
"""Prefix of the logged keys: `importance/<column>`, one TensorBoard section."""

LogImportances = bool | int
"""What `log_importances=` accepts: `False`, `True` (every column) or an int `k` (`k` columns)."""


def check_log_importances(log_importances: object) -> LogImportances:
    """Return `log_importances` if it is `False`, `True` or an int `k >= 1`, else raise.

    Raises
    ------
    ValueError
        Naming the accepted values.
    """
    if isinstance(log_importances, bool | np.bool_):
        return bool(log_importances)
    if isinstance(log_importances, int | np.integer) and int(log_importances) >= 1:
        return int(log_importances)
    raise ValueError(
        f"log_importances={log_importances!r} is not supported; use False (log nothing), "
        "True (log every column's importance at every epoch's end) or a positive int k "
        "(log the k columns that rank highest at the first epoch with importances)."
    )


def importance_key(column: str) -> str:
    """The key a column's importance is logged under: `importance/<column>`."""
    return f"{LOG_PREFIX}{column}"


def normalized_rows(rows: np.ndarray, normalize: Normalize) -> np.ndarray:
    """Each row (one epoch's raw scores) normalised; NaN where it has none.

    A row is NaN where the statistics could not score yet, and becomes NaN
    where every raw score is zero (nothing measured), rather than the equal
    scores normalising zeros would give.
    """
    rows = np.asarray(rows, dtype=np.float64)
    result = np.full(rows.shape, np.nan)
    for index, row in enumerate(rows):
        if row.size and np.all(np.isfinite(row)) and np.any(row):
            result[index] = normalize_scores(row, normalize)
    return result


class EpochImportances:
    """The raw score of every column at the end of every epoch, and the columns logged.

    The core tracker holds one and adds a row at each epoch's end
    ([`add()`][add]). Row `e` describes the statistics accumulated up to the end of
    epoch `e` (0-based, as Keras's and Lightning's epochs): a tracker that stopped
    there would report the same scores.

    Parameters
    ----------
    log_importances : bool or int
        The tracker's `log_importances=` (checked by
        [`check_log_importances()`][check_log_importances]).
    record_history : bool
        The tracker's `record_history=`: rows are kept when either is set.
    """

    def __init__(self, log_importances: LogImportances, record_history: bool) -> None:
        self.log_importances = check_log_importances(log_importances)
        self.asked = bool(record_history) or bool(self.log_importances)
        self.rows: list[np.ndarray] = []
        self.logged: np.ndarray | None = None
        """Indices of the logged columns (`None` until chosen)."""

    @property
    def recording(self) -> bool:
        """Whether rows are added: asked for, or continued from a loaded state that had them."""
        return self.asked or bool(self.rows)

    def clear(self) -> None:
        """Forget every row and the logged columns (a new run)."""
        self.rows = []
        self.logged = None

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, raw: np.ndarray | None) -> None:
        """Add the end of one epoch: the raw column scores, NaN where none, `None` if no layer.

        With an int `log_importances`, the logged columns are chosen at the
        first row that has scores, and kept.
        """
        row = np.empty(0) if raw is None else np.asarray(raw, dtype=np.float64).copy()
        self.rows.append(row)
        k = self.log_importances
        if k is True or k is False or self.logged is not None:
            return
        if row.size and np.all(np.isfinite(row)) and np.any(row):
            self.logged = np.sort(top_features(row, k))
        elif len(self.rows) == 1:
            logger.warning(
                "log_importances=%d: the end of the first epoch has no importances yet, so "
                "the %d logged columns are chosen at the first epoch that has them; a logger "
                "that fixes its columns at the first epoch (Keras's CSVLogger) leaves them "
                "out, and Keras's History lists them from that epoch on. Pass "
                "log_importances=True, or include_initial=True for VIANN, to log from the "
                "first epoch on.",
                k,
                k,
            )

    def matrix(self) -> np.ndarray:
        """The raw rows as one `(n_epochs, n_columns)` array (NaN where none)."""
        width = max((row.size for row in self.rows), default=0)
        return (
            np.stack([row if row.size == width else np.full(width, np.nan) for row in self.rows])
            if self.rows
            else np.empty((0, 0))
        )

    def logs(self, names: Sequence[str], normalize: Normalize) -> dict[str, float]:
        """The last epoch's importances under `importance/<column>`, for the logged columns.

        Empty when nothing is logged (`log_importances=False`, no epoch yet, or an
        int `log_importances` before the epoch that chooses the columns).
        """
        if not self.log_importances or not self.rows:
            return {}
        last = self.rows[-1]
        values = normalized_rows(last[None], normalize)[0] if last.size else last
        if self.log_importances is True:
            columns = np.arange(len(names))
        elif self.logged is None:
            return {}
        else:
            columns = self.logged
        return {
            importance_key(str(names[int(i)])): float(values[i]) if values.size else float("nan")
            for i in columns
        }

    # ------------------------------------------------------------------ state
    def state_dict(self, ops: ArrayOps, like: Any = None) -> dict[str, Any]:
        """The rows (an array of `ops`' library) and the logged columns (see [`state`][])."""
        return {
            "raw": ops.from_numpy(self.matrix(), like=like),
            "logged": None if self.logged is None else [int(i) for i in self.logged],
        }

    def load_state_dict(self, state: dict[str, Any] | None, ops: ArrayOps) -> None:
        """Restore [`state_dict()`][state_dict] (`None`: a state without per-epoch rows).

        Raises
        ------
        StateDictError
            If the rows are not a 2-D array or the logged columns lie outside it; the
            rows are then left as they were.
        """
        if not state:
            self.clear()
            return
        raw = np.asarray(ops.to_numpy(state["raw"]), dtype=np.float64)
        logged = state.get("logged")
        n_columns = raw.shape[1] if raw.ndim == 2 else 0
        if raw.ndim != 2 or (logged is not None and not all(0 <= i < n_columns for i in logged)):
            raise StateDictError(
                f"the state's per-epoch importances have shape {raw.shape} and logged columns "
                f"{logged}; a (n_epochs, n_columns) array and columns within it are expected. "
                "The state is corrupted: load an unmodified state from state_dict()/save_state()."
            )
        self.clear()
        self.rows = [row.copy() for row in raw]
        k = self.log_importances
        if logged is not None and k is not True and k is not False:
            if len(logged) == min(int(k), n_columns):
                # The same keys as before the interruption; another k chooses afresh.
                self.logged = np.asarray(cast(list[int], logged), dtype=np.int64)
