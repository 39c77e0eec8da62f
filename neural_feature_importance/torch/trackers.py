"""PyTorch trackers: the core's statistics, kept on the parameter's device.

Call the hooks from your training loop (the original package's names):

```python
tracker = VarianceImportanceTorch(model)   # scoring=RECOMMENDED_MODE, a gradient mode
tracker.on_train_begin()
for epoch in range(n_epochs):
    for x, y in loader:
        ...
        optimizer.step()
        tracker.on_step_end()      # reads the gradient (gradient modes)
    logs = tracker.on_epoch_end()  # snapshot (default: one per epoch) and checks
tracker.on_train_end()
tracker.feature_importances_       # one score per *input* feature
```

A tracker *holds* a core tracker (`VarianceImportanceTorch.core`, a
[`VarianceImportanceBase`][] whose
statistics are torch tensors on the parameter's device) and a
`LayerReader` per tracked
layer; this module only decides which layer to read and when.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from neural_feature_importance.core.columns import Member
from neural_feature_importance.core.errors import StateDictError, no_gradient
from neural_feature_importance.core.logs import LogImportances
from neural_feature_importance.core.modes import RECOMMENDED_MODE, get_mode
from neural_feature_importance.core.options import (
    FiniteCheck,
)
from neural_feature_importance.core.scoring import Normalize
from neural_feature_importance.core.surface import HeldCore, finish_training
from neural_feature_importance.core.tracker import VarianceImportanceBase
from neural_feature_importance.core.views import Kind
from neural_feature_importance.torch._layer_choice import LayerChoice
from neural_feature_importance.torch._options import (
    Layer,
    check_layer_list,
    check_options_without_model,
    new_core,
)
from neural_feature_importance.torch._reader import LayerReader
from neural_feature_importance.torch.arrays import TorchArrayOps
from neural_feature_importance.torch.distributed import is_first_process
from neural_feature_importance.torch.input_layers import (
    InputLayerProbe,
    InputLayerResult,
)
from neural_feature_importance.torch.layers import layer_kind

logger = logging.getLogger(__name__)


class VarianceImportanceTorch(LayerChoice, HeldCore):
    """Importances of the input features of a PyTorch model's input layer.

    Parameters
    ----------
    model : nn.Module
        The model being trained.
    layer : str, nn.Module, FeatureAxis or list of them, optional
        The layer to track: a name from `model.named_modules()` or the
        module; a [`FeatureAxis`][neural_feature_importance.core.FeatureAxis]
        names any parameter and its feature axis; a list tracks several
        input layers (of any kind) as one result (each layer's tracker is in
        [`layers_`][neural_feature_importance.core.VarianceImportanceBase.layers_],
        an `nn.Embedding` counts as one column). Recurrent layers
        (`weight_ih_l0`, and its reverse), `nn.MultiheadAttention`
        (`in_proj_weight`) and per-feature tokenizers (a weight with one row
        per input feature) are read through the weights that multiply the
        inputs ([`input_weights`][neural_feature_importance.torch.input_weights]).
        By default the layer the model's inputs reach, found at the first
        forward pass: until then the first trainable layer of a known type
        in registration order, then the one the inputs really reach (logged),
        or all of them when every input reaches a layer of its own. An input
        first read by a module whose weights cannot be mapped to its features
        raises `LayerSelectionError` there, naming the module; normalisation
        and activations before the first layer are followed (INFO), an input
        concatenated or computed first gets a WARNING.

        A parametrized layer (`weight_norm`, `spectral_norm`, old or new
        API) is tracked through its effective weight. Autograd keeps no
        gradient of that weight, so gradient modes rebuild it from the layer's
        input and output gradient on the steps they read
        (`EffectiveWeightGradient`; equal to autograd's gradient x input to
        1e-5 in float32, for each of the three parametrizations).
    update_every : int, optional
        Take a snapshot every `update_every` calls of [`on_step_end()`][on_step_end]
        instead of at each [`on_epoch_end()`][on_epoch_end].
    normalize : {"minmax", "sum", None}, default="minmax"
        Scaling of
        [`feature_importances_`][neural_feature_importance.core.VarianceImportanceBase.feature_importances_]
        (see the core).
    dtype : {"float64", "float32"} or torch.dtype, default="float64"
        Precision of the statistics, kept on the parameter's device.
    include_initial : bool, default=False
        Count the weights at [`on_train_begin()`][on_train_begin] as a snapshot.
    record_history : bool, default=False
        Keep the scores after each snapshot in
        [`history_`][neural_feature_importance.core.VarianceImportanceBase.history_], and every
        column's importances at every epoch's end (as `log_importances` does, without logging).
    finite_check : {"update", "deferred"}, optional
        When NaN/Inf weights are detected: at each snapshot (one device sync),
        or once per epoch. Default: `"update"` for per-epoch snapshots and
        `"deferred"` with `update_every`.
    scoring : str, default=RECOMMENDED_MODE
        The statistic that scores the features (see
        [`neural_feature_importance.core.modes`][]). The default is the recommended mode,
        [`RECOMMENDED_MODE`][neural_feature_importance.core.modes.RECOMMENDED_MODE]
        (`"taylor"`): it and `"steady_taylor"` read `param.grad` in
        [`on_step_end()`][on_step_end], so call that after `optimizer.step()` and
        before `optimizer.zero_grad()`; an epoch that ends with no call of it raises
        `ValueError`. `"viann"` is the paper's method, bit for bit, and needs only
        [`on_epoch_end()`][on_epoch_end], as does `"growth"`.
    gradient_every : int, optional
        Gradient modes read the gradient on one optimizer step in
        `gradient_every` (steps 1, 1 + k, ...). Default: the mode's own
        (`taylor` and `steady_taylor`: 4, with the same rankings as
        reading every step).
    feature_names : sequence of str, optional
        One name per input of the tracked layer (default `x0, x1, ...`).
    groups : mapping of str to sequence of (int or str), optional
        Column name -> the layer's inputs that encode it (one-hot levels, an
        embedding's dimensions inside a concatenation), by index or by name;
        the result has one score per group plus one per ungrouped input (see
        [`neural_feature_importance.core.columns`][]).
    log_importances : bool or int, default=False
        What [`on_epoch_end()`][on_epoch_end] returns for your logger (TensorBoard's
        `SummaryWriter`, W&B...), a plain loop having none: `True` every column's
        normalised importance under `importance/<column>`, an int `k` the `k` columns
        that rank highest at the first epoch with importances (kept for the run),
        `False` an empty dict. Off by default: the scores cost one host read per epoch.
        Either setting also records every column's importances at every epoch's end
        (`epoch_importances_`, `importances_at()`); see
        [`neural_feature_importance.core.logs`][].

    Attributes
    ----------
    feature_importances_, raw_importances_ : ndarray of shape (n_columns,)
        Normalised and raw score of every column, in the order of
        `feature_names_in_` (one column per input feature unless grouped).
    feature_names_in_ : ndarray of str
        Name of every column.
    importances_ : FeatureImportances
        Names and scores together, with `to_frame()` and `plot()`.
    n_updates_, n_gradient_steps_, skipped_gradient_steps_ : int
        Snapshots and gradient reads recorded, and reads skipped because
        `param.grad` held NaN or Inf (as `torch.amp.GradScaler` skips an
        overflowed step).
    core : VarianceImportanceBase
        The core tracker this one holds (statistics, columns, state).
    tracked_layer_name_ : str
        Name of the tracked layer (from `model.named_modules()`).

    Raises
    ------
    ValueError, LayerSelectionError
        From the constructor, for an option it does not accept or a `layer=`
        the model does not have (or that is frozen, or has no per-input weight).

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> tracker = VarianceImportanceTorch(model, scoring="viann")   # snapshots only
    >>> tracker.on_train_begin()
    >>> for epoch in range(3):
    ...     with torch.no_grad():
    ...         model[0].weight[:, 0] += 0.1 * (epoch + 1)    # only input 0 moves
    ...     tracker.on_epoch_end()
    >>> tracker.feature_importances_.shape, int(tracker.feature_importances_.argmax())
    ((4,), 0)
    """

    kind: ClassVar[Kind] = "dense"
    """The kind of layer tracked by default (`nn.Linear`)."""

    def __init__(
        self,
        model: nn.Module,
        layer: Layer = None,
        *,
        update_every: int | None = None,
        normalize: Normalize = "minmax",
        dtype: str | torch.dtype = "float64",
        include_initial: bool = False,
        record_history: bool = False,
        finite_check: FiniteCheck | None = None,
        scoring: str = RECOMMENDED_MODE,
        gradient_every: int | None = None,
        feature_names: Sequence[str] | None = None,
        groups: Mapping[str, Sequence[Member]] | None = None,
        log_importances: LogImportances = False,
    ) -> None:
        options = {
            "update_every": update_every,
            "normalize": normalize,
            "dtype": dtype,
            "include_initial": include_initial,
            "record_history": record_history,
            "finite_check": finite_check,
            "scoring": scoring,
            "gradient_every": gradient_every,
            "feature_names": feature_names,
            "groups": groups,
            "log_importances": log_importances,
        }
        # Every option is checked here, once, by the core's table of checks.
        self.core: VarianceImportanceBase = new_core(self.kind, options)
        self.layer_kind: Kind = self.kind
        """The kind of the tracked layer: that of `layer=` when given, else the class's."""
        if isinstance(layer, list | tuple):
            # Several input layers, of any kind, give one combined result.
            check_layer_list(model, layer)
        elif layer is not None:
            # The model is known: a wrong layer fails here, not when training begins.
            self.layer_kind = layer_kind(model, layer) or self.kind
            LayerReader(model, layer, self.layer_kind)  # attaches nothing; raises if unreadable
            if self.layer_kind != self.kind:
                self.core = self.core.with_kind(self.layer_kind)
        self.model = model
        self.layer = layer
        self.options = options
        self.update_every = update_every
        self.gradient_every = gradient_every
        mode = get_mode(scoring)
        self._read_every = (gradient_every or mode.gradient_every) if mode.needs_gradients else None
        """Steps between gradient reads (`None` for snapshot modes), fixed with the options."""
        self._holds_before = mode.needs_weights_before
        """Whether the weight before each read step is held (`descent_taylor`)."""
        self.tracked_layer_name_: str | None = None
        self._reader: LayerReader | None = None
        # With several input layers: a tracker of each (each reads its own layer).
        self._members: dict[str, VarianceImportanceTorch] | None = None
        # Under FSDP2, the input layers found during a forward pass (when the
        # weights are unsharded), acted on at the next hook.
        self._found_inputs: InputLayerResult | None = None
        self._probe: InputLayerProbe | None = None
        # For nn.MultiheadAttention layers: which arguments the probe saw reading the inputs.
        self._attention_slots: dict[str, tuple[str, ...]] = {}
        self._steps = 0
        # Calls of on_step_end() with no update of the layer since the previous one.
        self._repeated_reads = 0
        self._resume_pending = False
        self._resumed = False
        if (feature_names is not None or groups is not None) and layer is not None:
            # The layer is known, so names and groups are checked against its inputs now
            # (with layer=None, once the first forward pass has shown the input layers).
            self._check_columns()

    def _tracker_for_kind(self, kind: Kind) -> type[VarianceImportanceTorch]:
        return TRACKERS[kind]

    @classmethod
    def check_options(cls, **options: Any) -> None:
        """Check tracker options before the model exists (the trainer callbacks do).

        The options not given take the constructor's defaults; the checks are the
        constructor's own.

        Raises
        ------
        TypeError
            If an option is not a parameter of the tracker (the message lists them).
        ValueError
            If an option's value is not accepted.
        """
        check_options_without_model(cls.__name__, cls.__init__, cls.kind, options)

    @property
    def ops(self) -> TorchArrayOps:
        """The array operations on the tracked weight's device."""
        return self.core.ops  # type: ignore[return-value]

    @property
    def tracked_layer_(self) -> nn.Module | list[nn.Module] | None:
        """The tracked module (a list for several input layers), as the Keras callbacks'."""
        if self._members is not None:
            return [member.tracked_layer_ for member in self._members.values()]  # type: ignore[misc]
        return None if self._reader is None else self._reader.module

    def reset(self) -> None:
        """Forget every statistic, keeping the options."""
        self._detach_hooks()
        super().reset()
        self._members = None

    def merge(self, other: VarianceImportanceTorch) -> None:
        """Absorb another tracker's statistics of the same layer(s) (see the core's `merge`)."""
        self.core.merge(other.core)

    # ----------------------------------------------------------------- hooks
    def on_train_begin(self) -> None:
        """Choose the layer and reset the statistics (or resume a loaded state)."""
        if isinstance(self.layer, list | tuple) or (self._resume_pending and self._members):
            self._begin_layers()
            return
        self._members = None
        resumed_layer = self.layer_name if self._resume_pending and self.layer is None else None
        self._resolve_layer(self._existing(resumed_layer))
        self._layer_reader().attach()
        if self._resume_pending:
            self._resume_pending = False
            self._resumed = True
            expected = self._expected_weight_shape()
            view = self.view
            if view is not None and expected is not None and view.weight_shape != expected:
                raise StateDictError(
                    f"{type(self).__name__} resumes a state of a {view.weight_shape} weight, "
                    f"but layer {self.tracked_layer_name_!r} now has a {expected} weight. "
                    "Resume with the model the state was saved from, or call reset() to "
                    "start afresh."
                )
            logger.info(
                "%s resumes tracking %r from %d loaded snapshots",
                type(self).__name__,
                self.tracked_layer_name_,
                self.core.n_updates_,
            )
        else:
            self._resumed = False
            self._steps = 0
            self._start_tracking()
            if self.layer is None:
                self._watch_inputs()
        self._prepare_next_step()

    def _start_tracking(self) -> None:
        reader = self._layer_reader()
        reader.attach()
        if reader.uninitialized:
            # Lazy modules get their shape at the first forward pass; the core
            # starts tracking at the first snapshot instead.
            self.core.reset()
            self.core.layer_name = self.tracked_layer_name_
        else:
            self.core.start(
                reader.weight(),
                layer_name=self.tracked_layer_name_,
                check_columns=self.layer is not None,
                shard=reader.shard,
            )
        self._prepare_next_step()

    def _prepare_next_step(self) -> None:
        """Prepare the next optimizer step if it is read.

        Arm a parametrized weight's gradient capture, and hold the weight before
        the step for the modes that read it (`descent_taylor`).
        """
        every, reader = self._read_every, self._reader
        if every is None or reader is None:
            return
        read_next = self._steps % every == 0
        if reader.parametrized:
            reader.arm(read_next=read_next)
        # core.start() held the initial weights for the first read.
        if read_next and self._steps and self._holds_before:
            self.core.hold_weights_before(reader.weight())

    def on_step_end(self) -> None:
        """Call after each `optimizer.step()`; snapshots every `update_every` steps.

        With a gradient scoring mode (the default, `"descent_taylor"`, `"taylor"` or
        `"steady_taylor"`) it also
        reads the tracked weight's gradient, so call it before
        `optimizer.zero_grad()`.

        A call counts once per update of the tracked layer: a call with no
        update since the previous one (after a validation batch, after the step
        of an optimizer that does not hold the layer, or of a step a loss scaler
        skipped) is not counted; the epoch's number of such calls is logged
        (INFO). An update is a step of an optimizer holding one of the layer's
        parameters, or an in-place write of one (a hand-written update).
        """
        # The step path: host-side counters and, on read steps, one reduction of the
        # gradient held on its device (core HeldReads); nothing here waits for the device.
        if self._found_inputs is not None:
            self._act_on_found_inputs()  # the first step after the probe's forward pass
        if self._members is not None:
            self._steps += 1
            for member in self._members.values():
                member.on_step_end()
            return
        reader = self._reader
        if reader is not None and not reader.updated_since_last_read():
            # No optimizer update of the layer since the last call (a validation
            # batch, another optimizer's step): the same step, not counted again.
            if self._steps == 0 and self._read_every and reader.gradient() is None:
                raise self._missing_gradient()  # called before any backward: misplaced
            self._repeated_reads += 1
            return
        self._steps += 1
        every = self._read_every
        # Steps 1, 1 + k, 1 + 2k...: even a run shorter than k steps has one read.
        if every is not None and (self._steps - 1) % every == 0:
            self._gradient_step()
        self._prepare_next_step()
        if self.update_every and self._steps % self.update_every == 0:
            self._snapshot()

    def _gradient_step(self) -> None:
        reader = self._reader or self._layer_reader()
        grad = reader.gradient()
        if grad is None and reader.parametrized and self._steps == 1:
            return  # the layer was chosen at the first forward pass, after it ran
        if grad is None:
            raise self._missing_gradient()
        # No torch.no_grad() needed (it costs a microsecond per step): neither
        # the gradient nor the detached weight requires grad.
        self.core.update_gradients(grad, reader.weight())

    def _missing_gradient(self) -> ValueError:
        return no_gradient(
            f"{type(self).__name__}(scoring={self.scoring!r}) reads the gradient of "
            f"{self.tracked_layer_name_!r} in on_step_end(), but it is None. Call "
            "on_step_end() after optimizer.step() and before optimizer.zero_grad(), "
            "and make sure the layer is trainable and used in the forward pass (DeepSpeed "
            "keeps gradients out of param.grad)."
        )

    def _check_steps_read(self) -> None:
        """Raise at an epoch's end if a gradient mode never saw `on_step_end()`.

        A loop written for VIANN calls only `on_epoch_end()`: under a gradient
        mode (the default) it would have no importances after the whole run.
        """
        if self._read_every is None or self._steps or self._repeated_reads:
            return
        default = ", the default," if self.scoring == RECOMMENDED_MODE else ""
        layer = repr(self.tracked_layer_name_) if self.tracked_layer_name_ else "the layer"
        raise no_gradient(
            f"{type(self).__name__}: scoring={self.scoring!r}{default} reads the gradient of "
            f"{layer} in on_step_end(), but an epoch ended with no call of it: call "
            "tracker.on_step_end() after every optimizer.step(), before optimizer.zero_grad()."
        )

    def on_epoch_end(self) -> dict[str, float]:
        """Call after each epoch: snapshots (per-epoch mode) and checks for NaN/Inf.

        Returns
        -------
        dict of str to float
            The epoch's importances for your logger, under `importance/<column>`
            (the columns `log_importances` selects; empty when it is `False`):
            `writer.add_scalars(...)`, `wandb.log(logs)`...

        Raises
        ------
        ValueError
            Under a gradient mode (the default), if no [`on_step_end()`][on_step_end] came first.
        """
        self._act_on_found_inputs()
        if self._probe is not None:
            # The model itself was never called (a loop that calls a submodule):
            # keep the layer chosen by registration order, and stop watching.
            self._probe.detach()
            self._probe = None
        if self._members is not None:
            for member in self._members.values():
                member.on_epoch_end()
            # Each member checked its own layer; the combined columns are recorded here.
            self.core.record_epoch()
            return self.core.epoch_logs()
        self._check_steps_read()
        if self._repeated_reads:
            logger.info(
                "%s: %d call(s) of on_step_end() this epoch came with no optimizer update of "
                "%r since the previous call (validation batches, a step the loss scaler skipped, "
                "or an optimizer that does not hold the layer) and were not counted.",
                type(self).__name__,
                self._repeated_reads,
                self.tracked_layer_name_,
            )
            self._repeated_reads = 0
        if self.update_every is None:
            self._snapshot()
        self.core.end_epoch()
        return self.core.epoch_logs()

    def on_train_end(self) -> Any:
        """Remove the hooks, compute and log the importances; returns them.

        In a distributed run only the first process logs. Under FSDP2 every
        process must call it (the scores of the slices are summed across
        processes); afterwards any process may read the importances on its own.

        Raises
        ------
        NotFittedError, NoSignalError
            If there is nothing to report (see
            [`finish_training()`][finish_training]).
        """
        self._detach_hooks()
        return finish_training(
            self.core, log=is_first_process(), raise_errors=True, owner=type(self).__name__
        )

    def _detach_hooks(self) -> None:
        """Remove every hook this tracker (and its members) put on the model."""
        if self._probe is not None:
            self._probe.detach()
            self._probe = None
        if self._reader is not None:
            self._reader.detach()
        for member in (self._members or {}).values():
            member._detach_hooks()

    def _snapshot(self) -> None:
        if self._reader is None and self._members is None:
            logger.info("%s: on_train_begin() was not called; calling it now", type(self).__name__)
            self.on_train_begin()
        with torch.no_grad():
            self.core.update(self._weight())


