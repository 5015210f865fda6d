"""The operations on NumPy arrays (CPU), without PyTorch.

dtypes: float32, float16, and bfloat16 either as ml_dtypes.bfloat16 (when ml_dtypes is installed) or as
uint16 arrays holding the bfloat16 bits (a uint16 array is always read as bfloat16 bits). Arrays are
passed by pointer; a layout the library does not take (see _layout) is copied and counted.
"""

from __future__ import annotations

import numpy as np

from . import _layout
from . import _library as C

try:  # optional: a real bfloat16 dtype for NumPy
    import ml_dtypes

    _BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - depends on the environment
    ml_dtypes = None
    _BFLOAT16 = None

_CODES = {np.dtype(np.float32): C.FLOAT32, np.dtype(np.float16): C.FLOAT16, np.dtype(np.uint16): C.BFLOAT16}
if _BFLOAT16 is not None:
    _CODES[_BFLOAT16] = C.BFLOAT16


def bfloat16_dtype() -> np.dtype:
    """The NumPy dtype bfloat16 results are given in: ml_dtypes.bfloat16 if installed, else uint16 bits."""
    return _BFLOAT16 if _BFLOAT16 is not None else np.dtype(np.uint16)


def resolve_dtype(dtype, default: np.dtype) -> np.dtype:
    """A NumPy dtype from None (the default), a dtype, or a name ("float32", "float16", "bfloat16")."""
    if dtype is None:
        return default
    if isinstance(dtype, str) and dtype in ("bfloat16", "bf16"):
        return bfloat16_dtype()
    resolved = np.dtype(dtype)
    if resolved not in _CODES:
        raise TypeError(f"fusednorm: unsupported dtype {resolved}; use float32, float16 or bfloat16")
    return resolved


def _code(array: np.ndarray, name: str) -> int:
    try:
        return _CODES[array.dtype]
    except KeyError:
        raise TypeError(
            f"fusednorm: {name} has dtype {array.dtype}; FusedNorm takes float32, float16 and bfloat16 "
            "(ml_dtypes.bfloat16, or uint16 arrays of bfloat16 bits)"
        ) from None


