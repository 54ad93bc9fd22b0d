"""Training: loss goes down, runs are deterministic, checkpoints round-trip, bad runs stop cleanly."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from cfxl import report
from cfxl.engine import checkpoint
from cfxl.data.ratings import read_ratings, split
from cfxl.errors import CfxlError
from cfxl.engine.trace import Recorder
from cfxl.engine.evaluate import check_trained, evaluate, mean_baseline
from cfxl.engine.train import Config, config_for, fit, make_optimizers
from cfxl.presets import LESSON_RUNS


@pytest.fixture(scope="module")
def ratings(tmp_path_factory):
    """A small structured data set: 60 users x 50 movies, biases plus one taste axis plus noise."""
    rng = np.random.default_rng(7)
    ub, mb = rng.normal(0, 0.5, 60), rng.normal(0, 0.7, 50)
    ut, mt = rng.normal(0, 1, 60), rng.normal(0, 1, 50)
    rows = []
    for u in range(60):
        for m in rng.choice(50, size=25, replace=False):
            r = 3.5 + ub[u] + mb[m] + 0.6 * ut[u] * mt[m] + rng.normal(0, 0.3)
            rows.append(f"{u + 100},{m * 3 + 1},{min(5.0, max(0.5, round(r * 2) / 2))},0")
    path = tmp_path_factory.mktemp("train") / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    return read_ratings(path)


def quick(**kw):
    base = dict(model="dotbias", n_factors=4, opt="adam", lr=0.05, bs=32, epochs=8, device="cpu")
    return Config(**{**base, **kw})


@pytest.mark.parametrize("model", ["dot", "dotbias", "net"])
def test_training_lowers_the_loss(ratings, model):
    opt = {"dot": dict(opt="momentum", lr=0.05), "dotbias": {}, "net": dict(lr=0.01)}[model]
    history = fit(quick(model=model, **opt), ratings, progress=False).history
    assert len(history) == 8
    assert history[-1]["train_loss"] < 0.6 * history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert all(math.isclose(h["val_rmse"] ** 2, h["val_loss"]) for h in history)


def test_same_seed_gives_bit_identical_parameters(ratings):
    a = fit(quick(model="net"), ratings, progress=False).model.state_dict()
    b = fit(quick(model="net"), ratings, progress=False).model.state_dict()
    c = fit(quick(model="net", seed=1), ratings, progress=False).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["u_weight.weight"], c["u_weight.weight"])


def test_checkpoint_round_trip(ratings, tmp_path):
    trained = fit(quick(), ratings, progress=False)
    path = checkpoint.save(trained, tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)  # no pickled code in the file
    assert raw["format"] == checkpoint.FORMAT
    back = checkpoint.load(path)
    assert back.config == trained.config and back.users == trained.users
    assert back.movies == trained.movies and back.history == trained.history
    users, movies = [100, 159, 101], [1, 148, 4]
    np.testing.assert_array_equal(back.predict(users, movies), trained.predict(users, movies))
    with pytest.raises(CfxlError, match="exists; pass --force"):
        checkpoint.save(trained, path)
    checkpoint.save(trained, path, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no temporary left behind


def test_load_rejects_a_file_that_is_not_a_model(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("hello")
    with pytest.raises(CfxlError, match="not a cfxl model file"):
        checkpoint.load(bad)
    with pytest.raises(CfxlError, match="no such model file"):
        checkpoint.load(tmp_path / "missing.pt")


def test_divergence_names_the_epoch_and_suggests_a_smaller_lr(ratings):
    with pytest.raises(CfxlError, match=r"diverged in epoch 1: .*smaller learning rate"):
        fit(quick(model="dot", opt="sgd", lr=1e8), ratings, progress=False)


def test_unknown_prediction_id_says_why(ratings):
    trained = fit(quick(epochs=1), ratings, progress=False)
    with pytest.raises(CfxlError, match="99999"):
        trained.predict([100], [99999])


@pytest.mark.parametrize("opt", ["sgd", "adagrad", "adam"])
def test_sparse_fast_path_trains(ratings, opt):
    lr = {"sgd": 1.0, "adagrad": 0.3, "adam": 0.05}[opt]
    config = quick(opt=opt, lr=lr, sparse=True, weight_decay=1e-4)
    trained = fit(config, ratings, progress=False)
    assert trained.model.u_weight.sparse
    kinds = [type(o).__name__ for o in make_optimizers(config, trained.model)]
    assert kinds == [{"sgd": "RowSparseSGD", "adagrad": "RowSparseAdagrad",
                      "adam": "RowSparseAdam"}[opt]]
    assert trained.history[-1]["train_loss"] < 0.7 * trained.history[0]["train_loss"]


def test_sparse_net_pairs_a_sparse_and_a_dense_optimizer(ratings):
    config = quick(model="net", sparse=True)
    trained = fit(config, ratings, progress=False)
    assert [type(o).__name__ for o in make_optimizers(config, trained.model)] == ["RowSparseAdam", "Adam"]


def test_schedules_follow_torch(ratings):
    sgdr = quick(opt="momentum", lr=0.1, schedule="sgdr", cycle_len=1, cycle_mult=2, epochs=3)
    lr = fit(sgdr, ratings, recorder=Recorder({"i_bias": [0]}), progress=False).trace.lr
    nb = len(lr) // 3
    assert lr[0] == 0.1 and lr[nb] == pytest.approx(0.1)  # restart after the first 1-epoch cycle
    assert lr[2 * nb] == pytest.approx(0.05)  # half way through the 2-epoch second cycle
    assert lr[nb // 2] == pytest.approx(0.05 * (1 + math.cos(math.pi * (nb // 2) / nb)))
    one = quick(opt="adam", lr=0.1, schedule="onecycle", epochs=4)
    lr = fit(one, ratings, recorder=Recorder({"i_bias": [0]}), progress=False).trace.lr
    assert lr[0] == pytest.approx(0.1 / 25) and max(lr) == pytest.approx(0.1, rel=1e-3)
    assert 0.2 < np.argmax(lr) / len(lr) < 0.4 and lr[-1] < 1e-5
    staged = quick(schedule="2@0.1,1@0.001")
    trained = fit(staged, ratings, progress=False)
    assert [h["lr"] for h in trained.history] == [0.1, 0.1, 0.001]


@pytest.mark.parametrize("kw, message", [
    (dict(model="svd"), "unknown model 'svd'"),
    (dict(opt="lbfgs"), "unknown optimizer 'lbfgs'"),
    (dict(opt="rmsprop", sparse=True), "with --sparse"),
    (dict(schedule="3@fast"), "bad schedule"),
    (dict(bs=0), "--bs must be at least 1"),
    (dict(n_factors=0), r"--factors \(n_factors\) must be at least 1"),
    (dict(lr=-1.0), "lr must be a positive number"),
    (dict(val_pct=1.5), "val_pct"),
])
def test_config_validation(kw, message):
    with pytest.raises(CfxlError, match=message):
        quick(**kw)


def test_device_auto_is_cpu_without_a_gpu(ratings):
    if torch.cuda.is_available():
        pytest.skip("this check is for machines without a GPU")
    assert fit(quick(device="auto", epochs=1), ratings, progress=False).device == "cpu"
    with pytest.raises(CfxlError, match="no CUDA GPU"):
        fit(quick(device="cuda", epochs=1), ratings, progress=False)


def test_a_run_worse_than_the_mean_and_its_start_fails_saving_nothing(ratings):
    with pytest.raises(CfxlError) as excinfo:
        fit(quick(lr=1e6), ratings, progress=False)  # sigmoid range + Adam: finite, but wild
    text = str(excinfo.value)
    assert text.startswith("training diverged in epoch 1: the validation MSE ended at ")
    assert ", more than 10% worse than both predicting the mean rating (" in text
    assert ") and the model before training (" in text
    assert text.endswith("; try a smaller learning rate than 1e+06 (for example --lr 100000)")
    with pytest.raises(CfxlError, match=r"the training MSE ended at .* smaller learning rates "
                                        r"in --schedule than 1e\+06"):
        fit(quick(val_pct=0.0, schedule="1@0.01,1@1e6"), ratings, progress=False)


def test_the_mean_baseline_is_the_mse_of_the_training_mean():
    y_train, y = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 0.0])
    assert mean_baseline(y_train, y) == (2.0 ** 2 + 2.0 ** 2) / 2  # exact in binary


@pytest.mark.parametrize("before, after, fails", [
    (13.0, 1.5, False),   # the lesson's EmbeddingDot after one epoch: above the mean, far below its start
    (1.8, 1.0, False),    # better than both
    (1.0, 1.1, False),    # a little worse than its start, still better than the mean (1.2)
    (1.2, 1.3, False),    # little learned from noisy ratings: within 10% of both
    (1.8, 5.4, True),     # lr 1e6 with Adam: three times worse than both
    (1.0, 1.33, True),    # more than 10% worse than both (1.2 * 1.1 = 1.32)
])
def test_only_a_run_worse_than_the_mean_and_its_start_fails(before, after, fails):
    def check():
        check_trained([{"val_loss": 3.0}, {"val_loss": after}], before=before, after=after,
                      baseline=1.2, on="validation", hint="try a smaller lr")
    if fails:
        with pytest.raises(CfxlError, match="diverged in epoch 1: the validation MSE ended at "):
            check()
    else:
        check()


def test_the_lessons_quick_embedding_dot_passes_though_it_ends_above_the_mean():
    """Why the check also asks for worse than the start: `cfxl demo --quick` trains EmbeddingDot
    for one epoch per stage, from predictions near 0, and ends above the mean's MSE."""
    from cfxl.workbooks import lesson_config

    sample = read_ratings()
    config = lesson_config("EmbeddingDot", quick=True)
    trained = fit(config, sample, progress=False)
    train, val = split(len(sample), config.val_pct, config.seed)
    baseline = mean_baseline(torch.tensor(sample.rating[train]), torch.tensor(sample.rating[val]))
    assert trained.history[-1]["val_loss"] > baseline


