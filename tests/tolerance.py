"""Float comparisons whose tolerance comes from the size of the operands, never a constant.

Another CPU may round a float32 training run or a fused multiply-add differently, and a value
that is a small difference of large numbers (pred - y near convergence, a parameter passing
zero) keeps only the digits its operands leave it. So a comparison states the size of what the
value was computed from (`scale`, as cfxl.proof.verify's `_torch` sheet does) and is judged at
1e-12 relative to the larger of the value and that size.
"""

from __future__ import annotations

import numpy as np

RTOL = 1e-12     # what verify asks of every workbook cell
ROUND_TRIP = 2e-15  # relative change of a float64 written with 16 significant digits and read back


def assert_close(got, want, *, scale=0.0, rtol: float = RTOL, err_msg: str = "") -> None:
    """|got - want| <= rtol * max(|want|, scale), element by element.

    scale: the size of the operands the value is computed from (an array broadcast against
    want, or a number); 0 judges each value against its own size only.
    """
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{err_msg} shapes differ: {got.shape} and {want.shape}"
    bound = rtol * np.maximum(np.abs(want), np.abs(np.asarray(scale, dtype=np.float64)))
    off = np.abs(got - want) > bound
    if off.any():
        i = np.flatnonzero(off.ravel())[0]
        raise AssertionError(
            f"{err_msg} {off.sum()} of {off.size} values off: first at flat index {i}: "
            f"{got.ravel()[i]!r} vs {want.ravel()[i]!r}, allowed {np.broadcast_to(bound, off.shape).ravel()[i]:.3g}")


def running_size(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """The largest |value| so far along axis: the size a running sum or a trajectory carries
    (a parameter that passes near zero keeps the rounding of everything it has been)."""
    return np.maximum.accumulate(np.abs(np.asarray(values, dtype=np.float64)), axis=axis)
