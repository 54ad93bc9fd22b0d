"""The whole trained model as plain tables (numpy / pandas / dicts): the meeting point of torch and the workbook.

`model_tables` is the only place that reads a model's parameters for the value sheets; it
also runs the analysis (cfxl.records.analysis), so the workbook layer (cfxl.sheets.model_sheets)
gets everything it shows as plain records.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import cfxl
from cfxl.data.ratings import Ratings, split
from cfxl.data.sample import RATINGS_CSV
from cfxl.engine.models import param_names
from cfxl.engine.train import Config, Trained
from cfxl.records.analysis import bias_rank, pca
from cfxl.records.types.tables import ModelTables

CSV_CHUNK = 1 << 18  # rows per piece of a CSV table written
PREDICT_CHUNK = 1 << 18  # ratings per forward pass: bounded memory on ml-25m's 5M validation ratings
# no wall-clock seconds: the same run must give the same workbook, cell by cell
EPOCH_COLUMNS = ("epoch", "train_loss", "val_loss", "val_rmse", "lr")


def model_tables(trained: Trained, ratings: Ratings, *, date: str | None = None) -> ModelTables:
    """Tables of `trained`'s parameters and of its predictions for the validation ratings.

    `ratings` must be the data the model was trained on (its split is recomputed from the
    config's val_pct and seed); its ids are looked up in the model's maps, so a file whose ids
    the model never saw is an UnknownIdError. `date` (ISO text) defaults to now, in UTC.
    """
    params = {k: v.detach().cpu().numpy() for k, v in param_names(trained.model).items()}
    u_idx = trained.users.index(ratings.users.ids)[ratings.user_idx]  # (n,) model indices
    m_idx = trained.movies.index(ratings.movies.ids)[ratings.movie_idx]  # (n,)
    users = _embedding_table("userId", trained.users.ids, np.bincount(u_idx, minlength=len(trained.users)),
                             params.get("u_bias"), params["u_weight"])
    movies = _embedding_table("movieId", trained.movies.ids, np.bincount(m_idx, minlength=len(trained.movies)),
                              params.get("i_bias"), params["i_weight"])
    title, genres = _titles(trained.titles if trained.titles is not None else ratings.titles,
                            trained.movies.ids)
    movies.insert(2, "title", title)
    movies.insert(3, "genres", genres)

    _, val = split(len(ratings), trained.config.val_pct, trained.config.seed)
    predicted = predict_indices(trained, u_idx[val], m_idx[val])
    actual = ratings.rating[val].astype(np.float64)
    predictions = pd.DataFrame({
        "userId": trained.users.ids[u_idx[val]], "movieId": trained.movies.ids[m_idx[val]],
        "title": title[m_idx[val]], "actual": actual, "predicted": predicted,
        "error": predicted - actual})

    epochs = pd.DataFrame([{k: h.get(k, math.nan) for k in EPOCH_COLUMNS} for h in trained.history],
                          columns=list(EPOCH_COLUMNS))
    epochs["epoch"] = epochs["epoch"].astype(np.int64)
    config = _config(trained, ratings, len(val), date)
    ranked = bias_rank(movies) if "bias" in movies.columns else None
    unused, notes = setting_notes(trained.config)
    return ModelTables(users, movies, predictions, epochs, config, ranked, pca(movies),
                       rating_range=ratings.rating_range, model_label=model_label(trained),
                       unused=unused, notes=notes)


def write_csv(table: pd.DataFrame, path) -> None:
    """A table as a CSV file a spreadsheet may open: csv_safe, and every text cell in double
    quotes (a title holding a carriage return stays one cell), as OWASP recommends. Written
    CSV_CHUNK rows at a time, so the safe copy of a big table is never whole in memory."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        for lo in range(0, max(len(table), 1), CSV_CHUNK):
            csv_safe(table.iloc[lo:lo + CSV_CHUNK]).to_csv(f, index=False, header=lo == 0,
                                                            quoting=csv.QUOTE_NONNUMERIC)


def csv_safe(table: pd.DataFrame) -> pd.DataFrame:
    """The table for a CSV file a spreadsheet may open: text cells that begin with =, +, -, @, a
    tab or a carriage return (which Excel would run as a formula) get a leading ', as OWASP
    recommends for CSV injection. Only text columns: a bias of -0.3 stays a number."""
    out = table.copy()
    for name in out.columns:
        if not pd.api.types.is_numeric_dtype(out[name]):
            text = out[name].astype(str)
            out[name] = text.where(~text.str.match(r"[=+\-@\t\r]"), "'" + text)
    return out


@torch.no_grad()
def predict_indices(trained: Trained, u_idx: np.ndarray, m_idx: np.ndarray) -> np.ndarray:
    """The model's predictions in eval mode (dropout off) for model indices, as float64."""
    model = trained.model
    device = next(model.parameters()).device
    model.eval()
    out = np.empty(len(u_idx), dtype=np.float64)
    for i in range(0, len(u_idx), PREDICT_CHUNK):
        u = torch.as_tensor(u_idx[i:i + PREDICT_CHUNK], dtype=torch.int64, device=device)  # (chunk,)
        m = torch.as_tensor(m_idx[i:i + PREDICT_CHUNK], dtype=torch.int64, device=device)  # (chunk,)
        out[i:i + len(u)] = model(u, m).cpu().numpy()
    return out


def _embedding_table(id_name: str, ids: np.ndarray, counts: np.ndarray, bias, weight) -> pd.DataFrame:
    """One row per index: raw id, index, number of ratings, bias (when the model has one), factors."""
    cols = {id_name: ids, "index": np.arange(len(ids), dtype=np.int64), "n_ratings": counts.astype(np.int64)}
    if bias is not None:
        cols["bias"] = bias[:, 0]  # (n, 1) -> (n,)
    table = pd.DataFrame(cols)
    # f1..fk: factors count from 1, as on the lesson's sheets
    factors = pd.DataFrame(weight, columns=[f"f{j + 1}" for j in range(weight.shape[1])])  # (n, k)
    return pd.concat([table, factors], axis=1)


def _titles(titles: pd.DataFrame | None, movie_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Title and genres of each movie id (object arrays); 'movie <id>' and '' where unknown."""
    fallback = np.array([f"movie {i}" for i in movie_ids], dtype=object)
    if titles is None:
        return fallback, np.full(len(movie_ids), "", dtype=object)
    found = titles.reindex(pd.Index(movie_ids))
    title = found["title"].to_numpy(dtype=object)
    missing = found["title"].isna().to_numpy()
    title[missing] = fallback[missing]
    genres = found["genres"].fillna("").astype(str).to_numpy(dtype=object) if "genres" in found \
        else np.full(len(movie_ids), "", dtype=object)
    return title.astype(str).astype(object), genres


def _now() -> str:
    """UTC now, or SOURCE_DATE_EPOCH when set (the reproducible-builds convention), so the demo
    workbooks committed in workbooks/ can be regenerated identically."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch else \
        dt.datetime.now(dt.timezone.utc)
    return when.isoformat(timespec="seconds")


def _data_label(path: str) -> str:
    """The data file as the reader should see it: the embedded sample by name, not by the
    folder it happens to be installed in."""
    if Path(path).resolve() == RATINGS_CSV.resolve():
        return "cfxl/data/sample/ratings.csv (the embedded synthetic sample)"
    return str(path)


def _config(trained: Trained, ratings: Ratings, n_val: int, date: str | None) -> dict:
    """Every setting of the run, then where the data came from, the software, and the counts."""
    out = {k: ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v
           for k, v in trained.config.to_dict().items()}
    final = trained.kept  # the epoch whose weights the model holds (keep_best: not the last)
    out.update({
        "data_file": _data_label(trained.source or str(ratings.source)),
        "sha256": trained.sha256,
        "cfxl_version": cfxl.__version__,
        "torch_version": str(torch.__version__),
        "trained_on": trained.device,
        "date": date or _now(),
        "y_range": ", ".join(f"{v:g}" for v in trained.y_range),
        "n_ratings": len(ratings),
        "n_train": len(ratings) - n_val,
        "n_val": n_val,
        "n_users": len(trained.users),
        "n_movies": len(trained.movies),
        "n_parameters": sum(p.numel() for p in trained.model.parameters()),
        "epochs_trained": len(trained.history),
        "final_train_loss": final.get("train_loss", math.nan),
        "final_val_loss": final.get("val_loss", math.nan),
        "final_val_rmse": final.get("val_rmse", math.nan),
    })
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in out.items()}


def model_label(trained: Trained) -> str:
    """Which model and run a sheet shows, in a line: 'EmbeddingDotBias, 50 factors, adam, lr 0.01,
    batch size 64, 3 epochs'."""
    c = trained.config
    schedule = {"constant": f"lr {c.lr:g}", "sgdr": f"SGDR up to lr {c.lr:g}",
                "onecycle": f"one cycle up to lr {c.lr:g}"}.get(c.schedule, f"stages {c.schedule} (epochs@lr)")
    return (f"{type(trained.model).__name__}, {c.n_factors} factors, {c.opt}, {schedule}, "
            f"batch size {c.bs}, {c.n_epochs} epochs")


def setting_notes(c: Config) -> tuple[dict[str, str], dict[str, str]]:
    """(unused, notes): the settings this run's model, optimizer and schedule do not use, each with
    why (the config sheet greys them), and what the easily confused ones mean."""
    unused, notes = {}, {}
    if c.opt != "momentum":
        unused["momentum"] = f"only --opt momentum (SGD with momentum) uses it, not {c.opt}"
    if c.opt not in ("adam", "adamw"):
        unused["betas"] = f"only --opt adam and adamw use them, not {c.opt}"
    if c.opt != "rmsprop":
        unused["alpha"] = f"only --opt rmsprop uses it, not {c.opt}"
    if c.opt in ("sgd", "momentum"):
        unused["eps"] = "SGD has no eps"
    elif c.opt == "adagrad":
        unused["eps"] = "Adagrad keeps torch's own eps, 1e-10"
    if c.model != "net":
        for name in ("nh", "p1", "p2"):
            unused[name] = f"only --model net (EmbeddingNet) uses it, not {c.model}"
    if c.schedule != "sgdr":
        for name in ("cycle_len", "cycle_mult"):
            unused[name] = "only --schedule sgdr uses it"
    if c.stages:
        unused["epochs"] = (f"the staged schedule sets the epochs: {c.schedule} is "
                            f"{' then '.join(f'{n} at lr {lr:g}' for n, lr in c.stages)}, "
                            f"{c.n_epochs} in all")
        unused["lr"] = "each stage of the schedule sets its own lr"
    else:
        notes["epochs"] = ("passes over the training ratings; a staged schedule (--schedule "
                           "3@0.1,3@0.01: 3 epochs at lr 0.1, then 3 at 0.01) sets its own instead")
    notes["schedule"] = ("constant; sgdr or onecycle (lr is then the highest lr); or stages "
                         "epochs@lr,..., which set the epochs and lrs")
    if c.schedule == "onecycle" and c.opt in ("momentum", "adam", "adamw"):
        notes["momentum" if c.opt == "momentum" else "betas"] = \
            "onecycle cycles it (beta1 for adam) between 0.85 and 0.95, as torch's OneCycleLR does"
    notes["epochs_trained"] = "epochs run: epochs, or the sum of a staged schedule's"
    return unused, notes
