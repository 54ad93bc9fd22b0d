"""What cfxl's Excel functions compute without a trained model, in torch: the model's building
blocks (DotProduct, sigmoid_range), one torch.optim step on cell values, and a small model
trained on a ratings table from a sheet. Cell values in, cell values out, as in cfxl.excel.model_functions."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from cfxl import presets
from cfxl.data.ratings import IdMap
from cfxl.engine.models import DotProduct, EmbeddingDotBias
from cfxl.engine.models import sigmoid_range as _sigmoid_range
from cfxl.excel.model_functions import blank_to_none, cell_id, grid, numbers, spill, whole_count
from cfxl.records.replay import full_batch, replay, seeded



def dot(u, m):
    """The dot product of two equal-sized ranges; two blocks of rows give one product per row,
    as the lesson's DotProduct does."""
    a, b = numbers(u, "the user factors"), numbers(m, "the movie factors")
    if a.shape != b.shape:
        if a.size != b.size:
            raise ValueError(f"the ranges differ in size: {a.shape[0]}x{a.shape[1]} and "
                             f"{b.shape[0]}x{b.shape[1]} cells")
        a, b = a.reshape(1, -1), b.reshape(1, -1)  # a row against a column
    out = DotProduct()(torch.from_numpy(a), torch.from_numpy(b))  # (rows,)
    return spill(out.numpy().reshape(-1, 1))


def sigmoid_range(x, lo, hi):
    """sigmoid(x) * (hi - lo) + lo on each cell, as the bias model squashes its output."""
    lo, hi = float(numbers(lo, "lo")[0, 0]), float(numbers(hi, "hi")[0, 0])
    return spill(_sigmoid_range(torch.from_numpy(numbers(x, "x")), lo, hi).numpy())


def _tensor(value, what: str, n: int | None = None) -> torch.Tensor:
    t = torch.from_numpy(numbers(value, what).reshape(-1))
    if n is not None and len(t) != n:
        raise ValueError(f"{what} has {len(t)} cells, the parameters {n}")
    return t


def sgd_step(param, grad, *, lr: float, momentum: float = 0.0, buf=None, dampening: float = 0.0,
             weight_decay: float = 0.0, nesterov: bool = False) -> np.ndarray:
    """One torch.optim.SGD step on each cell: (n, 1) new values, or (n, 2) with the new
    momentum_buffer when momentum is on. A blank buf is torch's first step (buf = grad)."""
    p = torch.nn.Parameter(_tensor(param, "param"))
    g = _tensor(grad, "grad", len(p))
    opt = torch.optim.SGD([p], lr=float(lr), momentum=float(momentum), dampening=float(dampening),
                          weight_decay=float(weight_decay), nesterov=bool(nesterov), foreach=False)
    if momentum and not all(blank_to_none(v) is None for v in grid(buf).flat):
        opt.state[p]["momentum_buffer"] = _tensor(buf, "buf", len(p)).clone()
    p.grad = g
    opt.step()
    cols = [p.detach()]
    if momentum:
        cols.append(opt.state[p]["momentum_buffer"])
    return torch.stack(cols, dim=1).numpy()


def adam_step(param, grad, exp_avg, exp_avg_sq, *, lr: float, betas=(0.9, 0.999),
              eps: float = 1e-8, weight_decay: float = 0.0, state_step: float = 0.0) -> np.ndarray:
    """One torch.optim.Adam step on each cell: (n, 4) new value, exp_avg, exp_avg_sq and step.
    state_step counts the steps before this one (0 for the first, with both averages at 0)."""
    p = torch.nn.Parameter(_tensor(param, "param"))
    n = len(p)
    beta1, beta2 = numbers(betas, "betas").reshape(-1) if blank_to_none(betas) is not None \
        else (0.9, 0.999)
    step = float(state_step or 0)
    if step < 0 or not step.is_integer():
        raise ValueError(f"state_step must be a whole number of steps, not {state_step!r}")
    opt = torch.optim.Adam([p], lr=float(lr), betas=(float(beta1), float(beta2)), eps=float(eps),
                           weight_decay=float(weight_decay), foreach=False)
    opt.state[p].update({"step": torch.tensor(step, dtype=torch.get_default_dtype()),
                         "exp_avg": _tensor(exp_avg, "exp_avg", n).clone(),
                         "exp_avg_sq": _tensor(exp_avg_sq, "exp_avg_sq", n).clone()})
    p.grad = _tensor(grad, "grad", n)
    opt.step()
    s = opt.state[p]
    steps = torch.full((n,), float(s["step"]), dtype=torch.float64)
    return torch.stack([p.detach(), s["exp_avg"], s["exp_avg_sq"], steps], dim=1).numpy()


