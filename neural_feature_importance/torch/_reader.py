"""Reading one tracked layer of a PyTorch model: its weight, its gradient, its shard.

`LayerReader` is what a torch tracker knows about the layer it tracks:
the module, its weight parameter (or, for a parametrized layer, how to
rebuild the effective weight and its gradient; for a recurrent, attention or
tokenizer layer, the parameters that read the inputs,
[`input_weights`][neural_feature_importance.torch.input_weights]), the slice
this process holds under FSDP2, the array operations on the weight's device,
and whether an optimizer has updated the layer since the last read. It moves
tensors out of the model and nothing else; the statistics are the core's.
"""

from __future__ import annotations

import weakref
from typing import Any, cast

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.hooks import RemovableHandle

from neural_feature_importance.core.errors import LayerSelectionError
from neural_feature_importance.core.sharding import WeightShard
from neural_feature_importance.core.views import Kind
from neural_feature_importance.torch.arrays import TorchArrayOps
from neural_feature_importance.torch.distributed import (
    ShardedTorchArrayOps,
    is_sharded,
    local_tensor,
    weight_shard,
)
from neural_feature_importance.torch.input_weights import (
    FeatureAxis,
    WeightPart,
    feature_axis_parts,
)
from neural_feature_importance.torch.layers import select_layer, weight_parts
from neural_feature_importance.torch.parametrized import (
    EffectiveWeightGradient,
    effective_weight,
    is_parametrized_weight,
    trainable_weight_parameters,
)

_UPDATE_HOOKS: list[tuple[weakref.ref[LayerReader], RemovableHandle]] = []
"""The optimizer step hooks of the readers, with a weak reference to each reader."""