class ConvVarianceImportanceTorch(VarianceImportanceTorch):
    """Importances for the first `nn.Conv1d/2d/3d` of a PyTorch model.

    Same parameters as [`VarianceImportanceTorch`][]. Features are (kernel position, input channel)
    pairs in Keras order, so
    [`heatmap_`][neural_feature_importance.core.ConvVarianceImportanceBase.heatmap_] has shape
    `(*kernel_size, in_channels)` in both frameworks;
    [`filter_importances_`][neural_feature_importance.core.ConvVarianceImportanceBase.filter_importances_]
    and
    [`filter_ranking_`][neural_feature_importance.core.ConvVarianceImportanceBase.filter_ranking_]
    rank the output channels.
    """

    kind: ClassVar[Kind] = "conv"


class EmbeddingVarianceImportanceTorch(VarianceImportanceTorch):
    """Importances for the first `nn.Embedding`/`nn.EmbeddingBag`: one score per token.

    Same parameters as [`VarianceImportanceTorch`][]. Rows never looked up
    keep zero variance and score lowest.
    """

    kind: ClassVar[Kind] = "embedding"


TRACKERS: dict[str, type[VarianceImportanceTorch]] = {
    "dense": VarianceImportanceTorch,
    "conv": ConvVarianceImportanceTorch,
    "embedding": EmbeddingVarianceImportanceTorch,
}
"""The torch tracker of each layer kind."""
