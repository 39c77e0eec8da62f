"""The torch trackers' options and `layer=` argument, checked before any training.

The trackers check every option in their constructor (the trainer callbacks
before the model exists), through the core's one table of checks
([`neural_feature_importance.core.options.check_core_options()`][check_core_options]).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from neural_feature_importance.core.columns import FeatureColumns
from neural_feature_importance.core.options import check_core_options
from neural_feature_importance.torch.layers import module_kind, select_layer

Layer = str | nn.Module | list[str | nn.Module] | tuple[str | nn.Module, ...] | None
"""What `layer=` accepts: a name, a module, several of them, or `None`."""

_OPTION_DEFAULTS: dict[str, Any] = {
    "update_every": None,
    "normalize": "minmax",
    "dtype": "float64",
    "include_initial": False,
    "record_history": False,
    "finite_check": None,
    "scoring": "viann",
    "gradient_every": None,
    "feature_names": None,
    "groups": None,
}
"""The torch trackers' options (besides `model` and `layer`) and their defaults."""


def dtype_name(dtype: str | torch.dtype) -> str:
    """The name of a dtype given as a string or a `torch.dtype` (`"float32"`)."""
    if isinstance(dtype, torch.dtype):
        return str(dtype).removeprefix("torch.")
    return dtype


def check_torch_options(owner: str, **options: Any) -> dict[str, Any]:
    """Check torch tracker options before any model exists; return them with the defaults.

    Raises
    ------
    TypeError
        If an option is not a parameter of the trackers (the message lists them).
    ValueError
        If an option's value is not accepted.
    """
    unknown = sorted(set(options) - set(_OPTION_DEFAULTS))
    if unknown:
        raise TypeError(
            f"{owner} has no option {', '.join(map(repr, unknown))}; its options "
            f"are layer, {', '.join(_OPTION_DEFAULTS)}."
        )
    values = _OPTION_DEFAULTS | options
    FeatureColumns(values["feature_names"], values["groups"])
    checked = {
        key: values[key] for key in ("update_every", "gradient_every", "normalize", "scoring")
    }
    checked["dtype"] = dtype_name(values["dtype"])
    if values["finite_check"] is not None:
        checked["finite_check"] = values["finite_check"]
    check_core_options(**checked)
    return values


def check_layer_list(model: nn.Module, layers: Sequence[str | nn.Module]) -> list[str]:
    """Check every entry of `layer=[...]` (any trackable kind); return their names."""
    if not layers:
        raise ValueError("layer=[] names no layer; pass layer names or modules, or None.")
    names = []
    for entry in layers:
        if not isinstance(entry, str | nn.Module):
            raise TypeError(f"layer=[...] takes layer names or modules, got {type(entry).__name__}")
        module = dict(model.named_modules()).get(entry) if isinstance(entry, str) else entry
        kind = module_kind(module) if isinstance(module, nn.Module) else None
        name, _ = select_layer(model, entry, kind or "dense")
        if name in names:
            raise ValueError(f"layer=[...] names {name!r} twice.")
        names.append(name)
    return names
