"""Tiny Hugging Face models of each patched family, built from a config with random weights (no download).

Used by the patching tests and by bench/bench_models.py. Norm weights are randomized (Gemma's initial zeros
and Llama's ones would hide a wrong offset or casting).
"""

import torch

# family -> (config class, model class, extra config arguments)
FAMILIES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {}),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", {}),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", {}),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", {}),
    "cohere": ("CohereConfig", "CohereForCausalLM", {"use_qk_norm": True}),
}

# The norm weights of these families are stored as w - 1 (centred on 0).
OFFSET_FAMILIES = {"gemma", "gemma2", "gemma3"}


def config(family, hidden_size=64, layers=2, heads=4, kv_heads=2, head_dim=16, vocab=128, intermediate=None,
           attention="eager"):
    import transformers

    config_name, _, extra = FAMILIES[family]
    arguments = dict(
        vocab_size=vocab, hidden_size=hidden_size, intermediate_size=intermediate or 2 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
        max_position_embeddings=256, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    arguments.update(extra)
    made = getattr(transformers, config_name)(**arguments)
    made._attn_implementation = attention
    return made


def model(family, dtype=torch.float32, device="cpu", seed=0, **sizes):
    """A causal LM of `family` with random weights (norm weights included), in eval mode."""
    import transformers

    torch.manual_seed(seed)
    built = getattr(transformers, FAMILIES[family][1])(config(family, **sizes))
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, parameter in built.named_parameters():
            if "norm" in name:
                centre = 0.0 if family in OFFSET_FAMILIES else 1.0
                values = torch.randn(parameter.shape, generator=generator) * 0.3 + centre
                parameter.copy_(values)
    return built.to(device=device, dtype=dtype).eval()


def tokens(batch=2, length=12, vocab=128, device="cpu", seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (batch, length), generator=generator).to(device)


def norm_modules(built):
    """(name, module) of every norm module of a model (the classes fusednorm patches)."""
    from fusednorm import patching

    names = {class_name for _, class_name, _ in patching.FAMILIES.values()}
    return [(name, module) for name, module in built.named_modules() if type(module).__name__ in names]
