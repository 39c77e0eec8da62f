"""Finding the layers that read a model's inputs, by watching one forward pass.

Registration order (`model.named_modules()`) is forward order for
`nn.Sequential` and most hand-written models, but not for a model that
registers its head first, or one with several inputs and branches. The layer
VIANN must track is the one the *inputs* flow into, which only a forward pass
shows: `InputLayerProbe` hooks the model for its first forward pass and
records which trackable modules (`nn.Linear`, `nn.Conv1d/2d/3d`,
`nn.Embedding`, parametrized or not) receive one of the model's own input
tensors, and `choose_input_layers()` turns that into a choice for a tracker
of one kind, with a warning for the ambiguous cases.
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

from neural_feature_importance.torch.layers import MODULE_TYPES, TRACKER_FOR_KIND, module_kind

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
    """A trackable module whose first positional input was a model input."""

    name: str
    """The module's name in `model.named_modules()` (`""` for the model itself)."""
    module: nn.Module
    input_index: int
    """Index into `InputLayerResult.inputs` of the input it read."""


@dataclass
class InputLayerResult:
    """What `InputLayerProbe` saw in one forward pass.

    Attributes
    ----------
    readers : list of InputReader
        The trackable modules that received a model input as their first
        positional input, in call order, each once (its first such call).
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
        types = tuple(t for group in MODULE_TYPES.values() for t in group)
        for name, module in self.model.named_modules():
            if isinstance(module, types):
                hook = functools.partial(self._on_layer_start, name)
                self._handles.append(
                    module.register_forward_pre_hook(hook, with_kwargs=True, prepend=True)
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
        if not self._watching:
            return
        pending = self._pending
        if name not in pending.kinds:
            pending.called.append(name)
            pending.kinds[name] = module_kind(module) or ""
        first = args[0] if args else kwargs.get("input")
        if not isinstance(first, torch.Tensor):
            return
        index = self._match(first)
        if index is not None and not any(r.module is module for r in pending.readers):
            pending.readers.append(InputReader(name, module, index))

    def _match(self, tensor: torch.Tensor) -> int | None:
        for index, seen in enumerate(self._tensors):
            if tensor is seen:
                return index
        pointer = _data_ptr(tensor)
        if pointer == 0 or tensor.numel() == 0:
            return None
        for index, seen in enumerate(self._tensors):
            if (
                seen.device == tensor.device
                and seen.numel() == tensor.numel()
                and _data_ptr(seen) == pointer
            ):
                return index
        return None

    def _on_model_end(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self._just_ended = True  # tells _on_model_failed, which runs next, that this call returned
        self._depth -= 1
        if self._depth > self._redirects or self._done:
            return
        pending = self._pending
        read = {reader.input_index for reader in pending.readers}
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


def _redirected(module: nn.Module) -> bool:
    """Whether `module`'s forward is Lightning's stand-in that runs `training_step`."""
    forward = vars(module).get("forward")
    return getattr(forward, "__qualname__", "").startswith("_ForwardRedirection.")


def _listing(result: InputLayerResult, readers: list[InputReader]) -> str:
    return ", ".join(
        f"{reader.name!r} ({type(reader.module).__name__}, reads "
        f"{result.inputs[reader.input_index].describe()})"
        for reader in readers
    )


def choose_input_layers(result: InputLayerResult, kind: str) -> tuple[list[str], str | None]:
    """The layers of `kind` that read the model's inputs, and a warning if ambiguous.

    Parameters
    ----------
    result : InputLayerResult
        What `InputLayerProbe` saw.
    kind : {"dense", "conv", "embedding"}
        The tracker's kind.

    Returns
    -------
    names : list of str
        Names of the `kind` modules that read a model input directly, in call
        order (the first is the natural choice). If none does, the first
        `kind` module called in the forward pass (a fallback, with a
        warning); empty if no `kind` module was called at all.
    warning : str or None
        None when exactly one `kind` layer reads the inputs and every input
        is read by a layer of `kind`. Otherwise one line per problem: several
        readers, an input read by no trackable layer (concatenated or
        transformed first: pass `layer=` and `groups=`), a reader of
        another kind (with the tracker class to use for it), the fallback.

    Raises
    ------
    ValueError
        If `kind` is not a tracker kind.
    """
    if kind not in MODULE_TYPES:
        raise ValueError(f"kind must be one of {', '.join(MODULE_TYPES)}, got {kind!r}")
    of_kind = [r for r in result.readers if module_kind(r.module) == kind]
    others = [r for r in result.readers if module_kind(r.module) != kind]
    names = [reader.name for reader in of_kind]
    problems = []
    if len(of_kind) > 1:
        problems.append(
            f"{len(of_kind)} {kind} layers read the model's inputs: {_listing(result, of_kind)}. "
            f"The first, {names[0]!r}, is chosen; pass layer= to choose another, or track "
            "each with its own tracker."
        )
    for reader in others:
        other = module_kind(reader.module) or ""
        problems.append(
            f"layer {reader.name!r} ({type(reader.module).__name__}) reads "
            f"{result.inputs[reader.input_index].describe()} but is a {other} layer: track "
            f"it with {TRACKER_FOR_KIND[other]}(model, layer={reader.name!r})."
        )
    for index in result.unread:
        problems.append(
            f"{result.inputs[index].describe()} is read by no trackable layer directly: it "
            "is probably concatenated or transformed before the first layer, so pass layer= "
            "(the layer that receives it) and groups= (which of that layer's input columns "
            "come from it)."
        )
    if not of_kind:
        called = [name for name in result.called if result.kinds.get(name) == kind]
        if called:
            names = [called[0]]
            problems.append(
                f"no {kind} layer reads a model input directly; falling back to {called[0]!r}, "
                f"the first {kind} layer called in the forward pass."
            )
        else:
            seen = ", ".join(repr(name) for name in result.called) or "none"
            problems.append(
                f"no {kind} layer was called in the forward pass (trackable layers called: {seen})."
            )
    warning = "\n".join(f"- {problem}" for problem in problems) if problems else None
    return names, warning
