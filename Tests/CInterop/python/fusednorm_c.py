"""A minimal ctypes binding of libFusedNormC for the tests (the `fusednorm` Python package is built
separately on the same header; this file only mirrors fusednorm.h so the tests need nothing else).

The library is found through FUSEDNORM_C_LIBRARY (a path), else .build-release/release/libFusedNormC.so.
"""
import ctypes
import os
import pathlib

import numpy as np

MAX_DIMS = 8
SUCCESS, INVALID_ARGUMENT, UNSUPPORTED, DEVICE_ERROR, OUT_OF_MEMORY, INTERNAL = range(6)
DEVICE_CPU, DEVICE_CUDA = 1, 2
FLOAT32, FLOAT16, BFLOAT16 = 1, 2, 3
CASTING_STANDARD, CASTING_LLAMA = 0, 1
TENSOR_READ_ONLY = 1
RMS_NORM_FORWARD, RMS_NORM_BACKWARD, LAYER_NORM_FORWARD, LAYER_NORM_BACKWARD = 1, 2, 3, 4


class Tensor(ctypes.Structure):
    """fusednorm_tensor."""
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device_type", ctypes.c_int32),
        ("device_index", ctypes.c_int32),
        ("dtype", ctypes.c_int32),
        ("ndim", ctypes.c_int32),
        ("flags", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("shape", ctypes.c_int64 * MAX_DIMS),
        ("strides", ctypes.c_int64 * MAX_DIMS),
    ]


class CUDAInfo(ctypes.Structure):
    """fusednorm_cuda_info."""
    _fields_ = [
        ("usable", ctypes.c_int32),
        ("device_count", ctypes.c_int32),
        ("driver_version", ctypes.c_char * 32),
        ("nvrtc_version", ctypes.c_char * 32),
        ("nvrtc_path", ctypes.c_char * 512),
        ("kernel_cache_directory", ctypes.c_char * 512),
        ("problem", ctypes.c_char * 1024),
    ]


class PrepareRequest(ctypes.Structure):
    """fusednorm_prepare_request."""
    _fields_ = [(name, ctypes.c_int32) for name in ("operation", "device_type", "device_index", "casting")] + [
        (name, ctypes.c_int64) for name in ("rows", "columns", "weight_rows")] + [
        (name, ctypes.c_int32) for name in (
            "x_dtype", "residual_dtype", "output_gradient_dtype", "weight_dtype", "bias_dtype", "output_dtype",
            "residual_output_dtype", "weight_gradient_dtype")] + [
        ("flags", ctypes.c_uint32), ("epsilon", ctypes.c_float), ("weight_offset", ctypes.c_float)]


def load_library():
    default = pathlib.Path(__file__).resolve().parents[3] / ".build-release" / "release" / "libFusedNormC.so"
    path = os.environ.get("FUSEDNORM_C_LIBRARY", str(default))
    library = ctypes.CDLL(path)
    P = ctypes.POINTER(Tensor)
    f, i32, vp = ctypes.c_float, ctypes.c_int32, ctypes.c_void_p
    signatures = {
        "fusednorm_rms_norm_forward": [P, P, P, f, f, i32, P, P, P, vp],
        "fusednorm_rms_norm_backward": [P, P, P, P, P, f, f, P, P, vp],
        "fusednorm_layer_norm_forward": [P, P, P, P, f, P, P, P, P, vp],
        "fusednorm_layer_norm_backward": [P, P, P, P, P, P, f, P, P, P, vp],
        "fusednorm_tensor_check": [P],
        "fusednorm_tensor_from_dlpack_versioned": [vp, P],
        "fusednorm_tensor_to_dlpack_versioned": [P, ctypes.POINTER(vp)],
        "fusednorm_cuda_query": [ctypes.POINTER(CUDAInfo)],
        "fusednorm_prepare": [ctypes.POINTER(PrepareRequest), i32],
        "fusednorm_memory_counters": [ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int64)],
    }
    for name, arguments in signatures.items():
        function = getattr(library, name)
        function.argtypes = arguments
        function.restype = ctypes.c_int32
    library.fusednorm_last_error.restype = ctypes.c_char_p
    library.fusednorm_version.restype = ctypes.c_char_p
    library.fusednorm_version_number.restype = ctypes.c_int32
    return library


# bfloat16 is carried in uint16 arrays; float16 and float32 are NumPy's own.
STORAGE = {FLOAT32: np.float32, FLOAT16: np.float16, BFLOAT16: np.uint16}
NAMES = {FLOAT32: "float32", FLOAT16: "float16", BFLOAT16: "bfloat16"}


def to_bfloat16(values):
    """float -> bfloat16 bits, round to nearest even (no NaNs in the tests)."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def from_bfloat16(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def encode(values, dtype):
    """Values (float64) as stored in `dtype`."""
    return to_bfloat16(values) if dtype == BFLOAT16 else np.asarray(values).astype(STORAGE[dtype])


def decode(array, dtype):
    """Stored values as float64."""
    return (from_bfloat16(array) if dtype == BFLOAT16 else array).astype(np.float64)


def round_to(values, dtype):
    return decode(encode(np.asarray(values, dtype=np.float32), dtype), dtype)


def describe(array, dtype, flags=0):
    """A descriptor of a NumPy array (any strides that are multiples of the element size)."""
    descriptor = Tensor()
    descriptor.data = array.ctypes.data
    descriptor.device_type, descriptor.device_index, descriptor.dtype = DEVICE_CPU, 0, dtype
    descriptor.ndim, descriptor.flags = array.ndim, flags
    for k in range(array.ndim):
        descriptor.shape[k] = array.shape[k]
        descriptor.strides[k] = array.strides[k] // array.itemsize
    return descriptor


def memory_counters(library):
    """(allocations, copies) the library's operations made so far."""
    allocations, copies = ctypes.c_int64(-1), ctypes.c_int64(-1)
    assert library.fusednorm_memory_counters(ctypes.byref(allocations), ctypes.byref(copies)) == SUCCESS
    return allocations.value, copies.value


def ref(descriptor):
    return None if descriptor is None else ctypes.byref(descriptor)
