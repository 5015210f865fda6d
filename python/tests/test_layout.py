"""Which (shape, strides) pass to the C library as they are: the rule of fusednorm.h, in Python."""

import pytest

import numpy as np

from fusednorm import _layout
from fusednorm import _library as C
from fusednorm._layout import passes_as_is

N = 8


@pytest.mark.parametrize(
    "shape, strides, passes",
    [
        ((4, N), (N, 1), True),  # contiguous
        ((N,), (1,), True),  # one row
        ((4, N), (3 * N, 1), True),  # every third row
        ((4, 5), (N, 1), True),  # a column slice of a wider tensor
        ((6, 4, 32), (3 * 4 * 32, 32, 1), True),  # q of a fused (T, 3*H*D) qkv: two levels
        ((2, 3, 4, 32), (3 * 3 * 128, 3 * 128, 32, 1), True),  # (B, L, H, D) view: B and L merge
        ((2, 3, 4, 32), (1000, 3 * 128, 32, 1), False),  # three levels
        ((4, N), (1, 4), False),  # transposed
        ((4, N), (0, 1), False),  # broadcast rows overlap
        ((4, N), (N - 1, 1), False),  # rows overlap
        ((4, 2, N), (N, N, 1), False),  # groups overlap their rows
        ((4, N), (-N, 1), False),  # negative stride
        ((1, 4, 1, N), (999, N, 5, 1), True),  # dimensions of size 1 have any stride
        ((4, 1), (1, 7), True),  # N = 1: its stride does not matter
        ((0, N), (N, 1), True),  # no rows
        ((4, 6, 32), (32, 4 * 32, 1), True),  # groups inside rows: (H, T, D) of a (T, H, D) tensor
        ((4, 6, 32), (32, 3 * 32, 1), False),  # ... where the rows would overlap the groups
        ((2, 4, N), (4 * N + 3, N, 1), True),  # groups one odd stride apart, just past the last row
        ((), (), False),
    ],
)
def test_layouts(shape, strides, passes, monkeypatch):
    """The header's rule, with two-level rows taken (as fusednorm.h describes them)."""
    monkeypatch.setattr(_layout, "two_levels", True)
    assert passes_as_is(shape, strides) is passes


def test_two_levels_follow_what_the_library_answers(monkeypatch):
    """The probe's answer is the library's, and without two levels such views are copied (not refused)."""
    buffer = np.zeros(64, np.float32)
    status = C.library.fusednorm_tensor_check(C.describe(buffer.ctypes.data, C.DEVICE_CPU, 0, C.FLOAT32, (2, 2, 4),
                                                         (24, 4, 1)))
    assert _layout.two_levels is (status == C.SUCCESS)
    monkeypatch.setattr(_layout, "two_levels", False)
    assert not passes_as_is((6, 4, 32), (384, 32, 1))
    assert passes_as_is((6, 128), (384, 1))
