"""EmbeddingDotBias's forward pass, MSE loss and backward pass for one batch as one compiled pass
on the CPU (numba): the gradient of each touched row, summed over its lookups (coalesced).

Why: through autograd a batch of the --sparse path makes about twenty passes over (batch,
n_factors) tensors (four lookups, the product, its sum, the sigmoid range, the loss, and each of
their backward ops, the sparse gradients' values, then summing their duplicates) plus a dispatch
per op; here each rating's user and movie rows are read once, and its gradient added once. The operations are
torch's, in its order (tests/test_rowsparse_fit.py proves the gradients equal autograd's):
mse_loss's backward is 2 / n * (pred - y), sigmoid's is grad * (1 - s) * s, and the product's
gradient is the other factor times the gradient of the sum.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def _first(slot, rows, r, i):  # pragma: no cover (compiled)
    """(i's place among the touched rows, whether it is new there, the new count)."""
    s = slot[i]
    if s >= 0:
        return s, False, r
    slot[i], rows[r] = r, i
    return r, True, r + 1


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _add(g_rows, g_bias, s, new, g, other, o):  # pragma: no cover (compiled)
    """Row s of a table's summed gradient gets g times the other table's row o (its factors)
    and g (its bias): set on the row's first lookup in the batch, added after."""
    if new:
        for c in range(g_rows.shape[1]):
            g_rows[s, c] = g * other[o, c]
        g_bias[s, 0] = g
    else:
        for c in range(g_rows.shape[1]):
            g_rows[s, c] += g * other[o, c]
        g_bias[s, 0] += g


@_jit
def dotbias_grads(batch, users, movies, y, u_weight, i_weight, u_bias, i_bias, lo, span, norm,
                  slot_u, slot_m, rows_u, rows_m, g_user, g_movie, g_ubias,
                  g_ibias):  # pragma: no cover (compiled)
    """The gradient of mean((sigmoid(u.m + ub + mb) * span + lo - y) ** 2) over the ratings
    at the positions `batch` (n of them) of users, movies and y (norm = 2 / n,
    the scalars in the tables' dtype) on the touched rows, coalesced: rows_u[:r_u] the users
    in the order first seen, g_user[:r_u] and g_ubias[:r_u] their gradients summed over their
    lookups in batch order; the same for the movies. slot_u, slot_m (n_rows,) are -1 on entry
    and on return. Returns (the batch's summed squared error as float64, r_u, r_m)."""
    sse, r_u, r_m = 0.0, 0, 0
    k = u_weight.shape[1]
    zero, one = u_weight.dtype.type(0), u_weight.dtype.type(1)
    n = batch.shape[0]
    bu, bm, by = np.empty(n, users.dtype), np.empty(n, movies.dtype), np.empty(n, y.dtype)
    for b in range(n):  # the batch gathered first: a tight loop keeps many reads in flight
        j = batch[b]
        bu[b], bm[b], by[b] = users[j], movies[j], y[j]
    for b in range(n):
        u, m = bu[b], bm[b]
        # eight running sums: a serial sum would wait on every add (torch's sum reorders too)
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
        c = 0
        while c + 8 <= k:
            a0 += u_weight[u, c] * i_weight[m, c]
            a1 += u_weight[u, c + 1] * i_weight[m, c + 1]
            a2 += u_weight[u, c + 2] * i_weight[m, c + 2]
            a3 += u_weight[u, c + 3] * i_weight[m, c + 3]
            a4 += u_weight[u, c + 4] * i_weight[m, c + 4]
            a5 += u_weight[u, c + 5] * i_weight[m, c + 5]
            a6 += u_weight[u, c + 6] * i_weight[m, c + 6]
            a7 += u_weight[u, c + 7] * i_weight[m, c + 7]
            c += 8
        while c < k:
            a0 += u_weight[u, c] * i_weight[m, c]
            c += 1
        dot = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
        res = dot + u_bias[u, 0] + i_bias[m, 0]
        s = one / (one + np.exp(-res))
        diff = (s * span + lo) - by[b]
        sse += float(diff) * float(diff)
        g = norm * diff * span  # d loss / d sigmoid
        g = g * (one - s) * s   # d loss / d res: through the sum to the dot and both biases
        su, new_u, r_u = _first(slot_u, rows_u, r_u, u)
        sm, new_m, r_m = _first(slot_m, rows_m, r_m, m)
        _add(g_user, g_ubias, su, new_u, g, i_weight, m)
        _add(g_movie, g_ibias, sm, new_m, g, u_weight, u)
    for s in range(r_u):
        slot_u[rows_u[s]] = -1
    for s in range(r_m):
        slot_m[rows_m[s]] = -1
    return sse, r_u, r_m


@_jit
def densify(grad, stale, rows, summed):  # pragma: no cover (compiled)
    """A whole-table gradient from the touched rows: the stale rows (the last batch's) set to
    zero, then rows set to summed; grad is zero everywhere else already."""
    for s in range(stale.shape[0]):
        for c in range(grad.shape[1]):
            grad[stale[s], c] = 0
    for s in range(rows.shape[0]):
        for c in range(grad.shape[1]):
            grad[rows[s], c] = summed[s, c]
