"""The functional ops on torch.Tensor against PyTorch's own output and a float64 reference, CPU and CUDA."""

import warnings

import pytest

from torch_support import DEVICES, DTYPES, assert_exact_within_ulp, assert_ulps, share_different, torch

import fusednorm
import torch.nn.functional as F
from fusednorm import _layout

SIZES = (1, 33, 4095, 5120)


def random(shape, dtype, device, scale=1.0, shift=0.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=generator, dtype=torch.float64) * scale + shift).to(device=device, dtype=dtype)


def llama_formula(x, w, eps):
    """LlamaRMSNorm's forward."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w * h.to(x.dtype)


def gemma_formula(x, w, eps):
    """GemmaRMSNorm's forward (weights stored as w - 1)."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return (h * (1.0 + w.float())).type_as(x)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_rms_norm_standard_matches_torch(device, dtype, n):
    x = random((6, n), dtype, device, scale=2.0, shift=0.3)
    w = random((n,), dtype, device, scale=0.7, shift=1.0, seed=1)
    y = fusednorm.rms_norm(x, w, eps=1e-6)
    assert_ulps(y, F.rms_norm(x, (n,), w, 1e-6))
    assert_exact_within_ulp(y, lambda x, w: F.rms_norm(x, (n,), w, 1e-6), x, w)
    assert_ulps(fusednorm.rms_norm(x, None, eps=1e-6), F.rms_norm(x, (n,), None, 1e-6), what="weightless")


@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16))
@pytest.mark.parametrize("device", DEVICES)
def test_llama_and_gemma_casting_match_their_formulas_and_differ(device, dtype):
    """On these inputs the two castings give different results on > 5% of elements, so a wrong casting fails
    the 1%-share bound of assert_ulps."""
    n = 4096
    x = random((16, n), dtype, device, scale=2.0)
    w = random((n,), dtype, device, scale=0.7, shift=1.0, seed=1)
    llama = fusednorm.rms_norm(x, w, casting="llama")
    standard = fusednorm.rms_norm(x, w, casting="standard")
    assert share_different(llama_formula(x, w, 1e-6), F.rms_norm(x, (n,), w, 1e-6)) > 0.05
    assert_ulps(llama, llama_formula(x, w, 1e-6), what="llama")
    assert_ulps(standard, F.rms_norm(x, (n,), w, 1e-6), what="standard")
    g = random((n,), dtype, device, scale=0.3, seed=2)
    assert_ulps(fusednorm.rms_norm(x, g, offset=1.0, casting="gemma"), gemma_formula(x, g, 1e-6), what="gemma")
    assert share_different(gemma_formula(x, g, 1e-6), llama_formula(x, g + 1, 1e-6)) > 0.05


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_layer_norm_matches_torch(device, dtype, n):
    x = random((6, n), dtype, device, scale=2.0, shift=1.5)
    w = random((n,), dtype, device, shift=1.0, seed=1)
    b = random((n,), dtype, device, seed=2)
    if n == 1:  # s − mean(s) is exactly 0: y is the bias (PyTorch's 16-bit CPU kernel gives ~1e-5 instead)
        assert torch.equal(fusednorm.layer_norm(x, w, b, eps=1e-5), b.expand_as(x))
        assert torch.equal(fusednorm.layer_norm(x, eps=1e-5), torch.zeros_like(x))
        return
    y = fusednorm.layer_norm(x, w, b, eps=1e-5)
    assert_ulps(y, F.layer_norm(x, (n,), w, b, 1e-5))
    assert_exact_within_ulp(y, lambda x, w, b: F.layer_norm(x, (n,), w, b, 1e-5), x, w, b)
    assert_ulps(fusednorm.layer_norm(x, eps=1e-5), F.layer_norm(x, (n,), None, None, 1e-5), what="no affine")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_fused_residual_matches_add_then_norm(device, dtype):
    n = 4095
    x = random((5, n), dtype, device)
    r = random((5, n), dtype, device, scale=3.0, seed=1)
    w = random((n,), dtype, device, shift=1.0, seed=2)
    y, s = fusednorm.rms_norm(x, w, residual=r, casting="llama")
    assert torch.equal(s, x + r)
    assert_ulps(y, llama_formula(x + r, w, 1e-6))
    y, s = fusednorm.layer_norm(x, w, w, residual=r)
    assert torch.equal(s, x + r)
    assert_ulps(y, F.layer_norm(x + r, (n,), w, w, 1e-5))


