"""libFusedNormC from Python through ctypes and NumPy: every operation against a float64 reference on
awkward shapes, strided rows and every dtype, written into the caller's own NumPy buffers (zero copy: the
descriptor's data pointer is the array's, the result is read from that array, the padding between strided
rows stays poisoned); bad descriptors give a status and a message; DLPack import from NumPy (read-only
flag honoured) and export read back by NumPy's own DLPack consumer.

Run by .ci/run: FUSEDNORM_C_LIBRARY=<path to libFusedNormC.so> python -m pytest Tests/CInterop/python
"""
import ctypes

import numpy as np
import pytest

import fusednorm_c as fn

library = fn.load_library()
DTYPES = [fn.FLOAT32, fn.FLOAT16, fn.BFLOAT16]
# (leading shape, N, strided): awkward sizes, a rank-3 input, a single element, no rows.
SHAPES = [((1,), 1, False), ((3,), 7, True), ((5,), 33, False), ((2, 3), 129, True), ((7,), 1000, True),
          ((3,), 4097, False), ((0,), 8, False)]
TOLERANCE = {fn.FLOAT32: 1e-5, fn.FLOAT16: 1e-3, fn.BFLOAT16: 8e-3}
POISON = 0x7F7F


def relative_error(actual, expected):
    norm = np.sum(expected * expected)
    difference = np.sum((actual - expected) ** 2)
    return 0.0 if norm == 0 and difference == 0 else float(np.sqrt(difference / norm)) if norm else float("inf")


def values(rng, shape):
    """k/32 for k in [-96, 96]: exact in every dtype."""
    return rng.integers(-96, 97, size=shape).astype(np.float64) / 32


class Strided:
    """A caller-owned array of `shape` whose rows are `pad` elements further apart than they are long,
    the padding poisoned."""

    def __init__(self, shape, dtype, pad):
        self.dtype = dtype
        storage = np.empty(shape[:-1] + (shape[-1] + pad,), dtype=fn.STORAGE[dtype])
        storage.view(np.uint8)[...] = 0x7F
        self.storage = storage
        self.view = storage[..., : shape[-1]]
        self.descriptor = fn.describe(self.view, dtype)

    def set(self, values):
        self.view[...] = fn.encode(values, self.dtype)
        return self

    def values(self):
        return fn.decode(self.view, self.dtype)

    def padding_untouched(self):
        return bool(np.all(self.storage.view(np.uint8)[..., self.view.shape[-1] * self.view.itemsize:] == 0x7F))


def check(status):
    assert status == fn.SUCCESS, library.fusednorm_last_error().decode()


# Copies a test expects the library to count: for an empty batch, a backward fills its parameter gradients
# with zeros (an upload of zeros, counted as a copy). Reset for every test.
EXPECTED_COPIES = [0]


@pytest.fixture(autouse=True)
def library_makes_no_copy():
    """Zero copy, asserted by the library's own counters: the operations allocate and copy no tensor."""
    EXPECTED_COPIES[0] = 0
    allocations, copies = fn.memory_counters(library)
    yield
    assert fn.memory_counters(library) == (allocations, copies + EXPECTED_COPIES[0]), \
        "the library allocated or copied tensors (allocations, copies)"


def reference_forward(s, w, b, epsilon, offset, layer, llama_dtype=None):
    mean = s.mean(axis=-1, keepdims=True) if layer else np.zeros(s.shape[:-1] + (1,))
    rstd = 1 / np.sqrt(((s - mean) ** 2).mean(axis=-1, keepdims=True) + epsilon)
    hat = (s - mean) * rstd
    if llama_dtype is not None:
        hat = fn.round_to(hat, llama_dtype)
    weight = (np.float32(w + offset).astype(np.float64)) if w is not None else 1 + offset
    return hat * weight + (b if b is not None else 0), mean[..., 0], rstd[..., 0]


