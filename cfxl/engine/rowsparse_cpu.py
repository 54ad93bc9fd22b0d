"""The row-sparse Adam and SGD steps as single-pass CPU loops compiled by numba (optional).

Why: with torch's ops a step makes a dozen passes over the touched rows (sum the duplicates,
gather the parameter and each state, the rule's elementwise ops, scatter each back), each one a
kernel launch and a trip through memory. Here one loop sums each touched row's gradient
(coalesce; cfxl.engine.dotbias_cpu sums them as it computes them), and a second reads the row's
parameter and state once, applies the rule (the same operations as
cfxl.engine.rowsparse, in torch's single-tensor order) and writes them back once, the rows
AHEAD asked for meanwhile (cfxl.engine.prefetch). Arrays are numpy views of the tensors: the
update lands in the tensors' memory.
"""

from __future__ import annotations

import numba
import numpy as np

from cfxl.engine.prefetch import fetch_row


# error_model "numpy": a division by zero gives inf, as in torch, rather than raising; without
# the check the inner loops vectorise. No fastmath: the operations stay in torch's order.
_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
AHEAD = 16  # rows ahead whose parameter and state are prefetched (ml-25m: 3x; ml-1m: alike)


@_jit
def coalesce(idx, values, slot):  # pragma: no cover (compiled)
    """(rows (r,), summed (r, k)): the gradient rows of equal indices summed in batch order,
    each row once, in the order first seen. slot (n_rows,) is -1 everywhere on entry and on
    return (the table's scratch, kept by the optimizer)."""
    rows = np.empty(idx.shape[0], np.int64)  # (nnz,) of which [:r] used
    summed = np.empty((idx.shape[0], values.shape[1]), values.dtype)  # (nnz, k)
    r = 0
    for j in range(idx.shape[0]):
        i = idx[j]
        s = slot[i]
        if s < 0:
            s = r
            slot[i], rows[s] = s, i
            r += 1
            for c in range(values.shape[1]):
                summed[s, c] = values[j, c]
        else:
            for c in range(values.shape[1]):
                summed[s, c] += values[j, c]
    for s in range(r):
        slot[rows[s]] = -1
    return rows[:r], summed[:r]


@_jit
def adam(rows, summed, w, exp_avg, exp_avg_sq, shrink, l2, one_minus_beta1, beta2,
         one_minus_beta2, eps, step_size, bias_correction2_sqrt):  # pragma: no cover (compiled)
    """Lazy Adam on the touched rows (each once) with their summed gradients. The scalars come
    in the table's dtype, computed as torch computes them: shrink is AdamW's
    1 - lr * weight_decay (else 1), l2 Adam's weight_decay (else 0)."""
    for s in range(rows.shape[0]):
        if s + AHEAD < rows.shape[0]:
            fetch_row(w, rows[s + AHEAD])
            fetch_row(exp_avg, rows[s + AHEAD])
            fetch_row(exp_avg_sq, rows[s + AHEAD])
        i = rows[s]
        for c in range(w.shape[1]):
            p = w[i, c] * shrink
            g = summed[s, c] + l2 * p
            m = exp_avg[i, c]
            m = m + one_minus_beta1 * (g - m)  # torch's lerp_ for a weight below 0.5
            v = exp_avg_sq[i, c] * beta2 + one_minus_beta2 * g * g  # torch's addcmul_
            exp_avg[i, c], exp_avg_sq[i, c] = m, v
            w[i, c] = p + -step_size * m / (np.sqrt(v) / bias_correction2_sqrt + eps)  # addcdiv_


@_jit
def sgd(rows, summed, w, momentum_buffer, lr, momentum, l2):  # pragma: no cover (compiled)
    """Lazy SGD on the touched rows with their summed gradients; momentum_buffer (n_rows, k)
    used when momentum > 0."""
    for s in range(rows.shape[0]):
        if s + AHEAD < rows.shape[0]:
            fetch_row(w, rows[s + AHEAD])
            if momentum != 0:
                fetch_row(momentum_buffer, rows[s + AHEAD])
        i = rows[s]
        if momentum != 0:
            for c in range(w.shape[1]):
                g = momentum_buffer[i, c] * momentum + (summed[s, c] + l2 * w[i, c])
                momentum_buffer[i, c] = g
                w[i, c] = w[i, c] - lr * g
        else:
            for c in range(w.shape[1]):
                w[i, c] = w[i, c] - lr * (summed[s, c] + l2 * w[i, c])
