"""Save and load trained models as plain tensors and lists, loadable with weights_only=True."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import torch

import cfxl
from cfxl.data.ratings import IdMap
from cfxl.errors import CfxlError
from cfxl.engine.models import make_model
from cfxl.engine.train import Config, Trained
from cfxl.io import atomic_write

FORMAT = "cfxl-model/1"


def save(trained: Trained, path, *, force: bool = False) -> Path:
    """Write the checkpoint atomically (cfxl.io.atomic_write); an existing file only with force."""
    titles = trained.titles
    ckpt = {
        "format": FORMAT,
        "config": trained.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in trained.model.state_dict().items()},
        "users": trained.users.to_state(),
        "movies": trained.movies.to_state(),
        "y_range": list(trained.y_range),
        "history": {k: [h[k] for h in trained.history] for k in
                    (trained.history[0] if trained.history else {})},
        "titles": None if titles is None else {
            "movieId": titles.index.tolist(), "title": titles["title"].astype(str).tolist(),
            "genres": titles["genres"].astype(str).tolist()},
        "source": trained.source, "sha256": trained.sha256, "device": trained.device,
        "cfxl_version": cfxl.__version__, "torch_version": str(torch.__version__),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return atomic_write(path, lambda tmp: torch.save(ckpt, tmp), force=force)


def load(path, *, device: str = "cpu") -> Trained:
    """Read a checkpoint written by `save` without unpickling code."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise CfxlError(f"{path}: no such model file") from None
    except Exception as e:  # torch raises several types for a file that is not a checkpoint
        raise CfxlError(f"{path}: not a cfxl model file ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CfxlError(f"{path}: not a cfxl model file (expected format {FORMAT})")
    config = Config.from_dict(ckpt["config"])
    users = IdMap.from_state(ckpt["users"], "user")
    movies = IdMap.from_state(ckpt["movies"], "movie")
    y_range = tuple(ckpt["y_range"])
    model = make_model(config.model, len(users), len(movies), config.n_factors, y_range=y_range,
                       nh=config.nh, p1=config.p1, p2=config.p2)
    model.load_state_dict(ckpt["state_dict"])
    model.to(device=device, dtype=getattr(torch, config.dtype))
    hist = ckpt["history"]
    history = [dict(zip(hist, row)) for row in zip(*hist.values())] if hist else []
    t = ckpt["titles"]
    titles = None if t is None else pd.DataFrame(
        {"title": t["title"], "genres": t["genres"]}, index=pd.Index(t["movieId"], name="movieId"))
    return Trained(model=model, config=config, users=users, movies=movies, y_range=y_range,
                   history=history, titles=titles, source=ckpt["source"], sha256=ckpt["sha256"],
                   device=ckpt["device"])
