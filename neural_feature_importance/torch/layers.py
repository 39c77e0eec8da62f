"""Choosing which `nn.Module` of a model to track.

VIANN reads the *first trainable layer that sees the inputs*: the first
`nn.Linear`, `nn.Conv1d/2d/3d`, `nn.Embedding`, recurrent layer
(`nn.RNN`/`nn.LSTM`/`nn.GRU`) or `nn.MultiheadAttention` whose weight
requires gradients (recurrent and attention layers are read through their
input weights, see
[`input_weights`][neural_feature_importance.torch.input_weights]). Before
any forward pass that is the first in registration order (forward order
for `nn.Sequential` and most hand-written models); at the first forward
pass the trackers check which layer the inputs really reach
(`input_layers`) and move there if it is another one. Normalisation,
dropout, activations and frozen layers are skipped: their weights are either
not per-input or never change, which made the original package crash or
return zeros. A layer whose weight is parametrized (`weight_norm`,
`spectral_norm`) is trainable when the parameters behind its weight are
(`parametrized`).
"""

from __future__ import annotations

from torch import nn

from neural_feature_importance.core.errors import LayerSelectionError
from neural_feature_importance.core.views import Kind
from neural_feature_importance.torch.distributed import check_not_flat_sharded
from neural_feature_importance.torch.input_weights import (
    FeatureAxis,
    WeightPart,
    feature_axis_parts,
    known_parts,
    own_matrices,
    tokenizer_parts,
)
from neural_feature_importance.torch.parametrized import trainable_weight_parameters

MODULE_TYPES: dict[Kind, tuple[type[nn.Module], ...]] = {
    "dense": (nn.Linear, nn.RNNBase, nn.MultiheadAttention),
    "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
    "embedding": (nn.Embedding, nn.EmbeddingBag),
}
TRACKER_FOR_KIND = {
    "dense": "VarianceImportanceTorch",
    "conv": "ConvVarianceImportanceTorch",
    "embedding": "EmbeddingVarianceImportanceTorch",
}
_ALL_TYPES = tuple(t for types in MODULE_TYPES.values() for t in types)


def module_kind(module: nn.Module) -> Kind | None:
    """Return `"dense"`, `"conv"` or `"embedding"` for a trackable module.

    Recurrent and attention layers are `"dense"`: their input weights have
    the `nn.Linear` layout `(units, features)`.
    """
    for kind, types in MODULE_TYPES.items():
        if isinstance(module, types):
            return kind
    return None


def weight_parts(
    module: nn.Module, slots: tuple[str, ...] | None = None
) -> list[WeightPart] | None:
    """The parameters to read of a module other than a Linear, ConvNd or Embedding.

    A recurrent or attention layer's input weights, or a per-feature
    tokenizer's weight (its one parameter of 2+ dimensions, features first);
    `None` for a Linear, ConvNd or Embedding (read through `weight`,
    parametrized or not) and for a module with no such parameter.
    `slots` are the attention arguments that read the inputs (default all).
    """
    parts = known_parts(module, slots)
    if parts is not None or module_kind(module) is not None:
        return parts
    return tokenizer_parts(module)


def layer_kind(model: nn.Module, layer: str | nn.Module | FeatureAxis) -> Kind | None:
    """The kind of the layer `layer=` names (`None` if it is not a trackable layer).

    The trackers infer what they track from it:
    `VarianceImportanceTorch(model, layer="conv1")` tracks a convolution as
    `ConvVarianceImportanceTorch` would. A [`FeatureAxis`][] and a
    per-feature tokenizer are `"dense"`.
    """
    if isinstance(layer, FeatureAxis):
        return "dense"
    module = dict(model.named_modules()).get(layer) if isinstance(layer, str) else layer
    if not isinstance(module, nn.Module):
        return None
    kind = module_kind(module)
    if kind is None and tokenizer_parts(module) is not None:
        return "dense"
    return kind


def read_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The leaf parameters a tracker of `module` reads (parametrized or not)."""
    parts = weight_parts(module)
    if parts is not None:
        return [part.parameter for part in parts]
    return trainable_weight_parameters(module)


def is_trainable(module: nn.Module) -> bool:
    """Whether the parameters behind `module`'s weight (parametrized or not) get gradients."""
    return any(p.requires_grad for p in read_parameters(module))


