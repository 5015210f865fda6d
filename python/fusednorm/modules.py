"""Drop-in modules: RMSNorm (state dict of torch.nn.RMSNorm and LlamaRMSNorm), LayerNorm (torch.nn.LayerNorm),
and AddRMSNorm (the residual add and the norm of a pre-norm block in one pass)."""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from . import _torch

_Shape = Union[int, Sequence[int], torch.Size]
# eps=None: torch.nn.RMSNorm's default, the epsilon of the float32 computation whatever the storage dtype.
_DEFAULT_EPS = torch.finfo(torch.float32).eps


def _shape(normalized_shape: _Shape) -> tuple:
    if isinstance(normalized_shape, numbers.Integral):
        return (int(normalized_shape),)
    return tuple(int(size) for size in normalized_shape)


def _flatten(x: Tensor, shape: tuple) -> Tensor:
    """x with its trailing `shape` dimensions as one (a view when they are contiguous together)."""
    if len(shape) == 1:
        return x
    if tuple(x.shape[-len(shape):]) != shape:
        raise ValueError(f"fusednorm: input shape {tuple(x.shape)} does not end with normalized_shape {shape}")
    return x.reshape(*x.shape[: -len(shape)], math.prod(shape))


class RMSNorm(nn.Module):
    """RMSNorm over the last dimensions: y = x / sqrt(mean(x²) + eps) · (weight + offset).

    Arguments as torch.nn.RMSNorm (normalized_shape, eps, elementwise_affine, device, dtype; eps=None means
    the float32 machine epsilon for float16/bfloat16/float32 inputs, as torch.nn.RMSNorm computes it: its
    documentation says torch.finfo(x.dtype).eps, but PyTorch 2.11 takes the epsilon of the computation type,
    checked here), plus offset (1 for Gemma-style weights stored as w − 1) and
    casting ("standard", "llama" or "gemma"). The parameter is named `weight`, so state dicts of
    torch.nn.RMSNorm and of Hugging Face's LlamaRMSNorm load as they are.
    """

    def __init__(self, normalized_shape: _Shape, eps: Optional[float] = None, elementwise_affine: bool = True,
                 device=None, dtype=None, *, offset: float = 0.0, casting: str = "standard"):
        super().__init__()
        self.normalized_shape = _shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        self.offset = float(offset)
        self.casting = casting
        _torch.casting_code(casting)
        if elementwise_affine:
            initial = torch.zeros if self.offset == 1.0 else torch.ones
            self.weight = nn.Parameter(initial(self.normalized_shape, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)

    def forward(self, x: Tensor) -> Tensor:
        eps = self.eps if self.eps is not None else _DEFAULT_EPS
        weight = None if self.weight is None else self.weight.reshape(-1)
        y = _torch.rms_norm(_flatten(x, self.normalized_shape), weight, eps, self.offset, self.casting)
        return y.reshape(x.shape) if len(self.normalized_shape) > 1 else y

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"offset={self.offset}, casting={self.casting!r}")


class LayerNorm(nn.Module):
    """LayerNorm over the last dimensions, with torch.nn.LayerNorm's arguments and parameters (weight, bias)."""

    def __init__(self, normalized_shape: _Shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape = _shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(self.normalized_shape, device=device, dtype=dtype))
            if bias:
                self.bias = nn.Parameter(torch.zeros(self.normalized_shape, device=device, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        weight = None if self.weight is None else self.weight.reshape(-1)
        bias = None if self.bias is None else self.bias.reshape(-1)
        y = _torch.layer_norm(_flatten(x, self.normalized_shape), weight, bias, self.eps)
        return y.reshape(x.shape) if len(self.normalized_shape) > 1 else y

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class AddRMSNorm(RMSNorm):
    """The residual add and RMSNorm of a pre-norm block in one pass: forward(x, residual) -> (y, s).

    s = x + residual (rounded to the residual's dtype, or residual_dtype) is the new residual stream and
    y = RMSNorm(s); the same as `s = x + residual; y = norm(s)`, reading x and the residual once.
    Gradients reach x, the residual and the weight, including the gradient arriving through s.
    """

    def __init__(self, hidden_size: int, eps: Optional[float] = 1e-6, elementwise_affine: bool = True,
                 device=None, dtype=None, *, offset: float = 0.0, casting: str = "standard",
                 residual_dtype: Optional[torch.dtype] = None):
        super().__init__(hidden_size, eps, elementwise_affine, device, dtype, offset=offset, casting=casting)
        self.residual_dtype = residual_dtype

    def forward(self, x: Tensor, residual: Tensor):
        eps = self.eps if self.eps is not None else _DEFAULT_EPS
        return _torch.rms_norm(x, self.weight, eps, self.offset, self.casting, residual,
                               residual_dtype=self.residual_dtype)