@pytest.mark.parametrize("device", DEVICES)
def test_mixed_dtypes(device):
    n = 256
    x = random((4, n), torch.bfloat16, device)
    r = random((4, n), torch.float32, device, seed=1)
    w = random((n,), torch.float32, device, shift=1.0, seed=2)
    y, s = fusednorm.rms_norm(x, w, residual=r, out_dtype=torch.float32)
    assert y.dtype == torch.float32 and s.dtype == torch.float32
    expected_s = x.float() + r
    torch.testing.assert_close(s, expected_s)
    torch.testing.assert_close(y, F.rms_norm(expected_s, (n,), w, 1e-6))


# ---------------------------------------------------------------------------------------------------------
# Gradients. float32 against a float64 reference of the same formula: |error| <= 1e-4 · |reference| + 1e-5 ·
# max|reference| (float32 arithmetic over rows of up to 4095 elements); 16-bit dtypes against the float64
# reference rounded once: 2 ulps plus the same float32 term.
# ---------------------------------------------------------------------------------------------------------


def term_scale(s, dy, w_eff, eps, centered=False):
    """max over rows of rstd · max|dy · w|: the size of the terms whose difference dx is (dx itself cancels
    to almost 0 when N is 1, and float32 errors are relative to the terms)."""
    s, dy = s.double(), dy.double()
    centre = s.mean(-1, keepdim=True) if centered else 0.0
    rstd = torch.rsqrt(((s - centre) ** 2).mean(-1, keepdim=True) + eps)
    return (rstd * (dy * w_eff).abs().amax(-1, keepdim=True)).max().item()


def assert_gradient(got, reference64, what, scale=None):
    scale = max(scale or 0.0, reference64.abs().max().item())
    bound = {torch.float32: 1e-4, torch.float16: 2**-9, torch.bfloat16: 2**-6}[got.dtype]
    error = (got.double().cpu() - reference64.cpu()).abs()
    limit = bound * reference64.abs().cpu() + 1e-5 * scale
    assert (error <= limit).all(), f"{what}: max error {error.max().item():.3g}, scale {scale:.3g}"


def reference_gradients(function, tensors, dy):
    """Gradients of sum(function(*tensors) * dy) in float64."""
    leaves = [t.detach().double().requires_grad_(True) if t is not None else None for t in tensors]
    outputs = function(*leaves)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    loss = sum((o * d.double()).sum() for o, d in zip(outputs, dy))
    return torch.autograd.grad(loss, [leaf for leaf in leaves if leaf is not None])


def fused_gradients(function, tensors, dy):
    leaves = [t.detach().clone().requires_grad_(True) if t is not None else None for t in tensors]
    outputs = function(*leaves)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    grads = torch.autograd.grad(outputs, [leaf for leaf in leaves if leaf is not None], grad_outputs=dy)
    return grads


def _stored_sum(x, r, dtype):
    """x + r as the fused op stores it (rounded to the residual's dtype; the gradient passes through)."""
    return x + r if dtype is None else (x + r).to(dtype).to(torch.float64)


def rms_reference(x, w, r=None, offset=0.0, eps=1e-6, dtype=None):
    s = x if r is None else _stored_sum(x, r, dtype)
    y = s * torch.rsqrt(s.pow(2).mean(-1, keepdim=True) + eps) * (w + offset)
    return y if r is None else (y, s)


def layer_reference(x, w, b, r=None, eps=1e-5, dtype=None):
    s = x if r is None else _stored_sum(x, r, dtype)
    y = F.layer_norm(s, s.shape[-1:], None, None, eps) * w + b
    return y if r is None else (y, s)


@pytest.mark.parametrize("n", (1, 33, 4095))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_rms_norm_gradients(device, dtype, n):
    x = random((7, n), dtype, device, scale=2.0)
    r = random((7, n), dtype, device, seed=1)
    w = random((n,), dtype, device, scale=0.2, seed=2)
    dy = random((7, n), dtype, device, seed=3)
    ds = random((7, n), dtype, device, seed=4)

    def fused(x, r, w):
        return fusednorm.rms_norm(x, w, offset=1.0, residual=r)

    got = fused_gradients(fused, (x, r, w), (dy, ds))
    expected = reference_gradients(lambda x, r, w: rms_reference(x, w, r, offset=1.0, dtype=dtype), (x, r, w), (dy, ds))
    s = (x.double() + r.double()).to(dtype)
    scale = term_scale(s, dy.double() + ds.double(), w.double() + 1.0, 1e-6)
    for name, g, e in zip(("dx", "dresidual", "dweight"), got, expected):
        assert g.dtype == dtype
        assert_gradient(g, e, name, scale if name != "dweight" else None)
    plain = fused_gradients(lambda x, w: fusednorm.rms_norm(x, w), (x, w), (dy,))
    scale = term_scale(x, dy, w.double(), 1e-6)
    for name, g, e in zip(("dx", "dweight"), plain, reference_gradients(rms_reference, (x, w), (dy,))):
        assert_gradient(g, e, "plain " + name, scale if name == "dx" else None)