class _Call:
    """The descriptors of one call; keeps every array (and copy) alive until the call returns."""

    def __init__(self):
        self.keep = []

    def input(self, array, name: str):
        """A descriptor of an input array (None passes NULL); copies layouts the library does not take."""
        if array is None:
            return None
        if not isinstance(array, np.ndarray):
            raise TypeError(f"fusednorm: {name} must be a NumPy array, got {type(array).__name__}")
        code = _code(array, name)
        if array.ndim == 0 or array.ndim > C.MAX_DIMS:
            raise ValueError(f"fusednorm: {name} has {array.ndim} dimensions; FusedNorm takes 1 to {C.MAX_DIMS}")
        if not self._passes(array):
            _layout.count_copy(name)
            array = np.ascontiguousarray(array)
        return self._describe(array, code)

    def output(self, array, name: str):
        """A descriptor of an output array, which must be writable and take its layout as it is."""
        if not isinstance(array, np.ndarray):
            raise TypeError(f"fusednorm: {name} must be a NumPy array, got {type(array).__name__}")
        code = _code(array, name)
        if not array.flags.writeable:
            raise ValueError(f"fusednorm: {name} is read-only")
        if array.ndim == 0 or not self._passes(array):
            raise ValueError(
                f"fusednorm: {name} (shape {array.shape}, strides {array.strides}) has a layout FusedNorm "
                "cannot write: the last dimension must be contiguous and the rows at most two levels deep"
            )
        return self._describe(array, code)

    @staticmethod
    def _passes(array: np.ndarray) -> bool:
        size = array.itemsize
        if array.size == 0:
            return True
        if array.ctypes.data % size != 0 or any(stride % size != 0 for stride in array.strides):
            return False
        return _layout.passes_as_is(array.shape, [stride // size for stride in array.strides])

    def _describe(self, array: np.ndarray, code: int):
        self.keep.append(array)
        size = array.itemsize
        if array.size == 0:  # NumPy gives empty arrays any strides: describe them as contiguous
            strides = [int(np.prod(array.shape[k + 1:], dtype=np.int64)) for k in range(array.ndim)]
        else:
            strides = [stride // size for stride in array.strides]
        return C.describe(array.ctypes.data, C.DEVICE_CPU, 0, code, array.shape, strides)


def _new(like: np.ndarray, dtype: np.dtype, given, name: str, call: _Call):
    """`given` (checked) or a new array of like's shape in `dtype`, and its descriptor."""
    if given is None:
        given = np.empty(like.shape, dtype=dtype)
    elif given.shape != like.shape:
        raise ValueError(f"fusednorm: {name} has shape {given.shape}, expected {like.shape}")
    return given, call.output(given, name)


def _statistics(x: np.ndarray, call: _Call):
    rows = int(np.prod(x.shape[:-1], dtype=np.int64))
    array = np.empty((rows,), dtype=np.float32)
    return array, call.output(array, "statistics")


def _check_float(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"fusednorm: {name} must be a number, got {type(value).__name__}")
    return float(value)


def casting_code(casting: str) -> int:
    """The C casting for "standard", "llama" or "gemma"."""
    try:
        return C.CASTINGS[casting]
    except (KeyError, TypeError):
        raise ValueError(f"fusednorm: casting must be one of {sorted(C.CASTINGS)}, got {casting!r}") from None


def rms_norm(x, weight=None, eps=1e-6, offset=0.0, casting="standard", residual=None, *, out_dtype=None,
             residual_dtype=None, out=None, residual_out=None, return_rstd=False):
    """RMSNorm of NumPy arrays: y = s / sqrt(mean(s²) + eps) · (weight + offset), s = x (+ residual).

    Returns y, or (y, s) with a residual; with return_rstd=True, the per-row float32 rstd is appended.
    """
    call = _Call()
    x_descriptor = call.input(x, "x")
    residual_descriptor = call.input(residual, "residual")
    weight_descriptor = call.input(weight, "weight")
    eps = _check_float(eps, "eps")
    offset = _check_float(offset, "offset")
    code = casting_code(casting)
    y, y_descriptor = _new(x, resolve_dtype(out_dtype, x.dtype), out, "out", call)
    s = s_descriptor = None
    if residual is not None:
        s, s_descriptor = _new(x, resolve_dtype(residual_dtype, residual.dtype), residual_out, "residual_out", call)
    elif residual_out is not None or residual_dtype is not None:
        raise ValueError("fusednorm: residual_out and residual_dtype need a residual")
    rstd = rstd_descriptor = None
    if return_rstd:
        rstd, rstd_descriptor = _statistics(x, call)
    C.call("fusednorm_rms_norm_forward", x_descriptor, residual_descriptor, weight_descriptor, eps, offset, code,
           y_descriptor, s_descriptor, rstd_descriptor, None)
    result = (y,) if s is None else (y, s)
    if return_rstd:
        result += (rstd,)
    return result[0] if len(result) == 1 else result


def rms_norm_backward(dy, x, weight=None, rstd=None, residual_grad=None, eps=1e-6, offset=0.0, *, dx_dtype=None,
                      dweight_dtype=np.float32):
    """RMSNorm backward: (dx, dweight); x is the normalized tensor (s with a residual); dweight None without a weight.

    dx = rstd · (g − ŝ · mean(g·ŝ)) (+ residual_grad), g = dy · (w + offset); dweight = Σ_rows dy·ŝ.
    """
    call = _Call()
    dy_descriptor = call.input(dy, "dy")
    x_descriptor = call.input(x, "x")
    weight_descriptor = call.input(weight, "weight")
    rstd_descriptor = call.input(rstd, "rstd")
    residual_descriptor = call.input(residual_grad, "residual_grad")
    eps = _check_float(eps, "eps")
    offset = _check_float(offset, "offset")
    dx, dx_descriptor = _new(x, resolve_dtype(dx_dtype, x.dtype), None, "dx", call)
    dweight = dweight_descriptor = None
    if weight is not None:
        dweight = np.empty(weight.shape, dtype=resolve_dtype(dweight_dtype, np.dtype(np.float32)))
        dweight_descriptor = call.output(dweight, "dweight")
    C.call("fusednorm_rms_norm_backward", dy_descriptor, x_descriptor, weight_descriptor, rstd_descriptor,
           residual_descriptor, eps, offset, dx_descriptor, dweight_descriptor, None)
    return dx, dweight


def layer_norm(x, weight=None, bias=None, eps=1e-5, residual=None, *, out_dtype=None, residual_dtype=None,
               out=None, residual_out=None, return_stats=False):
    """LayerNorm of NumPy arrays: y = (s − mean) / sqrt(var + eps) · weight + bias, s = x (+ residual).

    Returns y, or (y, s) with a residual; with return_stats=True, the per-row float32 mean and rstd are appended.
    """
    call = _Call()
    x_descriptor = call.input(x, "x")
    residual_descriptor = call.input(residual, "residual")
    weight_descriptor = call.input(weight, "weight")
    bias_descriptor = call.input(bias, "bias")
    eps = _check_float(eps, "eps")
    y, y_descriptor = _new(x, resolve_dtype(out_dtype, x.dtype), out, "out", call)
    s = s_descriptor = None
    if residual is not None:
        s, s_descriptor = _new(x, resolve_dtype(residual_dtype, residual.dtype), residual_out, "residual_out", call)
    elif residual_out is not None or residual_dtype is not None:
        raise ValueError("fusednorm: residual_out and residual_dtype need a residual")
    mean = mean_descriptor = rstd = rstd_descriptor = None
    if return_stats:
        mean, mean_descriptor = _statistics(x, call)
        rstd, rstd_descriptor = _statistics(x, call)
    C.call("fusednorm_layer_norm_forward", x_descriptor, residual_descriptor, weight_descriptor, bias_descriptor,
           eps, y_descriptor, s_descriptor, mean_descriptor, rstd_descriptor, None)
    result = (y,) if s is None else (y, s)
    if return_stats:
        result += (mean, rstd)
    return result[0] if len(result) == 1 else result


def layer_norm_backward(dy, x, weight=None, mean=None, rstd=None, residual_grad=None, eps=1e-5, *,
                        bias_grad=True, dx_dtype=None, dweight_dtype=np.float32, dbias_dtype=np.float32):
    """LayerNorm backward: (dx, dweight, dbias); x is the normalized tensor (s with a residual).

    dx = rstd · (g − mean(g) − ŝ · mean(g·ŝ)) (+ residual_grad), g = dy · w; dweight = Σ_rows dy·ŝ (None
    without a weight); dbias = Σ_rows dy (None when bias_grad is False), in the weight's shape, else (N).
    """
    call = _Call()
    dy_descriptor = call.input(dy, "dy")
    x_descriptor = call.input(x, "x")
    weight_descriptor = call.input(weight, "weight")
    mean_descriptor = call.input(mean, "mean")
    rstd_descriptor = call.input(rstd, "rstd")
    residual_descriptor = call.input(residual_grad, "residual_grad")
    eps = _check_float(eps, "eps")
    dx, dx_descriptor = _new(x, resolve_dtype(dx_dtype, x.dtype), None, "dx", call)
    dweight = dweight_descriptor = dbias = dbias_descriptor = None
    parameter_shape = weight.shape if weight is not None else x.shape[-1:]
    if weight is not None:
        dweight = np.empty(parameter_shape, dtype=resolve_dtype(dweight_dtype, np.dtype(np.float32)))
        dweight_descriptor = call.output(dweight, "dweight")
    if bias_grad:
        dbias = np.empty(parameter_shape, dtype=resolve_dtype(dbias_dtype, np.dtype(np.float32)))
        dbias_descriptor = call.output(dbias, "dbias")
    C.call("fusednorm_layer_norm_backward", dy_descriptor, x_descriptor, weight_descriptor, mean_descriptor,
           rstd_descriptor, residual_descriptor, eps, dx_descriptor, dweight_descriptor, dbias_descriptor, None)
    return dx, dweight, dbias
