"""What cfxl's Excel functions compute with a trained model, in torch: the model loaded once per
version of its file, predictions, recommendations and neighbours (cfxl.excel.functions: the functions
that need no model).

Cell values in, cell values out (numbers, text, 2-D lists for a spilled range), so cfxl.excel.udfs only
converts arguments and calls these. A range arrives as a 2-D list, a single cell as a scalar;
`excel_errors` turns any exception into an error value with its message, never a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from pathlib import Path

import numpy as np
import torch

from cfxl.engine import checkpoint
from cfxl.engine import recommend as library
from cfxl.data.ratings import IdMap, Ratings, read_ratings
from cfxl.errors import CfxlError, UnknownIdError
from cfxl.engine.train import Trained

MODEL_ENV = "CFXL_MODEL"  # the model file when a formula names none
_lock = threading.Lock()  # the COM server may call functions from several threads
_models: dict[Path, tuple[tuple[int, int], Trained]] = {}
_ratings: dict[Path, tuple[tuple[int, int], Ratings]] = {}


def error_value(exc: BaseException) -> str:
    """An exception as an Excel error's text: '#N/A why' for an unknown id, else '#VALUE! why'."""
    if isinstance(exc, UnknownIdError):
        return f"#N/A {exc}"
    if isinstance(exc, (CfxlError, ValueError, TypeError, KeyError)):
        return f"#VALUE! {exc}"
    return f"#VALUE! {type(exc).__name__}: {exc}"


def excel_errors(f):
    """Return error_value(exception) instead of raising: a cell shows why, not a traceback."""
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except Exception as e:  # everything: an Excel cell must never get a traceback
            return error_value(e)
    return wrapper


def model_file(model=None) -> Path:
    """The model file a formula names, else $CFXL_MODEL. A relative name is looked for in the
    working folder, then in the folders on sys.path (xlwings puts the workbook's folder there)."""
    name = blank_to_none(model) or os.environ.get(MODEL_ENV)
    if not name:
        raise CfxlError(f"no model file: give it as the last argument (the macro workbook names "
                        f"its config cell cfxl_model) or set {MODEL_ENV}")
    path = Path(str(name)).expanduser()
    if path.is_absolute() or path.exists():
        return path
    for folder in sys.path:
        if folder and (Path(folder) / path).is_file():
            return Path(folder) / path
    raise CfxlError(f"{path}: no such model file here or next to the workbook")


