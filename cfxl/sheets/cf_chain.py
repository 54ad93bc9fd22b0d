"""The chain rule on a live cf_* sheet: which ratings each element's gradient sums, and the size
of every number the sheet computes (the operand scale cfxl.proof.verify judges a value against).

Per step, a live sheet holds the forward pass at each of the slice's ratings (x = user . movie +
user bias + movie bias, the prediction, the error, d loss/dx) beside the parameter elements. An
element's gradient is what autograd sums: over the ratings it takes part in, d loss/dx times the
other side's factor (for a bias, d loss/dx alone). Elements are in CFStepRecords.names' order
(u_weight, i_weight, u_bias, i_bias, each row-major), so a user's factors are F consecutive
elements and so are a movie's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from cfxl.errors import CfxlError
from cfxl.records.types.cf import CFStepRecords, OptSteps
from cfxl.sheets.rules import RULES


@dataclass(frozen=True, eq=False)
class Chain:
    """The slice's training ratings in long order and the elements each one reads."""

    n_users: int
    n_movies: int
    n_factors: int
    users: np.ndarray     # (n,) user row of each rating, row-major
    movies: np.ndarray    # (n,) movie column of each rating
    y: np.ndarray         # (n,) the ratings
    y_range: tuple[float, float]

    def u_weight(self, u: int, f: int = 0) -> int:
        return u * self.n_factors + f

    def i_weight(self, m: int, f: int = 0) -> int:
        return (self.n_users + m) * self.n_factors + f

    def u_bias(self, u: int) -> int:
        return (self.n_users + self.n_movies) * self.n_factors + u

    def i_bias(self, m: int) -> int:
        return self.u_bias(self.n_users) + m

    @property
    def n_elements(self) -> int:
        return self.i_bias(self.n_movies)

    @cached_property
    def terms(self) -> list[list[tuple[int, int | None]]]:
        """Per element, (rating, the element its d loss/dx is multiplied by; None for a bias) for
        every rating the element takes part in, in long order."""
        out = [[] for _ in range(self.n_elements)]
        for r, (u, m) in enumerate(zip(self.users.tolist(), self.movies.tolist())):
            for f in range(self.n_factors):
                out[self.u_weight(u, f)].append((r, self.i_weight(m, f)))
                out[self.i_weight(m, f)].append((r, self.u_weight(u, f)))
            out[self.u_bias(u)].append((r, None))
            out[self.i_bias(m)].append((r, None))
        return out

    @cached_property
    def user_ratings(self) -> list[range]:
        """Each user's ratings: consecutive in row-major long order."""
        first = np.searchsorted(self.users, np.arange(self.n_users + 1))
        return [range(first[u], first[u + 1]) for u in range(self.n_users)]


def chain_of(rec: CFStepRecords) -> Chain:
    """A live record's chain: the slice model's elements, every one, in names' order, and the
    training ratings (Slice.train: the held-out ones are not in the loss)."""
    s = rec.gradients.slice
    (U, M), F = s.shape, rec.n_factors
    if not rec.live or len(rec.names) != (U + M) * (F + 1):
        raise CfxlError("only a full-batch run of the slice model has its gradients as formulas")
    train = ~s.long_valid
    return Chain(U, M, F, s.rows[train], s.cols[train], s.long_ratings[train], s.y_range)


def scales(chain: Chain, run: OptSteps) -> dict[str, np.ndarray]:
    """The size of the operands of each number a live sheet computes, from torch's run: (steps,
    n_ratings) for x, prediction, error and d loss/dx; (steps,) for the MSE; (steps, n_elements)
    for grad, grad_used, each state and the new value. A value that cancels (an error near 0, a
    gradient whose terms nearly sum to 0, a parameter passing 0) is judged against these."""
    lo, hi = chain.y_range
    F, v, h = chain.n_factors, np.abs(run.value), run.hyper  # v: (steps, n_elements)
    fs = np.arange(F)
    users = chain.u_weight(chain.users[:, None], fs)    # (n, F)
    movies = chain.i_weight(chain.movies[:, None], fs)  # (n, F)
    x = ((v[:, users] * v[:, movies]).sum(-1) + v[:, chain.u_bias(chain.users)]
         + v[:, chain.i_bias(chain.movies)])            # (steps, n)
    pred = np.abs(run.pred) + (hi - lo) / 4 * x          # the sigmoid's slope is at most 1/4
    err = np.abs(chain.y) + pred
    # d loss/dx = 2/n (pred - y) (pred - lo)(hi - pred)/(hi - lo): the slope's factors cancel too
    dx = 2 / len(chain.y) * err * (abs(lo) + abs(hi)) ** 2 / abs(hi - lo)
    rows, owners, others = zip(*((r, e, -1 if o is None else o)
                                 for e, terms in enumerate(chain.terms) for r, o in terms))
    others = np.array(others)
    part = dx[:, rows] * np.where(others >= 0, v[:, others], 1.0)  # (steps, terms)
    grad = np.zeros_like(v)
    np.add.at(grad.T, np.array(owners), part.T)
    out = {"x": x, "prediction": pred, "error": err, "d loss/dx": dx, "grad": grad,
           "grad_used": grad + (not RULES[run.opt].decoupled) * abs(h["weight_decay"]) * v,
           "MSE": 2 * np.mean(np.abs(run.pred - chain.y) * err, axis=1)}
    decay = {"momentum_buffer": h.get("momentum", 0), "exp_avg": h.get("betas", (0, 0))[0]}
    for name in run.state:
        size, now = 0.0, []
        for g in out["grad_used"]:
            if name == "exp_avg_sq":  # a sum of squares: its terms' rounding, squared
                size = h["betas"][1] * size + (1 - h["betas"][1]) * g * g
            elif name in decay:
                size = decay[name] * size + g
            now.append(size)
        if name != "step":
            out[name] = np.array(now)
    # a parameter is its start minus every update so far: the largest it has been, plus its step
    been = np.maximum.accumulate(np.maximum(v, np.abs(run.value_after)), axis=0)
    out["new value"] = been + np.abs(run.value_after - run.value)
    return out
