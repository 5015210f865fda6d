"""Hugging Face `transformers` models on FusedNorm's kernels, reversibly.

Two forms, as Unsloth's patch_rms_layernorm and Liger's apply_liger_kernel_to_* do it:
  - patch_transformers(families=None) replaces the `forward` of the norm classes of the named model
    families (all known ones by default) for every model, existing or future; unpatch_transformers()
    puts the original methods back.
  - patch_model(model) replaces the `forward` of the norm modules inside one model only (also plain
    torch.nn.LayerNorm modules, as GPT-2-like models use them); unpatch_model(model) undoes it.

Each replacement computes what the class it replaces computes, rounding included:
  - LlamaRMSNorm, MistralRMSNorm, Qwen2RMSNorm, Qwen3RMSNorm (also Qwen3's q_norm/k_norm, one (head_dim)
    weight for every head of a (B, L, H, D) view): `weight * (x.float() * rstd).to(x.dtype)`: "llama"
    casting, offset 0, the result in the promotion of the weight's and x's dtypes.
  - GemmaRMSNorm, Gemma2RMSNorm, Gemma3RMSNorm: `(x.float() * rstd * (1 + weight.float())).type_as(x)`:
    one rounding, offset 1, the result in x's dtype.
  - CohereLayerNorm (Command-R; weight only, no bias; its q/k norms have per-head (H, D) weights):
    `(weight.float() * (x.float() - mean) * rstd).to(x.dtype)`: LayerNorm with one rounding.
  - torch.nn.LayerNorm (patch_model only): torch's own layer_norm, one rounding.
A module whose input FusedNorm does not handle (float64, a device other than CPU and CUDA, CUDA where the
library finds no usable GPU, a weight on another device) keeps running its original forward, so nothing that
worked before breaks.
"""

from __future__ import annotations

import importlib
import types
from typing import Callable, Dict, Iterable, List, Optional

import torch
from torch import nn

from . import _torch

# family -> (module, class, kind)
FAMILIES: Dict[str, tuple] = {
    "llama": ("transformers.models.llama.modeling_llama", "LlamaRMSNorm", "llama"),
    "mistral": ("transformers.models.mistral.modeling_mistral", "MistralRMSNorm", "llama"),
    "qwen2": ("transformers.models.qwen2.modeling_qwen2", "Qwen2RMSNorm", "llama"),
    "qwen3": ("transformers.models.qwen3.modeling_qwen3", "Qwen3RMSNorm", "llama"),
    "gemma": ("transformers.models.gemma.modeling_gemma", "GemmaRMSNorm", "gemma"),
    "gemma2": ("transformers.models.gemma2.modeling_gemma2", "Gemma2RMSNorm", "gemma"),
    "gemma3": ("transformers.models.gemma3.modeling_gemma3", "Gemma3RMSNorm", "gemma"),
    "cohere": ("transformers.models.cohere.modeling_cohere", "CohereLayerNorm", "cohere"),
}

# class -> its original forward, for every class patched now
_patched: Dict[type, Callable] = {}
_MARK = "_fusednorm_original_forward"


def _handles(x: torch.Tensor, *parameters) -> bool:
    if not _torch.supports(x):
        return False
    return all(p is None or (p.dtype in _torch.SUPPORTED_DTYPES and p.device == x.device) for p in parameters)


def _llama_forward(original: Callable) -> Callable:
    def forward(self, hidden_states):
        weight = self.weight
        if not _handles(hidden_states, weight):
            return original(self, hidden_states)
        out_dtype = torch.promote_types(weight.dtype, hidden_states.dtype)
        return _torch.rms_norm(hidden_states, weight, self.variance_epsilon, 0.0, "llama", out_dtype=out_dtype)

    return forward


def _gemma_forward(original: Callable) -> Callable:
    def forward(self, x):
        weight = self.weight
        if not _handles(x, weight):
            return original(self, x)
        return _torch.rms_norm(x, weight, self.eps, 1.0, "gemma")

    return forward


def _cohere_forward(original: Callable) -> Callable:
    def forward(self, hidden_states):
        weight = self.weight
        if not _handles(hidden_states, weight) or weight.dim() > 2:
            return original(self, hidden_states)
        return _torch.layer_norm(hidden_states, weight, None, self.variance_epsilon)

    return forward


def _layer_norm_forward(original: Callable) -> Callable:
    def forward(self, x):
        if len(self.normalized_shape) != 1 or not _handles(x, self.weight, self.bias):
            return original(self, x)
        return _torch.layer_norm(x, self.weight, self.bias, self.eps)

    return forward


_FORWARDS = {"llama": _llama_forward, "gemma": _gemma_forward, "cohere": _cohere_forward}


def _load(family: str) -> Optional[type]:
    try:
        module_name, class_name, _ = FAMILIES[family]
    except KeyError:
        raise ValueError(f"fusednorm: unknown model family {family!r}; known: {sorted(FAMILIES)}") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, class_name, None)


def patch_transformers(families: Optional[Iterable[str]] = None) -> List[str]:
    """Replaces the forward of the norm classes of `families` (default: every known one that this
    transformers has) with FusedNorm's. Returns the names of the classes patched now or before."""
    names = []
    for family in (FAMILIES if families is None else families):
        cls = _load(family)
        if cls is None:
            if families is not None:
                raise ImportError(f"fusednorm: transformers has no {FAMILIES[family][1]} (family {family!r})")
            continue
        if cls not in _patched:
            original = cls.forward
            _patched[cls] = original
            cls.forward = _FORWARDS[FAMILIES[family][2]](original)
        names.append(cls.__name__)
    return names


def unpatch_transformers(families: Optional[Iterable[str]] = None) -> List[str]:
    """Puts back the original forward of the classes patch_transformers patched (all, or those of `families`)."""
    classes = list(_patched) if families is None else [c for c in (_load(f) for f in families) if c in _patched]
    for cls in classes:
        cls.forward = _patched.pop(cls)
    return [cls.__name__ for cls in classes]


def patched_classes() -> List[str]:
    """The names of the classes patch_transformers has patched and not yet put back."""
    return [cls.__name__ for cls in _patched]


def _kind_of(module: nn.Module) -> Optional[str]:
    cls = type(module)
    for module_name, class_name, kind in FAMILIES.values():
        if cls.__name__ == class_name and cls.__module__ == module_name:
            return kind
    if isinstance(module, nn.LayerNorm):
        return "layer_norm"
    return None


def patch_model(model: nn.Module, layer_norm: bool = True) -> int:
    """Replaces the forward of the norm modules inside `model` (and of torch.nn.LayerNorm modules unless
    layer_norm=False) with FusedNorm's, for this model only. Returns how many modules were patched."""
    count = 0
    for module in model.modules():
        kind = _kind_of(module)
        if kind is None or (kind == "layer_norm" and not layer_norm) or _MARK in module.__dict__:
            continue
        original = type(module).forward
        if type(module) in _patched:  # the class is patched globally: wrap its original forward
            original = _patched[type(module)]
        make = _layer_norm_forward if kind == "layer_norm" else _FORWARDS[kind]
        module.__dict__[_MARK] = original
        module.forward = types.MethodType(make(original), module)
        count += 1
    return count


def unpatch_model(model: nn.Module) -> int:
    """Undoes patch_model(model). Returns how many modules were restored."""
    count = 0
    for module in model.modules():
        if _MARK in module.__dict__:
            del module.__dict__[_MARK]
            del module.__dict__["forward"]
            count += 1
    return count
