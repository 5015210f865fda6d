"""Finding and loading libFusedNormC.so, and every C call through one wrapper.

The library is searched, first match wins:
  1. the file named by the environment variable FUSEDNORM_LIBRARY (an error if it is set and unusable);
  2. libFusedNormC.so inside this package (copied there before `pip install`);
  3. the repository's SwiftPM build folders, when this package is imported from a checkout
     (python/fusednorm -> ../../.build-c/release/libFusedNormC.so, as README.md builds it, or .build/release);
  4. the dynamic loader's search path (LD_LIBRARY_PATH, ldconfig).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

LIBRARY_NAME = "libFusedNormC.so"
ENVIRONMENT_VARIABLE = "FUSEDNORM_LIBRARY"
# The header this binding was written against (fusednorm.h): FUSEDNORM_VERSION_MAJOR.
HEADER_MAJOR_VERSION = 0
MAX_DIMS = 8

BUILD_INSTRUCTIONS = (
    "Build it from the FusedNorm repository with\n"
    "    swift build -c release -Xswiftc -static-stdlib --product FusedNormC --scratch-path .build-c\n"
    "then either set FUSEDNORM_LIBRARY=/path/to/FusedNorm/.build-c/release/libFusedNormC.so, or copy that file\n"
    "into python/fusednorm/ before `pip install ./python` so that it is installed with the package."
)

# Status codes (fusednorm_status).
SUCCESS = 0
INVALID_ARGUMENT = 1
UNSUPPORTED = 2
DEVICE_ERROR = 3
OUT_OF_MEMORY = 4
INTERNAL = 5

# Devices (DLPack codes), dtypes, castings.
DEVICE_CPU = 1
DEVICE_CUDA = 2
DTYPE_NONE = 0
FLOAT32 = 1
FLOAT16 = 2
BFLOAT16 = 3
CASTING_STANDARD = 0
CASTING_LLAMA = 1

# Python spellings of the casting: "gemma" is the standard rounding (one rounding at the end); Gemma's
# other difference, the weight offset 1, is the `offset` argument.
CASTINGS = {"standard": CASTING_STANDARD, "gemma": CASTING_STANDARD, "llama": CASTING_LLAMA}


class FusedNormError(RuntimeError):
    """A FusedNorm C call failed: the status, its name, and the library's message."""

    def __init__(self, status: int, status_name: str, message: str, operation: str):
        self.status = status
        self.status_name = status_name
        self.message = message
        self.operation = operation
        super().__init__(f"{message} ({status_name} from {operation})")


class LibraryNotFoundError(ImportError):
    """libFusedNormC.so could not be found or loaded; the message says how to build it."""


class Tensor(ctypes.Structure):
    """fusednorm_tensor: a descriptor of memory the caller owns (160 bytes)."""

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


def describe(address: int, device_type: int, device_index: int, dtype: int, shape, strides) -> Tensor:
    """A descriptor of `shape` with element `strides` at `address` (no checks: the library checks)."""
    if len(shape) > MAX_DIMS:
        raise ValueError(f"FusedNorm takes at most {MAX_DIMS} dimensions, got {len(shape)}")
    tensor = Tensor()
    tensor.data = address or None
    tensor.device_type = device_type
    tensor.device_index = device_index
    tensor.dtype = dtype
    tensor.ndim = len(shape)
    for k, (size, stride) in enumerate(zip(shape, strides)):
        tensor.shape[k] = size
        tensor.strides[k] = stride
    return tensor


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


def _candidates():
    here = Path(__file__).resolve().parent
    yield here / LIBRARY_NAME
    checkout = here.parent.parent
    if (checkout / "Package.swift").is_file():
        for folder in (".build-c/release", ".build/release", ".build/x86_64-unknown-linux-gnu/release"):
            yield checkout / folder / LIBRARY_NAME


def _open(path: str) -> ctypes.CDLL:
    return ctypes.CDLL(path)


def load() -> tuple[ctypes.CDLL, str]:
    """Finds and opens the library; raises LibraryNotFoundError saying how to build it."""
    override = os.environ.get(ENVIRONMENT_VARIABLE)
    if override:
        try:
            return _open(override), override
        except OSError as error:
            raise LibraryNotFoundError(
                f"{ENVIRONMENT_VARIABLE}={override} could not be loaded: {error}\n{BUILD_INSTRUCTIONS}"
            ) from None
    tried = []
    for candidate in _candidates():
        tried.append(str(candidate))
        if candidate.is_file():
            try:
                return _open(str(candidate)), str(candidate)
            except OSError as error:
                raise LibraryNotFoundError(f"{candidate} could not be loaded: {error}\n{BUILD_INSTRUCTIONS}") from None
    try:
        return _open(LIBRARY_NAME), LIBRARY_NAME
    except OSError:
        tried.append(f"{LIBRARY_NAME} on the loader's path")
    raise LibraryNotFoundError(
        "FusedNorm's C library (libFusedNormC.so) was not found. Looked at: " + ", ".join(tried) + ".\n"
        + BUILD_INSTRUCTIONS
    )


