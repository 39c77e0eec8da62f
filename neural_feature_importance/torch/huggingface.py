"""Hugging Face `Trainer` callback: feature importances of a `transformers` model.

```pycon
>>> from neural_feature_importance.torch.huggingface import (
...     VarianceImportanceTransformers,
... )
>>> tokens = VarianceImportanceTransformers("bert.embeddings.word_embeddings", kind="embedding")
>>> trainer = Trainer(model, args, train_dataset=data, callbacks=[tokens])
>>> trainer.train()
>>> tokens.feature_importances_
```

The callback wraps one of the torch trackers (composition, not another
implementation), as the Lightning callback does. Where it hooks into the
`Trainer` loop, and why:

`on_train_begin`
:   Creates the tracker on the model the `Trainer` passes to its callbacks
    (its unwrapped `trainer.model`), and on a resumed run loads the state
    saved in the checkpoint.

`on_optimizer_step`
:   The tracker's step: the `Trainer` calls it once per applied update (not
    per micro-batch under gradient accumulation), after `optimizer.step()`
    and before `model.zero_grad()`. The gradient is then the synced,
    clipped one of that update, and also unscaled under fp16: accelerate's
    optimizer unscales it in place inside `step()` when clipping did not
    already. `on_pre_optimizer_step` sees the same gradient but the
    weights before the step (and, in `Trainer` versions that leave the
    unscaling to `step()` when `max_grad_norm=0`, a gradient still
    multiplied by the fp16 loss scale); a plain loop's tracker reads after
    the step, and so does this callback.

`on_epoch_end`
:   The per-epoch snapshot (with `update_every` the tracker's own step
    count decides). With `log_importances`, the epoch's importances then go
    through the `Trainer`'s own `log()`: into `state.log_history` and to every
    `report_to` integration (TensorBoard, W&B, MLflow...), as the `Trainer`'s
    own metrics do. A callback is not handed its `Trainer`; the one that calls
    `on_train_begin` is found there, on the call stack.

`on_save`
:   Writes the tracker's state into the checkpoint folder the `Trainer`
    has just written, as a `.safetensors` file (the core's pickle-free state
    format), so `trainer.train(resume_from_checkpoint=...)` continues with
    the same importances as an uninterrupted run.

`on_train_end`
:   Detaches the tracker's hooks and computes the importances on every
    process (the tracker logs them on the first one).

The `Trainer`'s own way to checkpoint callbacks (`ExportableState`) is not
used: it stores the state in `trainer_state.json`, where weight-sized
arrays do not belong, and on resume it replaces the callback with a new
instance, so the object the user holds would never see the results.
"""

from __future__ import annotations

import logging
import math
import os
import re
from typing import Any

