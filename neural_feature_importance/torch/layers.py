"""Choosing which `nn.Module` of a model to track.

VIANN reads the *first trainable layer that sees the inputs*: the first
`nn.Linear`, `nn.Conv1d/2d/3d` or `nn.Embedding` whose weight requires
gradients. Before any forward pass that is the first in registration order
(forward order for `nn.Sequential` and most hand-written models); at the
first forward pass the trackers check which layer the inputs really reach
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
from neural_feature_importance.torch.parametrized import trainable_weight_parameters

MODULE_TYPES: dict[Kind, tuple[type[nn.Module], ...]] = {
    "dense": (nn.Linear,),
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
    """Return `"dense"`, `"conv"` or `"embedding"` for a trackable module."""
    for kind, types in MODULE_TYPES.items():
        if isinstance(module, types):
            return kind
    return None


def layer_kind(model: nn.Module, layer: str | nn.Module) -> Kind | None:
    """The kind of the layer `layer=` names (`None` if it is not a trackable layer).

    The trackers infer what they track from it:
    `VarianceImportanceTorch(model, layer="conv1")` tracks a convolution as
    `ConvVarianceImportanceTorch` would.
    """
    module = dict(model.named_modules()).get(layer) if isinstance(layer, str) else layer
    return module_kind(module) if isinstance(module, nn.Module) else None


def is_trainable(module: nn.Module) -> bool:
    """Whether the parameters behind `module`'s weight (parametrized or not) get gradients."""
    return any(p.requires_grad for p in trainable_weight_parameters(module))


def _describe(model: nn.Module) -> str:
    lines = []
    for name, module in model.named_modules():
        if not name:
            continue
        kind = module_kind(module)
        trainable = kind is not None and is_trainable(module)
        status = f"{kind}, {'trainable' if trainable else 'frozen'}" if kind else "not trackable"
        lines.append(f"  {name} ({type(module).__name__}: {status})")
    return "\n".join(lines) or "  (the model has no submodules)"


def select_layer(
    model: nn.Module, layer: str | nn.Module | None, kind: Kind
) -> tuple[str, nn.Module]:
    """Return `(name, module)` of the layer a `kind` tracker should read.

    Parameters
    ----------
    model : nn.Module
        The model being trained.
    layer : str, nn.Module or None
        A name from `model.named_modules()`, the module itself, or `None`
        for the first trainable Linear/Conv/Embedding.
    kind : {"dense", "conv", "embedding"}
        The tracker's kind; the chosen module must be of that type.

    Raises
    ------
    LayerSelectionError
        If the layer does not exist, is not of a trackable type, is frozen, or
        is of another kind than the tracker's; the message lists the layers.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if layer is None:
        for name, module in model.named_modules():
            if module_kind(module) and is_trainable(module):
                return _checked(model, name, module, kind)
        raise LayerSelectionError(
            "the model has no trainable nn.Linear, nn.Conv1d/2d/3d or nn.Embedding "
            "layer to track. Layers seen:\n" + _describe(model)
        )
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules or not layer:
            raise LayerSelectionError(
                f"layer={layer!r} is not a submodule name of the model. Layers seen:\n"
                + _describe(model)
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
    raise TypeError(f"layer must be a name, an nn.Module or None, got {type(layer).__name__}")


def _checked(model: nn.Module, name: str, module: nn.Module, kind: Kind) -> tuple[str, nn.Module]:
    found = module_kind(module)
    if found is None:
        raise LayerSelectionError(
            f"layer {name!r} is a {type(module).__name__}, which has no per-input weight "
            "to track (normalisation, dropout and activation layers are skipped). "
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
    check_not_flat_sharded(model, name, trainable_weight_parameters(module)[0])
    return name, module