def test_parameters_that_blow_up_fail_even_with_a_finite_loss(ratings):
    class Poison:  # a recorder hook that sends one bias to infinity: sigmoid keeps the loss finite
        def before_step(self, model, opt, loss):
            pass

        def after_step(self, model, opt):
            with torch.no_grad():
                model.i_bias.weight[0] = math.inf

    with pytest.raises(CfxlError, match=r"^training diverged in epoch 1: parameters became "
                                        r"infinite or NaN; try a smaller learning rate than 0.05"):
        fit(quick(), ratings, recorder=Poison(), progress=False)


@pytest.fixture(scope="module")
def saved(ratings, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "m.pt"
    return checkpoint.save(fit(quick(epochs=1), ratings, progress=False), path)


def damage(saved, tmp_path, change) -> str:
    ckpt = torch.load(saved, weights_only=True)
    change(ckpt)
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(CfxlError) as excinfo:
        checkpoint.load(tmp_path / "bad.pt")
    assert len(str(excinfo.value).splitlines()) == 1
    return str(excinfo.value).removeprefix(f"{tmp_path / 'bad.pt'}: ")


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("users"), "a damaged cfxl model file: it lacks users"),
    (lambda c: [c.pop(k) for k in ("state_dict", "sha256")],
     "a damaged cfxl model file: it lacks state_dict, sha256"),
    (lambda c: c["state_dict"].update({"u_weight.weight": torch.zeros(3, 4)}),
     "a damaged cfxl model file: u_weight.weight has shape (3, 4), but the model its config and "
     "id maps describe (60 users, 50 movies and 4 factors) needs (60, 4)"),
    (lambda c: c["state_dict"].pop("i_bias.weight"),
     "a damaged cfxl model file: its weights do not fit the EmbeddingDotBias its config "
     "describes: missing i_bias.weight"),
    (lambda c: c["state_dict"].update({"extra": torch.zeros(1)}),
     "a damaged cfxl model file: its weights do not fit the EmbeddingDotBias its config "
     "describes: unknown extra"),
    (lambda c: c["state_dict"]["u_bias.weight"].fill_(math.nan),
     "a damaged cfxl model file: u_bias.weight holds NaN or infinite values"),
    (lambda c: c["config"].update({"model": "svd"}),
     "a damaged cfxl model file: unknown model 'svd'; choose one of dot, dotbias, net"),
    (lambda c: c.update({"users": c["users"][:1] * 2}),
     "a damaged cfxl model file (ValueError: user ids are not unique)"),
    (lambda c: c.update({"y_range": [1.0]}), "a damaged cfxl model file: y_range holds 1 values, not 2 (lo, hi)"),
])
def test_a_damaged_checkpoint_is_one_line_naming_the_file(saved, tmp_path, change, message):
    assert damage(saved, tmp_path, change) == message


