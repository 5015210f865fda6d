"""fusednorm.RMSNorm, LayerNorm and AddRMSNorm against torch.nn's modules: state dicts and outputs."""

import pytest

from torch_support import DEVICES, DTYPES, assert_ulps, torch

import fusednorm


def randomize(module, shift=1.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            values = torch.randn(parameter.shape, generator=generator, dtype=torch.float64) * 0.5 + shift
            parameter.copy_(values.to(parameter.dtype))
    return module


def random(shape, dtype, device, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=generator) * 2).to(device=device, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_rms_norm_module_loads_torch_state_dict_and_matches(device, dtype):
    reference = randomize(torch.nn.RMSNorm(4095, eps=1e-6, device=device, dtype=dtype))
    module = fusednorm.RMSNorm(4095, eps=1e-6, device=device, dtype=dtype)
    module.load_state_dict(reference.state_dict())
    assert list(module.state_dict()) == ["weight"]
    x = random((3, 7, 4095), dtype, device)
    assert_ulps(module(x), reference(x))
    reference_default = torch.nn.RMSNorm(64, device=device, dtype=dtype)  # eps=None: float32 epsilon
    default = fusednorm.RMSNorm(64, device=device, dtype=dtype)
    x = random((5, 64), dtype, device, seed=1)
    assert_ulps(default(x), reference_default(x), what="eps=None")


@pytest.mark.parametrize("device", DEVICES)
def test_rms_norm_module_over_two_dimensions_and_without_weight(device):
    reference = randomize(torch.nn.RMSNorm((4, 16), eps=1e-5, device=device))
    module = fusednorm.RMSNorm((4, 16), eps=1e-5, device=device)
    module.load_state_dict(reference.state_dict())
    x = random((3, 4, 16), torch.float32, device)
    torch.testing.assert_close(module(x), reference(x))
    bare = fusednorm.RMSNorm(16, elementwise_affine=False, device=device)
    assert bare.weight is None and not list(bare.state_dict())
    torch.testing.assert_close(bare(x), torch.nn.RMSNorm(16, elementwise_affine=False, device=device)(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_layer_norm_module_loads_torch_state_dict_and_matches(device, dtype):
    for bias in (True, False):
        reference = randomize(torch.nn.LayerNorm(1000, eps=1e-5, bias=bias, device=device, dtype=dtype))
        module = fusednorm.LayerNorm(1000, eps=1e-5, bias=bias, device=device, dtype=dtype)
        module.load_state_dict(reference.state_dict())
        assert list(module.state_dict()) == list(reference.state_dict())
        x = random((9, 1000), dtype, device)
        assert_ulps(module(x), reference(x), what=f"bias={bias}")


@pytest.mark.parametrize("device", DEVICES)
def test_layer_norm_module_gradients_match_torch(device):
    reference = randomize(torch.nn.LayerNorm(257, device=device, dtype=torch.float64))
    module = fusednorm.LayerNorm(257, device=device)
    module.load_state_dict({k: v.float() for k, v in reference.state_dict().items()})
    x = random((11, 257), torch.float64, device)
    dy = random((11, 257), torch.float64, device, seed=1)
    x32 = x.float().requires_grad_(True)
    module(x32).backward(dy.float())
    x64 = x.clone().requires_grad_(True)
    reference(x64).backward(dy)
    for got, expected in ((x32.grad, x64.grad), (module.weight.grad, reference.weight.grad), (module.bias.grad, reference.bias.grad)):
        torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_add_rms_norm_matches_add_then_norm_with_gradients(device, dtype):
    n = 512
    fused = randomize(fusednorm.AddRMSNorm(n, eps=1e-6, casting="llama", device=device, dtype=dtype))
    x = random((6, n), dtype, device).requires_grad_(True)
    r = random((6, n), dtype, device, seed=1).requires_grad_(True)
    y, s = fused(x, r)
    x2 = x.detach().clone().requires_grad_(True)
    r2 = r.detach().clone().requires_grad_(True)
    s2 = x2 + r2
    h = s2.float()
    y2 = fused.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)).to(dtype)
    assert torch.equal(s, s2)
    assert_ulps(y, y2)
    if dtype == torch.float32:
        dy = random((6, n), dtype, device, seed=2)
        ds = random((6, n), dtype, device, seed=3)
        torch.autograd.backward((y, s), (dy, ds))
        weight_grad = fused.weight.grad.clone()
        fused.weight.grad = None
        torch.autograd.backward((y2, s2), (dy, ds))
        for got, expected in ((x.grad, x2.grad), (r.grad, r2.grad), (weight_grad, fused.weight.grad)):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
