import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

from neural_feature_importance.torch.parametrized import (
    EffectiveWeightGradient,
    effective_weight,
    is_parametrized_weight,
    trainable_weight_parameters,
)


def _old_weight_norm(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.nn.utils.weight_norm(module)


def _scale_magnitudes(module):
    # weight_norm starts with g = ||v||, so the effective weight equals v: scale g
    # so that returning v (or g) instead of g * v / ||v|| fails the tests.
    with torch.no_grad():
        if hasattr(module, "weight_g"):
            module.weight_g.mul_(torch.rand_like(module.weight_g) + 0.5)
        else:
            g = module.parametrizations.weight.original0
            g.mul_(torch.rand_like(g) + 0.5)
    return module


def make_linear(variant):
    linear = nn.Linear(8, 16).double()
    if variant == "weight_norm":
        return _scale_magnitudes(parametrizations.weight_norm(linear))
    if variant == "old_weight_norm":
        return _scale_magnitudes(_old_weight_norm(linear))
    if variant == "spectral_norm":
        return parametrizations.spectral_norm(linear)
    if variant == "old_spectral_norm":
        return torch.nn.utils.spectral_norm(linear)
    return linear


def originals(module, variant):
    if variant == "weight_norm":
        weights = module.parametrizations.weight
        return [weights.original0, weights.original1]
    if variant == "old_weight_norm":
        return [module.weight_g, module.weight_v]
    if variant == "spectral_norm":
        return [module.parametrizations.weight.original]
    if variant == "old_spectral_norm":
        return [module.weight_orig]
    return [module.weight]


VARIANTS = ["weight_norm", "old_weight_norm", "spectral_norm", "old_spectral_norm"]


def plain_copy(module):
    """A plain layer whose leaf weight is the module's effective weight."""
    weight = effective_weight(module).clone()
    if isinstance(module, nn.Linear):
        plain = nn.Linear(module.in_features, module.out_features, dtype=weight.dtype)
    else:
        plain = type(module)(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            groups=module.groups,
            padding_mode=module.padding_mode,
            dtype=weight.dtype,
        )
    plain.weight = nn.Parameter(weight)
    plain.bias = nn.Parameter(module.bias.detach().clone())
    return plain


def loss_of(y):
    target = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    return ((y - target) ** 2).mean() + torch.sin(y).sum()


# --------------------------------------------------------------- effective_weight
@pytest.mark.parametrize("variant", VARIANTS)
def test_effective_weight_is_the_weight_the_forward_pass_uses(variant):
    module = make_linear(variant)
    x = torch.randn(5, 8, dtype=torch.float64)
    y = module(x)  # training mode: spectral norm runs its power iteration here
    weight = effective_weight(module)
    torch.testing.assert_close(y, F.linear(x, weight, module.bias), rtol=1e-12, atol=1e-12)
    assert not weight.requires_grad
    assert weight.shape == (16, 8)
    assert is_parametrized_weight(module)
    assert not isinstance(module.weight, nn.Parameter)  # why this module exists
    # The effective weight is none of the originals.
    for param in originals(module, variant):
        assert param.shape != weight.shape or not torch.allclose(param, weight)


@pytest.mark.parametrize("variant", VARIANTS)
def test_trainable_weight_parameters_are_the_originals(variant):
    module = make_linear(variant)
    found = trainable_weight_parameters(module)
    expected = originals(module, variant)
    assert len(found) == len(expected)
    assert all(a is b for a, b in zip(found, expected, strict=True))
    assert all(p.requires_grad for p in found)


def test_plain_and_frozen_layers():
    plain = nn.Linear(8, 16)
    assert not is_parametrized_weight(plain)
    assert effective_weight(plain).data_ptr() == plain.weight.data_ptr()
    assert trainable_weight_parameters(plain) == [plain.weight]
    frozen = parametrizations.weight_norm(nn.Linear(8, 16)).requires_grad_(False)
    assert not any(p.requires_grad for p in trainable_weight_parameters(frozen))
    with pytest.raises(TypeError, match="no tensor weight"):
        effective_weight(nn.ReLU())


def test_spectral_norm_read_has_no_side_effect():
    module = make_linear("spectral_norm")
    module(torch.randn(3, 8, dtype=torch.float64))
    norm = module.parametrizations.weight[0]
    u_before = norm._u.clone()
    first = effective_weight(module)
    second = effective_weight(module)
    torch.testing.assert_close(norm._u, u_before, rtol=0, atol=0)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert module.training and norm.training  # the modes are restored


def test_old_weight_norm_is_recomputed_not_read_from_the_stale_attribute():
    module = make_linear("old_weight_norm")
    x = torch.randn(4, 8, dtype=torch.float64)
    module(x)
    with torch.no_grad():  # what optimizer.step() does: module.weight is now stale
        module.weight_g.mul_(2.0)
        module.weight_v.add_(0.1)
    weight = effective_weight(module)
    assert not torch.allclose(weight, module.weight)
    torch.testing.assert_close(module(x), F.linear(x, weight, module.bias))


def test_effective_weight_of_a_weight_normed_conv2d():
    module = _scale_magnitudes(parametrizations.weight_norm(nn.Conv2d(3, 4, 3).double()))
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64)
    weight = effective_weight(module)
    assert weight.shape == (4, 3, 3, 3)
    torch.testing.assert_close(module(x), F.conv2d(x, weight, module.bias))
    found = trainable_weight_parameters(module)
    assert found[0] is module.parametrizations.weight.original0
    assert found[1] is module.parametrizations.weight.original1


