"""Reading the weight of a layer whose weight is computed from other parameters.

`torch.nn.utils.parametrizations.weight_norm`/`spectral_norm` (and any
`torch.nn.utils.parametrize` parametrization) replace `module.weight` with a
property computed from `module.parametrizations.weight.original*`; the
deprecated `torch.nn.utils.weight_norm`/`spectral_norm` replace it with a
plain tensor recomputed by a forward pre-hook from `weight_g`/`weight_v` (or
`weight_orig`). Either way `module.weight` is no leaf `nn.Parameter`: it
looks frozen, and autograd keeps no `.grad` for it.

VIANN is about the weight the forward pass *uses* (the one that multiplies the
inputs), so this module gives

* `effective_weight()`: that weight, detached, without side effects;
* `trainable_weight_parameters()`: the leaf parameters behind it, so a
  caller can tell a frozen layer from a parametrized one;
* `EffectiveWeightGradient`: the gradient of the loss with respect to
  the effective weight, for the gradient scoring modes.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, cast

import torch
import torch.nn.functional as F
import torch.nn.grad
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

logger = logging.getLogger(__name__)

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_WEIGHT_GRADIENT = {
    1: torch.nn.grad.conv1d_weight,
    2: torch.nn.grad.conv2d_weight,
    3: torch.nn.grad.conv3d_weight,
}
_PAD_MODES = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "replicate",
    "circular": "circular",
}


def _weight_hook(module: nn.Module, name: str = "weight") -> WeightNorm | SpectralNorm | None:
    """The deprecated `weight_norm`/`spectral_norm` pre-hook of `name`, if any."""
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, (WeightNorm, SpectralNorm)) and hook.name == name:
            return hook
    return None


def _parametrizations(module: nn.Module) -> nn.Module:
    """The `ParametrizationList` of `module.weight` (a `parametrize`-parametrized module)."""
    return cast(nn.ModuleDict, module.parametrizations)["weight"]


def is_parametrized_weight(module: nn.Module) -> bool:
    """Whether `module.weight` is computed from other parameters.

    True for `torch.nn.utils.parametrize` parametrizations (the current
    `weight_norm`/`spectral_norm`...) and for the deprecated
    `torch.nn.utils.weight_norm`/`spectral_norm` hooks.
    """
    return parametrize.is_parametrized(module, "weight") or _weight_hook(module) is not None


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight the module's forward pass uses, detached.

    Parameters
    ----------
    module : nn.Module
        A module with a `weight`: plain, parametrized with
        `torch.nn.utils.parametrize` or with a deprecated weight-norm or
        spectral-norm hook.

    Returns
    -------
    torch.Tensor
        The weight in the module's layout (`(out, in)` for `nn.Linear`),
        computed from the current parameters. It does not require grad.

    Notes
    -----
    Reading has no side effect: `spectral_norm` runs a power iteration at
    every read of `module.weight` in training mode, so its parametrization is
    read in eval mode, with the singular-vector estimates the last forward pass
    left (the ones that forward used). The deprecated hooks are recomputed from
    their parameters rather than read from the stale `module.weight`
    attribute, which only a forward pass refreshes (after `optimizer.step()`
    it still holds the previous step's weight).

    Raises
    ------
    TypeError
        If the module has no tensor `weight`.
    """
    with torch.no_grad():
        if parametrize.is_parametrized(module, "weight"):
            parametrizations = _parametrizations(module)
            modes = [(part, part.training) for part in parametrizations.modules()]
            parametrizations.eval()
            try:
                computed = cast(torch.Tensor, module.weight)
            finally:
                for part, training in modes:
                    part.training = training
            return computed.detach()
        hook = _weight_hook(module)
        if isinstance(hook, WeightNorm):
            return hook.compute_weight(module).detach()
        if isinstance(hook, SpectralNorm):
            return hook.compute_weight(module, do_power_iteration=False).detach()
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"{type(module).__name__} has no tensor weight")
        return weight.detach()


