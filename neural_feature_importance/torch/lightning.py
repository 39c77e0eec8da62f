"""Lightning callback: feature importances of a `LightningModule`'s first layer.

```pycon
>>> from neural_feature_importance import VarianceImportanceLightning
>>> tracker = VarianceImportanceLightning()       # the recommended mode; scoring="viann": the paper
>>> trainer = lightning.Trainer(max_epochs=20, callbacks=[tracker])
>>> trainer.fit(module, loader)
>>> tracker.feature_importances_
```

The callback wraps one of the torch trackers (composition, not a third
implementation) and makes its statistics part of Lightning checkpoints through
`state_dict`/`load_state_dict`, so `trainer.fit(..., ckpt_path=...)`
resumes with the same importances as an uninterrupted run.

Strategies: under `ddp` each process runs its own callback on its replica,
and every rank computes the same importances. Under `ddp_spawn` (and the
other strategies that train in worker processes started by
`multiprocessing`) the callback the user holds stays in the main process,
which trains nothing: the first worker hands its tracker's state back
through a file (the core's safetensors state format, no pickle), and the main
process reads the importances from it. Under `ModelParallelStrategy` with
FSDP2's `fully_shard` each rank tracks its shard of the layer, and the
scores are reduced across ranks when training ends. Only the first rank logs.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    # Checked against one of the two distributions (their classes are the same API).
    from lightning.pytorch import Callback, LightningModule, Trainer
else:
    try:
        from lightning.pytorch import Callback, LightningModule, Trainer
    except ModuleNotFoundError:  # the standalone ``pytorch_lightning`` distribution
        from pytorch_lightning import Callback, LightningModule, Trainer

from neural_feature_importance.core.errors import VIANN_DEFAULT_STATE, StateDictError
from neural_feature_importance.core.serialization import load_state
from neural_feature_importance.core.tracker import VarianceImportanceBase
from neural_feature_importance.torch._wrapped import WrappedTracker
from neural_feature_importance.torch.input_weights import FeatureAxis

logger = logging.getLogger(__name__)


class VarianceImportanceLightning(WrappedTracker, Callback):
    """Track feature importances while a Lightning `Trainer` fits.

    Parameters
    ----------
    layer : str, nn.Module, FeatureAxis or list of them, optional
        Name (from `pl_module.named_modules()`) or module to track, a
        [`FeatureAxis`][neural_feature_importance.core.FeatureAxis], or a
        list of modules for one combined result over several input layers; by
        default the layer(s) the inputs reach at the first forward pass
        (recurrent, attention and tokenizer layers included, as
        [`VarianceImportanceTorch`][neural_feature_importance.torch.VarianceImportanceTorch]
        chooses them).
    kind : {"dense", "conv", "embedding"}, default="dense"
        Which torch tracker to use.
    update_every : int, optional
        Snapshot every `update_every` optimizer steps instead of per epoch.
        Steps are counted by `trainer.global_step`, so gradient accumulation
        is respected.
    **tracker_options
        `dtype`, `include_initial`, `record_history`, `finite_check`,
        `scoring` (default: the recommended mode,
        [`RECOMMENDED_MODE`][neural_feature_importance.core.modes.RECOMMENDED_MODE],
        `"descent_taylor"`;
        `"viann"` is the paper's method; see [`neural_feature_importance.core.modes`][]),
        `gradient_every`, `feature_names`, `groups` and `log_importances`: passed
        to the tracker, and checked here. With `log_importances=True` (or an int `k`:
        the `k` columns that rank highest at the first epoch with importances), every
        epoch's importances go to the `Trainer`'s loggers under `importance/<column>`
        ([`neural_feature_importance.core.logs`][]); off by default (one host read
        per epoch, and a key per column in every logger).

    Attributes
    ----------
    tracker : VarianceImportanceTorch or its conv/embedding counterpart
        The underlying torch tracker of `kind` (created at the start of
        training, in the process that trains). After a `ddp_spawn` fit, the
        main process's callback has no torch tracker; its results come from
        the state the first worker handed back (a core tracker).

    Notes
    -----
    Lightning's `EarlyStopping` stops training but restores no weights, so the
    importances describe the model training ended with. A run that goes back to
    the best checkpoint (`ModelCheckpoint(monitor=...)` and its `best_model_path`)
    finds this callback's state in that checkpoint, under `state_key`: the
    importances at that checkpoint's epoch are those of
    `VarianceImportanceBase.from_state(checkpoint["callbacks"][callback.state_key])`, with
    `checkpoint = torch.load(path, weights_only=True)` (or `importances_at(epoch)` with
    `log_importances` or `record_history=True`).
    """

    fit_call = "trainer.fit()"

    def _init_callback_state(self) -> None:
        self._last_global_step = -1
        # Where a worker process hands its state back to the process that made
        # this callback (ddp_spawn): the callback reaches the workers pickled.
        self._created_in = os.getpid()
        self._handoff = (
            Path(tempfile.gettempdir())
            / f"neural-feature-importance-{uuid.uuid4().hex}.safetensors"
        )
        self._handed_back: VarianceImportanceBase | None = None

    @property
    def state_key(self) -> str:
        """Checkpoint key: kind, layer and scoring, so several such callbacks coexist.

        Two callbacks that differ in any of these (say `scoring="taylor"` and
        `scoring="viann"` on the same layer) each save and resume their
        own state in a checkpoint.
        """
        return self._state_key_for(self.scoring)

    def _state_key_for(self, scoring: str) -> str:
        """The checkpoint key of this callback with `scoring` (see [`state_key`][state_key])."""
        if isinstance(self.layer, FeatureAxis):
            layer: str | None = self.layer.weight
        else:
            layer = (
                self.layer
                if isinstance(self.layer, str | type(None))
                else type(self.layer).__name__
            )
        return self._generate_state_key(layer=layer, kind=self.kind, scoring=scoring)

    # ------------------------------------------------------------------ hooks
    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Say so when the checkpoint holds VIANN's state of this layer, and not this mode's.

        A callback built without `scoring=` saved VIANN's state before the
        default became the recommended gradient mode; this callback does not
        load it (its key names `viann`), and tracks from the resumed step on.
        """
        states = checkpoint.get("callbacks") or {}
        if self.scoring == "viann" or self.state_key in states:
            return
        if self._state_key_for("viann") in states:
            logger.warning(
                "%s(scoring=%r): the checkpoint holds the state of scoring='viann' on this "
                "layer (%s) and none of %r, so the importances cover the steps from here on "
                "only. Construct the callback with scoring='viann' to resume that state.",
                type(self).__name__,
                self.scoring,
                VIANN_DEFAULT_STATE,
                self.scoring,
            )

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Create the tracker, restoring a checkpointed state if one was loaded."""
        self.tracker = self._make_tracker(pl_module)
        if self._pending_state is not None:
            self.tracker.load_state_dict(self._own_state(trainer, self._pending_state))
            self._pending_state = None
        self.tracker.on_train_begin()
        self._last_global_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Count an optimizer step (skipping accumulation-only batches)."""
        if self.tracker is None or trainer.global_step == self._last_global_step:
            return
        self._last_global_step = trainer.global_step
        self.tracker.on_step_end()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Snapshot (per-epoch mode), check for NaN/Inf, and log the importances if asked.

        With `log_importances`, the epoch's importances go to `pl_module.log_dict`
        (epoch-level, not on the progress bar), so every logger of the `Trainer`
        records them and a monitoring callback may watch them. Every process logs the
        same values (the replicas' statistics agree; under FSDP2 the slices' scores
        were reduced across processes), so nothing is synced again; the loggers write
        on the first process only.
        """
        if self.tracker is None:
            return
        logs = self.tracker.on_epoch_end()
        if logs:
            pl_module.log_dict(logs, on_step=False, on_epoch=True, sync_dist=False)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Compute the importances on every rank; the first rank logs them.

        Every rank computes them because under FSDP2 the ranks' shards are
        reduced. In a worker process (`ddp_spawn`), the first rank then hands
        the tracker's state back to the main process.
        """
        if self.tracker is None:
            return
        self._finish(trainer.is_global_zero)
        if trainer.is_global_zero and os.getpid() != self._created_in:
            self.tracker.save_state(self._handoff)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The tracker's state (tensors and plain values), saved in checkpoints.

        Under FSDP2 each rank's tracker holds its own shard, but Lightning
        writes the callbacks' states from the first rank only, so the state is
        then every rank's, gathered (`{"ranks": [state of rank 0, ...]}`;
        every rank must call this, as Lightning's checkpointing does), and
        each rank resumes from its own entry.
        """
        if self.tracker is None:
            handed_back = self._handed_back_tracker()
            if handed_back is not None:
                return handed_back.state_dict()
            return dict(self._pending_state or {})
        state = self.tracker.state_dict()
        if self.tracker.sharded and torch.distributed.is_initialized():
            every_rank: list[Any] = [None] * torch.distributed.get_world_size()
            # In-memory transport between the ranks; the checkpoint holds tensors and values.
            torch.distributed.all_gather_object(every_rank, _to_cpu(state))
            return {"ranks": every_rank}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep a checkpointed state; it is applied when training starts."""
        self._pending_state = dict(state_dict) if state_dict else None

    def _own_state(self, trainer: Trainer, state: dict[str, Any]) -> dict[str, Any]:
        """The entry of this rank in a state gathered from sharded trackers, else `state`."""
        if "ranks" not in state:
            return state
        ranks = list(state["ranks"])
        if len(ranks) != trainer.world_size:
            raise StateDictError(
                f"{type(self).__name__}: the checkpoint holds the tracker states of "
                f"{len(ranks)} processes (a layer sharded by FSDP2), but this run has "
                f"{trainer.world_size}. Resume with {len(ranks)} processes."
            )
        own: dict[str, Any] = ranks[trainer.global_rank]
        return own

    # ---------------------------------------------------------------- results
    def _handed_back_tracker(self) -> VarianceImportanceBase | None:
        """The state a worker process handed back (`ddp_spawn`); the latest fit's."""
        if self._handoff.exists():
            options = {
                key: self.tracker_options[key]
                for key in ("dtype", "feature_names", "groups")
                if key in self.tracker_options
            }
            self._handed_back = VarianceImportanceBase.from_state(
                load_state(self._handoff), normalize=self.normalize, **options
            )
            self._handoff.unlink()
            logger.info(
                "%s: read the state that the first worker process handed back.",
                type(self).__name__,
            )
        return self._handed_back

    def _fitted_core(self) -> VarianceImportanceBase:
        if self.tracker is None:
            handed_back = self._handed_back_tracker()
            if handed_back is not None:
                return handed_back
        return super()._fitted_core()


def _to_cpu(value: Any) -> Any:
    """`value` with every tensor moved to the CPU (for gathering states across ranks)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    return value