def reference_backward(dy, x, w, epsilon, offset, layer, residual_gradient=None):
    n = x.shape[-1]
    mean = x.mean(axis=-1, keepdims=True) if layer else 0
    rstd = 1 / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + epsilon)
    hat = (x - mean) * rstd
    g = dy * ((np.float32(w + offset).astype(np.float64)) if w is not None else 1 + offset)
    dx = rstd * (g - (g.mean(axis=-1, keepdims=True) if layer else 0) - hat * (g * hat).sum(axis=-1, keepdims=True) / n)
    if residual_gradient is not None:
        dx = dx + residual_gradient
    # Sum over rows, per weight row (per head when w is (H, N)).
    heads = w.shape[0] if w is not None and w.ndim == 2 else 1
    rows = lambda t: t.reshape(-1, heads, n).sum(axis=0) if heads > 1 else t.reshape(-1, n).sum(axis=0)
    return dx, rows(dy * hat), rows(dy)


def test_versions():
    assert library.fusednorm_version().decode() == "0.1.0"
    assert library.fusednorm_version_number() == 100


@pytest.mark.parametrize("dtype", DTYPES, ids=fn.NAMES.get)
@pytest.mark.parametrize("lead,n,strided", SHAPES)
@pytest.mark.parametrize("llama", [False, True], ids=["standard", "llama"])
def test_rms_norm_forward_with_residual(dtype, lead, n, strided, llama):
    rng = np.random.default_rng(n * 7 + dtype)
    shape = lead + (n,)
    residual_dtype = fn.BFLOAT16 if dtype == fn.FLOAT32 else fn.FLOAT32
    x = Strided(shape, dtype, 5 if strided else 0).set(values(rng, shape))
    r = Strided(shape, residual_dtype, 3 if strided else 0).set(values(rng, shape))
    heads = lead[-1] if len(lead) > 1 else None  # per-head weights for a rank-3 input
    w_values = values(rng, (heads, n) if heads else (n,))
    w = Strided(w_values.shape, dtype, 0).set(w_values)
    y = Strided(shape, fn.FLOAT32, 2 if strided else 0)
    s = Strided(shape, residual_dtype, 1 if strided else 0)
    rstd = np.full(lead, np.nan, dtype=np.float32)
    address = y.view.ctypes.data
    check(library.fusednorm_rms_norm_forward(
        fn.ref(x.descriptor), fn.ref(r.descriptor), fn.ref(w.descriptor), 1e-6, 1.0,
        fn.CASTING_LLAMA if llama else fn.CASTING_STANDARD, fn.ref(y.descriptor), fn.ref(s.descriptor),
        fn.ref(fn.describe(rstd, fn.FLOAT32)), None))
    expected_s = fn.round_to(x.values() + r.values(), residual_dtype)
    expected_y, _, expected_rstd = reference_forward(
        expected_s, w_values, None, 1e-6, 1.0, layer=False, llama_dtype=residual_dtype if llama else None)
    assert y.view.ctypes.data == address  # the caller's buffer, written in place
    assert np.array_equal(s.values(), expected_s)
    limit = TOLERANCE[fn.FLOAT32] * (1.5 if llama else 1) + (TOLERANCE[residual_dtype] if llama else 0)
    assert relative_error(y.values(), expected_y) <= limit
    assert relative_error(rstd.astype(np.float64), expected_rstd) <= 1e-6
    assert y.padding_untouched() and s.padding_untouched()


@pytest.mark.parametrize("dtype", DTYPES, ids=fn.NAMES.get)
@pytest.mark.parametrize("lead,n,strided", SHAPES)
def test_rms_norm_plain_and_backward(dtype, lead, n, strided):
    rng = np.random.default_rng(n * 11 + dtype)
    shape = lead + (n,)
    x = Strided(shape, dtype, 4 if strided else 0).set(values(rng, shape))
    w_values = values(rng, (n,))
    w = Strided((n,), dtype, 0).set(w_values)
    y = Strided(shape, dtype, 3 if strided else 0)
    check(library.fusednorm_rms_norm_forward(
        fn.ref(x.descriptor), None, fn.ref(w.descriptor), 1e-6, 0.0, fn.CASTING_STANDARD, fn.ref(y.descriptor),
        None, None, None))
    expected, _, _ = reference_forward(x.values(), w_values, None, 1e-6, 0.0, layer=False)
    assert relative_error(y.values(), expected) <= TOLERANCE[dtype]
    assert y.padding_untouched()

    dy = Strided(shape, dtype, 2 if strided else 0).set(values(rng, shape))
    residual_gradient = Strided(shape, fn.FLOAT32, 0).set(values(rng, shape))
    dx = Strided(shape, dtype, 1 if strided else 0)
    dw = np.full((n,), np.nan, dtype=np.float32)
    check(library.fusednorm_rms_norm_backward(
        fn.ref(dy.descriptor), fn.ref(x.descriptor), fn.ref(w.descriptor), None, fn.ref(residual_gradient.descriptor),
        1e-6, 0.0, fn.ref(dx.descriptor), fn.ref(fn.describe(dw, fn.FLOAT32)), None))
    EXPECTED_COPIES[0] += 1 if 0 in lead else 0
    expected_dx, expected_dw, _ = reference_backward(
        dy.values(), x.values(), w_values, 1e-6, 0.0, layer=False, residual_gradient=residual_gradient.values())
    assert relative_error(dx.values(), expected_dx) <= TOLERANCE[dtype]
    assert relative_error(dw.astype(np.float64), expected_dw) <= 1e-5
    assert dx.padding_untouched()


