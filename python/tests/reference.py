"""A float64 NumPy reference of every operation, the dtype conversions it needs, and the comparisons.

Rounding is emulated where the operation rounds: the stored s = x + residual, ŝ rounded to x's dtype
for "llama" casting, and the output. Everything else is float64.
"""

from __future__ import annotations

import numpy as np

DTYPES = ("float32", "float16", "bfloat16")


def bfloat16_bits(values) -> np.ndarray:
    """Rounds to bfloat16 (nearest, ties to even) and gives the bits as uint16 (NaN stays NaN)."""
    single = np.asarray(values, dtype=np.float64).astype(np.float32)
    bits = single.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(single)
    rounded[nan] = ((bits[nan] >> 16) | 0x40).astype(np.uint16)
    return rounded


def bfloat16_values(bits) -> np.ndarray:
    """float64 values of bfloat16 bits."""
    bits = np.asarray(bits)
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def store(values, dtype: str) -> np.ndarray:
    """values (float64) rounded and stored in `dtype`: float32, float16, or bfloat16 as uint16 bits."""
    if dtype == "bfloat16":
        return bfloat16_bits(values)
    return np.asarray(values, dtype=np.float64).astype(dtype)


def load(array) -> np.ndarray:
    """float64 values of a stored array (uint16 and ml_dtypes bfloat16 are bfloat16)."""
    array = np.asarray(array)
    if array.dtype == np.uint16:
        return bfloat16_values(array)
    if array.dtype.name == "bfloat16":
        return bfloat16_values(array.view(np.uint16))
    return array.astype(np.float64)


def round_to(values, dtype: str) -> np.ndarray:
    """float64 values rounded to `dtype` and read back."""
    return load(store(values, dtype))


def random(rng, shape, dtype: str, scale=1.0, shift=0.0) -> np.ndarray:
    return store(rng.standard_normal(shape) * scale + shift, dtype)


def rms_norm(x, weight=None, eps=1e-6, offset=0.0, casting="standard", residual=None, out_dtype=None,
             residual_dtype=None):
    """(y64 before the final rounding, s64 stored, rstd64); x, weight, residual are stored arrays with dtype names."""
    x_dtype = x[1]
    s = load(x[0])
    if residual is not None:
        s = round_to(s + load(residual[0]), residual_dtype or residual[1])
    rstd = 1.0 / np.sqrt(np.mean(s * s, axis=-1, keepdims=True) + eps)
    normalized = s * rstd
    w = 1.0 + offset if weight is None else load(weight[0]) + offset
    if casting == "llama":
        normalized = round_to(normalized, x_dtype)
    return normalized * w, s, rstd[..., 0]


def rms_norm_backward(dy, s, weight=None, eps=1e-6, offset=0.0, residual_grad=None):
    """(dx64, dweight64) from float64 dy, s, weight (weight (N) or (H, N))."""
    rstd = 1.0 / np.sqrt(np.mean(s * s, axis=-1, keepdims=True) + eps)
    normalized = s * rstd
    w = 1.0 + offset if weight is None else weight + offset
    g = dy * w
    dx = rstd * (g - normalized * np.mean(g * normalized, axis=-1, keepdims=True))
    if residual_grad is not None:
        dx = dx + residual_grad
    dweight = None
    if weight is not None:
        dweight = _sum_rows(dy * normalized, weight.shape)
    return dx, dweight


def layer_norm(x, weight=None, bias=None, eps=1e-5, residual=None, residual_dtype=None):
    """(y64 before rounding, s64 stored, mean64, rstd64)."""
    s = load(x[0])
    if residual is not None:
        s = round_to(s + load(residual[0]), residual_dtype or residual[1])
    mean = np.mean(s, axis=-1, keepdims=True)
    centered = s - mean
    rstd = 1.0 / np.sqrt(np.mean(centered * centered, axis=-1, keepdims=True) + eps)
    y = centered * rstd
    if weight is not None:
        y = y * load(weight[0])
    if bias is not None:
        y = y + load(bias[0])
    return y, s, mean[..., 0], rstd[..., 0]