from torch import nn
from transformers import (
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from neural_feature_importance._callers import calling_instance
from neural_feature_importance.core.errors import VIANN_DEFAULT_STATE
from neural_feature_importance.core.serialization import load_state
from neural_feature_importance.torch._wrapped import WrappedTracker
from neural_feature_importance.torch.input_weights import FeatureAxis

logger = logging.getLogger(__name__)

_TRAINER_KEY = "trainer"
"""State entry with the callback's own counters, next to the tracker's state."""


def _unwrap(model: nn.Module) -> nn.Module:
    """The model whose `named_modules()` names the layers, without parallel or compile wrappers.

    The `Trainer` passes its unwrapped `self.model` to callbacks, so this
    only matters for a model wrapped before it was given to the `Trainer`.
    """
    while True:
        compiled = getattr(model, "_orig_mod", None)  # what torch.compile wraps
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif isinstance(compiled, nn.Module):
            model = compiled
        else:
            return model


def _layer_label(layer: str | nn.Module | FeatureAxis | None) -> str:
    if layer is None:
        return "default"
    if isinstance(layer, FeatureAxis):
        return layer.weight
    return layer if isinstance(layer, str) else type(layer).__name__


class VarianceImportanceTransformers(WrappedTracker, TrainerCallback):
    """Track feature importances while a Hugging Face `Trainer` trains.

    Parameters
    ----------
    layer : str, nn.Module, FeatureAxis or list of them, optional
        Name (from `model.named_modules()`, e.g.
        `"bert.embeddings.word_embeddings"`) or module to track, a
        [`FeatureAxis`][neural_feature_importance.core.FeatureAxis], or a
        list of modules for one combined result over several input layers; by
        default the layer(s) the inputs reach at the first forward pass (as
        [`VarianceImportanceTorch`][neural_feature_importance.torch.VarianceImportanceTorch]
        chooses them).
    kind : {"dense", "conv", "embedding"}, default="dense"
        Which torch tracker to use (`"embedding"` gives one score per token).
    update_every : int, optional
        Snapshot every `update_every` optimizer updates instead of per
        epoch. Updates are counted once per applied step, so gradient
        accumulation is respected.
    normalize : {"minmax", "sum", None}, default="minmax"
        Scaling of
        [`feature_importances_`][neural_feature_importance.core.VarianceImportanceBase.feature_importances_].
    **tracker_options
        `dtype`, `include_initial`, `record_history`, `finite_check`,
        `scoring` (default: the recommended mode,
        [`RECOMMENDED_MODE`][neural_feature_importance.core.modes.RECOMMENDED_MODE],
        `"descent_taylor"`;
        `"viann"` is the paper's method; see [`neural_feature_importance.core.modes`][]),
        `gradient_every`, `feature_names`, `groups` and `log_importances`: passed
        to the tracker, and checked here. With `log_importances=True` (or an int `k`:
        the `k` columns that rank highest at the first epoch with importances), every
        epoch's importances are logged under `importance/<column>` through
        `Trainer.log()`, so `state.log_history` and every `report_to` integration
        hold them ([`neural_feature_importance.core.logs`][]); off by default (one
        host read per epoch, and a key per column in every log).

    Attributes
    ----------
    tracker : VarianceImportanceTorch or its conv/embedding counterpart
        The underlying torch tracker of `kind` (created when training starts).

    Raises
    ------
    TypeError, ValueError
        From the constructor, for an option the trackers do not have or a value
        they do not accept.

    Notes
    -----
    Checkpoints: at each save the state goes to
    `<checkpoint folder>/neural_feature_importance_<state_key>.safetensors`. On a
    resumed run (the `Trainer` starts at a global step above 0) it is read
    from `args.resume_from_checkpoint` if that names a folder, else from
    `<output_dir>/checkpoint-<global step>`, the folder
    `resume_from_checkpoint=True` picks. Pass the checkpoint as
    `TrainingArguments(resume_from_checkpoint=...)` too when it lies
    elsewhere (the `Trainer` does not tell callbacks the path it resumes
    from). A state saved at another step is not used; without one the
    callback warns and tracks from the resumed step on. Two such callbacks in
    one `Trainer` need different kind, layer or scoring, which make up the
    file name.

    When the `Trainer` saves at the last update of an epoch (a step-based
    save), the epoch's snapshot is taken right then instead of at the epoch's
    end: no update happens in between, so the weights are the same, and the
    checkpoint holds the finished epoch.

    Distributed training: under DDP every process tracks its own replica
    (gradients are synced, so the replicas agree), the process that saves
    checkpoints (`args.should_save`) writes the state, and every process
    reads it on resume. Under FSDP2 each process tracks its slice of the
    layer and writes its own state file ([`state_file_name`][]), and
    resumes from it with the same number of processes. DeepSpeed keeps
    gradients out of `param.grad`, so the gradient modes, the default among
    them, do not work under it: pass `scoring="viann"` or `"growth"`.
    """

    fit_call = "trainer.train()"

    def _init_callback_state(self) -> None:
        self._global_step = 0
        self._epochs_done = 0
        self._process_index = 0
        # With log_importances: the Trainer whose log() takes the importances, and
        # how many of the tracker's epochs have been logged.
        self._trainer: Trainer | None = None
        self._epochs_logged = 0

    @property
    def state_key(self) -> str:
        """Kind, layer and scoring, so several such callbacks keep their own checkpoint files.

        Only letters, digits and `. _ + -`, so it is a file name on any system.
        """
        return self._state_key_for(self.scoring)

    def _state_key_for(self, scoring: str) -> str:
        """The [`state_key`][state_key] of this callback with `scoring`."""
        if isinstance(self.layer, list | tuple):
            layer = "+".join(_layer_label(entry) for entry in self.layer)
        else:
            layer = _layer_label(self.layer)
        return re.sub(r"[^A-Za-z0-9._+-]", "_", f"{self.kind}-{layer}-{scoring}")

    @property
    def state_file_name(self) -> str:
        """Name of the state file this callback writes into each checkpoint folder.

        Under FSDP2 each process writes its own (`..._rank<process index>.safetensors`):
        its tracker holds the statistics of its slice of the layer.
        """
        suffix = ""
        if self.tracker is not None and self.tracker.sharded:
            suffix = f"_rank{self._process_index}"
        return f"neural_feature_importance_{self.state_key}{suffix}.safetensors"

    # ------------------------------------------------------------------ hooks
    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        """Create the tracker, restoring a loaded or checkpointed state."""
        if model is None:
            raise ValueError(
                f"{type(self).__name__} needs the model, which the Trainer passes to its "
                "callbacks as model=; call on_train_begin(args, state, control, model=model)."
            )
        self.tracker = self._make_tracker(_unwrap(model))
        self._process_index = args.process_index
        self._global_step = state.global_step
        # Epochs the Trainer has finished (a resumed run starts inside or after one); a
        # checkpoint holds their snapshots, as on_save takes an epoch's at its last update.
        self._epochs_done = math.floor(state.epoch or 0)
        saved, self._pending_state = self._pending_state, None
        if saved is None and state.global_step > 0:
            saved = self._checkpointed_state(args, state)
        if saved is not None:
            saved = {key: value for key, value in saved.items() if key != _TRAINER_KEY}
            self.tracker.load_state_dict(saved)
        self.tracker.on_train_begin()
        # The epochs of a resumed state were logged by the run that saved it.
        self._epochs_logged = len(self.tracker.core.epochs)
        self._trainer = calling_instance(Trainer) if self.tracker.log_importances else None
        if self.tracker.log_importances and self._trainer is None:
            logger.warning(
                "%s(log_importances=%r): on_train_begin() was not called by a Trainer, so "
                "the importances are added to state.log_history only, not sent to the "
                "report_to integrations.",
                type(self).__name__,
                self.tracker.log_importances,
            )

    def on_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Count an applied update and read its gradient (after the step, before zero_grad)."""
        if self.tracker is not None:
            self.tracker.on_step_end()

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Remember the `Trainer`'s step count, which the saved state records."""
        self._global_step = state.global_step

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Snapshot (per-epoch mode) and check for NaN/Inf, unless done at a save already."""
        if self.tracker is None:
            return
        # state.epoch is in (e, e + 1] at the end of epoch e (0-based; partial if stopped).
        ending = self._epochs_done + 1 if state.epoch is None else math.ceil(state.epoch)
        # Else taken in on_save at the epoch's last update (or an empty epoch).
        if ending > self._epochs_done:
            self.tracker.on_epoch_end()
            self._epochs_done = ending
        self._log_importances(state)

    def _log_importances(self, state: TrainerState) -> None:
        """Log the importances of the epochs ended since the last call (`log_importances`)."""
        assert self.tracker is not None
        recorded = len(self.tracker.core.epochs)
        if recorded <= self._epochs_logged:
            return
        self._epochs_logged = recorded
        logs = self.tracker.core.epoch_logs()
        if not logs:
            return
        if self._trainer is not None:
            # Trainer.log adds epoch and step, appends to state.log_history and calls
            # every callback's on_log (the report_to integrations among them).
            self._trainer.log(dict(logs))
        else:
            state.log_history.append({**logs, "epoch": state.epoch, "step": state.global_step})

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Write the tracker's state into the checkpoint folder the `Trainer` just wrote."""
        if self.tracker is None:
            return
        self._global_step = state.global_step
        epoch = state.epoch
        if epoch is not None and epoch == math.floor(epoch) and int(epoch) > self._epochs_done:
            # Saved at an epoch's last update, before on_epoch_end: a resumed run starts
            # at the next epoch, so the finished epoch's snapshot belongs in this checkpoint.
            self.tracker.on_epoch_end()
            self._epochs_done = int(epoch)
        if not (args.should_save or self.tracker.sharded):
            return  # one file for the replicas, but each FSDP2 process saves its own slice
        folder = os.path.join(args.output_dir or "", f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if not os.path.isdir(folder):
            logger.warning(
                "%s: the checkpoint folder %s does not exist (a hyperparameter search saves "
                "into a folder of its own), so the tracker state was not saved; a run resumed "
                "from this checkpoint tracks from the resumed step on.",
                type(self).__name__,
                folder,
            )
            return
        path = os.path.join(folder, self.state_file_name)
        self.save_state(path)
        logger.debug("%s saved its state to %s", type(self).__name__, path)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Detach the hooks and compute the importances, on every process.

        Every process calls the tracker's `on_train_end()`: under FSDP2 the
        scores of the processes' slices are summed across them there, and the
        tracker logs on the first process only. Errors are logged by the main
        process.
        """
        self._finish(state.is_world_process_zero)
        self._trainer = None

    # ------------------------------------------------------------------ state
    def _checkpointed_state(
        self, args: TrainingArguments, state: TrainerState
    ) -> dict[str, Any] | None:
        """The state saved in the checkpoint the `Trainer` resumes from, if found.

        The `Trainer` does not tell callbacks which folder it resumes from;
        `args.resume_from_checkpoint` (set by scripts that pass it on) and
        the output folder's checkpoint of the resumed step are the candidates.
        """
        folders = []
        if isinstance(args.resume_from_checkpoint, str):
            folders.append(args.resume_from_checkpoint)
        if args.output_dir:
            folders.append(
                os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
            )
        for folder in dict.fromkeys(folders):
            path = os.path.join(folder, self.state_file_name)
            legacy = path.removesuffix(".safetensors") + ".npz"  # the file name 1.0 wrote
            if not os.path.isfile(path) and os.path.isfile(legacy):
                path = legacy
            if not os.path.isfile(path):
                continue
            saved = load_state(path)
            step = (saved.get(_TRAINER_KEY) or {}).get("global_step")
            if step != state.global_step:
                logger.warning(
                    "%s: %s was saved at global step %s, but the Trainer resumes at step %d; "
                    "not using it.",
                    type(self).__name__,
                    path,
                    step,
                    state.global_step,
                )
                continue
            if state.is_world_process_zero:
                logger.info("%s resumes from %s", type(self).__name__, path)
            return saved
        logger.warning(
            "%s: the Trainer resumes at global step %d, but no tracker state %s was found in %s; "
            "the importances cover the steps from here on only. Pass the checkpoint folder as "
            "TrainingArguments(resume_from_checkpoint=...) if it lies elsewhere.%s",
            type(self).__name__,
            state.global_step,
            self.state_file_name,
            " or ".join(folders) or "any checkpoint folder (no output_dir)",
            self._viann_state_hint(folders),
        )
        return None

    def _viann_state_hint(self, folders: list[str]) -> str:
        """A hint when the folders hold VIANN's state of this layer instead of this mode's.

        A callback built without `scoring=` saved VIANN's state before the
        default became the recommended gradient mode.
        """
        if self.scoring == "viann":
            return ""
        name = self.state_file_name.replace(self.state_key, self._state_key_for("viann"), 1)
        names = (name, name.removesuffix(".safetensors") + ".npz")  # and the file 1.0 wrote
        if not any(os.path.isfile(os.path.join(f, n)) for f in folders for n in names):
            return ""
        return (
            f" The checkpoint holds {name}, the state of scoring='viann' "
            f"({VIANN_DEFAULT_STATE}): construct the callback with scoring='viann' to resume it."
        )

    def state_dict(self) -> dict[str, Any]:
        """The tracker's state plus the `Trainer` step it was saved at.

        Tensors and plain values only; `save_state(callback.state_dict(), path)`
        writes the same file as a checkpoint holds, and a plain tracker's
        `load_state` reads it (the extra `"trainer"` entry is ignored there).
        """
        if self.tracker is None:
            return dict(self._pending_state or {})
        state = self.tracker.state_dict()
        state[_TRAINER_KEY] = {"global_step": int(self._global_step)}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep a saved state; it is applied when training starts (instead of a checkpoint's)."""
        self._pending_state = dict(state_dict) if state_dict else None
