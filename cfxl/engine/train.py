"""Training: a frozen Config, torch.optim optimizers, lr schedules, and fit() over index tensors.

No DataLoader: the rating index tensors live on the device, each epoch draws one permutation
and the loop slices it, which is what makes training fast on both CPU and GPU.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
from torch import nn

from cfxl.data.ratings import IdMap, Ratings, file_sha256, split
from cfxl.presets import LESSON_RUNS, TRAIN_DEFAULTS as D
from cfxl.errors import CfxlError, option
from cfxl.engine import distributed
from cfxl.engine.compiled import compiled_step
from cfxl.engine.epoch import Loop, run_epoch
from cfxl.engine.evaluate import check_trained, mean_baseline
from cfxl.engine.models import MODELS, make_model
from cfxl.engine.optim import OPTIMIZERS, check_settings, torch_optimizer

SPARSE_OPTIMIZERS = ("sgd", "momentum", "adagrad", "adam", "adamw")  # engine.rowsparse
DEVICES = re.compile(r"auto|cpu|mps|cuda(:\d+)?")  # whether torch sees one is fit's to say
PRESETS = ("lesson",)  # named settings a run starts from; options given override them


@dataclass(frozen=True)
class Config:
    """Every setting of a training run; the CLI options map one to one onto these fields."""

    # the defaults are presets.TRAIN_DEFAULTS, a recipe that generalises (measured there);
    # the lesson's own settings are the preset `lesson` (PRESETS)
    model: str = D["model"]      # dot | dotbias | net (the lesson's three trainable models)
    n_factors: int = 50          # the lesson's n_factors
    epochs: int = D["epochs"]    # ignored by a staged schedule, which carries its own epochs
    bs: int = D["bs"]            # the lesson's is 64; 1024 and up is much faster
    opt: str = D["opt"]          # one of OPTIMIZERS: torch.optim's own classes
    lr: float = D["lr"]          # the highest lr of a onecycle or sgdr schedule
    weight_decay: float = D["weight_decay"]  # L2 added to the gradient, as torch.optim does
                                             # (adamw: decoupled, the weights shrink by lr * wd)
    momentum: float = 0.9        # for opt="momentum" (SGD with momentum, dampening 0)
    betas: tuple[float, float] = (0.9, 0.999)  # torch's Adam defaults
    alpha: float = 0.99          # RMSprop's smoothing constant, torch's default
    eps: float = 1e-8            # Adam/RMSprop eps (Adagrad uses 1e-10, torch's default, if left)
    schedule: str = D["schedule"]  # constant | "3@0.1,3@0.01" stages | sgdr | onecycle
    cycle_len: int = 1           # SGDR: epochs in the first cycle
    cycle_mult: int = 2          # SGDR: each cycle this many times longer than the last
    val_pct: float = 0.2         # fastai's get_cv_idxs default
    seed: int = 42               # one seed for init, split and batch order
    device: str = "auto"         # auto | cpu | cuda | cuda:N | mps; auto picks cuda when available
    dtype: str = "float32"       # float64 for the mirrored spreadsheet models
    sparse: bool = False         # CPU fast path: sparse embedding gradients, lazy updates
                                 # (weight decay too: only the rows a batch touches decay)
    nh: int = 10                 # EmbeddingNet hidden units, dropout as in the lesson
    p1: float = 0.05
    p2: float = 0.5
    keep_best: bool = D["keep_best"]  # end with the epoch of lowest validation loss (needs val_pct)
    patience: int = D["patience"]     # stop after this many epochs without a better validation
                                      # loss (0: never stop early; needs val_pct)

    def __post_init__(self):
        if self.model not in MODELS:
            raise CfxlError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        allowed = SPARSE_OPTIMIZERS if self.sparse else OPTIMIZERS
        if self.opt not in allowed:
            why = " with --sparse (no row-sparse rule for the others)" if self.sparse else ""
            raise CfxlError(f"unknown optimizer {self.opt!r}{why}; choose one of {', '.join(allowed)}")
        if self.dtype not in ("float32", "float64"):
            raise CfxlError(f"dtype must be float32 or float64, not {self.dtype!r}")
        for name in ("n_factors", "epochs", "bs", "cycle_len", "cycle_mult"):
            if getattr(self, name) < 1:
                raise CfxlError(f"{option(name)} must be at least 1, not {getattr(self, name)}")
        if self.patience < 0:
            raise CfxlError(f"{option('patience')} must be 0 (off) or more, not {self.patience}")
        if not 0 <= self.val_pct < 1:
            raise CfxlError(f"{option('val_pct')} must be in [0, 1), not {self.val_pct}")
        check_settings(lr=self.lr, momentum=self.momentum, betas=self.betas, eps=self.eps,
                       weight_decay=self.weight_decay)
        if not DEVICES.fullmatch(self.device):
            raise CfxlError(f"device must be auto, cpu, cuda, cuda:N or mps, not {self.device!r}")
        self.stages  # parses the schedule, raising on a bad one

    @property
    def stages(self) -> list[tuple[int, float]] | None:
        """The staged schedule `3@0.1,3@0.01` as [(epochs, lr), ...]; None for other schedules."""
        if self.schedule in ("constant", "sgdr", "onecycle"):
            return None
        try:
            stages = [(int(n), float(lr)) for n, lr in
                      (part.split("@") for part in self.schedule.split(","))]
        except ValueError:
            raise CfxlError(f"bad schedule {self.schedule!r}: use constant, sgdr, onecycle, or "
                            "stages like 3@0.1,3@0.01 (epochs@lr)") from None
        if any(n < 1 or lr <= 0 for n, lr in stages):
            raise CfxlError(f"bad schedule {self.schedule!r}: each stage needs epochs >= 1 and lr > 0")
        return stages

    @property
    def n_epochs(self) -> int:
        return sum(n for n, _ in self.stages) if self.stages else self.epochs

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        known = {f.name for f in fields(cls)}
        if "wd" in d:  # cfxl 0.1's name for weight_decay, in checkpoints written by it
            d = {"weight_decay": d["wd"], **d}
        d = {k: v for k, v in d.items() if k in known}
        d.setdefault("keep_best", False)  # a checkpoint from before it kept its last epoch
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


def preset_settings(preset: str | None, model: str | None = None) -> dict:
    """The Config fields a preset sets: `lesson` is the lesson's run of the model (LESSON_RUNS:
    bs 64, SGD with momentum 0.9 and the lr staged 3@0.1,3@0.01 for the dot models, Adam for the
    net, each with its weight decay); None sets nothing (cfxl's defaults)."""
    if preset is None:
        return {}
    if preset not in PRESETS:
        raise CfxlError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    runs = {run["model"]: run for run in LESSON_RUNS.values()}
    model = model or Config.model
    return dict(runs.get(model, {"model": model}))  # an unknown model: Config says so


def config_for(preset: str | None = None, **given) -> Config:
    """The Config of a preset (or cfxl's defaults) with the options given on top; an option
    given as None was not given, so the preset's or the default value stands."""
    given = {k: v for k, v in given.items() if v is not None}
    return Config(**{**preset_settings(preset, given.get("model")), **given})


@dataclass
class Trained:
    """A trained model with everything needed to explain it: maps, titles, history, provenance."""

    model: nn.Module
    config: Config
    users: IdMap
    movies: IdMap
    y_range: tuple[float, float]
    history: list[dict] = field(default_factory=list)
    titles: object = None        # pd.DataFrame (index movieId; title, genres) or None
    source: str = ""
    sha256: str = ""
    device: str = "cpu"
    trace: object = None         # cfxl.engine.trace.Trace when a recorder was given

    @property
    def kept(self) -> dict:
        """The history row of the epoch whose weights the model holds (keep_best: the one of
        lowest validation loss; else the last)."""
        return next((h for h in self.history if h.get("kept")), self.history[-1] if self.history else {})

    @torch.no_grad()
    def predict(self, user_ids, movie_ids) -> np.ndarray:
        """Predicted ratings for raw user and movie ids (arrays of equal length)."""
        p = next(self.model.parameters())
        u = torch.as_tensor(np.atleast_1d(self.users.index(user_ids)), device=p.device)
        m = torch.as_tensor(np.atleast_1d(self.movies.index(movie_ids)), device=p.device)
        self.model.eval()
        return self.model(u, m).cpu().numpy()


def resolve_device(device: str) -> torch.device:
    """`auto` is cuda when torch sees a GPU, else cpu; anything else must be available."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CfxlError(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise CfxlError("device 'mps' asked for, but torch sees no Apple GPU; use --device cpu")
    found = torch.device(device)
    if found.type == "cuda" and (found.index or 0) >= (n := torch.cuda.device_count()):
        raise CfxlError(f"device {device!r} asked for, but torch sees {n} CUDA GPU(s), "
                        f"cuda:0 to cuda:{n - 1}")
    return found


def make_optimizers(config: Config, model: nn.Module) -> list[torch.optim.Optimizer]:
    """torch.optim optimizers for the model: one, or two when sparse embeddings sit beside dense layers."""
    c = config
    params = list(model.parameters())
    if c.sparse:
        from cfxl.engine.rowsparse import row_sparse_optimizer

        sparse = [p for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()]
        dense = [p for p in params if all(p is not s for s in sparse)]
        # cfxl's own (several times faster than torch's SparseAdam), its weight decay lazy:
        # torch's rule on the rows a batch touches
        opts = [row_sparse_optimizer(c.opt, sparse, lr=c.lr, momentum=c.momentum, betas=c.betas,
                                     eps=None if c.opt == "adagrad" else c.eps,
                                     weight_decay=c.weight_decay)]
        if dense:
            opts.append(_dense_optimizer(c, dense))
        return opts
    return [_dense_optimizer(c, params)]


def _dense_optimizer(c: Config, params) -> torch.optim.Optimizer:
    return torch_optimizer(c.opt, params, lr=c.lr, momentum=c.momentum, alpha=c.alpha,
                           betas=c.betas, eps=None if c.opt == "adagrad" else c.eps,
                           weight_decay=c.weight_decay)


def make_scheduler(config: Config, opt: torch.optim.Optimizer, n_batches: int):
    """torch's scheduler for the config's schedule, stepped once per batch; None when constant."""
    sched = torch.optim.lr_scheduler
    if config.schedule == "constant":
        return None
    if config.schedule == "sgdr":
        return sched.CosineAnnealingWarmRestarts(opt, T_0=config.cycle_len * n_batches,
                                                 T_mult=config.cycle_mult)
    if config.schedule == "onecycle":
        cycle_momentum = "momentum" in opt.defaults and opt.defaults["momentum"] > 0 \
            or "betas" in opt.defaults
        return sched.OneCycleLR(opt, max_lr=config.lr, total_steps=config.n_epochs * n_batches,
                                cycle_momentum=cycle_momentum)
    ends = np.cumsum([n for n, _ in config.stages]) * n_batches
    lrs = [lr / config.lr for _, lr in config.stages]
    return sched.LambdaLR(opt, lambda it: lrs[min(int(np.searchsorted(ends, it, "right")),
                                                   len(lrs) - 1)])


def _lr_hint(c: Config) -> str:
    """What to try when a run diverges: a smaller --lr, or smaller lrs in a staged schedule."""
    if c.stages:
        return f"try smaller learning rates in --schedule than {max(lr for _, lr in c.stages):g}"
    return f"try a smaller learning rate than {c.lr:g} (for example --lr {c.lr / 10:g})"


def start(c: Config, ratings: Ratings, world: distributed.World | None = None):
    """Where every run starts, seeded: the device (in a process group, this rank's), the
    training and validation ratings on it as (users, movies, ratings) index tensors, and the
    fresh model (the same on every rank: one seed)."""
    torch.manual_seed(c.seed)
    device, dtype = resolve_device(c.device), getattr(torch, c.dtype)
    if world is not None:
        device = world.device(device)
    train_idx, val_idx = split(len(ratings), c.val_pct, c.seed)
    u_all = torch.tensor(ratings.user_idx, dtype=torch.int64)  # (n,)
    m_all = torch.tensor(ratings.movie_idx, dtype=torch.int64)  # (n,)
    y_all = torch.tensor(ratings.rating, dtype=dtype)  # (n,)
    tr, va = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
    train = tuple(t[tr].to(device) for t in (u_all, m_all, y_all))
    val = tuple(t[va].to(device) for t in (u_all, m_all, y_all))
    model = make_model(c.model, ratings.n_users, ratings.n_movies, c.n_factors,
                       y_range=ratings.rating_range, nh=c.nh, p1=c.p1, p2=c.p2,
                       sparse=c.sparse).to(device=device, dtype=dtype)
    return device, train, val, model


def fit(config: Config, ratings: Ratings, *, recorder=None, progress: bool | None = None,
        on_epoch=None) -> Trained:
    """Train `config.model` on `ratings`; `progress=None` shows a bar only on a terminal.

    on_epoch(row) sees each epoch's history row as it ends: its losses, lr, seconds, and `best`
    (the lowest validation loss so far). At the end one row has `kept` set: the epoch whose
    weights the model holds (keep_best: the lowest validation loss, its weights restored).

    In a process group (cfxl.engine.launch) it trains data-parallel: every rank takes its shard
    of each global batch of bs ratings, DDP averages the gradients, the losses are summed over
    the ranks, and every rank ends with the same model."""
    c = config
    world = distributed.current()
    if world is not None and (c.sparse or recorder is not None):
        raise CfxlError(distributed.DENSE_ONLY if c.sparse else "recording a run needs one process")
    device, (u_tr, m_tr, y_tr), (u_va, m_va, y_va), model = start(c, ratings, world)
    y_range = ratings.rating_range
    opts = make_optimizers(c, model)
    if recorder is not None and len(opts) != 1:
        raise CfxlError("recording needs one optimizer: turn off --sparse to trace a run")
    n_train = len(y_tr)
    n_batches = max(1, math.ceil(n_train / c.bs))
    scheds = [s for s in (make_scheduler(c, o, n_batches) for o in opts) if s is not None]
    loop = Loop(model, opts, scheds, world, recorder=recorder,
                stepped=None if world is None else distributed.wrap(model, device),
                compiled=None if world or recorder else compiled_step(model, opts, c.bs))
    gen = torch.Generator().manual_seed(c.seed)  # batch order, the same on CPU and GPU
    # int32 where it holds the positions: the same permutation, a quarter faster to draw
    order_dtype = torch.int32 if n_train < 2 ** 31 else torch.int64
    history: list[dict] = []
    # judged on the validation ratings, or on the training ratings when there are none
    judged = (u_va, m_va, y_va) if len(y_va) else (u_tr, m_tr, y_tr)
    # the untrained model: no random draws, results unchanged
    before = distributed.evaluate_over(world, model, *judged)
    best_epoch, best_loss, best_state = 0, math.inf, None  # lowest validation loss (keep_best)

    for epoch in range(1, c.n_epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n_train, generator=gen, dtype=order_dtype).to(device)  # (n_train,)
        total, lr = run_epoch(loop, u_tr, m_tr, y_tr, perm, c.bs,
                              desc=f"epoch {epoch}/{c.n_epochs}", progress=progress)
        train_loss = float(distributed.sum_over(world, total)) / n_train
        if not math.isfinite(train_loss):
            raise CfxlError(f"training diverged in epoch {epoch}: the loss became {train_loss}; "
                            f"{_lr_hint(c)}")
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise CfxlError(f"training diverged in epoch {epoch}: parameters became infinite or "
                            f"NaN; {_lr_hint(c)}")
        val_loss = distributed.evaluate_over(world, model, u_va, m_va, y_va) if len(y_va) \
            else float("nan")
        best = bool(len(y_va)) and val_loss < best_loss  # the lowest validation loss so far
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                        "val_rmse": math.sqrt(val_loss), "lr": lr,
                        "seconds": time.perf_counter() - t0, "best": best, "kept": False})
        if best:
            best_epoch, best_loss = epoch, val_loss
            if c.keep_best and epoch < c.n_epochs:  # a copy only while later epochs may undo it
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if on_epoch is not None:
            on_epoch(history[-1])
        if c.patience and best_epoch and epoch - best_epoch >= c.patience:
            break  # early stop: no better validation loss in `patience` epochs

    kept = best_epoch if c.keep_best and best_epoch else len(history)
    if kept != len(history):
        model.load_state_dict(best_state)
    history[kept - 1]["kept"] = True
    after = history[kept - 1]["val_loss"] if len(y_va) \
        else distributed.evaluate_over(world, model, *judged)
    check_trained(history, before=before, after=after, baseline=mean_baseline(y_tr, judged[2]),
                  on="validation" if len(y_va) else "training", hint=_lr_hint(c))
    return Trained(model=model, config=c, users=ratings.users, movies=ratings.movies,
                   y_range=y_range, history=history, titles=ratings.titles,
                   source=str(ratings.source or ""),  # None: Ratings made in memory
                   sha256=file_sha256(ratings.source) if ratings.source else "",
                   device=str(device), trace=None if recorder is None else recorder.result())
