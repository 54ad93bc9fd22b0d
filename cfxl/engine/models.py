"""The lesson's collaborative-filtering models, with fastai's parameter names.

Every model that takes ids has `forward(users, movies)` over index tensors of shape (batch,)
and returns predictions of shape (batch,). Parameter names are one vocabulary end to end:
`u_weight`, `i_weight` (user and movie factors), `u_bias`, `i_bias`, and `lin1`, `lin2` for
the net; `param_names` gives the short name used in traces and workbooks.
"""

from __future__ import annotations

import torch
from torch import nn

MODELS = ("dot", "dotbias", "net")


class DotProduct(nn.Module):
    """The lesson's first model: the row-wise dot product of two factor matrices."""

    def forward(self, u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return (u * m).sum(1)  # (batch, n_factors) -> (batch,)


def _embedding(n: int, n_factors: int, lo: float, hi: float, sparse: bool) -> nn.Embedding:
    e = nn.Embedding(n, n_factors, sparse=sparse)
    e.weight.data.uniform_(lo, hi)
    return e


def sigmoid_range(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Squash `x` into (lo, hi), as the lesson's bias model and net do."""
    return torch.sigmoid(x) * (hi - lo) + lo


class EmbeddingDot(nn.Module):
    """Dot product of user and movie factors, initialised uniform(0, 0.05) as in the lesson."""

    def __init__(self, n_users: int, n_movies: int, n_factors: int = 50, *, sparse: bool = False):
        super().__init__()
        self.u_weight = _embedding(n_users, n_factors, 0.0, 0.05, sparse)
        self.i_weight = _embedding(n_movies, n_factors, 0.0, 0.05, sparse)

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        u, m = self.u_weight(users), self.i_weight(movies)  # (batch, n_factors) each
        return (u * m).sum(1)  # (batch,)


class EmbeddingDotBias(nn.Module):
    """Dot product plus user and movie biases, through a sigmoid scaled to the rating range."""

    def __init__(self, n_users: int, n_movies: int, n_factors: int = 50, *,
                 y_range: tuple[float, float] = (0.5, 5.0), sparse: bool = False):
        super().__init__()
        self.y_range = (float(y_range[0]), float(y_range[1]))
        self.u_weight = _embedding(n_users, n_factors, -0.01, 0.01, sparse)
        self.i_weight = _embedding(n_movies, n_factors, -0.01, 0.01, sparse)
        self.u_bias = _embedding(n_users, 1, -0.01, 0.01, sparse)
        self.i_bias = _embedding(n_movies, 1, -0.01, 0.01, sparse)

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        dot = (self.u_weight(users) * self.i_weight(movies)).sum(1)  # (batch,)
        res = dot + self.u_bias(users).squeeze(1) + self.i_bias(movies).squeeze(1)  # (batch,)
        return sigmoid_range(res, *self.y_range)


class EmbeddingNet(nn.Module):
    """The lesson's mini net: concatenated embeddings, one hidden ReLU layer, sigmoid output.

    The output range is widened by half a star each side, (min - 0.5, max + 0.5), as in the lesson,
    so the extreme ratings are reachable without saturating the sigmoid.
    """

    def __init__(self, n_users: int, n_movies: int, n_factors: int = 50, *, nh: int = 10,
                 p1: float = 0.05, p2: float = 0.5, y_range: tuple[float, float] = (0.5, 5.0),
                 sparse: bool = False):
        super().__init__()
        self.y_range = (float(y_range[0]) - 0.5, float(y_range[1]) + 0.5)
        self.u_weight = _embedding(n_users, n_factors, -0.01, 0.01, sparse)
        self.i_weight = _embedding(n_movies, n_factors, -0.01, 0.01, sparse)
        self.lin1 = nn.Linear(2 * n_factors, nh)
        self.lin2 = nn.Linear(nh, 1)
        self.drop1 = nn.Dropout(p1)
        self.drop2 = nn.Dropout(p2)

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.u_weight(users), self.i_weight(movies)], dim=1)  # (batch, 2*n_factors)
        x = self.drop2(torch.relu(self.lin1(self.drop1(x))))  # (batch, nh)
        return sigmoid_range(self.lin2(x).squeeze(1), *self.y_range)  # (batch,)


def make_model(kind: str, n_users: int, n_movies: int, n_factors: int, *,
               y_range: tuple[float, float], nh: int = 10, p1: float = 0.05, p2: float = 0.5,
               sparse: bool = False) -> nn.Module:
    """Build one of `MODELS` by name; initialisation draws from torch's global generator."""
    if kind == "dot":
        return EmbeddingDot(n_users, n_movies, n_factors, sparse=sparse)
    if kind == "dotbias":
        return EmbeddingDotBias(n_users, n_movies, n_factors, y_range=y_range, sparse=sparse)
    if kind == "net":
        return EmbeddingNet(n_users, n_movies, n_factors, nh=nh, p1=p1, p2=p2, y_range=y_range,
                            sparse=sparse)
    raise ValueError(f"unknown model {kind!r}; choose one of {', '.join(MODELS)}")


def param_names(model: nn.Module) -> dict[str, nn.Parameter]:
    """Parameters by their short name: `u_weight` for `u_weight.weight`, `lin1.weight` as is."""
    out = {}
    for name, p in model.named_parameters():
        module, _, leaf = name.rpartition(".")
        is_embedding = isinstance(model.get_submodule(module), nn.Embedding)
        out[module if is_embedding else name] = p
    return out
