"""EmbeddingDotBias's forward pass, MSE loss and backward pass for one batch as one compiled pass
on the CPU (numba): the gradient of each touched row, summed over its lookups (coalesced); and
the forward pass alone for evaluation.

Why: through autograd a batch of the --sparse path makes about twenty passes over (batch,
n_factors) tensors (four lookups, the product, its sum, the sigmoid range, the loss, and each of
their backward ops, the sparse gradients' values, then summing their duplicates) plus a dispatch
per op; here each rating's user and movie rows are read once, and its gradient added once. The
operations are torch's, in its order, but for the dot product's sum, which is summed in SIMD
lanes as torch's is (tests/test_rowsparse_fit.py proves the gradients equal autograd's):
mse_loss's backward is 2 / n * (pred - y), sigmoid's is grad * (1 - s) * s, and the product's
gradient is the other factor times the gradient of the sum.

The rows are read at random, so waiting on memory is most of a rating's time: the rows of the
rating AHEAD are asked for (a prefetch) while one is computed.
"""

from __future__ import annotations

import numba
import numpy as np

from cfxl.engine.prefetch import fetch_row

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
AHEAD = 16  # ratings ahead whose rows are prefetched (ml-1m: 4 to 16 alike, none 17% slower)


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "nsz"})
def _dot(a, i, b, j):  # pragma: no cover (compiled)
    """Row i of a dotted with row j of b. Its own function, so that only this sum may be
    reordered (fastmath's reassoc here alone): summed in SIMD lanes, as torch's sum is too."""
    total = a.dtype.type(0)
    for c in range(a.shape[1]):
        total += a[i, c] * b[j, c]
    return total


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _sigmoid(b, users, movies, u_weight, i_weight, u_bias, i_bias):  # pragma: no cover
    """sigmoid(u.m + ub + mb) of the b-th rating of users and movies, in the tables' dtype; the
    rows of the rating AHEAD asked for meanwhile."""
    if b + AHEAD < users.shape[0]:
        fetch_row(u_weight, users[b + AHEAD])
        fetch_row(i_weight, movies[b + AHEAD])
    u, m = users[b], movies[b]
    res = _dot(u_weight, u, i_weight, m) + u_bias[u, 0] + i_bias[m, 0]
    return u_weight.dtype.type(1) / (u_weight.dtype.type(1) + np.exp(-res))


@_jit
def dotbias_grads(batch, users, movies, y, u_weight, i_weight, u_bias, i_bias, lo, span, norm,
                  slot_u, slot_m, rows_u, rows_m, g_user, g_movie, g_ubias,
                  g_ibias):  # pragma: no cover (compiled)
    """The gradient of mean((sigmoid(u.m + ub + mb) * span + lo - y) ** 2) over the ratings
    at the positions `batch` (n of them) of users, movies and y (norm = 2 / n,
    the scalars in the tables' dtype) on the touched rows, coalesced: rows_u[:r_u] the users
    in the order first seen, g_user[:r_u] and g_ubias[:r_u] their gradients summed over their
    lookups in batch order; the same for the movies. slot_u, slot_m (n_rows,) are -1 on entry
    and on return. Returns (the batch's summed squared error as float64, r_u, r_m).

    One pass: a rating's gradient is added to its rows while they are still in the L1 cache
    (a second pass over the batch reading them again ran at half the speed). The additions are
    written out for each table, not shared through a helper: numba's inlined helper ran 1.6
    times slower."""
    sse, r_u, r_m = 0.0, 0, 0
    k = u_weight.shape[1]
    zero, one = u_weight.dtype.type(0), u_weight.dtype.type(1)
    n = batch.shape[0]
    bu, bm, by = np.empty(n, users.dtype), np.empty(n, movies.dtype), np.empty(n, y.dtype)
    for b in range(n):  # the batch gathered first: a tight loop keeps many reads in flight
        j = batch[b]
        bu[b], bm[b], by[b] = users[j], movies[j], y[j]
    for b in range(n):
        s = _sigmoid(b, bu, bm, u_weight, i_weight, u_bias, i_bias)
        u, m = bu[b], bm[b]
        diff = (s * span + lo) - by[b]
        sse += float(diff) * float(diff)
        g = norm * diff * span  # d loss / d sigmoid
        g = g * (one - s) * s   # d loss / d res: through the sum to the dot and both biases
        su, sm = slot_u[u], slot_m[m]
        if su < 0:  # the user's first rating in the batch: its row starts at zero
            su, r_u = r_u, r_u + 1
            slot_u[u], rows_u[su], g_ubias[su, 0] = su, u, zero
            g_user[su, :] = zero
        if sm < 0:
            sm, r_m = r_m, r_m + 1
            slot_m[m], rows_m[sm], g_ibias[sm, 0] = sm, m, zero
            g_movie[sm, :] = zero
        for c in range(k):  # the product's gradient: the other factor times g
            g_user[su, c] += g * i_weight[m, c]
        for c in range(k):
            g_movie[sm, c] += g * u_weight[u, c]
        g_ubias[su, 0] += g
        g_ibias[sm, 0] += g
    for s in range(r_u):
        slot_u[rows_u[s]] = -1
    for s in range(r_m):
        slot_m[rows_m[s]] = -1
    return sse, r_u, r_m


@_jit
def dotbias_sse(users, movies, y, u_weight, i_weight, u_bias, i_bias, lo,
                span):  # pragma: no cover (compiled)
    """The summed squared error (float64) of sigmoid(u.m + ub + mb) * span + lo against y over
    all the ratings given: the model's forward pass in its tables' dtype, as in training, each
    rating's rows read once (through torch, four lookups and five ops each make a pass)."""
    sse = 0.0
    for b in range(users.shape[0]):
        s = _sigmoid(b, users, movies, u_weight, i_weight, u_bias, i_bias)
        diff = (s * span + lo) - y[b]  # in the dtype, as torch's
        sse += float(diff) * float(diff)
    return sse


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
