"""The NumPy path and the C library against the float64 reference (no PyTorch needed).

Sizes 1, 3, 33, 4095 (rows not 16-byte aligned) and 5120; every dtype; strided rows; mixed dtypes;
per-head weights; outputs poisoned before the call where the test passes them in.
"""

import warnings
import zlib

import numpy as np
import pytest

import fusednorm
import reference as ref

from fusednorm import _layout

TWO_LEVELS = _layout.two_levels
NO_TWO_LEVELS = ("the loaded libFusedNormC answers FUSEDNORM_UNSUPPORTED for two-level rows (q/k views of a fused "
                 "qkv), so they are copied: python/C_ABI_REQUESTS.md item 0")

SIZES = (1, 3, 33, 4095, 5120)
ROWS = 5


def make(rng, shape, dtype, scale=1.0, shift=0.0):
    return ref.random(rng, shape, dtype, scale, shift)


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


@pytest.mark.parametrize("casting", ["standard", "llama"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", ref.DTYPES)
def test_rms_norm_matches_reference(rng, dtype, n, casting):
    x = make(rng, (ROWS, n), dtype, scale=3.0, shift=0.5)
    w = make(rng, (n,), dtype, scale=0.5, shift=1.0)
    y, rstd = fusednorm.rms_norm(x, w, eps=1e-6, casting=casting, return_rstd=True)
    expected, _, expected_rstd = ref.rms_norm((x, dtype), (w, dtype), 1e-6, 0.0, casting)
    assert y.dtype == x.dtype and y.shape == x.shape
    ref.assert_close(y, expected, dtype)
    ref.assert_close(rstd, expected_rstd, "float32", scale=np.abs(expected_rstd), what="rstd")


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", ref.DTYPES)
def test_rms_norm_weightless_and_gemma_offset(rng, dtype, n):
    x = make(rng, (ROWS, n), dtype)
    ref.assert_close(fusednorm.rms_norm(x), ref.rms_norm((x, dtype))[0], dtype)
    w = make(rng, (n,), dtype, scale=0.1)  # Gemma stores w - 1: values around 0
    y = fusednorm.rms_norm(x, w, offset=1.0, casting="gemma")
    ref.assert_close(y, ref.rms_norm((x, dtype), (w, dtype), offset=1.0)[0], dtype)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_llama_and_standard_casting_are_told_apart(rng, dtype):
    """The wrong casting fails: each result is exact on >= 99% of elements and never more than 1 ulp off, while
    the two castings' references differ on a larger share (asserted, so that this test can fail)."""
    n = 4096
    x = make(rng, (16, n), dtype, scale=2.0)
    w = make(rng, (n,), dtype, scale=0.7, shift=1.0)
    references = {c: ref.rms_norm((x, dtype), (w, dtype), casting=c)[0] for c in ("standard", "llama")}
    disagreement = np.mean(ref.ulps(ref.store(references["llama"], dtype), references["standard"], dtype) > 0)
    assert disagreement > 0.05, f"the castings differ on only {disagreement:.1%} of elements: inputs too easy"
    for casting, expected in references.items():
        distance = ref.ulps(fusednorm.rms_norm(x, w, casting=casting), expected, dtype)
        assert distance.max() <= 1, casting
        assert np.mean(distance > 0) <= 0.01, (casting, np.mean(distance > 0))


@pytest.mark.parametrize("n", (3, 33, 4095))
@pytest.mark.parametrize("dtype", ref.DTYPES)
def test_rms_norm_fused_residual(rng, dtype, n):
    x = make(rng, (ROWS, n), dtype)
    r = make(rng, (ROWS, n), dtype, scale=4.0)
    w = make(rng, (n,), dtype, shift=1.0)
    y, s = fusednorm.rms_norm(x, w, residual=r)
    expected, expected_s, _ = ref.rms_norm((x, dtype), (w, dtype), residual=(r, dtype))
    assert np.array_equal(ref.load(s), expected_s)  # one rounding of an exact float64 sum: bit-exact
    ref.assert_close(y, expected, dtype)


def test_mixed_dtypes(rng):
    """bf16 activations, an fp32 residual stream and fp32 weight, fp32 output; s in the residual's dtype."""
    n = 257
    x = make(rng, (4, n), "bfloat16")
    r = make(rng, (4, n), "float32")
    w = make(rng, (n,), "float32", shift=1.0)
    y, s = fusednorm.rms_norm(x, w, residual=r, out_dtype=np.float32)
    assert y.dtype == np.float32 and s.dtype == np.float32
    expected, expected_s, _ = ref.rms_norm((x, "bfloat16"), (w, "float32"), residual=(r, "float32"))
    ref.assert_close(s, expected_s, "float32", what="s")
    ref.assert_close(y, expected, "float32")
    y16 = fusednorm.rms_norm(x, w, out_dtype="float16")
    assert y16.dtype == np.float16
    ref.assert_close(y16, ref.rms_norm((x, "bfloat16"), (w, "float32"))[0], "float16")


@pytest.mark.parametrize("dtype", ref.DTYPES)
def test_per_head_weights(rng, dtype):
    heads, d = 4, 33
    x = make(rng, (2, 3, heads, d), dtype)
    w = make(rng, (heads, d), dtype, shift=1.0)
    y = fusednorm.rms_norm(x, w)
    ref.assert_close(y, ref.rms_norm((x, dtype), (w, dtype))[0], dtype)
    b = make(rng, (heads, d), dtype)
    ref.assert_close(fusednorm.layer_norm(x, w, b), ref.layer_norm((x, dtype), (w, dtype), (b, dtype))[0], dtype)


@pytest.mark.parametrize("dtype", ref.DTYPES)
def test_strided_views_pass_without_copies(rng, dtype):
    """A column slice, every other row, and the (T, H, D) q and k views of a fused qkv tensor."""
    t, heads, d = 6, 4, 32
    qkv = make(rng, (t, 3 * heads * d), dtype)
    w = make(rng, (d,), dtype, shift=1.0)
    wide = make(rng, (8, 100), dtype)
    views = {
        "column slice": wide[:, 10:43],
        "every other row": wide[::2, :],
        "q of qkv": qkv[:, : heads * d].reshape(t, heads, d),
        "k of qkv": qkv.reshape(t, 3, heads, d)[:, 1],
        "(H, T, D) of (T, H, D)": qkv[:, : heads * d].reshape(t, heads, d).copy().transpose(1, 0, 2),
    }
    fusednorm.reset_fallback_copies()
    counters = fusednorm.memory_counters()
    copies = {}
    for name, view in views.items():
        before = fusednorm.fallback_copies()
        assert not view.flags.c_contiguous, name
        n = view.shape[-1]
        weight = w if n == d else make(rng, (n,), dtype)
        y = fusednorm.rms_norm(view, weight)
        ref.assert_close(y, ref.rms_norm((view, dtype), (weight, dtype))[0], dtype, what=name)
        dy = make(rng, view.shape, dtype)
        dx, _ = fusednorm.rms_norm_backward(dy, view, weight)
        scale = ref.gradient_scale(ref.load(dy), ref.load(view), ref.load(weight))
        ref.assert_close(dx, ref.rms_norm_backward(ref.load(dy), ref.load(view), ref.load(weight))[0], dtype,
                         scale=scale, compute=1e-5, what=name + " dx")
        copies[name] = fusednorm.fallback_copies() - before
    assert copies["column slice"] == 0 and copies["every other row"] == 0
    if counters is not None:  # the library made no allocation or copy either
        assert fusednorm.memory_counters() == counters
    if not TWO_LEVELS:
        pytest.xfail(f"copies {copies}: {NO_TWO_LEVELS}")
    assert copies["q of qkv"] == 0 and copies["k of qkv"] == 0 and copies["(H, T, D) of (T, H, D)"] == 0


def test_other_layouts_are_copied_counted_and_warned_once(rng):
    x = make(rng, (33, 8), "float32").T  # columns not contiguous
    fusednorm.reset_fallback_copies()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = fusednorm.rms_norm(x)
        fusednorm.rms_norm(x)
    ref.assert_close(y, ref.rms_norm((np.ascontiguousarray(x), "float32"))[0], "float32")
    assert fusednorm.fallback_copies() == 2
    assert len([w for w in caught if "fallback_copies" in str(w.message)]) <= 1


@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", ref.DTYPES)
def test_rms_norm_backward_matches_reference(rng, dtype, n, weighted):
    x = make(rng, (ROWS, n), dtype, scale=2.0)
    w = make(rng, (n,), dtype, shift=1.0) if weighted else None
    dy = make(rng, (ROWS, n), dtype)
    _, rstd = fusednorm.rms_norm(x, w, return_rstd=True)
    for saved in (rstd, None):
        dx, dw = fusednorm.rms_norm_backward(dy, x, w, rstd=saved)
        expected_dx, expected_dw = ref.rms_norm_backward(ref.load(dy), ref.load(x), None if w is None else ref.load(w))
        scale = ref.gradient_scale(ref.load(dy), ref.load(x), None if w is None else ref.load(w))
        ref.assert_close(dx, expected_dx, dtype, scale=scale, compute=1e-5, what="dx")
        if weighted:
            assert dw.dtype == np.float32
            ref.assert_close(dw, expected_dw, "float32", scale=np.abs(expected_dw).max() * ROWS, compute=1e-5, what="dw")
        else:
            assert dw is None


@pytest.mark.parametrize("dtype", ref.DTYPES)
def test_rms_norm_backward_residual_gradient_offset_and_per_head(rng, dtype):
    heads, d = 3, 40
    s = make(rng, (5, heads, d), dtype)
    w = make(rng, (heads, d), dtype, scale=0.1)
    dy = make(rng, s.shape, dtype)
    ds = make(rng, s.shape, dtype)
    dx, dw = fusednorm.rms_norm_backward(dy, s, w, residual_grad=ds, offset=1.0)
    expected_dx, expected_dw = ref.rms_norm_backward(ref.load(dy), ref.load(s), ref.load(w), offset=1.0,
                                                     residual_grad=ref.load(ds))
    scale = ref.gradient_scale(ref.load(dy), ref.load(s), ref.load(w), offset=1.0)
    ref.assert_close(dx, expected_dx, dtype, scale=scale, compute=1e-5, what="dx")
    assert dw.shape == (heads, d)
    ref.assert_close(dw, expected_dw, "float32", scale=np.abs(expected_dw).max() * 5, compute=1e-5, what="dw")


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", ref.DTYPES)
def test_layer_norm_matches_reference(rng, dtype, n):
    x = make(rng, (ROWS, n), dtype, scale=2.0, shift=3.0)
    w = make(rng, (n,), dtype, shift=1.0)
    b = make(rng, (n,), dtype)
    y, mean, rstd = fusednorm.layer_norm(x, w, b, eps=1e-5, return_stats=True)
    expected, _, expected_mean, expected_rstd = ref.layer_norm((x, dtype), (w, dtype), (b, dtype), 1e-5)
    ref.assert_close(y, expected, dtype)
    ref.assert_close(mean, expected_mean, "float32", scale=np.abs(ref.load(x)).max(axis=-1), what="mean")
    ref.assert_close(rstd, expected_rstd, "float32", scale=np.abs(expected_rstd), compute=1e-5, what="rstd")
    ref.assert_close(fusednorm.layer_norm(x), ref.layer_norm((x, dtype))[0], dtype, what="no weight")

    dy = make(rng, (ROWS, n), dtype)
    for saved in ((mean, rstd), (None, None)):
        dx, dw, db = fusednorm.layer_norm_backward(dy, x, w, *saved, eps=1e-5)
        expected_dx, expected_dw, expected_db = ref.layer_norm_backward(ref.load(dy), ref.load(x), ref.load(w), 1e-5)
        scale = ref.gradient_scale(ref.load(dy), ref.load(x), ref.load(w), eps=1e-5, centered=True)
        ref.assert_close(dx, expected_dx, dtype, scale=scale, compute=2e-5, what="dx")
        ref.assert_close(dw, expected_dw, "float32", scale=np.abs(expected_dw).max() * ROWS, compute=1e-5, what="dw")
        ref.assert_close(db, expected_db, "float32", scale=np.abs(ref.load(dy)).max() * ROWS, compute=1e-5, what="db")


@pytest.mark.parametrize("dtype", ref.DTYPES)
def test_layer_norm_fused_residual_and_bias_gradient_without_bias(rng, dtype):
    n = 33
    x = make(rng, (ROWS, n), dtype)
    r = make(rng, (ROWS, n), dtype)
    y, s = fusednorm.layer_norm(x, None, None, residual=r)
    expected, expected_s, _, _ = ref.layer_norm((x, dtype), residual=(r, dtype))
    assert np.array_equal(ref.load(s), expected_s)
    ref.assert_close(y, expected, dtype)
    dy = make(rng, (ROWS, n), dtype)
    ds = make(rng, (ROWS, n), dtype)
    dx, dw, db = fusednorm.layer_norm_backward(dy, s, residual_grad=ds)
    expected_dx, _, expected_db = ref.layer_norm_backward(ref.load(dy), ref.load(s), residual_grad=ref.load(ds))
    assert dw is None
    scale = ref.gradient_scale(ref.load(dy), ref.load(s), eps=1e-5, centered=True)
    ref.assert_close(dx, expected_dx, dtype, scale=scale, compute=2e-5, what="dx")
    ref.assert_close(db, expected_db, "float32", scale=np.abs(ref.load(dy)).max() * ROWS, compute=1e-5, what="db")


def test_preallocated_outputs_are_written_in_place_and_residual_stream_updated_in_place(rng):
    x = make(rng, (4, 64), "float16")
    r = make(rng, (4, 64), "float16")
    expected_y, expected_s = fusednorm.rms_norm(x, residual=r.copy())
    out = np.full(x.shape, np.nan, dtype=np.float16)  # poisoned
    stream = r.copy()
    y, s = fusednorm.rms_norm(x, residual=stream, out=out, residual_out=stream)
    assert y is out and s is stream
    assert np.array_equal(out, expected_y) and np.array_equal(stream, expected_s)


def test_nan_and_inf_stay_in_their_row(rng):
    x = make(rng, (3, 16), "float32")
    x[1, 4] = np.nan
    x[2, 0] = np.inf
    y = fusednorm.rms_norm(x)
    assert np.isnan(y[1]).all()
    assert np.isfinite(y[0]).all()
    ref.assert_close(y[0], ref.rms_norm((x[:1], "float32"))[0][0], "float32")


def test_empty_rows_give_empty_outputs():
    x = np.zeros((0, 8), dtype=np.float32)
    assert fusednorm.rms_norm(x, np.ones(8, np.float32)).shape == (0, 8)
    dx, dw = fusednorm.rms_norm_backward(x, x, np.ones(8, np.float32))
    assert dx.shape == (0, 8) and np.array_equal(dw, np.zeros(8, np.float32))


def test_ml_dtypes_bfloat16_when_installed(rng):
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes is optional; uint16 bits are tested everywhere")
    bits = make(rng, (3, 40), "bfloat16")
    x = bits.view(ml_dtypes.bfloat16)
    y = fusednorm.rms_norm(x)
    assert y.dtype == x.dtype
    assert np.array_equal(y.view(np.uint16), fusednorm.rms_norm(bits))
