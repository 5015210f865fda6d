"""Which layouts the C library takes as they are, and the counter of the copies made for the others.

The rule is fusednorm.h's: the last dimension is contiguous (stride 1, or size 1), and the leading
dimensions, once dimensions of size 1 are dropped and neighbours that step evenly are merged, form at most
two levels (rows within a group, groups), with no negative strides and rows that do not overlap (one level:
row_stride >= N; two: with a the smaller stride, na rows or groups at it, and b the larger, a >= N and
b >= (na - 1) * a + N). Contiguous tensors, every k-th row, column slices and the (T, H, D) q/k views of a fused qkv
tensor all pass; broadcast (stride 0) rows, transposes and three-level views do not, and are copied.
"""

from __future__ import annotations

import threading
import warnings

_lock = threading.Lock()
_copies = 0
_warned = False


# Whether the loaded library takes two-level rows (groups) on the CPU, probed once by probe_two_levels(); the
# header describes them, but a library may answer FUSEDNORM_UNSUPPORTED (then such views are copied and counted).
# CUDA is asked separately, on first use of each GPU (fusednorm._torch).
two_levels = True


def probe_two_levels(check) -> bool:
    """Asks the library (check: descriptor shape, strides -> status) whether a (T, H, D) view of a fused
    (T, 3*H*D) tensor passes as it is, and remembers the answer."""
    global two_levels
    two_levels = check((2, 2, 4), (24, 4, 1)) == 0
    return two_levels


def passes_as_is(shape, strides, grouped=None) -> bool:
    """True when the C library takes (shape, strides in elements) without a copy; `grouped`: whether two-level
    rows pass on the device at hand (default: what the library answered for the CPU)."""
    if grouped is None:
        grouped = two_levels
    if len(shape) == 0 or len(shape) > 8:
        return False
    if any(stride < 0 for stride in strides):
        return False
    columns = shape[-1]
    if columns != 1 and strides[-1] != 1:
        return False
    if any(size == 0 for size in shape):
        return True
    levels = []  # (count, stride), outermost first, merged
    for size, stride in zip(shape[:-1], strides[:-1]):
        if size == 1:
            continue
        if levels and levels[-1][1] == stride * size:
            levels[-1] = (levels[-1][0] * size, stride)
        else:
            levels.append((size, stride))
    if len(levels) > 2 or (len(levels) == 2 and not grouped):
        return False
    if not levels:
        return True
    if len(levels) == 1:
        return levels[0][1] >= columns
    # fusednorm.h: with a the smaller of the two strides (na rows or groups at it) and b the larger,
    # a >= N and b >= (na - 1) * a + N
    (na, a), (_, b) = sorted(levels, key=lambda level: level[1])
    return a >= columns and b >= (na - 1) * a + columns


def count_copy(what: str) -> None:
    """Counts one fallback copy and warns the first time in this process."""
    global _copies, _warned
    with _lock:
        _copies += 1
        first = not _warned
        _warned = True
    if first:
        warnings.warn(
            f"fusednorm: {what} has a layout the loaded library does not take as it is (e.g. transposed, "
            "broadcast, more than two levels of rows, or two levels where the library takes one); it was copied "
            "to a contiguous tensor. Later copies are counted silently: see fusednorm.fallback_copies().",
            RuntimeWarning,
            stacklevel=4,
        )


def fallback_copies() -> int:
    """How many tensors were copied because their layout could not be passed as it is."""
    return _copies


def reset_fallback_copies() -> None:
    """Sets the fallback copy counter to 0 (the once-per-process warning stays given)."""
    global _copies
    with _lock:
        _copies = 0