def ratings_table(values) -> tuple[IdMap, IdMap, np.ndarray, np.ndarray, np.ndarray]:
    """(users, movies, user_idx, movie_idx, rating) from a ratings range: long format (user,
    movie, rating columns, a header row allowed) or a crosstab (movie ids across the first row,
    user ids down the first column, blank where not rated; the corner cell blank or a label)."""
    a = grid(values)
    if a.shape[0] < 2 or a.shape[1] < 2:
        raise ValueError("a ratings table needs at least two rows and two columns")
    corner = blank_to_none(a[0, 0])
    header = all(isinstance(v, str) for v in a[0])  # userId, movieId, rating
    if a.shape[1] in (3, 4) and (header or _is_number(corner)):
        rows = a[1:] if header else a
        users, movies, ratings = rows[:, 0], rows[:, 1], rows[:, 2]
        keep = np.array([blank_to_none(r) is not None for r in ratings])
    else:  # crosstab
        body = a[1:, 1:]
        rated = np.vectorize(lambda v: blank_to_none(v) is not None, otypes=[bool])(body)
        r, c = np.nonzero(rated)
        users, movies, ratings = a[1:, 0][r], a[0, 1:][c], body[r, c]
        keep = np.ones(len(r), dtype=bool)
    if not keep.any():
        raise ValueError("the ratings table holds no ratings")
    y = numbers(ratings[keep].tolist(), "ratings").reshape(-1)
    ids = [[cell_id(v) for v in col[keep]] for col in (users, movies)]
    if any(v is None for col in ids for v in col):
        raise ValueError("every rating needs a user id and a movie id")
    user_map, u_idx = IdMap.from_values(_id_array(ids[0]), "user")
    movie_map, m_idx = IdMap.from_values(_id_array(ids[1]), "movie")
    return user_map, movie_map, u_idx, m_idx, y


def _id_array(ids: list) -> np.ndarray:
    """Integer ids as int64 (as a ratings file gives them), any other ids as text."""
    if all(isinstance(v, int) and not isinstance(v, bool) for v in ids):
        return np.array(ids, dtype=np.int64)
    return np.array([str(v) for v in ids], dtype=object)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def train_table(values, n_factors: int = presets.FUNCTION_TRAIN["n_factors"],
                epochs: int = presets.FUNCTION_TRAIN["epochs"],
                lr: float = presets.FUNCTION_TRAIN["lr"]) -> list[list]:
    """Train the bias model (EmbeddingDotBias, float64) on a ratings range with full-batch Adam,
    one step per epoch, seeded; its factors as rows: users, then movies, then the RMSE."""
    users, movies, u_idx, m_idx, y = ratings_table(values)
    k, epochs = whole_count(n_factors, "factors", 5), whole_count(epochs, "epochs", 300)
    if not (float(lr) > 0 and math.isfinite(float(lr))):
        raise ValueError(f"lr must be a positive number, not {lr!r}")
    u, m, target = (torch.from_numpy(np.asarray(v)) for v in (u_idx.astype(np.int64),
                                                               m_idx.astype(np.int64), y))
    y_range = (float(y.min()), float(y.max()))
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state as it was
        model = seeded(lambda: EmbeddingDotBias(len(users), len(movies), k, y_range=y_range),
                       presets.SEED)
    adam = torch.optim.Adam(model.parameters(), lr=float(lr))
    replay(model, adam, full_batch(u, m, target, epochs))
    with torch.no_grad():
        rmse = float(F.mse_loss(model(u, m), target).sqrt())
        tables = [("userId", users, model.u_bias.weight, model.u_weight.weight),
                  ("movieId", movies, model.i_bias.weight, model.i_weight.weight)]
        rows = []
        for head, ids, bias, weight in tables:
            rows.append([head, "bias"] + [f"f{j + 1}" for j in range(k)])
            rows += [[ids.id_of(i), float(bias[i, 0])] + weight[i].tolist()
                     for i in range(len(ids))]
    rows.append(["rmse", rmse] + [""] * k)
    return rows
