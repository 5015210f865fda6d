"""The operations on torch.Tensor (CPU and CUDA): torch.library custom ops with autograd.

Four custom ops in the `fusednorm` namespace (rms_norm_forward, rms_norm_backward, layer_norm_forward,
layer_norm_backward) call the C library on the tensors' memory, on PyTorch's current CUDA stream. They have
fake (meta) implementations, so torch.compile treats them as opaque calls, and the forward ops have autograd
formulas that call the backward ops. Tensors pass by pointer; a layout the library does not take is copied,
counted (fusednorm.fallback_copies()) and warned about once.
"""

from __future__ import annotations

import ctypes
import math
import warnings
from typing import Optional, Tuple

import torch
from torch import Tensor

from . import _layout
from . import _library as C

_CODES = {torch.float32: C.FLOAT32, torch.float16: C.FLOAT16, torch.bfloat16: C.BFLOAT16}
SUPPORTED_DTYPES = tuple(_CODES)


_cuda_usable = None


def supports(tensor: Tensor) -> bool:
    """True when FusedNorm handles this tensor's dtype and device (else patched modules keep their own forward):
    float32/float16/bfloat16 on the CPU, or on CUDA when the library can use CUDA (driver and NVRTC found)."""
    global _cuda_usable
    if tensor.dtype not in _CODES:
        return False
    if tensor.device.type == "cpu":
        return True
    if tensor.device.type != "cuda":
        return False
    if _cuda_usable is None:
        _cuda_usable = bool(C.cuda_info()["usable"])
    return _cuda_usable


# Whether the loaded library runs on a caller's CUstream. It says so on the first CUDA call: a library that refuses
# caller streams (FUSEDNORM_UNSUPPORTED, "caller streams are not supported") runs on its own stream instead, and
# each call is then ordered with PyTorch's work by synchronizing around it (correct, slower, not capturable in a
# CUDA graph), with a warning once.
caller_streams = True


class _Call:
    """Descriptors of one call's tensors; keeps them (and any copies) alive until the call returns."""

    def __init__(self, x: Tensor):
        self.keep = []
        self.torch_device = x.device
        if x.device.type == "cpu":
            self.device = (C.DEVICE_CPU, 0)
            self.stream = None
        elif x.device.type == "cuda":
            index = x.device.index if x.device.index is not None else torch.cuda.current_device()
            self.device = (C.DEVICE_CUDA, index)
            self.stream = ctypes.c_void_p(torch.cuda.current_stream(x.device).cuda_stream)
        else:
            raise TypeError(f"fusednorm: tensors on {x.device} are not supported (CPU and CUDA are)")

    def run(self, name: str, *arguments) -> None:
        """Calls C function `name` with `arguments` and the stream: PyTorch's current one on CUDA."""
        global caller_streams
        if self.stream is None:
            C.call(name, *arguments, None)
            return
        if caller_streams:
            try:
                C.call(name, *arguments, self.stream)
                return
            except C.FusedNormError as error:
                if error.status != C.UNSUPPORTED or "caller streams" not in error.message:
                    raise
                caller_streams = False
                warnings.warn(
                    "fusednorm: this libFusedNormC does not run on PyTorch's stream yet; each CUDA call now "
                    "synchronizes the device around FusedNorm's own stream (correct, slower, and not capturable in "
                    "a CUDA graph). Build a library with caller streams to avoid it.", RuntimeWarning, stacklevel=3)
        torch.cuda.current_stream(self.torch_device).synchronize()  # the inputs are written
        C.call(name, *arguments, None)
        torch.cuda.synchronize(self.torch_device)  # FusedNorm's stream is done before PyTorch reads the outputs

    def _code(self, tensor: Tensor, name: str) -> int:
        try:
            return _CODES[tensor.dtype]
        except KeyError:
            raise TypeError(
                f"fusednorm: {name} has dtype {tensor.dtype}; FusedNorm takes float32, float16 and bfloat16"
            ) from None

    def _passes(self, tensor: Tensor) -> bool:
        if tensor.data_ptr() % tensor.element_size() != 0:
            return False
        grouped = _layout.two_levels if self.stream is None else _cuda_two_levels(self)
        return _layout.passes_as_is(tuple(tensor.shape), tensor.stride(), grouped)

    def input(self, tensor: Optional[Tensor], name: str):
        """A descriptor of an input (None: NULL); a layout the kernels do not take is copied and counted."""
        if tensor is None:
            return None
        code = self._code(tensor, name)
        if tensor.dim() == 0 or tensor.dim() > C.MAX_DIMS:
            raise ValueError(f"fusednorm: {name} has {tensor.dim()} dimensions; FusedNorm takes 1 to {C.MAX_DIMS}")
        if not self._passes(tensor):
            _layout.count_copy(name)
            # clone: a contiguous tensor whose storage offset misaligns it stays itself under .contiguous()
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        return self._describe(tensor, code)

    def output(self, tensor: Tensor, name: str):
        """A descriptor of a tensor this module allocated (contiguous)."""
        return self._describe(tensor, self._code(tensor, name))

    def _describe(self, tensor: Tensor, code: int):
        self.keep.append(tensor)
        return C.describe(tensor.data_ptr(), self.device[0], self.device[1], code, tuple(tensor.shape), tensor.stride())