# cfxl 0.1's defaults: what `cfxl train` did before the defaults became a recipe that generalises
CFXL_0_1 = dict(model="dotbias", n_factors=50, epochs=3, bs=64, opt="adam", lr=1e-2,
                weight_decay=0.0, schedule="constant", keep_best=False, patience=0)


def test_the_defaults_generalise_better_than_cfxl_0_1s():
    """On the embedded sample, as on real MovieLens 100k (presets.TRAIN_DEFAULTS): cfxl 0.1's
    defaults fit the training ratings more closely and the validation ratings worse."""
    sample = read_ratings()
    new = fit(Config(), sample, progress=False)
    old = fit(Config(**CFXL_0_1), sample, progress=False)
    assert new.kept["val_rmse"] < old.kept["val_rmse"]


def test_the_lessons_runs_do_not_depend_on_cfxls_defaults():
    """`cfxl demo` and --preset lesson train exactly as before the defaults changed."""
    for run in LESSON_RUNS.values():
        assert Config(**run) == Config(**{**CFXL_0_1, **run})


@pytest.mark.parametrize("model, run", [("dotbias", "EmbeddingDotBias"), ("dot", "EmbeddingDot"),
                                        ("net", "EmbeddingNet")])
def test_the_lesson_preset_is_the_lessons_run_and_options_override_it(model, run):
    lesson = Config(**LESSON_RUNS[run])
    assert config_for("lesson", model=model if model != "dotbias" else None) == lesson
    assert config_for("lesson", model=model, bs=128, weight_decay=None) == replace(lesson, bs=128)
    assert config_for(None, model=model) == Config(model=model)
    assert config_for() == Config()