def trainable_weight_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The leaf parameters the weight is computed from, whether they require grad or not.

    `parametrizations.weight.original0`/`original1` (weight norm),
    `parametrizations.weight.original` (spectral norm and most others, plus
    any parameter of the parametrization modules themselves), `weight_g` and
    `weight_v` (deprecated weight norm), `weight_orig` (deprecated spectral
    norm), or `weight` itself. A layer is frozen when none of them requires
    grad; an empty list means the weight is a plain tensor (a buffer).
    """
    if parametrize.is_parametrized(module, "weight"):
        found: list[nn.Parameter] = []
        for param in _parametrizations(module).parameters():
            if not any(param is seen for seen in found):
                found.append(param)
        return found
    hook = _weight_hook(module)
    if isinstance(hook, WeightNorm):
        names = [f"{hook.name}_g", f"{hook.name}_v"]
    elif isinstance(hook, SpectralNorm):
        names = [f"{hook.name}_orig"]
    else:
        names = ["weight"]
    return [p for p in (getattr(module, n, None) for n in names) if isinstance(p, nn.Parameter)]


class EffectiveWeightGradient:
    """Gradient of the loss with respect to the effective weight of a Linear/ConvNd.

    Autograd keeps `.grad` only for leaves; a parametrized weight is not one,
    and the originals' gradients (`dL/dg`, `dL/dv`) are not per-weight
    gradients of the weight that multiplies the inputs. This capture computes
    `dL/dW` from what the layer saw: a forward hook stores the layer's input
    and registers a hook on its output, which receives `dL/doutput` during
    backward; then `dL/dW = grad_output^T @ input` (Linear) or
    `torch.nn.grad.convNd_weight` (Conv), summed over the calls of a step.

    For the taylor score this is exact: for a linear layer
    `sum_j dL/dW_ji * W_ji = sum_n x_ni * dL/dx_ni`, so the effective-weight
    gradient times the effective weight is the gradient x input of each input
    feature, as `weight.grad * weight` is for a plain layer.

    Parameters
    ----------
    module : nn.Linear or nn.Conv1d/2d/3d
        The layer; plain layers work too (the result equals `weight.grad`).

    Examples
    --------
    In the training loop, for a step whose gradient is read:

    ```python
    capture = EffectiveWeightGradient(model.fc)
    capture.attach()
    ...
    capture.arm()                  # before that step's forward pass
    loss_fn(model(x), y).backward()
    grad = capture.pop()           # (out, in); None if nothing was captured
    ```

    Notes
    -----
    Only an armed capture computes anything (one extra matrix product per
    call, during backward), so steps whose gradient is not read cost nothing;
    `pop()` disarms it. Forward passes without grad (validation) are
    skipped. A backward pass that does not reach the layer's output, or the
    weight used outside the module's `__call__` (`F.linear(x, fc.weight)`),
    is not seen.
    """

    def __init__(self, module: nn.Module) -> None:
        if not isinstance(module, (nn.Linear, *_CONV_TYPES)):
            raise TypeError(
                "EffectiveWeightGradient supports nn.Linear and nn.Conv1d/2d/3d, got "
                f"{type(module).__name__}"
            )
        if isinstance(module, _CONV_TYPES) and module.padding_mode not in _PAD_MODES:
            raise NotImplementedError(
                f"EffectiveWeightGradient does not support padding_mode="
                f"{module.padding_mode!r} of {type(module).__name__}; supported: "
                f"{', '.join(_PAD_MODES)}."
            )
        self.module = module
        self._handle: torch.utils.hooks.RemovableHandle | None = None
        self._armed = False
        self._grad: torch.Tensor | None = None

    @property
    def attached(self) -> bool:
        """Whether the forward hook is installed."""
        return self._handle is not None

    @property
    def armed(self) -> bool:
        """Whether the next forward passes will have their gradient captured."""
        return self._armed

    def attach(self) -> None:
        """Install the forward hook (idempotent)."""
        if self._handle is None:
            self._handle = self.module.register_forward_hook(self._on_forward, with_kwargs=True)

    def detach(self) -> None:
        """Remove the hook and drop any captured gradient (idempotent).

        Output hooks of forward passes already run are left on their tensors
        but do nothing once detached.
        """
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._armed = False
        self._grad = None

    def arm(self) -> None:
        """Capture the gradients of the forward passes that follow, until `pop()`."""
        self._armed = True

    def pop(self) -> torch.Tensor | None:
        """Return the summed effective-weight gradient, clear it and disarm.

        Returns
        -------
        torch.Tensor or None
            `dL/dW` in the weight's layout, summed over the armed forward
            passes whose backward reached the layer; None if there was none.
        """
        grad, self._grad = self._grad, None
        self._armed = False
        return grad

    # ----------------------------------------------------------------- hooks
    def _on_forward(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> None:
        if not self._armed or not isinstance(output, torch.Tensor) or not output.requires_grad:
            return
        inputs = args[0] if args else kwargs.get("input")
        if not isinstance(inputs, torch.Tensor):
            logger.debug("EffectiveWeightGradient: %s called without a tensor input", module)
            return
        output.register_hook(functools.partial(self._on_grad_output, inputs.detach()))

    def _on_grad_output(self, inputs: torch.Tensor, grad_output: torch.Tensor) -> None:
        if self._handle is None:
            return
        with torch.no_grad():
            grad = self._weight_gradient(inputs, grad_output)
            if self._grad is None:
                self._grad = grad
            else:
                self._grad += grad

    def _weight_gradient(self, inputs: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
        # Under autocast the input may be float32 and grad_output bfloat16: use the wider.
        dtype = torch.promote_types(inputs.dtype, grad_output.dtype)
        inputs = inputs.to(dtype)
        grad_output = grad_output.to(dtype)
        module = self.module
        if isinstance(module, nn.Linear):
            return grad_output.reshape(-1, grad_output.shape[-1]).T @ inputs.reshape(
                -1, inputs.shape[-1]
            )
        spatial = len(module.kernel_size)
        if inputs.dim() == spatial + 1:  # an unbatched (C, *spatial) input
            inputs = inputs.unsqueeze(0)
            grad_output = grad_output.unsqueeze(0)
        padding: Any = module.padding
        if module.padding_mode != "zeros" or isinstance(padding, str):
            # As the module's own _conv_forward: "same" (possibly asymmetric) and
            # non-zero padding modes are an explicit pad followed by no padding.
            inputs = F.pad(
                inputs,
                module._reversed_padding_repeated_twice,
                mode=_PAD_MODES[module.padding_mode],
            )
            padding = 0
        weight_shape = (
            module.out_channels,
            module.in_channels // module.groups,
            *module.kernel_size,
        )
        return _CONV_WEIGHT_GRADIENT[spatial](
            inputs,
            weight_shape,
            grad_output,
            stride=module.stride,
            padding=padding,
            dilation=module.dilation,
            groups=module.groups,
        )