_cuda_grouped = {}  # CUDA device index -> whether the library takes two-level rows there


def _cuda_two_levels(call: "_Call") -> bool:
    """Whether two-level rows (q/k views of a fused qkv) pass as they are on this GPU: asked once per device by
    running one tiny RMSNorm on such a view (fusednorm.h: "CPU only in this version" for c-abi dcb2d97)."""
    index = call.device[1]
    if index not in _cuda_grouped:
        storage = torch.zeros((2, 6, 8), device=call.torch_device)
        view = storage[:, :2, :]  # rows 8 apart within a group, groups 48 apart
        output = torch.empty((2, 2, 8), device=call.torch_device)
        stream = call.stream if caller_streams else None
        status = C.library.fusednorm_rms_norm_forward(
            C.describe(view.data_ptr(), C.DEVICE_CUDA, index, C.FLOAT32, (2, 2, 8), view.stride()), None, None,
            1e-6, 0.0, C.CASTING_STANDARD,
            C.describe(output.data_ptr(), C.DEVICE_CUDA, index, C.FLOAT32, (2, 2, 8), output.stride()), None, None,
            stream)
        if stream is None:
            torch.cuda.synchronize(call.torch_device)
        _cuda_grouped[index] = status == C.SUCCESS
    return _cuda_grouped[index]


def _rows(x: Tensor):
    return math.prod(x.shape[:-1])


def _empty(x: Tensor):
    return x.new_empty((0,))


# ---------------------------------------------------------------------------------------------------------
# RMSNorm
# ---------------------------------------------------------------------------------------------------------


@torch.library.custom_op("fusednorm::rms_norm_forward", mutates_args=())
def rms_norm_forward(
    x: Tensor, residual: Optional[Tensor], weight: Optional[Tensor], eps: float, offset: float, casting: int,
    out_dtype: Optional[torch.dtype], residual_dtype: Optional[torch.dtype],
) -> Tuple[Tensor, Tensor, Tensor]:
    """(y, s, rstd): s = x + residual (an empty tensor without a residual), y = RMSNorm(s), rstd per row."""
    call = _Call(x)
    x_descriptor = call.input(x, "x")
    residual_descriptor = call.input(residual, "residual")
    weight_descriptor = call.input(weight, "weight")
    y = torch.empty(x.shape, dtype=out_dtype or x.dtype, device=x.device)
    s = _empty(x) if residual is None else torch.empty(x.shape, dtype=residual_dtype or residual.dtype, device=x.device)
    rstd = torch.empty((_rows(x),), dtype=torch.float32, device=x.device)
    call.run(
        "fusednorm_rms_norm_forward", x_descriptor, residual_descriptor, weight_descriptor, eps, offset, casting,
        call.output(y, "y"), None if residual is None else call.output(s, "s"), call.output(rstd, "rstd"),
    )
    return y, s, rstd


@rms_norm_forward.register_fake
def _(x, residual, weight, eps, offset, casting, out_dtype, residual_dtype):
    y = x.new_empty(x.shape, dtype=out_dtype or x.dtype)
    s = _empty(x) if residual is None else x.new_empty(x.shape, dtype=residual_dtype or residual.dtype)
    return y, s, x.new_empty((_rows(x),), dtype=torch.float32)