def layer_norm_backward(dy, s, weight=None, eps=1e-5, residual_grad=None, parameter_shape=None):
    """(dx64, dweight64, dbias64)."""
    mean = np.mean(s, axis=-1, keepdims=True)
    centered = s - mean
    rstd = 1.0 / np.sqrt(np.mean(centered * centered, axis=-1, keepdims=True) + eps)
    normalized = centered * rstd
    g = dy if weight is None else dy * weight
    dx = rstd * (g - np.mean(g, axis=-1, keepdims=True) - normalized * np.mean(g * normalized, axis=-1, keepdims=True))
    if residual_grad is not None:
        dx = dx + residual_grad
    shape = parameter_shape if parameter_shape is not None else s.shape[-1:]
    dweight = None if weight is None else _sum_rows(dy * normalized, shape)
    return dx, dweight, _sum_rows(dy, shape)


def gradient_scale(dy, s, weight=None, offset=0.0, eps=1e-6, centered=False):
    """Per row: rstd · max|dy · w|, the size of the terms whose difference dx is. float32 errors in dx are
    relative to this, not to dx, which cancels to almost 0 when N is 1."""
    centre = np.mean(s, axis=-1, keepdims=True) if centered else 0.0
    rstd = 1.0 / np.sqrt(np.mean((s - centre) ** 2, axis=-1, keepdims=True) + eps)
    w = 1.0 + offset if weight is None else weight + offset
    return rstd * np.max(np.abs(dy * w), axis=-1, keepdims=True)


def _sum_rows(values, shape):
    """Σ over rows, keeping the trailing `shape` (N) or (H, N)."""
    return values.reshape((-1,) + tuple(shape)).sum(axis=0)


# ----------------------------------------------------------------------------------------------------------

_RELATIVE = {"float32": 2.0**-22, "float16": 2.0**-10, "bfloat16": 2.0**-7}
# float32 arithmetic inside the kernels (sums over a row, rstd) against exact float64: relative to the row scale
_COMPUTE = 2e-6


def assert_close(got, reference64, dtype: str, scale=None, compute=_COMPUTE, what="output"):
    """|got − reference| ≤ one ulp of `dtype` at the reference (rounding) + compute · scale (float32 arithmetic).

    scale: the magnitude the float32 errors are relative to (default: the largest |reference| of each row).
    """
    got64 = load(got)
    reference64 = np.asarray(reference64, dtype=np.float64)
    assert got64.shape == reference64.shape, (got64.shape, reference64.shape)
    if scale is None:
        scale = np.max(np.abs(reference64), axis=-1, keepdims=True) if reference64.ndim else abs(reference64)
    bound = _RELATIVE[dtype] * np.abs(reference64) + compute * (scale + 1e-30)
    error = np.abs(got64 - reference64)
    bad = ~(error <= bound) & ~(np.isnan(got64) & np.isnan(reference64))
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{what} ({dtype}): {int(bad.sum())} of {bad.size} elements off; first at {index}: got {got64[index]!r}, "
            f"reference {reference64[index]!r}, bound {np.broadcast_to(bound, error.shape)[index]!r}"
        )


def ordered(bits: np.ndarray, dtype: str) -> np.ndarray:
    """Integers in the order of the values of 16-bit float bits (so that differences count ulps)."""
    raw = np.asarray(bits).view(np.uint16).astype(np.int64)
    return np.where(raw & 0x8000, -(raw & 0x7FFF), raw)


def ulps(got, reference64, dtype: str) -> np.ndarray:
    """Distance in ulps between 16-bit results and the reference rounded to the same dtype."""
    expected = store(reference64, dtype)
    got = np.asarray(got)
    if got.dtype.name == "bfloat16":
        got = got.view(np.uint16)
    return np.abs(ordered(got, dtype) - ordered(expected, dtype))
