"""EmbeddingDotBias's forward pass, MSE loss and backward pass for one batch as one compiled pass
on the CPU (numba): the per-rating gradient rows autograd would hand a sparse optimizer.

Why: through autograd a batch of the --sparse path makes about twenty passes over (batch,
n_factors) tensors (four lookups, the product, its sum, the sigmoid range, the loss, and each of
their backward ops, then the sparse gradients' values) plus a dispatch per op; here each rating's
user and movie rows are read once, and its gradient rows written once. The operations are
torch's, in its order (tests/test_rowsparse_fit.py proves the gradients equal autograd's):
mse_loss's backward is 2 / n * (pred - y), sigmoid's is grad * (1 - s) * s, and the product's
gradient is the other factor times the gradient of the sum.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def dotbias_grads(users, movies, y, u_weight, i_weight, u_bias, i_bias, lo, span, norm,
                  g_user, g_movie, g_ubias, g_ibias):  # pragma: no cover (compiled)
    """Fill the gradient rows of the batch's lookups (g_user, g_movie (n, k); g_ubias,
    g_ibias (n, 1)) of mean((sigmoid(u.m + ub + mb) * span + lo - y) ** 2), norm = 2 / n in
    the tables' dtype; return the batch's summed squared error (float64)."""
    sse = 0.0
    one = u_weight.dtype.type(1)
    for j in range(users.shape[0]):
        u, m = users[j], movies[j]
        dot = u_weight.dtype.type(0)
        for c in range(u_weight.shape[1]):
            dot += u_weight[u, c] * i_weight[m, c]
        res = dot + u_bias[u, 0] + i_bias[m, 0]
        s = one / (one + np.exp(-res))
        diff = (s * span + lo) - y[j]
        sse += float(diff) * float(diff)
        g = norm * diff * span  # d loss / d sigmoid
        g = g * (one - s) * s   # d loss / d res: through the sum to the dot and both biases
        for c in range(u_weight.shape[1]):
            g_user[j, c] = g * i_weight[m, c]
            g_movie[j, c] = g * u_weight[u, c]
        g_ubias[j, 0] = g
        g_ibias[j, 0] = g
    return sse