@torch.library.custom_op("fusednorm::rms_norm_backward", mutates_args=())
def rms_norm_backward(
    dy: Tensor, x: Tensor, weight: Optional[Tensor], rstd: Optional[Tensor], residual_grad: Optional[Tensor],
    eps: float, offset: float, dx_dtype: torch.dtype, weight_grad: bool,
) -> Tuple[Tensor, Tensor]:
    """(dx, dweight) of RMSNorm; x is the normalized tensor (s with a residual); dweight empty unless weight_grad."""
    call = _Call(x)
    descriptors = [call.input(t, name) for t, name in
                   ((dy, "dy"), (x, "x"), (weight, "weight"), (rstd, "rstd"), (residual_grad, "residual_grad"))]
    dx = torch.empty(x.shape, dtype=dx_dtype, device=x.device)
    dweight = torch.empty(weight.shape, dtype=weight.dtype, device=x.device) if weight_grad else _empty(x)
    call.run(
        "fusednorm_rms_norm_backward", *descriptors, eps, offset, call.output(dx, "dx"),
        call.output(dweight, "dweight") if weight_grad else None,
    )
    return dx, dweight


@rms_norm_backward.register_fake
def _(dy, x, weight, rstd, residual_grad, eps, offset, dx_dtype, weight_grad):
    dweight = weight.new_empty(weight.shape) if weight_grad else _empty(x)
    return x.new_empty(x.shape, dtype=dx_dtype), dweight


def _gradient_dtype(x_dtype: torch.dtype, residual_dtype: Optional[torch.dtype]) -> torch.dtype:
    """dx's dtype: x's, or float32 when x and the residual differ (then rounded once to each)."""
    return x_dtype if residual_dtype is None or residual_dtype == x_dtype else torch.float32


def _rms_setup(ctx, inputs, output):
    x, residual, weight, eps, offset, casting, out_dtype, residual_dtype = inputs
    y, s, rstd = output
    ctx.save_for_backward(x if residual is None else s, weight, rstd)
    ctx.eps, ctx.offset = eps, offset
    ctx.x_dtype = x.dtype
    ctx.residual_dtype = None if residual is None else residual.dtype


def _rms_backward(ctx, dy, ds, drstd):
    normalized, weight, rstd = ctx.saved_tensors
    has_residual = ctx.residual_dtype is not None
    dx, dweight = torch.ops.fusednorm.rms_norm_backward(
        dy, normalized, weight, rstd, ds if has_residual else None, ctx.eps, ctx.offset,
        _gradient_dtype(ctx.x_dtype, ctx.residual_dtype), weight is not None and ctx.needs_input_grad[2],
    )
    return (
        dx.to(ctx.x_dtype),
        dx.to(ctx.residual_dtype) if has_residual else None,
        dweight if weight is not None and ctx.needs_input_grad[2] else None,
        None, None, None, None, None,
    )


rms_norm_forward.register_autograd(_rms_backward, setup_context=_rms_setup)


# ---------------------------------------------------------------------------------------------------------
# LayerNorm
# ---------------------------------------------------------------------------------------------------------


@torch.library.custom_op("fusednorm::layer_norm_forward", mutates_args=())
def layer_norm_forward(
    x: Tensor, residual: Optional[Tensor], weight: Optional[Tensor], bias: Optional[Tensor], eps: float,
    out_dtype: Optional[torch.dtype], residual_dtype: Optional[torch.dtype],
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """(y, s, mean, rstd) of LayerNorm; s is empty without a residual."""
    call = _Call(x)
    descriptors = [call.input(t, name) for t, name in ((x, "x"), (residual, "residual"), (weight, "weight"), (bias, "bias"))]
    y = torch.empty(x.shape, dtype=out_dtype or x.dtype, device=x.device)
    s = _empty(x) if residual is None else torch.empty(x.shape, dtype=residual_dtype or residual.dtype, device=x.device)
    mean = torch.empty((_rows(x),), dtype=torch.float32, device=x.device)
    rstd = torch.empty((_rows(x),), dtype=torch.float32, device=x.device)
    call.run(
        "fusednorm_layer_norm_forward", *descriptors, eps, call.output(y, "y"),
        None if residual is None else call.output(s, "s"), call.output(mean, "mean"), call.output(rstd, "rstd"),
    )
    return y, s, mean, rstd


@layer_norm_forward.register_fake
def _(x, residual, weight, bias, eps, out_dtype, residual_dtype):
    y = x.new_empty(x.shape, dtype=out_dtype or x.dtype)
    s = _empty(x) if residual is None else x.new_empty(x.shape, dtype=residual_dtype or residual.dtype)
    rows = _rows(x)
    return y, s, x.new_empty((rows,), dtype=torch.float32), x.new_empty((rows,), dtype=torch.float32)


@torch.library.custom_op("fusednorm::layer_norm_backward", mutates_args=())
def layer_norm_backward(
    dy: Tensor, x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], mean: Optional[Tensor],
    rstd: Optional[Tensor], residual_grad: Optional[Tensor], eps: float, dx_dtype: torch.dtype, weight_grad: bool,
    bias_grad: bool,
) -> Tuple[Tensor, Tensor, Tensor]:
    """(dx, dweight, dbias) of LayerNorm; `bias` gives dbias's shape and dtype only (its values are not read)."""
    call = _Call(x)
    descriptors = [call.input(t, name) for t, name in ((dy, "dy"), (x, "x"), (weight, "weight"), (mean, "mean"),
                                                      (rstd, "rstd"), (residual_grad, "residual_grad"))]
    dx = torch.empty(x.shape, dtype=dx_dtype, device=x.device)
    dweight = torch.empty(weight.shape, dtype=weight.dtype, device=x.device) if weight_grad else _empty(x)
    dbias = torch.empty(bias.shape, dtype=bias.dtype, device=x.device) if bias_grad else _empty(x)
    call.run(
        "fusednorm_layer_norm_backward", *descriptors, eps, call.output(dx, "dx"),
        call.output(dweight, "dweight") if weight_grad else None,
        call.output(dbias, "dbias") if bias_grad else None,
    )
    return dx, dweight, dbias


