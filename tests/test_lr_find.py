"""The lr finder: fastai's schedule, smoothing, divergence stop and valley rule; its text, PNG and
sheet, written whole or not at all; the sheet's smoothing recomputed by LibreOffice."""

import math

import numpy as np
import openpyxl
import pytest
from click.testing import CliRunner
from tolerance import assert_close

from cfxl import report
from cfxl.cli import cli
from cfxl.engine.lr_find import BETA, DIVERGED, lr_find, moving_average, smooth, valley
from cfxl.engine.train import Config
from cfxl.errors import CfxlError
from cfxl.records.lr_find import lr_find_records


@pytest.fixture(scope="module")
def found(ratings):
    return lr_find(Config(), ratings, steps=60)


def test_the_lr_grows_exponentially_from_start_towards_end(found):
    assert len(found.lr) == found.steps == 60 and not found.diverged
    assert found.lr[0] == 1e-7
    ratio = found.lr[1:] / found.lr[:-1]
    assert np.all(ratio > 1)
    assert_close(ratio, np.full(59, (10 / 1e-7) ** (1 / 60)), rtol=1e-12)
    assert found.lr[-1] < found.end


def test_the_suggestion_is_a_step_of_the_run_on_the_falling_loss(found):
    assert found.suggestion == found.lr[found.suggested]
    assert found.steps // 10 <= found.suggested < len(found.lr) - 5  # fastai's window
    # valley: inside the longest fall, before its bottom
    assert found.suggested < int(np.argmin(found.smooth))
    assert found.smooth[found.suggested] > found.smooth.min()


def test_the_smoothing_is_fastais_debiased_moving_average(found):
    avg, want = 0.0, []
    for i, x in enumerate(found.loss):
        avg = BETA * avg + (1 - BETA) * x
        want.append(avg / (1 - BETA ** (i + 1)))
    assert_close(found.smooth, np.array(want), scale=found.loss.max())
    assert_close(moving_average(found.loss) / (1 - BETA ** np.arange(1, 61)), found.smooth,
                 scale=found.loss.max())
    assert smooth(np.array([2.0, 2.0, 2.0]))[0] == 2.0  # debiased: no pull towards 0


@pytest.mark.parametrize("losses, index", [
    ([5.0, 4, 3, 2, 1, 2, 3], 0),   # fastai's rule as it is: start one before the run
    ([3.0, 3.1, 2.9, 2.5, 2.0, 1.5, 1.0, 0.5, 0.4, 0.3, 1.0, 4.0], 4),
])
def test_valley_is_fastais_rule(losses, index):
    assert valley(np.array(losses)) == index


def test_a_diverging_run_stops_when_the_smoothed_loss_passes_four_times_its_best(ratings):
    run = lr_find(Config(model="dot", opt="sgd", bs=256), ratings, end=1e4)
    assert run.diverged and len(run.lr) < run.steps
    assert run.smooth[-1] > DIVERGED * run.smooth[:-1].min() or not math.isfinite(run.smooth[-1])
    assert np.all(run.smooth[:-1] <= DIVERGED * np.minimum.accumulate(run.smooth[:-1]))
    assert run.lr[0] <= run.suggestion <= run.lr[-1]
    assert "stopped at step" in lr_find_records(run, Config(model="dot", opt="sgd")).ended


@pytest.mark.parametrize("kw, message", [
    (dict(start=1.0, end=0.1), "0 < start < end"), (dict(steps=1), "at least 2 steps")])
def test_a_bad_range_says_why(ratings, kw, message):
    with pytest.raises(CfxlError, match=message):
        lr_find(Config(), ratings, **kw)


def test_the_text_names_the_run_and_the_suggestion(found):
    text = report.lr_find_text(lr_find_records(found, Config()))
    lines = text.splitlines()
    assert lines[0] == ("lr finder: dotbias, 50 factors, adam, batch size 1024, weight decay "
                        "0.0001, lr from 1e-07 towards 10; ran all 60 steps")
    assert lines[1].split() == ["step", "lr", "loss", "smoothed", "loss"]
    assert sum("<- suggested" in line for line in lines) == 1
    assert lines[-1] == (f"suggested lr: {found.suggestion:.3g} (fastai's valley rule, step "
                         f"{found.suggested + 1})")


def test_the_command_writes_the_plot_and_the_sheet_once(tmp_path):
    runner = CliRunner()
    args = ["lr-find", "--steps", "30", "-o", str(tmp_path / "lr.png"), "--xlsx",
            str(tmp_path / "lr.xlsx")]
    done = runner.invoke(cli, args)
    assert done.exit_code == 0, done.output
    assert done.output.splitlines()[-3].startswith("suggested lr: ")
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert openpyxl.load_workbook(tmp_path / "lr.xlsx").sheetnames[0] == "lr_find"
    again = runner.invoke(cli, args)
    assert again.exit_code == 1 and "lr.png exists; pass --force" in again.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr.png", "lr.xlsx"]


def test_a_plot_that_fails_leaves_nothing(found, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def fail(self, *args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Figure, "savefig", fail)
    with pytest.raises(CfxlError):
        report.plot_lr_find(lr_find_records(found, Config()), tmp_path / "lr.png")
    assert list(tmp_path.iterdir()) == []


def test_without_matplotlib_the_plot_is_refused_before_any_work(tmp_path, monkeypatch, no_work):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    done = CliRunner().invoke(cli, ["lr-find", "-o", str(tmp_path / "lr.png")])
    assert done.exit_code == 1
    assert done.output == ("cfxl: error: the lr finder's plot (-o) needs matplotlib: pip install "
                           "'cfxl[plot]' (or leave out -o)\n")


@pytest.fixture(scope="module")
def rec(ratings, seed):
    config = Config(seed=seed)
    return lr_find_records(lr_find(config, ratings, steps=40), config)


@pytest.fixture(scope="module")
def build(rec):
    from cfxl.sheets.lr_find import write_lr_find_sheet
    return lambda book: write_lr_find_sheet(book, rec)


@pytest.mark.recompute
def test_the_sheet_recomputes_to_the_runs_smoothing(recomputed):
    from cfxl.proof.verify import verify

    result = verify(recomputed, rtol=1e-12)
    assert result.ok and result.sheets["lr_find"].checked == 2 * 40
    assert recomputed.errors == []


@pytest.mark.recompute
def test_beta_is_live(rec, book, engine, tmp_path, save_exactly):
    from cfxl.proof.recalc import recalc
    from cfxl.sheets.lr_find import BETA_CELL, SMOOTH, TABLE
    from cfxl.sheets.refs import cell

    wb = openpyxl.load_workbook(book)
    wb["lr_find"][cell(*BETA_CELL)] = 0.9
    edited = recalc(save_exactly(wb, tmp_path / "edited.xlsx"), engine=engine)
    values = edited.values["lr_find"]
    got = np.array([values[cell(TABLE + 1 + i, SMOOTH)] for i in range(rec.n_steps)])
    assert_close(got, smooth(rec.loss, 0.9), scale=rec.loss.max())
