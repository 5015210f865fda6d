"""FusedNorm for Python: fused RMSNorm and LayerNorm over FusedNorm's C library (libFusedNormC.so).

Functional ops take NumPy arrays (CPU, no PyTorch needed) or torch.Tensors (CPU and CUDA, with autograd):

    import fusednorm
    y = fusednorm.rms_norm(x, weight, eps=1e-6)                      # casting="standard": one rounding
    y = fusednorm.rms_norm(x, weight, casting="llama")               # LlamaRMSNorm's two roundings
    y = fusednorm.rms_norm(x, weight, offset=1.0, casting="gemma")   # GemmaRMSNorm (weights stored as w - 1)
    y, s = fusednorm.rms_norm(x, weight, residual=r)                 # s = x + r, the new residual stream
    y = fusednorm.layer_norm(x, weight, bias, eps=1e-5)

With PyTorch: modules fusednorm.RMSNorm, fusednorm.LayerNorm, fusednorm.AddRMSNorm, and
fusednorm.patch_transformers() / unpatch_transformers() / patch_model(model) for Hugging Face models.
"""

from __future__ import annotations

from . import _library, _numpy
from ._layout import fallback_copies, reset_fallback_copies
from ._library import FusedNormError, LibraryNotFoundError, cuda_info, memory_counters

__version__ = "0.1.0"
library_version = _library.version
library_path = _library.library_path

_TORCH_NAMES = {
    "RMSNorm": "modules",
    "LayerNorm": "modules",
    "AddRMSNorm": "modules",
    "patch_transformers": "patching",
    "unpatch_transformers": "patching",
    "patch_model": "patching",
    "unpatch_model": "patching",
    "patched_classes": "patching",
}


def _is_torch_tensor(value) -> bool:
    module = type(value).__module__
    if not module.startswith("torch"):
        return False
    import torch

    return isinstance(value, torch.Tensor)


def rms_norm(x, weight=None, eps=1e-6, offset=0.0, casting="standard", residual=None, **options):
    """RMSNorm: y = s / sqrt(mean(s²) + eps) · (weight + offset), s = x (+ residual), statistics in float32.

    - x: (..., N), a NumPy array or a torch.Tensor; rows may be strided.
    - weight: None (weightless), (N), or (H, N) per head when x is (..., H, N).
    - eps: > 0. offset: 0 (Llama, Mistral, Qwen), 1 for Gemma, whose weights are stored as w − 1.
    - casting: "standard" (default: one rounding at the end, as torch.nn.RMSNorm), "llama" (ŝ rounded to
      x's dtype, then multiplied by the weight: LlamaRMSNorm), "gemma" (one rounding, as GemmaRMSNorm).
    - residual: x's shape; then (y, s) is returned, s = x + residual rounded to the residual's dtype.
    - options: out_dtype, residual_dtype (both); NumPy only: out, residual_out, return_rstd.
    Returns y, or (y, s). torch.Tensors get autograd (dx, dweight, and the residual stream's gradient).
    """
    if _is_torch_tensor(x):
        from . import _torch

        return _torch.rms_norm(x, weight, eps, offset, casting, residual, **options)
    return _numpy.rms_norm(x, weight, eps, offset, casting, residual, **options)


def layer_norm(x, weight=None, bias=None, eps=1e-5, residual=None, **options):
    """LayerNorm: y = (s − mean(s)) / sqrt(var(s) + eps) · weight + bias, s = x (+ residual).

    - weight, bias: None, (N), or (H, N) per head; the same shape when both are given.
    - residual, options: as for rms_norm (NumPy: return_stats instead of return_rstd).
    Returns y, or (y, s) with a residual.
    """
    if _is_torch_tensor(x):
        from . import _torch

        return _torch.layer_norm(x, weight, bias, eps, residual, **options)
    return _numpy.layer_norm(x, weight, bias, eps, residual, **options)


rms_norm_backward = _numpy.rms_norm_backward
layer_norm_backward = _numpy.layer_norm_backward


def __getattr__(name):
    """The PyTorch parts (modules, patching) import torch on first use, so NumPy users never need it."""
    module_name = _TORCH_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module 'fusednorm' has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(f".{module_name}", __name__)
    except ModuleNotFoundError as error:
        if error.name != "torch":
            raise
        raise ImportError(f"fusednorm.{name} needs PyTorch (pip install torch); the NumPy ops work without it") from None
    return getattr(module, name)


__all__ = [
    "rms_norm", "layer_norm", "rms_norm_backward", "layer_norm_backward", "fallback_copies",
    "reset_fallback_copies", "memory_counters", "FusedNormError", "LibraryNotFoundError", "cuda_info", "library_version",
    "library_path", *_TORCH_NAMES,
]
