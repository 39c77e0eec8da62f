"""Reading one tracked layer of a PyTorch model: its weight, its gradient, its shard.

`LayerReader` is what a torch tracker knows about the layer it tracks:
the module, its weight parameter (or, for a parametrized layer, how to
rebuild the effective weight and its gradient), the slice this process holds
under FSDP2, and the array operations on the weight's device. It moves
tensors out of the model and nothing else; the statistics are the core's.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

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
from neural_feature_importance.torch.layers import select_layer
from neural_feature_importance.torch.parametrized import (
    EffectiveWeightGradient,
    effective_weight,
    is_parametrized_weight,
    trainable_weight_parameters,
)


class LayerReader:
    """The tensors of one tracked layer.

    Parameters
    ----------
    model : nn.Module
        The model the layer belongs to.
    layer : str or nn.Module or None
        The layer (`None`: the default layer of `kind`, see
        [`select_layer()`][select_layer]).
    kind : {"dense", "conv", "embedding"}
        The kind of layer expected.

    Raises
    ------
    LayerSelectionError
        If the model has no such layer, or it is of another kind, frozen, or
        parametrized and sharded.
    """

    def __init__(self, model: nn.Module, layer: str | nn.Module | None, kind: Kind) -> None:
        name, module = select_layer(model, layer, kind)
        self.name = name
        self.kind = kind
        self.module = module
        self.parametrized = is_parametrized_weight(module)
        # A Linear, ConvNd or Embedding: its weight is a parameter unless parametrized.
        self.param: nn.Parameter | None = (
            None if self.parametrized else cast(nn.Parameter, module.weight)
        )
        parameter = trainable_weight_parameters(module)[0]
        if self.parametrized and is_sharded(parameter):
            raise LayerSelectionError(
                f"layer {name!r} is parametrized and sharded; the trackers rebuild a "
                "parametrized layer's gradient from the whole layer. Track another layer, "
                "or remove the parametrization."
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

    @property
    def uninitialized(self) -> bool:
        """Whether the weight is a lazy module's, still without a shape."""
        return isinstance(self.param, nn.parameter.UninitializedParameter)

    def weight(self) -> torch.Tensor:
        """The weight as the forward pass uses it (detached; effective if parametrized)."""
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
        if self.parametrized:
            grad = None if self.capture is None else self.capture.pop()
        else:
            grad = None if self.param is None else self.param.grad
        return None if grad is None else local_tensor(grad)

    def detach(self) -> None:
        """Remove the hooks this reader put on the model."""
        if self.capture is not None:
            self.capture.detach()
            self.capture = None
