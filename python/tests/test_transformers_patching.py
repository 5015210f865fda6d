"""Model patching: every patched norm class against its own forward, tiny models of each family forward and
backward patched vs unpatched, reversibility, torch.compile, and a CUDA graph around a patched decoder layer."""

import pytest

from torch_support import DEVICES, assert_ulps, torch

transformers = pytest.importorskip("transformers", reason="transformers is not installed (it is on the GPU machine)")

import fusednorm  # noqa: E402
import tiny_models  # noqa: E402
from fusednorm import patching  # noqa: E402

FAMILIES = list(tiny_models.FAMILIES)


@pytest.fixture(autouse=True)
def unpatched():
    patching.unpatch_transformers()
    yield
    patching.unpatch_transformers()


def capture_norm_calls(built, ids):
    """Runs the model and records (module, input, output) of every norm module call."""
    calls = []
    hooks = [module.register_forward_hook(lambda m, args, out: calls.append((m, args[0].detach(), out.detach())))
             for _, module in tiny_models.norm_modules(built)]
    with torch.no_grad():
        built(ids)
    for hook in hooks:
        hook.remove()
    return calls


@pytest.mark.parametrize("dtype", (torch.float32, torch.float16, torch.bfloat16))
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("device", DEVICES)
def test_each_patched_norm_computes_what_its_class_computes(device, family, dtype):
    """The class's own forward on the inputs a real forward pass gives it, against the patched forward."""
    built = tiny_models.model(family, dtype=dtype, device=device)
    calls = capture_norm_calls(built, tiny_models.tokens(device=device))
    assert calls, "no norm module ran"
    patched = patching.patch_transformers([family])
    assert patched and type(calls[0][0]).__name__ in patched
    for module, x, expected in calls:
        with torch.no_grad():
            assert_ulps(module(x), expected, what=f"{type(module).__name__} on {tuple(x.shape)}")


@pytest.mark.parametrize("family", ["llama", "qwen3", "gemma", "gemma3", "cohere"])
@pytest.mark.parametrize("device", DEVICES)
def test_float32_weights_on_16_bit_activations(device, family):
    """Mixed dtypes as the classes define them: Llama-style norms give the promotion of the weight's and the
    input's dtypes (float32 here), Gemma's and Cohere's give the input's dtype."""
    module_name, class_name, _ = patching.FAMILIES[family]
    cls = getattr(__import__(module_name, fromlist=[class_name]), class_name)
    norm = cls(96).to(device)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(96, generator=torch.Generator().manual_seed(3)) * 0.3 + 0.5)
    x = (torch.randn(4, 7, 96, generator=torch.Generator().manual_seed(4)) * 2).to(device=device, dtype=torch.bfloat16)
    with torch.no_grad():
        expected = norm(x)
        patching.patch_transformers([family])
        got = norm(x)
    assert got.dtype == expected.dtype
    assert_ulps(got, expected, what=class_name)


def gradients(built, ids):
    built.zero_grad(set_to_none=True)
    output = built(ids, labels=ids)
    output.loss.backward()
    return output.logits.detach(), {name: p.grad.detach().clone() for name, p in built.named_parameters()
                                    if p.grad is not None}


def assert_near(got, expected, what, relative=1e-4):
    """float32 models: |got − expected| <= relative · max|expected| (a whole model's float32 rounding)."""
    scale = expected.abs().max().item()
    error = (got - expected).abs().max().item()
    assert error <= relative * scale + 1e-7, f"{what}: max error {error:.3g} against scale {scale:.3g}"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("device", DEVICES)
def test_tiny_model_forward_and_backward_patched_vs_unpatched(device, family):
    built = tiny_models.model(family, device=device)
    built.train()
    ids = tiny_models.tokens(device=device)
    logits, grads = gradients(built, ids)
    patching.patch_transformers([family])
    for _, module in tiny_models.norm_modules(built):
        assert "fusednorm" in type(module).forward.__module__
    patched_logits, patched_grads = gradients(built, ids)
    assert_near(patched_logits, logits, "logits")
    assert set(patched_grads) == set(grads)
    norm_parameters = [name for name in grads if "norm" in name]
    assert norm_parameters, "the model has no norm weights with gradients"
    for name in grads:
        assert_near(patched_grads[name], grads[name], f"gradient of {name}", relative=1e-3)


