"""Save and load trained models as plain tensors and lists, loadable with weights_only=True."""

from __future__ import annotations

import datetime as dt
import zipfile
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
# what load reads (save also writes the versions and date, for people)
KEYS = ("config", "state_dict", "users", "movies", "y_range", "history", "titles", "source",
        "sha256", "device")


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

    def write(tmp: Path) -> None:  # through a Python file: a full disk is then OSError 28, not
        with open(tmp, "wb") as f:  # torch's C++ writer's enforce failure, which has no errno
            torch.save(ckpt, f)
    return atomic_write(path, write, force=force)


def written_by_cfxl(path) -> bool:
    """Whether path holds a cfxl model file (save's format tag, at the start of its pickle), read
    without unpickling: a file cfxl may overwrite as its own."""
    try:
        with zipfile.ZipFile(path) as zf:
            pickle = next((n for n in zf.namelist() if n.endswith("/data.pkl")), None)
            if pickle is None:
                return False
            with zf.open(pickle) as f:
                return FORMAT.encode() in f.read(4096)
    except (OSError, zipfile.BadZipFile):
        return False


def load(path, *, device: str = "cpu") -> Trained:
    """Read a checkpoint written by `save` without unpickling code; a file that is not one, or a
    damaged one (keys missing, weights of the wrong shape), is a one-line CfxlError naming it."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise CfxlError(f"{path}: no such model file") from None
    except Exception as e:  # torch raises several types for a file that is not a checkpoint
        raise CfxlError(f"{path}: not a cfxl model file ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CfxlError(f"{path}: not a cfxl model file (expected format {FORMAT})")
    missing = [k for k in KEYS if k not in ckpt]
    if missing:
        raise CfxlError(f"{path}: a damaged cfxl model file: it lacks {', '.join(missing)}")
    try:
        return _trained(ckpt, device)
    except CfxlError as e:
        raise CfxlError(f"{path}: a damaged cfxl model file: {e}") from None
    except (AttributeError, IndexError, KeyError, RuntimeError, TypeError, ValueError) as e:
        what = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise CfxlError(f"{path}: a damaged cfxl model file ({type(e).__name__}"
                        f"{': ' + what if what else ''})") from None


def _trained(ckpt: dict, device: str) -> Trained:
    """The model a checkpoint's dict describes, raising on anything in it that does not fit."""
    config = Config.from_dict(dict(ckpt["config"]))
    users = IdMap.from_state(list(ckpt["users"]), "user")
    movies = IdMap.from_state(list(ckpt["movies"]), "movie")
    y_range = tuple(float(v) for v in ckpt["y_range"])
    if len(y_range) != 2:
        raise CfxlError(f"y_range holds {len(y_range)} values, not 2 (lo, hi)")
    model = make_model(config.model, len(users), len(movies), config.n_factors, y_range=y_range,
                       nh=config.nh, p1=config.p1, p2=config.p2)
    _check_weights(model, ckpt["state_dict"],
                   f"{len(users):,} users, {len(movies):,} movies and {config.n_factors} factors")
    model.load_state_dict(ckpt["state_dict"])
    model.to(device=device, dtype=getattr(torch, config.dtype))
    hist = ckpt["history"]
    history = [dict(zip(hist, row)) for row in zip(*hist.values())] if hist else []
    t = ckpt["titles"]
    titles = None if t is None else pd.DataFrame(
        {"title": t["title"], "genres": t["genres"]}, index=pd.Index(t["movieId"], name="movieId"))
    return Trained(model=model, config=config, users=users, movies=movies, y_range=y_range,
                   history=history, titles=titles, source=str(ckpt["source"]),
                   sha256=str(ckpt["sha256"]), device=str(ckpt["device"]))


def _check_weights(model, weights, sizes: str) -> None:
    """The saved tensors are the ones the model described by the config and id maps has, in
    its shapes, and finite."""
    if not isinstance(weights, dict):
        raise CfxlError("its weights (state_dict) are not a table of tensors")
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing, unknown = sorted(set(want) - set(weights)), sorted(set(weights) - set(want))
    if missing or unknown:
        raise CfxlError(f"its weights do not fit the {type(model).__name__} its config describes: "
                        + "; ".join(f"{what} {', '.join(map(str, names))}" for what, names in
                                    (("missing", missing), ("unknown", unknown)) if names))
    for name, shape in want.items():
        got = weights[name]
        if not isinstance(got, torch.Tensor):
            raise CfxlError(f"{name} is a {type(got).__name__}, not a tensor")
        if tuple(got.shape) != shape:
            raise CfxlError(f"{name} has shape {tuple(got.shape)}, but the model its config and id "
                            f"maps describe ({sizes}) needs {shape}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise CfxlError(f"{name} holds NaN or infinite values")