class LayerReader:
    """The tensors of one tracked layer.

    Parameters
    ----------
    model : nn.Module
        The model the layer belongs to.
    layer : str, nn.Module, FeatureAxis or None
        The layer (`None`: the default layer of `kind`, see
        [`select_layer()`][select_layer]).
    kind : {"dense", "conv", "embedding"}
        The kind of layer expected.
    slots : tuple of str, optional
        For `nn.MultiheadAttention`: the arguments (`"query"`, `"key"`,
        `"value"`) that are the model's input; default all three.

    Raises
    ------
    LayerSelectionError
        If the model has no such layer, or it is of another kind, frozen, or
        parametrized (or read through several parameters) and sharded.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str | nn.Module | FeatureAxis | None,
        kind: Kind,
        slots: tuple[str, ...] | None = None,
    ) -> None:
        name, module = select_layer(model, layer, kind)
        self.name = name
        self.kind = kind
        self.module = module
        # Recurrent, attention and tokenizer layers, and FeatureAxis: the parameters read.
        if isinstance(layer, FeatureAxis):
            self.parts: list[WeightPart] | None = feature_axis_parts(model, layer)[2]
        else:
            self.parts = weight_parts(module, slots)
        widths = {part.name: part.n_features for part in self.parts or []}
        if len(set(widths.values())) > 1:
            raise LayerSelectionError(
                f"layer {name!r} reads inputs of different widths through {widths}, so they are "
                "not the same features. Track the one that reads the model's input: "
                f"layer=FeatureAxis('{name}.<parameter>', axis=1)."
            )
        self.parametrized = False
        self.param: nn.Parameter | None = None
        if self.parts is not None and len(self.parts) == 1 and self.parts[0].is_linear_layout:
            # One (units, features) parameter: read exactly as an nn.Linear weight.
            self.param = self.parts[0].parameter
            self.parts = None
            self.read_parameters: list[nn.Parameter] = [self.param]
        elif self.parts is not None:
            self.read_parameters = [part.parameter for part in self.parts]
        else:
            # A Linear, ConvNd or Embedding: its weight is a parameter unless parametrized.
            self.parametrized = is_parametrized_weight(module)
            if not self.parametrized:
                self.param = cast(nn.Parameter, module.weight)
            self.read_parameters = trainable_weight_parameters(module)
        parameter = self.read_parameters[0]
        if (self.parametrized or self.parts is not None) and any(
            is_sharded(p) for p in self.read_parameters
        ):
            raise LayerSelectionError(
                f"layer {name!r} is sharded, and is read through "
                + (
                    "a parametrization"
                    if self.parametrized
                    else "several parameters or another axis"
                )
                + "; the trackers read such a layer whole. Leave it unsharded (fully_shard "
                "the modules after it), or track another layer."
            )
        found = weight_shard(self.param, kind, name)
        device = local_tensor(parameter).device
        self.shard: WeightShard | None
        if found is None:
            self.shard = None
            self.ops: TorchArrayOps = TorchArrayOps()
            self.ops.device = device
        else:
            self.shard, group = found
            self.ops = ShardedTorchArrayOps(device, self.shard.dim, group)
        self.capture: EffectiveWeightGradient | None = None
        # Optimizer steps that updated a read parameter (counted by a global
        # optimizer hook, attached by watch_updates()), and the stamp of the last read.
        self.updates = 0
        self._update_hook: RemovableHandle | None = None
        self._owners: dict[int, bool] = {}
        self._last_updates = 0
        self._last_stamp = self._stamp()
        # A weight recognised as a per-feature tokenizer's: its width is checked at the
        # layer's first call (a FeatureAxis is declared, recurrent and attention layers known).
        self._width_to_check = (
            self.parts is not None
            and not isinstance(layer, FeatureAxis)
            and not isinstance(module, nn.RNNBase | nn.MultiheadAttention)
        )
        self._width_hook: RemovableHandle | None = None

    def attach(self) -> None:
        """Attach the reader's hooks (idempotent): update counting, and the width check.

        The width check runs once, at the layer's first call, for a layer read
        as a per-feature tokenizer (see `_check_width_at_first_call()`).
        """
        self.watch_updates()
        if self._width_to_check and self._width_hook is None:
            self._check_width_at_first_call()

    # ------------------------------------------------------------- updates
    def watch_updates(self) -> None:
        """Count the optimizer steps that update this layer (idempotent).

        A global `torch.optim` step post-hook: it sees every optimizer,
        fused ones included (whose in-place updates do not bump a tensor's
        version counter), and counts a step only if that optimizer holds one
        of the parameters read. It holds the reader weakly: the hook of a
        tracker dropped without `on_train_end()` does nothing, and is removed
        when the next reader attaches its own.
        """
        if self._update_hook is not None:
            return
        for stale in [entry for entry in _UPDATE_HOOKS if entry[0]() is None]:
            stale[1].remove()
            _UPDATE_HOOKS.remove(stale)
        reader = weakref.ref(self)

        def on_step(optimizer: Any, args: Any, kwargs: Any) -> None:
            alive = reader()
            if alive is not None:
                alive._on_optimizer_step(optimizer)

        self._update_hook = register_optimizer_step_post_hook(on_step)
        _UPDATE_HOOKS.append((reader, self._update_hook))
        self._last_stamp = self._stamp()
        self._last_updates = self.updates

    def _on_optimizer_step(self, optimizer: Any) -> None:
        owns = self._owners.get(id(optimizer))
        if owns is None:
            read = {id(p) for p in self.read_parameters}
            owns = any(id(p) in read for group in optimizer.param_groups for p in group["params"])
            self._owners[id(optimizer)] = owns
        if owns:
            self.updates += 1

    def _stamp(self) -> int:
        """The parameters' version counters: they count in-place writes."""
        version = 0
        for parameter in self.read_parameters:
            version += parameter._version
        return version

    def updated_since_last_read(self) -> bool:
        """Whether the layer changed since the previous call (which is then the last read).

        Changed means an optimizer that holds one of its parameters stepped
        or, in a loop where no optimizer steps the layer (a hand-written
        update), that a parameter was written in place. A validation batch, or
        the step of another optimizer, changes neither. Host-side counters
        only: it runs at every step.
        """
        if self.updates:
            if self.updates == self._last_updates:
                return False
            self._last_updates = self.updates
            return True
        stamp = self._stamp()
        if stamp == self._last_stamp:
            return False
        self._last_stamp = stamp
        return True

    def _check_width_at_first_call(self) -> None:
        """Check at the layer's first call that its input has the features the weight has.

        A per-feature tokenizer is recognised by its weight alone
        (`(features, ...)`); its first input shows whether that axis really
        is the input's (the last axis, or the one before it for an input
        already laid out per feature).
        """
        assert self.parts is not None
        part = self.parts[0]
        n_features = part.n_features

        def check(module: nn.Module, args: tuple[Any, ...]) -> None:
            self._remove_width_hook()
            self._width_to_check = False
            first = next((a for a in args if isinstance(a, torch.Tensor)), None)
            if first is None or first.ndim == 0:
                return
            shape = tuple(first.shape)
            if shape[-1] != n_features and (len(shape) < 3 or shape[-2] != n_features):
                raise LayerSelectionError(
                    f"layer {self.name!r} ({type(module).__name__}) is tracked as a per-feature "
                    f"weight with {n_features} features (its {part.name} of shape "
                    f"{tuple(part.parameter.shape)}), but its input has shape "
                    f"{shape}. Name the parameter and its feature axis with "
                    f"layer=FeatureAxis('{self.name}.<parameter>', axis=<feature axis>)."
                )

        self._width_hook = self.module.register_forward_pre_hook(check)

    def _remove_width_hook(self) -> None:
        if self._width_hook is not None:
            self._width_hook.remove()
            self._width_hook = None

    @property
    def uninitialized(self) -> bool:
        """Whether the weight is a lazy module's, still without a shape."""
        return isinstance(self.param, nn.parameter.UninitializedParameter)

    def weight(self) -> torch.Tensor:
        """The weight as the forward pass uses it (detached; effective if parametrized).

        A layer read through several parameters, or along another feature axis,
        gives one `(units, features)` matrix.
        """
        if self.parts is not None:
            return self._matrix([part.parameter.detach() for part in self.parts])
        if self.parametrized:
            return effective_weight(self.module)
        assert self.param is not None
        return local_tensor(self.param.detach())

    def weight_shape(self) -> tuple[int, ...] | None:
        """The weight shape on this process (`None` for a lazy layer before its first call)."""
        return None if self.uninitialized else tuple(self.weight().shape)

    def whole_weight_shape(self) -> tuple[int, ...] | None:
        """Shape of the whole weight (all processes' slices), if known."""
        shape = self.weight_shape()
        return shape if shape is None or self.shard is None else self.shard.view.weight_shape

    def arm(self, read_next: bool) -> None:
        """For a parametrized layer, capture the effective weight's gradient of the next read.

        Autograd keeps no gradient of a parametrized layer's effective weight
        (it is not a leaf), so `EffectiveWeightGradient` rebuilds it from
        the layer's input and output gradient, only for steps that are read.
        """
        if not self.parametrized:
            return
        if self.capture is None:
            self.capture = EffectiveWeightGradient(self.module)
            self.capture.attach()
        if read_next and not self.capture.armed:
            self.capture.arm()

    def gradient(self) -> torch.Tensor | None:
        """The gradient of the weight at this step (this process's slice), or `None`."""
        if self.parts is not None:
            grads = [part.parameter.grad for part in self.parts]
            return None if any(g is None for g in grads) else self._matrix(grads)  # type: ignore[arg-type]
        if self.parametrized:
            grad = None if self.capture is None else self.capture.pop()
        else:
            grad = None if self.param is None else self.param.grad
        return None if grad is None else local_tensor(grad)

    def _matrix(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        assert self.parts is not None
        matrices = [part.matrix(t) for part, t in zip(self.parts, tensors, strict=True)]
        return matrices[0] if len(matrices) == 1 else torch.cat(matrices, dim=0)

    def detach(self) -> None:
        """Remove the hooks this reader put on the model."""
        self._remove_width_hook()
        if self._update_hook is not None:
            self._update_hook.remove()
            _UPDATE_HOOKS[:] = [
                entry for entry in _UPDATE_HOOKS if entry[1] is not self._update_hook
            ]
            self._update_hook = None
        if self.capture is not None:
            self.capture.detach()
            self.capture = None