@pytest.mark.parametrize("dtype", DTYPES, ids=fn.NAMES.get)
@pytest.mark.parametrize("lead,n,strided", SHAPES)
def test_layer_norm_forward_and_backward(dtype, lead, n, strided):
    rng = np.random.default_rng(n * 13 + dtype)
    shape = lead + (n,)
    x = Strided(shape, dtype, 6 if strided else 0).set(values(rng, shape))
    w_values, b_values = values(rng, (n,)), values(rng, (n,))
    w = Strided((n,), dtype, 0).set(w_values)
    b = Strided((n,), fn.FLOAT32, 0).set(b_values)
    y = Strided(shape, dtype, 2 if strided else 0)
    mean = np.full(lead, np.nan, dtype=np.float32)
    rstd = np.full(lead, np.nan, dtype=np.float32)
    check(library.fusednorm_layer_norm_forward(
        fn.ref(x.descriptor), None, fn.ref(w.descriptor), fn.ref(b.descriptor), 1e-5, fn.ref(y.descriptor), None,
        fn.ref(fn.describe(mean, fn.FLOAT32)), fn.ref(fn.describe(rstd, fn.FLOAT32)), None))
    expected, expected_mean, expected_rstd = reference_forward(x.values(), w_values, b_values, 1e-5, 0.0, layer=True)
    assert relative_error(y.values(), expected) <= TOLERANCE[dtype]
    assert relative_error(mean.astype(np.float64), expected_mean) <= 1e-6
    assert relative_error(rstd.astype(np.float64), expected_rstd) <= 1e-5
    assert y.padding_untouched()

    # Backward from the saved statistics; dbias without the bias's values.
    dy = Strided(shape, dtype, 3 if strided else 0).set(values(rng, shape))
    dx = Strided(shape, fn.FLOAT32, 1 if strided else 0)
    dw = np.full((n,), np.nan, dtype=np.float32)
    db = np.full((n,), np.nan, dtype=np.float32)
    check(library.fusednorm_layer_norm_backward(
        fn.ref(dy.descriptor), fn.ref(x.descriptor), fn.ref(w.descriptor), fn.ref(fn.describe(mean, fn.FLOAT32)),
        fn.ref(fn.describe(rstd, fn.FLOAT32)), None, 1e-5, fn.ref(dx.descriptor), fn.ref(fn.describe(dw, fn.FLOAT32)),
        fn.ref(fn.describe(db, fn.FLOAT32)), None))
    EXPECTED_COPIES[0] += 2 if 0 in lead else 0
    expected_dx, expected_dw, expected_db = reference_backward(dy.values(), x.values(), w_values, 1e-5, 0.0, layer=True)
    assert relative_error(dx.values(), expected_dx) <= 1e-5
    assert relative_error(dw.astype(np.float64), expected_dw) <= 1e-5
    assert relative_error(db.astype(np.float64), expected_db) <= 1e-5
    assert dx.padding_untouched()


def bad(**fields):
    x = np.ones((4, 8), dtype=np.float32)
    descriptor = fn.describe(x, fn.FLOAT32)
    for name, value in fields.items():
        if name in ("shape", "strides"):
            for k, v in value.items():
                getattr(descriptor, name)[k] = v
        else:
            setattr(descriptor, name, value)
    return x, descriptor


