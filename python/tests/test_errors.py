"""Bad input gives an exception that says what is wrong, never a crash: through the NumPy API, and bad
descriptors straight through the C functions (ctypes). Also: a missing library gives an ImportError that says
how to build it."""

import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest

import fusednorm
from fusednorm import _library as C

x8 = np.ones((4, 8), dtype=np.float32)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: fusednorm.rms_norm(x8.astype(np.float64)), TypeError, "float64"),
        (lambda: fusednorm.rms_norm(x8.astype(np.int32)), TypeError, "int32"),
        (lambda: fusednorm.rms_norm([[1.0, 2.0]]), TypeError, "NumPy array"),
        (lambda: fusednorm.rms_norm(np.ones((), np.float32)), ValueError, "dimension"),
        (lambda: fusednorm.rms_norm(x8, np.ones(7, np.float32)), fusednorm.FusedNormError, "weight"),
        (lambda: fusednorm.rms_norm(x8, np.ones((3, 8), np.float32)), fusednorm.FusedNormError, "weight"),
        (lambda: fusednorm.rms_norm(x8, eps=0.0), fusednorm.FusedNormError, "psilon"),
        (lambda: fusednorm.rms_norm(x8, eps=float("nan")), fusednorm.FusedNormError, "psilon"),
        (lambda: fusednorm.rms_norm(x8, eps="1e-6"), TypeError, "eps"),
        (lambda: fusednorm.rms_norm(x8, offset=float("inf")), fusednorm.FusedNormError, "ffset"),
        (lambda: fusednorm.rms_norm(x8, casting="mistral"), ValueError, "casting"),
        (lambda: fusednorm.rms_norm(x8, residual=np.ones((4, 7), np.float32)), fusednorm.FusedNormError, "residual"),
        (lambda: fusednorm.rms_norm(x8, out_dtype=np.float64), TypeError, "float64"),
        (lambda: fusednorm.rms_norm(x8, residual_dtype=np.float16), ValueError, "residual"),
        (lambda: fusednorm.rms_norm(np.ones((4, 0), np.float32)), fusednorm.FusedNormError, ""),
        (lambda: fusednorm.rms_norm(np.ones((1,) * 9, np.float32)), ValueError, "dimensions"),
        (lambda: fusednorm.rms_norm(x8, out=np.ones((4, 8), np.float32)[:, ::2]), ValueError, "shape"),
        (lambda: fusednorm.rms_norm(x8, out=np.ones((8, 4), np.float32).T), ValueError, "layout"),
        (lambda: fusednorm.layer_norm(x8, np.ones(8, np.float32), np.ones(4, np.float32)), fusednorm.FusedNormError,
         "bias"),
        (lambda: fusednorm.rms_norm_backward(x8, x8, rstd=np.ones(4, np.float16)), fusednorm.FusedNormError, "rstd"),
        (lambda: fusednorm.rms_norm_backward(x8, x8, rstd=np.ones(3, np.float32)), fusednorm.FusedNormError, "rstd"),
        (lambda: fusednorm.layer_norm_backward(x8, x8, mean=np.ones(4, np.float32)), fusednorm.FusedNormError,
         "mean"),
    ],
)
def test_bad_arguments_raise(call, error, words):
    with pytest.raises(error) as caught:
        call()
    assert words in str(caught.value)


