"""The torch trackers' options: `layer=`, and the core tracker made from the others.

The options other than `layer=` are checked by the core tracker's constructor,
through the core's one table of checks
([`neural_feature_importance.core.options.check_core_options()`][check_core_options]).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from neural_feature_importance.core.options import check_core_options, default_finite_check
from neural_feature_importance.core.tracker import CORE_TRACKERS, VarianceImportanceBase
from neural_feature_importance.core.views import Kind
from neural_feature_importance.torch.arrays import TorchArrayOps
from neural_feature_importance.torch.input_weights import FeatureAxis
from neural_feature_importance.torch.layers import layer_kind, select_layer

Layer = str | nn.Module | FeatureAxis | list[str | nn.Module] | tuple[str | nn.Module, ...] | None
"""What `layer=` accepts: a name, a module, a `FeatureAxis`, several modules, or `None`."""


def dtype_name(dtype: str | torch.dtype) -> str:
    """The name of a dtype given as a string or a `torch.dtype` (`"float32"`)."""
    if isinstance(dtype, torch.dtype):
        return str(dtype).removeprefix("torch.")
    return dtype


def check_layer_list(model: nn.Module, layers: Sequence[str | nn.Module]) -> list[str]:
    """Check every entry of `layer=[...]` (any trackable kind); return their names."""
    if not layers:
        raise ValueError("layer=[] names no layer; pass layer names or modules, or None.")
    names = []
    for entry in layers:
        if not isinstance(entry, str | nn.Module):
            raise TypeError(
                f"layer=[...] takes layer names or modules, got {type(entry).__name__} "
                "(a FeatureAxis is tracked on its own: layer=FeatureAxis(...))"
            )
        name, _ = select_layer(model, entry, layer_kind(model, entry) or "dense")
        if name in names:
            raise ValueError(f"layer=[...] names {name!r} twice.")
        names.append(name)
    return names


def new_core(kind: Kind, options: Mapping[str, Any]) -> VarianceImportanceBase:
    """The core tracker of `kind` for a torch tracker's options (its constructor checks them)."""
    check_core_options(
        update_every=options["update_every"], gradient_every=options["gradient_every"]
    )
    return CORE_TRACKERS[kind](
        options["normalize"],
        dtype=dtype_name(options["dtype"]),
        include_initial=options["include_initial"],
        record_history=options["record_history"],
        layout="torch",
        ops=TorchArrayOps(),
        finite_check=default_finite_check(options["finite_check"], options["update_every"]),
        scoring=options["scoring"],
        feature_names=options["feature_names"],
        groups=options["groups"],
        log_importances=options["log_importances"],
    )


def check_options_without_model(
    owner: str, constructor: Callable[..., None], kind: Kind, options: Mapping[str, Any]
) -> None:
    """Check a torch tracker's options before its model exists, with the constructor's checks.

    The options not given take the constructor's defaults (read from its signature).

    Raises
    ------
    TypeError
        If an option is not a parameter of the tracker (the message lists them).
    ValueError
        If an option's value is not accepted.
    """
    parameters = inspect.signature(constructor).parameters
    known = [name for name in parameters if name not in ("self", "model")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(
            f"{owner} has no option {', '.join(map(repr, unknown))}; its options "
            f"are {', '.join(known)}."
        )
    defaults = {name: parameters[name].default for name in known if name != "layer"}
    new_core(kind, defaults | dict(options))