def _version(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def load_model(model=None) -> Trained:
    """The trained model in a file, loaded once and again only when the file changes."""
    path = model_file(model).resolve()
    try:
        version = _version(path)
    except FileNotFoundError:
        raise CfxlError(f"{path}: no such model file") from None
    with _lock:
        hit = _models.get(path)
        if hit is None or hit[0] != version:
            _models[path] = (version, checkpoint.load(path))
        return _models[path][1]


def training_ratings(trained: Trained) -> Ratings:
    """The ratings file the model was trained on, read once per version of it: the library's
    recommendations leave out what a user rated and break ties by how often a movie was rated."""
    path = Path(trained.source)
    try:
        version = _version(path)
    except OSError:
        raise CfxlError(f"the ratings file the model was trained on, {path}, is gone: the "
                        "users' ratings and the movies' counts come from it") from None
    with _lock:
        hit = _ratings.get(path)
        if hit is None or hit[0] != version:
            _ratings[path] = (version, read_ratings(path))
        return _ratings[path][1]


def blank_to_none(v):
    """None for an empty cell (None, or text of spaces only), else the value."""
    return None if v is None or (isinstance(v, str) and not v.strip()) else v


def cell_id(v):
    """A cell's id as the model's maps hold it: Excel's 1.0 is the integer 1."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v.strip() if isinstance(v, str) else v


def grid(value) -> np.ndarray:
    """A cell (scalar) or a range (list, 2-D list, array) as a 2-D object array."""
    a = np.array(value, dtype=object)
    if a.ndim > 2:
        raise ValueError(f"expected a cell or a range, got {a.ndim} dimensions")
    return a.reshape((1,) * (2 - a.ndim) + a.shape)


def numbers(value, what: str) -> np.ndarray:
    """A cell or range of numbers as a 2-D float64 array; a blank or text cell is an error."""
    a = grid(value)
    try:
        if any(blank_to_none(v) is None or isinstance(v, (str, bool)) for v in a.flat):
            raise TypeError
        return a.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numbers, with no blank or text cells") from None


def whole_count(n, what: str = "n", default: int = 10) -> int:
    """A count from a cell (Excel's numbers are floats): a whole number of at least 1."""
    n = default if blank_to_none(n) is None else n
    if isinstance(n, (bool, str)) or float(n) != int(n) or int(n) < 1:
        raise ValueError(f"{what} must be a whole number of at least 1, not {n!r}")
    return int(n)


def spill(a: np.ndarray):
    """A 1x1 result as a scalar, else a 2-D list to spill."""
    return a.flat[0] if a.size == 1 else a.tolist()


@torch.no_grad()
def _scores(trained: Trained, u_idx: np.ndarray, m_idx: np.ndarray) -> np.ndarray:
    p = next(trained.model.parameters())
    trained.model.eval()
    return trained.model(torch.as_tensor(u_idx, device=p.device),
                         torch.as_tensor(m_idx, device=p.device)).double().cpu().numpy()


def _lookup(ids: IdMap, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices, messages) for a grid of id cells: index -1 where blank or unknown, with the
    cell's text ('' for a blank, '#N/A why' for an unknown id)."""
    idx = np.full(cells.shape, -1, dtype=np.int64)
    text = np.full(cells.shape, "", dtype=object)
    found: dict = {}
    for pos, v in np.ndenumerate(cells):
        v = cell_id(blank_to_none(v))
        if v is None:
            continue
        if v not in found:
            try:
                found[v] = ids.index(v)
            except UnknownIdError as e:
                found[v] = error_value(e)
        idx[pos], text[pos] = (found[v], "") if isinstance(found[v], int) else (-1, found[v])
    return idx, text


def predict(trained: Trained, user_ids, movie_ids):
    """The predicted rating for each (user, movie) pair: the two ranges broadcast as numpy does
    (a column of users against a row of movies gives the crosstab). Blank ids give '', unknown
    ids '#N/A why', cell by cell."""
    users, movies = np.broadcast_arrays(grid(user_ids), grid(movie_ids))
    u, u_text = _lookup(trained.users, users)
    m, m_text = _lookup(trained.movies, movies)
    out = np.where(u_text != "", u_text, m_text).astype(object)
    ok = (u >= 0) & (m >= 0)
    if ok.any():
        out[ok] = _scores(trained, u[ok], m[ok])
    return spill(out)


def _rows(table, value: str) -> list[list]:
    """A library table as the cells a function spills: a header, then movieId, title, value."""
    cols = ["movieId", "title", value]
    return [cols, *([int(m) if isinstance(m, np.integer) else m, t, float(v)]
                    for m, t, v in table[cols].itertuples(index=False))]


def recommend(trained: Trained, user_id, n: int = 10, exclude_seen: bool = True) -> list[list]:
    """The user's n highest predicted movies, best first (cfxl.engine.recommend's ranking):
    movieId, title, predicted."""
    table = library.recommend(trained, cell_id(blank_to_none(user_id)), n=whole_count(n),
                              include_rated=not exclude_seen, ratings=training_ratings(trained))
    return _rows(table, "predicted")


def similar(trained: Trained, movie_id, n: int = 10) -> list[list]:
    """The n movies whose factors point most nearly the same way (cosine similarity), among
    all the model knows."""
    table = library.similar(trained, cell_id(blank_to_none(movie_id)), n=whole_count(n),
                            min_ratings=0, ratings=training_ratings(trained))
    return _rows(table, "similarity")