BAD_DESCRIPTORS = [
    ("NULL data", dict(data=None), fn.INVALID_ARGUMENT, "NULL"),
    ("ndim 0", dict(ndim=0), fn.INVALID_ARGUMENT, "ndim"),
    ("ndim 9", dict(ndim=9), fn.INVALID_ARGUMENT, "ndim"),
    ("negative shape", dict(shape={0: -1}), fn.INVALID_ARGUMENT, "negative"),
    ("stride smaller than the row", dict(strides={0: 3}), fn.INVALID_ARGUMENT, "smaller than a row"),
    ("non-unit last stride", dict(strides={0: 16, 1: 2}), fn.UNSUPPORTED, "last stride"),
    ("unknown dtype", dict(dtype=42), fn.INVALID_ARGUMENT, "dtype is 42"),
    ("unknown device", dict(device_type=9), fn.INVALID_ARGUMENT, "device_type is 9"),
    ("CUDA device 99", dict(device_type=fn.DEVICE_CUDA, device_index=99), fn.DEVICE_ERROR, "cuda:99"),
    ("reserved", dict(reserved=3), fn.INVALID_ARGUMENT, "reserved"),
]


@pytest.mark.parametrize("name,fields,status,needle", BAD_DESCRIPTORS, ids=[case[0] for case in BAD_DESCRIPTORS])
def test_bad_descriptor_gives_status_and_message(name, fields, status, needle):
    keep, x = bad(**fields)
    y = np.full((4, 8), 7.0, dtype=np.float32)
    got = library.fusednorm_rms_norm_forward(
        ctypes.byref(x), None, None, 1e-6, 0.0, 0, ctypes.byref(fn.describe(y, fn.FLOAT32)), None, None, None)
    message = library.fusednorm_last_error().decode()
    assert got == status, message
    assert needle in message and message.startswith("fusednorm_rms_norm_forward: x: ")
    assert np.all(y == 7.0)  # nothing written
    del keep


@pytest.mark.parametrize("dtype", DTYPES, ids=fn.NAMES.get)
def test_two_level_rows_of_a_fused_qkv_view(dtype):
    """The (T, H, D) q and k views of a fused (T, 3*H*D) qkv tensor (heads D apart, tokens 3*H*D apart),
    normalized in place of a copy with a per-head weight, results written into a strided (T, H, D) view too."""
    t, h, d = 5, 4, 16
    rng = np.random.default_rng(17 + dtype)
    qkv = Strided((t, 3 * h * d), dtype, 0).set(values(rng, (t, 3 * h * d)))
    out = Strided((t, 3 * h * d), dtype, 0)
    w_values = values(rng, (h, d))
    w = Strided((h, d), dtype, 0).set(w_values)
    for part in (0, 1):  # q, then k
        view = qkv.view[:, part * h * d:(part + 1) * h * d].reshape(t, h, d)
        target = out.view[:, part * h * d:(part + 1) * h * d].reshape(t, h, d)
        assert view.base is not None and target.strides == view.strides  # views, not copies
        check(library.fusednorm_rms_norm_forward(
            ctypes.byref(fn.describe(view, dtype)), None, ctypes.byref(w.descriptor), 1e-6, 0.0, 0,
            ctypes.byref(fn.describe(target, dtype)), None, None, None))
        expected, _, _ = reference_forward(fn.decode(view, dtype), w_values, None, 1e-6, 0.0, layer=False)
        assert relative_error(fn.decode(target, dtype), expected) <= TOLERANCE[dtype]
    assert np.all(out.storage[:, 2 * h * d:].view(np.uint8) == 0x7F), "v's columns were written"


def test_read_only_output_is_refused():
    x = np.ones((2, 8), dtype=np.float32)
    y = np.zeros((2, 8), dtype=np.float32)
    status = library.fusednorm_rms_norm_forward(
        ctypes.byref(fn.describe(x, fn.FLOAT32)), None, None, 1e-6, 0.0, 0,
        ctypes.byref(fn.describe(y, fn.FLOAT32, flags=fn.TENSOR_READ_ONLY)), None, None, None)
    assert status == fn.INVALID_ARGUMENT and "read-only" in library.fusednorm_last_error().decode()
    assert np.all(y == 0)