def test_unpatching_restores_and_other_models_are_untouched():
    originals = {family: patching._load(family).forward for family in ("llama", "gemma")}
    gemma = tiny_models.model("gemma")
    ids = tiny_models.tokens()
    with torch.no_grad():
        before = gemma(ids).logits
        patching.patch_transformers(["llama"])
        assert patching.patched_classes() == ["LlamaRMSNorm"]
        assert torch.equal(gemma(ids).logits, before)  # Gemma's norm is not patched
        llama64 = tiny_models.model("llama", dtype=torch.float64)  # float64: the original forward runs
        patched64 = llama64(ids).logits
    patching.unpatch_transformers()
    assert patching.patched_classes() == []
    for family, forward in originals.items():
        assert patching._load(family).forward is forward
    with torch.no_grad():
        assert torch.equal(llama64(ids).logits, patched64)


@pytest.mark.parametrize("device", DEVICES)
def test_patch_model_patches_one_model_only(device):
    a = tiny_models.model("qwen3", device=device)
    b = tiny_models.model("qwen3", device=device)
    ids = tiny_models.tokens(device=device)
    with torch.no_grad():
        expected = b(ids).logits
        count = patching.patch_model(a)
        assert count == len(tiny_models.norm_modules(a))
        assert all("forward" not in module.__dict__ for _, module in tiny_models.norm_modules(b))
        assert_near(a(ids).logits, expected, "patched model logits")
        assert torch.equal(b(ids).logits, expected)
        assert patching.unpatch_model(a) == count
        assert torch.equal(a(ids).logits, expected)


@pytest.mark.parametrize("device", DEVICES)
def test_patch_model_handles_torch_layer_norm_models(device):
    """GPT-2 uses torch.nn.LayerNorm: patch_model replaces those modules' forward in that model only."""
    config = transformers.GPT2Config(vocab_size=128, n_positions=64, n_embd=64, n_layer=2, n_head=4)
    torch.manual_seed(0)
    built = transformers.GPT2LMHeadModel(config).to(device).eval()
    ids = tiny_models.tokens(device=device)
    with torch.no_grad():
        expected = built(ids).logits
        count = patching.patch_model(built)
        assert count == 2 * 2 + 1
        assert_near(built(ids).logits, expected, "GPT-2 logits")
    patching.unpatch_model(built)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_of_a_patched_model(device):
    patching.patch_transformers()
    built = tiny_models.model("qwen3", device=device)
    ids = tiny_models.tokens(device=device)
    backend = "inductor" if device == "cuda" else "aot_eager"
    compiled = torch.compile(built, backend=backend)
    with torch.no_grad():
        eager = built(ids).logits
        assert_near(compiled(ids).logits, eager, "compiled logits")
    norm = tiny_models.norm_modules(built)[0][1]
    x = torch.randn(3, 5, norm.weight.shape[-1], device=device)
    compiled_norm = torch.compile(norm, fullgraph=True, backend=backend)  # a graph break fails here
    torch.testing.assert_close(compiled_norm(x), norm(x), rtol=0, atol=0)


@pytest.mark.parametrize("family", ["llama", "qwen3"])
def test_cuda_graph_around_a_patched_decoder_layer(family):
    if "cuda" not in DEVICES or not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU that FusedNorm can use (run on the GPU machine)")
    patching.patch_transformers([family])
    built = tiny_models.model(family, dtype=torch.bfloat16, device="cuda")
    layer = built.model.layers[0]
    hidden = torch.randn(2, 12, built.config.hidden_size, device="cuda", dtype=torch.bfloat16)
    positions = torch.arange(12, device="cuda").unsqueeze(0).expand(2, -1)
    embeddings = built.model.rotary_emb(hidden, positions)

    def run(h):
        out = layer(h, attention_mask=None, position_ids=positions, position_embeddings=embeddings)
        return out[0] if isinstance(out, tuple) else out

    static = hidden.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(3):  # warm-up: kernels compiled and cached before capture
            run(static)
    torch.cuda.current_stream().wait_stream(side)
    from fusednorm import _torch

    if not _torch.caller_streams:
        pytest.xfail("this libFusedNormC refuses caller streams, so each call synchronizes and cannot be captured "
                     "(python/C_ABI_REQUESTS.md item 1)")
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        static_out = run(static)
    fresh = torch.randn_like(hidden)
    static.copy_(fresh)
    graph.replay()
    torch.cuda.synchronize()
    with torch.no_grad():
        expected = run(fresh)
    assert torch.equal(static_out, expected)