@layer_norm_backward.register_fake
def _(dy, x, weight, bias, mean, rstd, residual_grad, eps, dx_dtype, weight_grad, bias_grad):
    dweight = weight.new_empty(weight.shape) if weight_grad else _empty(x)
    dbias = bias.new_empty(bias.shape) if bias_grad else _empty(x)
    return x.new_empty(x.shape, dtype=dx_dtype), dweight, dbias


def _layer_setup(ctx, inputs, output):
    x, residual, weight, bias, eps, out_dtype, residual_dtype = inputs
    y, s, mean, rstd = output
    ctx.save_for_backward(x if residual is None else s, weight, bias, mean, rstd)
    ctx.eps = eps
    ctx.x_dtype = x.dtype
    ctx.residual_dtype = None if residual is None else residual.dtype


def _layer_backward(ctx, dy, ds, dmean, drstd):
    normalized, weight, bias, mean, rstd = ctx.saved_tensors
    has_residual = ctx.residual_dtype is not None
    weight_grad = weight is not None and ctx.needs_input_grad[2]
    bias_grad = bias is not None and ctx.needs_input_grad[3]
    dx, dweight, dbias = torch.ops.fusednorm.layer_norm_backward(
        dy, normalized, weight, bias, mean, rstd, ds if has_residual else None, ctx.eps,
        _gradient_dtype(ctx.x_dtype, ctx.residual_dtype), weight_grad, bias_grad,
    )
    return (
        dx.to(ctx.x_dtype),
        dx.to(ctx.residual_dtype) if has_residual else None,
        dweight if weight_grad else None,
        dbias if bias_grad else None,
        None, None, None,
    )


layer_norm_forward.register_autograd(_layer_backward, setup_context=_layer_setup)


# ---------------------------------------------------------------------------------------------------------
# The functional API
# ---------------------------------------------------------------------------------------------------------


def rms_norm(x: Tensor, weight: Optional[Tensor] = None, eps: float = 1e-6, offset: float = 0.0,
             casting: str = "standard", residual: Optional[Tensor] = None, *,
             out_dtype: Optional[torch.dtype] = None, residual_dtype: Optional[torch.dtype] = None):
    """RMSNorm with autograd; returns y, or (y, s) with a residual (s = x + residual, the new residual stream)."""
    y, s, _ = torch.ops.fusednorm.rms_norm_forward(
        x, residual, weight, float(eps), float(offset), casting_code(casting), out_dtype, residual_dtype
    )
    return y if residual is None else (y, s)


def layer_norm(x: Tensor, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, eps: float = 1e-5,
               residual: Optional[Tensor] = None, *, out_dtype: Optional[torch.dtype] = None,
               residual_dtype: Optional[torch.dtype] = None):
    """LayerNorm with autograd; returns y, or (y, s) with a residual."""
    y, s, _, _ = torch.ops.fusednorm.layer_norm_forward(x, residual, weight, bias, float(eps), out_dtype, residual_dtype)
    return y if residual is None else (y, s)


def casting_code(casting: str) -> int:
    try:
        return C.CASTINGS[casting]
    except (KeyError, TypeError):
        raise ValueError(f"fusednorm: casting must be one of {sorted(C.CASTINGS)}, got {casting!r}") from None