def test_cuda_query_and_prepare():
    info = fn.CUDAInfo()
    check(library.fusednorm_cuda_query(ctypes.byref(info)))
    assert info.usable in (0, 1)
    if not info.usable:
        assert info.problem  # says why
        request = fn.PrepareRequest(operation=fn.RMS_NORM_FORWARD, device_type=fn.DEVICE_CUDA, rows=8, columns=64,
                                    weight_rows=1, x_dtype=fn.BFLOAT16, epsilon=1e-6)
        assert library.fusednorm_prepare(ctypes.byref(request), 1) == fn.DEVICE_ERROR


# DLPack: NumPy as producer and consumer.
PyCapsule_GetPointer = ctypes.pythonapi.PyCapsule_GetPointer
PyCapsule_GetPointer.restype, PyCapsule_GetPointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]


def test_dlpack_import_from_numpy_is_zero_copy_and_honours_read_only():
    rng = np.random.default_rng(3)
    x = values(rng, (6, 40)).astype(np.float16)
    y = np.zeros((6, 40), dtype=np.float16)
    x_capsule = x.__dlpack__(max_version=(1, 0))
    y_capsule = y.__dlpack__(max_version=(1, 0))
    x_descriptor, y_descriptor = fn.Tensor(), fn.Tensor()
    check(library.fusednorm_tensor_from_dlpack_versioned(PyCapsule_GetPointer(x_capsule, b"dltensor_versioned"), ctypes.byref(x_descriptor)))
    check(library.fusednorm_tensor_from_dlpack_versioned(PyCapsule_GetPointer(y_capsule, b"dltensor_versioned"), ctypes.byref(y_descriptor)))
    assert x_descriptor.data == x.ctypes.data and y_descriptor.data == y.ctypes.data and y_descriptor.dtype == fn.FLOAT16
    check(library.fusednorm_rms_norm_forward(
        ctypes.byref(x_descriptor), None, None, 1e-6, 0.0, 0, ctypes.byref(y_descriptor), None, None, None))
    expected, _, _ = reference_forward(x.astype(np.float64), None, None, 1e-6, 0.0, layer=False)
    assert relative_error(y.astype(np.float64), expected) <= TOLERANCE[fn.FLOAT16]

    frozen = np.zeros((6, 40), dtype=np.float16)
    frozen.flags.writeable = False
    capsule = frozen.__dlpack__(max_version=(1, 0))
    descriptor = fn.Tensor()
    check(library.fusednorm_tensor_from_dlpack_versioned(PyCapsule_GetPointer(capsule, b"dltensor_versioned"), ctypes.byref(descriptor)))
    assert descriptor.flags == fn.TENSOR_READ_ONLY
    status = library.fusednorm_rms_norm_forward(
        ctypes.byref(x_descriptor), None, None, 1e-6, 0.0, 0, ctypes.byref(descriptor), None, None, None)
    assert status == fn.INVALID_ARGUMENT and "read-only" in library.fusednorm_last_error().decode()
    assert np.all(frozen == 0)


PyCapsule_New = ctypes.pythonapi.PyCapsule_New
PyCapsule_New.restype, PyCapsule_New.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


class Exported:
    """An object with the DLPack protocol over a tensor exported by libFusedNormC (a capsule NumPy consumes,
    calling the export's deleter when the array it made is gone)."""

    def __init__(self, descriptor):
        self.managed = ctypes.c_void_p()
        check(library.fusednorm_tensor_to_dlpack_versioned(ctypes.byref(descriptor), ctypes.byref(self.managed)))

    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        return PyCapsule_New(self.managed.value, b"dltensor_versioned", None)

    def __dlpack_device__(self):
        return (1, 0)


def test_dlpack_export_read_back_by_numpy():
    rng = np.random.default_rng(5)
    storage = values(rng, (4, 12)).astype(np.float32)
    view = storage[:, :10]  # strided rows
    back = np.from_dlpack(Exported(fn.describe(view, fn.FLOAT32)))
    assert back.shape == (4, 10) and back.strides == view.strides
    assert back.ctypes.data == view.ctypes.data  # the same memory, no copy
    assert np.array_equal(back, view)
