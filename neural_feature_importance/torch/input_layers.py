"""Finding the layers that read a model's inputs, by watching one forward pass.

Registration order (`model.named_modules()`) is forward order for
`nn.Sequential` and most hand-written models, but not for a model that
registers its head first, or one with several inputs and branches. The layer
VIANN must track is the one the *inputs* flow into, which only a forward pass
shows: `InputLayerProbe` hooks the model for its first forward pass and
records which modules with weights receive one of the model's own input
tensors, and
[`input_choice`][neural_feature_importance.torch.input_choice] turns that
into a choice for a tracker of one kind.

What reads an input decides what happens:

- a trackable layer (`nn.Linear`, `nn.Conv1d/2d/3d`, `nn.Embedding`, a
  recurrent or attention layer, parametrized or not), or a per-feature
  tokenizer (one weight of 2+ dimensions whose first axis is the input's
  width): it is tracked;
- a module whose only weights are per-channel (normalisation) or that has
  none (activations, dropout, reshapes): harmless, its output is followed to
  the next layer, with an INFO note;
- a module with weights the trackers cannot map to the input's features:
  [`LayerSelectionError`][neural_feature_importance.core.errors.LayerSelectionError],
  naming the module and the `layer=` remedy: the scores of a later layer would
  be those of a wrong layer.

A model input that no module reads (concatenated or computed first) gets a
WARNING, unless its name says it is a target (`y`, `label`, `target`...), which
no layer reads.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from neural_feature_importance.torch.input_weights import (
    ATTENTION_SLOTS,
    own_matrices,
    reads_as_tokenizer,
)
from neural_feature_importance.torch.layers import module_kind

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInput:
    """One tensor the model was called with.

    Attributes
    ----------
    index : int
        Position among the model's tensor inputs (flattened args, then kwargs).
    path : str
        Where it was passed: `"args[0]"`, `"kwargs['x_num']"`,
        `"args[0]['x']"`...
    shape : tuple of int
        Its shape in the probed forward pass.
    dtype : torch.dtype
        Its dtype.
    """

    index: int
    path: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    def describe(self) -> str:
        """`"input 0 (args[0], shape (4, 8))"`, for messages."""
        return f"input {self.index} ({self.path}, shape {self.shape})"


class InputReader(NamedTuple):
    """A module with weights that received a model input."""

    name: str
    """The module's name in `model.named_modules()` (`""` for the model itself)."""
    module: nn.Module
    input_index: int
    """Index into `InputLayerResult.inputs` of the input it read."""
    slots: tuple[str, ...] = ()
    """For `nn.MultiheadAttention`: the arguments that held the input (`"query"`...)."""
    via: tuple[str, ...] = ()
    """The harmless modules (normalisation, activations) the input passed first."""


@dataclass
class InputLayerResult:
    """What `InputLayerProbe` saw in one forward pass.

    Attributes
    ----------
    readers : list of InputReader
        The trackable modules (and per-feature tokenizers) that received a
        model input, directly or after harmless modules only, in call order,
        each once (its first such call).
    unmapped : list of InputReader
        Modules with weights the trackers cannot map to features that were
        the first to read a model input.
    shared : list of InputReader
        A model input read by a layer that already reads another one (a
        layer applied to two inputs, or an attention layer whose key and
        value are another input than its query).
    inputs : list of ModelInput
        The model's tensor inputs (each tensor object once), in argument order.
    unread : list of int
        Indices of the inputs that no trackable module read directly: usually
        concatenated, sliced or transformed before the first layer.
    called : list of str
        Names of all trackable modules called during the forward pass, in call
        order, each once.
    kinds : dict of str to str
        The kind (`"dense"`, `"conv"`, `"embedding"`) of each name in
        `called`.
    """

    readers: list[InputReader] = field(default_factory=list)
    unmapped: list[InputReader] = field(default_factory=list)
    shared: list[InputReader] = field(default_factory=list)
    inputs: list[ModelInput] = field(default_factory=list)
    unread: list[int] = field(default_factory=list)
    called: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)


TARGET_KEYWORDS = frozenset({"labels", "label", "num_items_in_batch"})
"""Keyword arguments of a model call that carry targets, not inputs.

Hugging Face models take the labels (and the `Trainer`'s token count) in the
forward call to return the loss; no layer reads them, and the probe would
otherwise report them as inputs that no layer reads.
"""

TARGET_NAMES = TARGET_KEYWORDS | {"y", "target", "targets", "y_true"}
"""Keys of a batch dict (or keywords) that hold targets: an unread one is no alarm."""


def _flatten(value: Any, path: str) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield `(path, tensor)` for every tensor in nested tuples, lists and mappings."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            yield from _flatten(item, f"{path}[{i}]")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(item, f"{path}[{key!r}]")


def _data_ptr(tensor: torch.Tensor) -> int:
    try:
        return tensor.data_ptr()
    except RuntimeError:  # tensors without storage (e.g. some tensor subclasses)
        return 0