def test_an_unknown_preset_names_the_known_ones():
    with pytest.raises(CfxlError, match="unknown preset 'fast'; choose one of lesson"):
        config_for("fast")


def test_a_checkpoint_from_before_keep_best_kept_its_last_epoch():
    old = {k: v for k, v in Config().to_dict().items() if k not in ("keep_best", "patience")}
    assert Config.from_dict(old).keep_best is False


def test_adamw_is_torchs_and_trains(ratings):
    config = quick(opt="adamw", weight_decay=0.1)
    trained = fit(config, ratings, progress=False)
    [opt] = make_optimizers(config, trained.model)
    assert type(opt) is torch.optim.AdamW and opt.defaults["weight_decay"] == 0.1
    assert trained.history[-1]["train_loss"] < 0.7 * trained.history[0]["train_loss"]
    sparse = quick(opt="adamw", weight_decay=0.1, sparse=True)
    [opt] = make_optimizers(sparse, fit(sparse, ratings, progress=False).model)
    assert type(opt).__name__ == "RowSparseAdam" and opt.defaults["decoupled"]


@pytest.fixture(scope="module")
def overfit(ratings):
    """A run that overfits the small data: many factors, no weight decay, a constant lr."""
    config = quick(n_factors=30, bs=256, lr=0.05, epochs=12, schedule="constant", weight_decay=0.0)
    trained = fit(config, ratings, progress=False)
    losses = [h["val_loss"] for h in trained.history]
    best = int(np.argmin(losses)) + 1
    assert best < config.epochs, "this run should overfit: its last epoch not its best"
    return config, trained, losses, best