_POINTER = ctypes.POINTER(Tensor)


def _declare(library: ctypes.CDLL) -> None:
    """Gives every C function its argument and result types (fusednorm.h)."""
    T = _POINTER
    f32 = ctypes.c_float
    void_p = ctypes.c_void_p
    i32 = ctypes.c_int32
    signatures = {
        "fusednorm_tensor_check": (i32, [T]),
        "fusednorm_dtype_size": (i32, [i32]),
        "fusednorm_last_error": (ctypes.c_char_p, []),
        "fusednorm_status_name": (ctypes.c_char_p, [i32]),
        "fusednorm_version": (ctypes.c_char_p, []),
        "fusednorm_version_number": (i32, []),
        "fusednorm_rms_norm_forward": (i32, [T, T, T, f32, f32, i32, T, T, T, void_p]),
        "fusednorm_rms_norm_backward": (i32, [T, T, T, T, T, f32, f32, T, T, void_p]),
        "fusednorm_layer_norm_forward": (i32, [T, T, T, T, f32, T, T, T, T, void_p]),
        "fusednorm_layer_norm_backward": (i32, [T, T, T, T, T, T, f32, T, T, T, void_p]),
        "fusednorm_cuda_query": (i32, [ctypes.POINTER(CUDAInfo)]),
    }
    optional = {"fusednorm_memory_counters": (i32, [ctypes.POINTER(ctypes.c_int64)] * 2)}
    for name, (result, arguments) in optional.items():
        if hasattr(library, name):
            signatures[name] = (result, arguments)
    for name, (result, arguments) in signatures.items():
        try:
            function = getattr(library, name)
        except AttributeError:
            raise LibraryNotFoundError(
                f"the loaded FusedNorm library lacks {name}: it is older than this package.\n{BUILD_INSTRUCTIONS}"
            ) from None
        function.restype = result
        function.argtypes = arguments


library, library_path = load()
_declare(library)

version = library.fusednorm_version().decode()
if library.fusednorm_version_number() // 10000 != HEADER_MAJOR_VERSION:
    raise LibraryNotFoundError(
        f"{library_path} is FusedNorm {version}; this package needs major version {HEADER_MAJOR_VERSION}.\n"
        + BUILD_INSTRUCTIONS
    )


def _probe(shape, strides) -> int:
    buffer = (ctypes.c_float * 64)()
    return library.fusednorm_tensor_check(describe(ctypes.addressof(buffer), DEVICE_CPU, 0, FLOAT32, shape, strides))


def check(status: int, operation: str) -> None:
    """Raises FusedNormError for a failed status, with the thread's last error message."""
    if status != SUCCESS:
        message = library.fusednorm_last_error().decode(errors="replace")
        name = library.fusednorm_status_name(status).decode(errors="replace")
        raise FusedNormError(status, name, message or "(no message)", operation)


def call(name: str, *arguments) -> None:
    """Calls the C function `name` and raises FusedNormError when it fails."""
    check(getattr(library, name)(*arguments), name)


def memory_counters():
    """(allocations, copies) of tensor memory the library's operations made since it was loaded (both stay 0
    when every output is given, as this package always does), or None for a library without the counters."""
    if not hasattr(library, "fusednorm_memory_counters"):
        return None
    allocations, copies = ctypes.c_int64(), ctypes.c_int64()
    call("fusednorm_memory_counters", ctypes.byref(allocations), ctypes.byref(copies))
    return allocations.value, copies.value


def cuda_info() -> dict:
    """What the library knows about CUDA (fusednorm_cuda_query), as a dict."""
    info = CUDAInfo()
    call("fusednorm_cuda_query", ctypes.byref(info))
    return {
        name: (getattr(info, name).decode(errors="replace") if isinstance(getattr(info, name), bytes) else getattr(info, name))
        for name, _ in CUDAInfo._fields_
    }


from . import _layout  # noqa: E402  (after the library is loaded: the probe calls it)

_layout.probe_two_levels(_probe)