@pytest.mark.parametrize("n", (1, 33, 4095))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_layer_norm_gradients(device, dtype, n):
    x = random((7, n), dtype, device, scale=2.0, shift=1.0)
    r = random((7, n), dtype, device, seed=1)
    w = random((n,), dtype, device, shift=1.0, seed=2)
    b = random((n,), dtype, device, seed=5)
    dy = random((7, n), dtype, device, seed=3)
    ds = random((7, n), dtype, device, seed=4)
    got = fused_gradients(lambda x, r, w, b: fusednorm.layer_norm(x, w, b, residual=r), (x, r, w, b), (dy, ds))
    expected = reference_gradients(lambda x, r, w, b: layer_reference(x, w, b, r, dtype=dtype), (x, r, w, b), (dy, ds))
    s = (x.double() + r.double()).to(dtype)
    scale = term_scale(s, dy, w.double(), 1e-5, centered=True)
    for name, g, e in zip(("dx", "dresidual", "dweight", "dbias"), got, expected):
        assert_gradient(g, e, name, scale if name in ("dx", "dresidual") else None)


@pytest.mark.parametrize("device", DEVICES)
def test_per_head_weights_forward_and_gradients(device):
    heads, d = 4, 32
    x = random((3, 5, heads, d), torch.float32, device)
    w = random((heads, d), torch.float32, device, shift=1.0, seed=1)
    dy = random(x.shape, torch.float32, device, seed=2)
    torch.testing.assert_close(fusednorm.rms_norm(x, w), F.rms_norm(x, (d,), None, 1e-6) * w)
    got = fused_gradients(lambda x, w: fusednorm.rms_norm(x, w), (x, w), (dy,))
    expected = reference_gradients(lambda x, w: rms_reference(x, w), (x, w), (dy,))
    for name, g, e in zip(("dx", "dweight"), got, expected):
        assert_gradient(g, e, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_qk_views_of_fused_qkv_and_strided_gradients_make_no_copies(device, dtype):
    t, heads, d = 9, 4, 64
    qkv = random((t, 3 * heads * d), dtype, device)
    q = qkv[:, : heads * d].view(t, heads, d)
    k = qkv.view(t, 3, heads, d)[:, 1]
    w = random((d,), dtype, device, shift=1.0, seed=1)
    dy_storage = random((t, 3 * heads * d), dtype, device, seed=2)
    dy = dy_storage.view(t, 3, heads, d)[:, 2]  # a strided gradient as well
    fusednorm.reset_fallback_copies()
    counters = fusednorm.memory_counters()
    for view in (q, k):
        assert not view.is_contiguous()
        leaf = view.detach().requires_grad_(True)
        weight = w.detach().clone().requires_grad_(True)
        y = fusednorm.rms_norm(leaf, weight, casting="llama")
        assert_ulps(y, llama_formula(view.contiguous(), w, 1e-6))
        dx, dw = torch.autograd.grad(y, (leaf, weight), grad_outputs=dy)
        expected = reference_gradients(lambda x, w: rms_reference(x, w), (view, w), (dy,))
        if dtype == torch.float32:
            assert_gradient(dx, expected[0], "dx")
            assert_gradient(dw, expected[1], "dweight")
    from fusednorm import _torch

    grouped = _layout.two_levels if device == "cpu" else _torch._cuda_grouped.get(torch.device(device).index or 0)
    if not grouped:
        pytest.xfail(f"{fusednorm.fallback_copies()} copies: the loaded libFusedNormC answers FUSEDNORM_UNSUPPORTED "
                     f"for two-level rows on {device} (python/C_ABI_REQUESTS.md item 0)")
    assert fusednorm.fallback_copies() == 0
    if counters is not None:  # the library made no allocation or copy either
        assert fusednorm.memory_counters() == counters


@pytest.mark.parametrize("device", DEVICES)
def test_other_layouts_are_copied_counted_and_warned_once(device):
    x = random((64, 48), torch.float32, device).t()  # the normalized dimension is not contiguous
    fusednorm.reset_fallback_copies()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = fusednorm.rms_norm(x)
        fusednorm.rms_norm(x)
    torch.testing.assert_close(y, F.rms_norm(x, (64,), None, 1e-6))
    assert fusednorm.fallback_copies() == 2
    assert len([w for w in caught if "fallback_copies" in str(w.message)]) <= 1


@pytest.mark.parametrize("device", DEVICES)
def test_weight_gradient_is_deterministic(device):
    x = random((512, 1024), torch.float32, device).requires_grad_(True)
    w = random((1024,), torch.float32, device, shift=1.0, seed=1).requires_grad_(True)
    dy = random((512, 1024), torch.float32, device, seed=2)
    first = torch.autograd.grad(fusednorm.rms_norm(x, w), w, grad_outputs=dy)[0]
    second = torch.autograd.grad(fusednorm.rms_norm(x, w), w, grad_outputs=dy)[0]
    assert torch.equal(first, second)


@pytest.mark.parametrize("device", DEVICES)
def test_custom_ops_pass_opcheck(device):
    """Schema, fake (meta) implementation, and autograd registration, as torch.library checks them."""
    x = random((5, 40), torch.float32, device).requires_grad_(True)
    r = random((5, 40), torch.float32, device, seed=1).requires_grad_(True)
    w = random((40,), torch.float32, device, shift=1.0, seed=2).requires_grad_(True)
    torch.library.opcheck(torch.ops.fusednorm.rms_norm_forward.default, (x, r, w, 1e-6, 0.0, 1, None, None))
    torch.library.opcheck(torch.ops.fusednorm.rms_norm_forward.default, (x, None, w, 1e-6, 1.0, 0, None, None))
    torch.library.opcheck(torch.ops.fusednorm.layer_norm_forward.default, (x, r, w, w, 1e-5, None, None))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_treats_the_ops_as_opaque_calls(device):
    """fullgraph=True fails on any graph break; results equal eager ones."""
    x = random((8, 96), torch.bfloat16, device)
    r = random((8, 96), torch.bfloat16, device, seed=1)
    w = random((96,), torch.bfloat16, device, shift=1.0, seed=2)

    def block(x, r, w):
        y, s = fusednorm.rms_norm(x * 2, w, residual=r, casting="llama")
        return fusednorm.layer_norm(y, w, None) + s

    backend = "inductor" if device == "cuda" else "aot_eager"
    compiled = torch.compile(block, fullgraph=True, backend=backend)
    torch.testing.assert_close(compiled(x, r, w), block(x, r, w), rtol=0, atol=0)

    # and training: the backward ops run under the compiled graph's autograd too
    leaves = [t.float().requires_grad_(True) for t in (x, r, w)]
    eager = torch.autograd.grad(block(*leaves).square().sum(), leaves)
    torch._dynamo.reset()
    compiled = torch.compile(block, fullgraph=True, backend=backend)
    got = torch.autograd.grad(compiled(*leaves).square().sum(), leaves)
    for g, e in zip(got, eager):
        torch.testing.assert_close(g, e)


@pytest.mark.parametrize("device", DEVICES)
def test_bad_tensors_raise(device):
    x = random((4, 8), torch.float32, device)
    with pytest.raises(TypeError, match="float64"):
        fusednorm.rms_norm(x.double())
    with pytest.raises(fusednorm.FusedNormError, match="weight"):
        fusednorm.rms_norm(x, torch.ones(7, device=device))
    with pytest.raises(ValueError, match="casting"):
        fusednorm.rms_norm(x, casting="qwen")
    with pytest.raises(fusednorm.FusedNormError):
        fusednorm.layer_norm(x, eps=-1.0)


def test_cuda_calls_are_ordered_on_the_callers_stream():
    """On a side stream, a large input written just before the call: a call on another stream would race."""
    if "cuda" not in DEVICES or not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU that FusedNorm can use (run on the GPU machine)")
    side = torch.cuda.Stream()
    x = torch.empty((4096, 4096), device="cuda", dtype=torch.bfloat16)
    w = random((4096,), torch.bfloat16, "cuda", shift=1.0, seed=1)
    source = random((4096, 4096), torch.bfloat16, "cuda", seed=2)
    torch.cuda.synchronize()
    with torch.cuda.stream(side):
        x.copy_(source * 3)  # queued on `side` just before the norm
        y = fusednorm.rms_norm(x, w)
        z = y * 2  # and read right after it, on the same stream
    side.synchronize()
    assert_ulps(y, F.rms_norm(source * 3, (4096,), w, 1e-6))
    assert torch.equal(z, y * 2)