def test_keep_best_restores_the_best_epochs_weights_and_says_so(ratings, overfit):
    config, trained, losses, k = overfit
    history = trained.history
    assert [h["best"] for h in history] == [v < min(losses[:i], default=math.inf)
                                            for i, v in enumerate(losses)]
    assert [h["kept"] for h in history] == [h["epoch"] == k for h in history]
    assert trained.kept["epoch"] == k
    # the same run stopped at epoch k: the same weights, bit for bit
    short = fit(replace(config, epochs=k, keep_best=False), ratings, progress=False)
    state = trained.model.state_dict()
    assert all(torch.equal(v, state[name]) for name, v in short.model.state_dict().items())
    _, val = split(len(ratings), config.val_pct, config.seed)
    u, m, y = (torch.as_tensor(a[val]) for a in (ratings.user_idx, ratings.movie_idx,
                                                  ratings.rating.astype(np.float32)))
    assert evaluate(trained.model, u, m, y) == losses[k - 1]
    assert report.kept_line(trained) == (f"kept epoch {k} (val RMSE {math.sqrt(losses[k - 1]):.5f}), "
                                         "the lowest validation loss; its weights restored")
    last = fit(replace(config, keep_best=False), ratings, progress=False)
    assert last.kept["epoch"] == config.epochs
    assert report.kept_line(last) == (
        f"kept the last epoch, {config.epochs} (val RMSE {math.sqrt(losses[-1]):.5f}); epoch {k} "
        f"was lower ({math.sqrt(losses[k - 1]):.5f}: --keep-best keeps it)")


def test_patience_stops_early_keeping_the_best(ratings, overfit, tmp_path):
    config, _, losses, _ = overfit
    best, stop = 1, None  # when no lower loss came in 3 epochs, from the full run's losses
    for epoch in range(2, config.epochs + 1):
        if losses[epoch - 1] < losses[best - 1]:
            best = epoch
        elif epoch - best >= 3:
            stop = epoch
            break
    trained = fit(replace(config, patience=3), ratings, progress=False)
    assert len(trained.history) == stop and trained.kept["epoch"] == best
    assert report.kept_line(trained).splitlines()[0] == (
        f"stopped early after epoch {stop} of {config.epochs}: no lower validation loss in 3 "
        "epochs (--patience)")
    back = checkpoint.load(checkpoint.save(trained, tmp_path / "m.pt"))
    assert back.kept["epoch"] == best and back.history == trained.history


def test_the_epoch_table_marks_each_new_best():
    lines = []
    on_epoch = report.epoch_printer(lines.append)
    for epoch, best in [(1, True), (2, False)]:
        on_epoch({"epoch": epoch, "train_loss": 1.0, "val_loss": 1.0, "val_rmse": 1.0, "lr": 0.01,
                  "seconds": 0.1, "best": best, "kept": False})
    assert lines[0].split()[-1] == "best" and lines[1].endswith("*")
    assert not lines[2].endswith("*")


def test_the_train_command_takes_a_preset_under_its_options_and_says_what_it_kept(ratings, overfit):
    from click.testing import CliRunner

    from cfxl.cli import cli

    config, _, losses, k = overfit
    args = ["train", str(ratings.source), "-q", "--factors", "30", "--bs", "256", "--lr", "0.05",
            "--epochs", "12", "--schedule", "constant", "--wd", "0", "--device", "cpu"]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[1].split() == ["epoch", "train_loss", "val_loss", "val_rmse", "lr", "seconds", "best"]
    assert [line.endswith("*") for line in lines[2:14]] == [
        v < min(losses[:i], default=math.inf) for i, v in enumerate(losses)]
    assert lines[14:] == [f"kept epoch {k} (val RMSE {math.sqrt(losses[k - 1]):.5f}), the lowest "
                          "validation loss; its weights restored", "not saved (-o model.pt saves it)"]
    lesson = CliRunner().invoke(cli, ["train", str(ratings.source), "-q", "--preset", "lesson",
                                      "--model", "dot", "--schedule", "1@0.1", "--device", "cpu"])
    assert lesson.exit_code == 0, lesson.output
    assert lesson.output.splitlines()[-2].startswith("kept the last epoch, 1 (val RMSE ")


@pytest.mark.parametrize("n", [1, 163, 80_000, 1_000_209])
def test_the_epochs_order_drawn_in_int32_is_torchs_int64_draw(n):
    """fit draws each epoch's permutation in int32 (a quarter faster): the same positions and
    the same generator state after as the int64 draw, so runs and seeds are unchanged by it."""
    draws = []
    for dtype in (torch.int64, torch.int32):
        gen = torch.Generator().manual_seed(11)
        draws.append((torch.randperm(n, generator=gen, dtype=dtype).long(), gen.get_state()))
    assert torch.equal(draws[0][0], draws[1][0]) and torch.equal(draws[0][1], draws[1][1])