# ------------------------------------------------------- EffectiveWeightGradient
@pytest.mark.parametrize("variant", VARIANTS)
def test_captured_gradient_equals_autograd_of_the_effective_weight(variant):
    module = make_linear(variant)
    capture = EffectiveWeightGradient(module)
    capture.attach()
    capture.arm()
    x = torch.randn(6, 3, 8, dtype=torch.float64)  # (batch, sequence, features)
    loss_of(module(x)).backward()
    grad = capture.pop()

    plain = plain_copy(module)  # after the forward: the weight that forward used
    loss_of(plain(x)).backward()
    assert grad.shape == (16, 8)
    torch.testing.assert_close(grad, plain.weight.grad, rtol=1e-6, atol=0)


def test_gradients_of_a_module_called_twice_are_summed():
    module = _scale_magnitudes(parametrizations.weight_norm(nn.Linear(8, 8).double()))
    capture = EffectiveWeightGradient(module)
    capture.attach()
    capture.arm()
    x = torch.randn(5, 8, dtype=torch.float64)
    loss_of(module(torch.tanh(module(x)))).backward()
    grad = capture.pop()

    plain = plain_copy(module)
    loss_of(plain(torch.tanh(plain(x)))).backward()
    torch.testing.assert_close(grad, plain.weight.grad, rtol=1e-6, atol=0)
    # Only the first call's gradient would be different.
    once = plain_copy(module)
    loss_of(torch.tanh(once(x)) @ plain.weight.detach().T + plain.bias.detach()).backward()
    assert not torch.allclose(grad, once.weight.grad)


def test_unarmed_capture_returns_none_and_pop_disarms():
    module = parametrizations.weight_norm(nn.Linear(8, 4))
    capture = EffectiveWeightGradient(module)
    capture.attach()
    x = torch.randn(3, 8)
    loss_of(module(x)).backward()
    assert capture.pop() is None
    capture.arm()
    loss_of(module(x)).backward()
    assert capture.pop() is not None
    assert not capture.armed
    loss_of(module(x)).backward()
    assert capture.pop() is None


def test_no_grad_forward_and_detach_capture_nothing():
    module = parametrizations.weight_norm(nn.Linear(8, 4))
    capture = EffectiveWeightGradient(module)
    capture.attach()
    capture.arm()
    with torch.no_grad():
        module(torch.randn(3, 8))
    assert capture.pop() is None
    capture.arm()
    y = module(torch.randn(3, 8))
    capture.detach()
    loss_of(y).backward()  # the output hook of a detached capture does nothing
    assert capture.pop() is None
    assert not module._forward_hooks
    capture.detach()  # idempotent