class InputLayerProbe:
    """Record which trackable modules read the model's inputs in one forward pass.

    Parameters
    ----------
    model : nn.Module
        The model; its trackable submodules (and itself, if it is one) are
        hooked when `attach()` is called.
    on_found : callable, optional
        Called with the `InputLayerResult` once the first forward pass
        has returned (from the model's forward post-hook: before backward and
        the optimizer step, so the weights are still the initial ones).

    Notes
    -----
    A module *reads* an input when its first positional argument (or its
    `input=` keyword) is one of the tensors the model was called with, or a
    view of one with the same data pointer and number of elements
    (`x.view(...)`, `x.reshape(...)` of a contiguous tensor). A slice, a
    dtype/device cast that copies, a concatenation or any computation makes a
    new tensor, which is not matched: the input is then reported as unread.

    The probe removes all its hooks after the first forward pass, also when it
    raises (then `on_found` is not called and `result` stays None).
    Modules called outside the model's forward, or added after
    `attach()`, are not seen; `torch.compile`-d models are out of scope.
    """

    def __init__(
        self, model: nn.Module, on_found: Callable[[InputLayerResult], None] | None = None
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.on_found = on_found
        self.result: InputLayerResult | None = None
        self._handles: list[RemovableHandle] = []
        self._depth = 0
        # Outer calls that only run a training step in place of forward (Lightning).
        self._redirects = 0
        self._watching = False
        self._done = False
        self._just_ended = False
        self._tensors: list[torch.Tensor] = []
        self._pending = InputLayerResult()
        # Outputs of harmless modules that read an input: (tensor, input index, via).
        self._derived: list[tuple[torch.Tensor, int, tuple[str, ...]]] = []
        self._deriving: dict[str, tuple[int, tuple[str, ...]]] = {}

    @property
    def attached(self) -> bool:
        """Whether the probe's hooks are installed."""
        return bool(self._handles)

    def attach(self) -> None:
        """Hook the model for its next forward pass (idempotent while attached)."""
        if self._handles:
            return
        self.result = None
        self._done = False
        self._just_ended = False
        self._depth = 0
        self._redirects = 0
        self._pending = InputLayerResult()
        self._derived = []
        self._deriving = {}
        for name, module in self.model.named_modules():
            if module is self.model and any(True for _ in module.children()):
                continue  # the model's own call is watched by the model hooks below
            hook = functools.partial(self._on_layer_start, name)
            self._handles.append(
                module.register_forward_pre_hook(hook, with_kwargs=True, prepend=True)
            )
            if _role(module) == "harmless":
                self._handles.append(
                    module.register_forward_hook(functools.partial(self._on_harmless_end, name))
                )
        # Registered last with prepend=True: runs before a layer hook on the model itself.
        self._handles.append(
            self.model.register_forward_pre_hook(
                self._on_model_start, with_kwargs=True, prepend=True
            )
        )
        self._handles.append(self.model.register_forward_hook(self._on_model_end))
        self._handles.append(
            self.model.register_forward_hook(self._on_model_failed, always_call=True)
        )

    def detach(self) -> None:
        """Remove every hook of the probe (idempotent) and drop the held inputs."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._watching = False
        self._tensors = []
        self._derived = []
        self._deriving = {}

    # ----------------------------------------------------------------- hooks
    def _on_model_start(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._depth += 1
        if self._depth > 1 + self._redirects or self._done:
            return  # a re-entrant call of the model inside its own forward
        if _redirected(module):
            # Lightning's strategies (DDP, FSDP...) call the wrapped model with the
            # batch, its forward swapped for training_step, which calls the real
            # forward inside: the inputs are those of that inner call.
            self._redirects += 1
            return
        self._watching = True
        pending = self._pending
        inputs = {key: value for key, value in kwargs.items() if key not in TARGET_KEYWORDS}
        flat = [*_flatten(args, "args"), *_flatten(inputs, "kwargs")]
        for path, tensor in flat:
            if any(tensor is seen for seen in self._tensors):
                continue
            pending.inputs.append(
                ModelInput(len(self._tensors), path, tuple(tensor.shape), tensor.dtype)
            )
            self._tensors.append(tensor)

    def _on_layer_start(
        self, name: str, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        role = _role(module)
        if not self._watching:
            if self._done or self._depth > 0 or role == "harmless" or module is self.model:
                return
            self._enter(module, args, kwargs)
        pending = self._pending
        if role == "trackable" and name not in pending.kinds:
            pending.called.append(name)
            pending.kinds[name] = module_kind(module) or ""
        if role == "container":
            return
        matched: dict[int, tuple[list[str], tuple[str, ...]]] = {}
        for slot, tensor in _arguments(module, args, kwargs):
            found = self._match(tensor)
            if found is not None:
                index, via = found
                slots, _ = matched.setdefault(index, ([], via))
                slots.append(slot)
        for index, (slots, via) in matched.items():
            read = any(r.input_index == index for r in (*pending.readers, *pending.unmapped))
            if role == "harmless":
                if not read:
                    self._deriving[name] = (index, (*via, name))
                continue
            attention = isinstance(module, nn.MultiheadAttention)
            reader = InputReader(name, module, index, tuple(slots) if attention else (), via)
            if any(r.module is module for r in pending.readers):
                if not read and not via:
                    pending.shared.append(reader)  # a second input of a layer already read
                continue
            if via and read:
                continue
            width = pending.inputs[index].shape[-1] if pending.inputs[index].shape else 0
            if role == "trackable" or reads_as_tokenizer(module, width):
                pending.readers.append(reader)
            elif not read:
                pending.unmapped.append(reader)

    def _enter(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Watch a submodule's call as the model's: the model itself is not called.

        A Lightning `training_step` that calls `self.net(x)`, or a loop that
        calls a submodule, passes the inputs to that submodule: its call is
        the forward pass, and its arguments are the model's inputs.
        """
        self._on_model_start(module, args, kwargs)
        self._handles.append(module.register_forward_hook(self._on_model_end))
        self._handles.append(module.register_forward_hook(self._on_model_failed, always_call=True))

    def _on_harmless_end(self, name: str, module: nn.Module, args: Any, output: Any) -> None:
        found = self._deriving.pop(name, None)
        if found is None or not self._watching:
            return
        for _, tensor in _flatten(output, "output"):
            self._derived.append((tensor, *found))

    def _match(self, tensor: torch.Tensor) -> tuple[int, tuple[str, ...]] | None:
        """The input `tensor` is (or was derived from by harmless modules), and the path."""
        for index, seen in enumerate(self._tensors):
            if tensor is seen:
                return index, ()
        for seen, index, via in self._derived:
            if tensor is seen:
                return index, via
        pointer = _data_ptr(tensor)
        if pointer == 0 or tensor.numel() == 0:
            return None
        for index, seen in enumerate(self._tensors):
            if (
                seen.device == tensor.device
                and seen.numel() == tensor.numel()
                and _data_ptr(seen) == pointer
            ):
                return index, ()
        return None

    def _on_model_end(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self._just_ended = True  # tells _on_model_failed, which runs next, that this call returned
        self._depth -= 1
        if self._depth > self._redirects or self._done:
            return
        pending = self._pending
        read = {r.input_index for r in (*pending.readers, *pending.unmapped, *pending.shared)}
        pending.unread = [i for i in range(len(pending.inputs)) if i not in read]
        self._done = True
        self.detach()
        self.result = pending
        logger.debug(
            "InputLayerProbe: inputs %s read by %s; unread %s; trackable layers called: %s",
            [model_input.describe() for model_input in pending.inputs],
            [(reader.name, reader.input_index) for reader in pending.readers],
            pending.unread,
            pending.called,
        )
        if self.on_found is not None:
            self.on_found(pending)

    def _on_model_failed(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        # always_call=True: runs right after _on_model_end when the call returned,
        # and alone when the forward pass raised.
        if self._just_ended or self._done:
            self._just_ended = False
            return
        self._depth = max(self._depth - 1, 0)
        if self._depth > 0:
            return
        self._done = True
        self.detach()
        logger.debug("InputLayerProbe: the forward pass raised; hooks removed without a result")


def _role(module: nn.Module) -> str:
    """What a module is to the probe: `"trackable"`, `"weighted"`, `"harmless"` or `"container"`.

    Trackable: a layer the trackers read. Weighted: other own weights of 2+
    dimensions (a per-feature tokenizer, or a layer that cannot be mapped).
    Harmless: a leaf whose weights, if any, are per channel (normalisation) or
    that has none (activations, dropout, reshapes). Container: a module with
    children and no weights of its own, whose children are watched instead.
    """
    if module_kind(module) is not None:
        return "trackable"
    if own_matrices(module):
        return "weighted"
    if any(True for _ in module.children()):
        return "container"
    return "harmless"


def _arguments(
    module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Iterator[tuple[str, torch.Tensor]]:
    """`(slot, tensor)` of the tensors a module is called with (top-level arguments)."""
    names = ATTENTION_SLOTS if isinstance(module, nn.MultiheadAttention) else ()
    for position, value in enumerate(args):
        if isinstance(value, torch.Tensor):
            yield (names[position] if position < len(names) else f"args[{position}]"), value
    for key, value in kwargs.items():
        if isinstance(value, torch.Tensor):
            yield key, value


def _redirected(module: nn.Module) -> bool:
    """Whether `module`'s forward is Lightning's stand-in that runs `training_step`."""
    forward = vars(module).get("forward")
    return getattr(forward, "__qualname__", "").startswith("_ForwardRedirection.")