def _describe(model: nn.Module) -> str:
    lines = []
    for name, module in model.named_modules():
        if not name:
            continue
        kind = layer_kind(model, module)
        trainable = kind is not None and is_trainable(module)
        status = f"{kind}, {'trainable' if trainable else 'frozen'}" if kind else "not trackable"
        if kind is not None and module_kind(module) is None:
            status += ", a per-feature weight"
        lines.append(f"  {name} ({type(module).__name__}: {status})")
    return "\n".join(lines) or "  (the model has no submodules)"


def select_layer(
    model: nn.Module, layer: str | nn.Module | FeatureAxis | None, kind: Kind
) -> tuple[str, nn.Module]:
    """Return `(name, module)` of the layer a `kind` tracker should read.

    Parameters
    ----------
    model : nn.Module
        The model being trained.
    layer : str, nn.Module, FeatureAxis or None
        A name from `model.named_modules()`, the module itself, a
        [`FeatureAxis`][] (then the name is the parameter's and the module
        its owner), or `None` for the first trainable layer of a known type
        in registration order.
    kind : {"dense", "conv", "embedding"}
        The tracker's kind; the chosen module must be of that type.

    Raises
    ------
    LayerSelectionError
        If the layer does not exist, has no weight the trackers can map to
        input features, is frozen, or is of another kind than the
        tracker's; the message lists the layers and the remedy.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if layer is None:
        for name, module in model.named_modules():
            if module_kind(module) and is_trainable(module):
                return _checked(model, name, module, kind)
        raise LayerSelectionError(
            "the model has no trainable nn.Linear, nn.Conv1d/2d/3d, nn.Embedding, recurrent "
            "or attention layer to track; name the parameter that reads the inputs with "
            "layer=FeatureAxis('<parameter name>', axis). Layers seen:\n" + _describe(model)
        )
    if isinstance(layer, FeatureAxis):
        if kind != "dense":
            raise LayerSelectionError(
                f"layer={layer!r} is tracked as a dense weight; use VarianceImportanceTorch."
            )
        try:
            _, owner, parts = feature_axis_parts(model, layer)
        except KeyError:
            names = ", ".join(name for name, _ in model.named_parameters())
            raise LayerSelectionError(
                f"layer={layer!r}: the model has no parameter {layer.weight!r}. Its "
                f"parameters: {names}."
            ) from None
        if not parts[0].parameter.requires_grad:
            raise LayerSelectionError(
                f"layer={layer!r} is frozen (requires_grad is False): its weights never "
                "change, so every importance would be zero."
            )
        check_not_flat_sharded(model, layer.weight, parts[0].parameter)
        return layer.weight, owner
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules or not layer:
            raise LayerSelectionError(
                f"layer={layer!r} is not a submodule name of the model (for a parameter, "
                "pass layer=FeatureAxis(name, axis)). Layers seen:\n" + _describe(model)
            )
        return _checked(model, layer, modules[layer], kind)
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer and name:
                return _checked(model, name, module, kind)
        raise LayerSelectionError(
            f"layer {type(layer).__name__} is not a submodule of the model; pass one of:\n"
            + _describe(model)
        )
    raise TypeError(
        f"layer must be a name, an nn.Module, a FeatureAxis or None, got {type(layer).__name__}"
    )


def _checked(model: nn.Module, name: str, module: nn.Module, kind: Kind) -> tuple[str, nn.Module]:
    found = layer_kind(model, module)
    if found is None:
        matrices = ", ".join(f"{n} {tuple(p.shape)}" for n, p in own_matrices(module))
        if matrices:
            reason = (
                f"whose weights ({matrices}) do not say which axis is the input feature; "
                f"name one with layer=FeatureAxis('{name}.<parameter>', axis=<feature axis>)"
            )
        else:
            reason = (
                "which has no per-input weight to track (normalisation, dropout and "
                "activation layers are skipped)"
            )
        raise LayerSelectionError(
            f"layer {name!r} is a {type(module).__name__}, {reason}. "
            "Choose one of these layers:\n" + _describe(model)
        )
    if found != kind:
        raise LayerSelectionError(
            f"layer {name!r} is a {type(module).__name__} ({found}); track it with "
            f"{TRACKER_FOR_KIND[found]}, pass layer= to choose a {kind} layer, or "
            f"layer=[...] to track several input layers (an Embedding beside a Linear) as "
            f"one result:\n" + _describe(model)
        )
    if not is_trainable(module):
        raise LayerSelectionError(
            f"layer {name!r} is frozen (weight.requires_grad is False): its weights never "
            "change, so every importance would be zero. Unfreeze it or choose a "
            "trainable layer:\n" + _describe(model)
        )
    for parameter in read_parameters(module):
        check_not_flat_sharded(model, name, parameter)
    return name, module