def test_inplace_activation_after_the_layer():
    module = _scale_magnitudes(parametrizations.weight_norm(nn.Linear(8, 16).double()))
    capture = EffectiveWeightGradient(module)
    capture.attach()
    capture.arm()
    x = torch.randn(7, 8, dtype=torch.float64)
    loss_of(F.relu(module(x), inplace=True)).backward()
    plain = plain_copy(module)
    loss_of(F.relu(plain(x), inplace=True)).backward()
    torch.testing.assert_close(capture.pop(), plain.weight.grad, rtol=1e-6, atol=0)


def test_taylor_identity_gradient_times_weight_is_gradient_times_input():
    module = _scale_magnitudes(parametrizations.weight_norm(nn.Linear(8, 16).double()))
    capture = EffectiveWeightGradient(module)
    capture.attach()
    capture.arm()
    x = torch.randn(9, 8, dtype=torch.float64, requires_grad=True)
    loss_of(module(x)).backward()
    grad = capture.pop()
    per_feature = (grad * effective_weight(module)).sum(0)
    torch.testing.assert_close(per_feature, (x * x.grad).sum(0).detach(), rtol=1e-9, atol=1e-12)
    # The originals' gradient is no substitute: dL/dv times v gives other numbers.
    v = module.parametrizations.weight.original1
    assert not torch.allclose((v.grad * v).sum(0), per_feature)


CONVS = {
    "weight_norm_conv2d": lambda: _scale_magnitudes(
        parametrizations.weight_norm(nn.Conv2d(3, 4, 3).double())
    ),
    "strided_dilated_grouped_conv2d": lambda: parametrizations.weight_norm(
        nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2).double()
    ),
    "same_even_kernel_conv1d": lambda: parametrizations.weight_norm(
        nn.Conv1d(3, 5, 4, padding="same").double()
    ),
    "circular_conv1d": lambda: parametrizations.spectral_norm(
        nn.Conv1d(3, 5, 3, padding=2, padding_mode="circular").double()
    ),
    "reflect_conv2d": lambda: parametrizations.weight_norm(
        nn.Conv2d(3, 2, 3, padding=1, padding_mode="reflect").double()
    ),
    "old_weight_norm_conv3d": lambda: _scale_magnitudes(
        _old_weight_norm(nn.Conv3d(2, 3, 2, stride=(1, 2, 1)).double())
    ),
}
CONV_INPUTS = {1: (2, 3, 11), 2: (2, 3, 9, 9), 3: (2, 2, 5, 6, 4)}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("name", list(CONVS))
def test_conv_gradient_equals_autograd_of_the_effective_weight(name):
    module = CONVS[name]()
    shape = list(CONV_INPUTS[len(module.kernel_size)])
    shape[1] = module.in_channels
    x = torch.randn(*shape, dtype=torch.float64)
    capture = EffectiveWeightGradient(module)
    capture.attach()
    capture.arm()
    loss_of(module(x)).backward()
    grad = capture.pop()

    plain = plain_copy(module)
    torch.testing.assert_close(plain(x), module(x))
    loss_of(plain(x)).backward()
    assert grad.shape == plain.weight.shape
    torch.testing.assert_close(grad, plain.weight.grad, rtol=1e-6, atol=1e-12)


def test_unbatched_conv_input():
    module = parametrizations.weight_norm(nn.Conv1d(3, 5, 3).double())
    capture = EffectiveWeightGradient(module)
    capture.attach()
    capture.arm()
    x = torch.randn(3, 10, dtype=torch.float64)
    loss_of(module(x)).backward()
    plain = plain_copy(module)
    loss_of(plain(x)).backward()
    torch.testing.assert_close(capture.pop(), plain.weight.grad, rtol=1e-6, atol=1e-12)


def test_unsupported_modules_are_refused():
    with pytest.raises(TypeError, match=r"supports nn\.Linear"):
        EffectiveWeightGradient(nn.Embedding(4, 3))
    conv = nn.Conv1d(2, 2, 3)
    conv.padding_mode = "mirror"
    with pytest.raises(NotImplementedError, match="padding_mode='mirror'"):
        EffectiveWeightGradient(conv)