def test_read_only_output_is_refused():
    out = np.empty((4, 8), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fusednorm.rms_norm(x8, out=out)


def test_error_carries_status_and_message():
    with pytest.raises(fusednorm.FusedNormError) as caught:
        fusednorm.rms_norm(x8, np.ones(5, np.float32))
    error = caught.value
    assert error.status == C.INVALID_ARGUMENT and error.status_name == "FUSEDNORM_INVALID_ARGUMENT"
    assert error.operation == "fusednorm_rms_norm_forward" and error.message


def _descriptor(**changes):
    """A valid (4, 8) float32 CPU descriptor of x8, then `changes`."""
    fields = dict(address=x8.ctypes.data, device_type=C.DEVICE_CPU, device_index=0, dtype=C.FLOAT32,
                  shape=(4, 8), strides=(8, 1))
    fields.update(changes)
    return C.describe(fields["address"], fields["device_type"], fields["device_index"], fields["dtype"],
                      fields["shape"], fields["strides"])


BAD_DESCRIPTORS = {
    "NULL data with elements": dict(address=0),
    "negative size": dict(shape=(-4, 8)),
    "row stride smaller than the row": dict(strides=(4, 1)),
    "negative stride": dict(strides=(-8, 1)),
    "last stride not 1": dict(strides=(16, 2)),
    "unknown dtype": dict(dtype=7),
    "dtype none": dict(dtype=C.DTYPE_NONE),
    "unknown device type": dict(device_type=99),
    "CUDA device that does not exist": dict(device_type=C.DEVICE_CUDA, device_index=99),
    "negative device index": dict(device_type=C.DEVICE_CUDA, device_index=-1),
    "misaligned data": dict(address=x8.ctypes.data + 2),
}


@pytest.mark.parametrize("name", list(BAD_DESCRIPTORS))
def test_bad_descriptors_give_a_status_and_a_message(name):
    bad = _descriptor(**BAD_DESCRIPTORS[name])
    y = np.full((4, 8), np.nan, np.float32)
    y_descriptor = _descriptor(address=y.ctypes.data)
    status = C.library.fusednorm_rms_norm_forward(bad, None, None, 1e-6, 0.0, C.CASTING_STANDARD, y_descriptor, None,
                                                  None, None)
    assert status != C.SUCCESS
    assert C.library.fusednorm_last_error().decode()
    assert np.isnan(y).all()  # nothing written when an argument is found bad
    assert C.library.fusednorm_tensor_check(bad) != C.SUCCESS


def test_malformed_descriptor_fields():
    for change in ("ndim 0", "ndim 9", "reserved"):
        descriptor = _descriptor()
        if change == "ndim 0":
            descriptor.ndim = 0
        elif change == "ndim 9":
            descriptor.ndim = 9
        else:
            descriptor.reserved = 1
        assert C.library.fusednorm_tensor_check(descriptor) == C.INVALID_ARGUMENT, change
    assert C.library.fusednorm_rms_norm_forward(None, None, None, 1e-6, 0.0, 0, None, None, None, None) != C.SUCCESS
    assert C.library.fusednorm_rms_norm_forward(_descriptor(), None, None, 1e-6, 0.0, 5, _descriptor(), None, None,
                                                None) != C.SUCCESS  # unknown casting


def test_good_descriptor_checks():
    assert C.library.fusednorm_tensor_check(_descriptor()) == C.SUCCESS
    assert C.library.fusednorm_dtype_size(C.BFLOAT16) == 2 and C.library.fusednorm_dtype_size(42) == 0


def test_library_facts():
    assert fusednorm.library_version.count(".") == 2
    info = fusednorm.cuda_info()
    assert info["usable"] in (0, 1)
    if not info["usable"]:
        assert info["problem"]


def test_missing_library_says_how_to_build_it(tmp_path):
    environment = dict(os.environ, FUSEDNORM_LIBRARY=str(tmp_path / "libFusedNormC.so"))
    result = subprocess.run([sys.executable, "-c", "import fusednorm"], env=environment, capture_output=True,
                            text=True)
    assert result.returncode != 0
    assert "ImportError" in result.stderr or "LibraryNotFoundError" in result.stderr
    assert "swift build -c release -Xswiftc -static-stdlib --product FusedNormC --scratch-path .build-c" in result.stderr


def test_torch_parts_say_they_need_torch_when_it_is_missing():
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="needs PyTorch"):
            fusednorm.RMSNorm
    else:
        assert fusednorm.RMSNorm.__name__ == "RMSNorm"
