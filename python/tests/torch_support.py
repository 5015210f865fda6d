"""What the PyTorch tests share: skipping without torch, the devices to run on, comparisons."""

import pytest

torch = pytest.importorskip(
    "torch",
    reason="PyTorch is not importable here: the PyTorch tests run where it is installed (the GPU machine; "
    "docs/notes/python-package.md gives the command)",
)

import fusednorm  # noqa: E402

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def devices():
    """cpu, and cuda when PyTorch and FusedNorm's library both can use a GPU."""
    found = ["cpu"]
    if torch.cuda.is_available():
        info = fusednorm.cuda_info()
        if info["usable"]:
            found.append("cuda")
        else:
            found.append(pytest.param("cuda", marks=pytest.mark.skip(reason=f"FusedNorm cannot use CUDA: {info['problem']}")))
    return found


DEVICES = devices()


def ordered(t):
    """Integers in the order of 16-bit float values (differences count ulps)."""
    bits = t.contiguous().view(torch.int16).to(torch.int64)
    return torch.where(bits < 0, -(bits & 0x7FFF), bits)


def assert_ulps(got, expected, max_ulps=2, max_share=0.01, what="output"):
    """16-bit results: never more than max_ulps apart (2 by default: two results each within 1 ulp of the
    exact value may round apart by 2), and apart at all on at most max_share (1%) of elements, where a wrong
    casting differs on about 25%; float32 results: torch.testing.assert_close's float32 defaults (rtol 1.3e-6,
    atol 1e-5)."""
    assert got.dtype == expected.dtype and got.shape == expected.shape, (got.dtype, expected.dtype, got.shape)
    if got.dtype == torch.float32:
        torch.testing.assert_close(got, expected, msg=lambda m: f"{what}: {m}")
        return
    distance = (ordered(got.cpu()) - ordered(expected.cpu())).abs()
    share = (distance > 0).double().mean().item()
    assert distance.max().item() <= max_ulps, f"{what}: {distance.max().item()} ulps apart"
    assert share <= max_share, f"{what}: {share:.2%} of elements differ"


def share_different(a, b):
    return (a != b).double().mean().item()


def assert_exact_within_ulp(got, function, *tensors):
    """Against float64: `function` of the float64 copies of `tensors`, rounded once to got's dtype: at most
    1 ulp apart, on at most 1% of elements."""
    expected = function(*[None if t is None else t.double() for t in tensors]).to(got.dtype)
    assert_ulps(got, expected, max_ulps=1, what="against float64")
