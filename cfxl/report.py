"""The command line's reports: aligned text tables of epochs, results and checks, and the lr
finder's plot, built from the library's records (the CLI only prints or saves them)."""

from __future__ import annotations

EPOCH_COLS = [("epoch", "epoch", "d"), ("train_loss", "train_loss", ".5f"),
              ("val_loss", "val_loss", ".5f"), ("val_rmse", "val_rmse", ".5f"),
              ("lr", "lr", ".3g"), ("seconds", "seconds", ".2f"), ("mark", "best", "s")]
LESSON_COLS = [("model", "model", "s"), ("val_mse", "val MSE", ".4f"),
               ("val_rmse", "val RMSE", ".4f"), ("seconds", "seconds", ".1f")]
LR_COLS = [("step", "step", "d"), ("lr", "lr", ".3g"), ("loss", "loss", ".5f"),
           ("smooth", "smoothed loss", ".5f"), ("mark", "", "s")]
CHECK_COLS = [("sheet", "sheet", "s"), ("checked", "cells", ",d"),
              ("max_rel_err", "max rel err", ".2g")]


def format_table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    """Rows as an aligned text table; cols are (key, header, format)."""
    cells = [[h for _, h, _ in cols]] + [[format(r[k], f) for k, _, f in cols] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


def count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' * (n != 1)}"


def epoch_printer(echo):
    """on_epoch for fit: echo a table row per epoch, its header before the first."""
    shown = {"header": False}

    def on_epoch(row: dict) -> None:
        row = {**row, "mark": "*" if row.get("best") else ""}
        head, line = format_table([row], EPOCH_COLS).splitlines()
        if not shown["header"]:
            echo(head)
            shown["header"] = True
        echo(line)
    return on_epoch


def kept_line(trained) -> str | None:
    """Which epoch's weights the model holds and why, under its epoch table (the rows marked
    best had the lowest validation loss so far); None without a validation split."""
    h, c = trained.history, trained.config
    if not h or not any(r.get("best") for r in h):
        return None
    kept = trained.kept
    best = min(h, key=lambda r: r["val_loss"])
    n = c.n_epochs
    lines = []
    if len(h) < n:
        lines.append(f"stopped early after epoch {len(h)} of {n}: no lower validation loss in "
                     f"{c.patience} epoch{'s' * (c.patience != 1)} (--patience)")
    if c.keep_best:
        restored = "; its weights restored" if kept["epoch"] != len(h) else ""
        lines.append(f"kept epoch {kept['epoch']} (val RMSE {kept['val_rmse']:.5f}), the lowest "
                     f"validation loss{restored}")
    else:
        lines.append(f"kept the last epoch, {kept['epoch']} (val RMSE {kept['val_rmse']:.5f})"
                     + (f"; epoch {best['epoch']} was lower ({best['val_rmse']:.5f}: "
                        "--keep-best keeps it)" if best is not kept else ""))
    return "\n".join(lines)


def lesson_printer(echo):
    """on_start for cfxl.workbooks.run_lesson: a heading per model, then its epoch table."""
    def on_start(name: str, config) -> object:
        echo(f"\n{name}: {config.opt}, schedule {config.schedule}, "
             f"weight decay {config.weight_decay:g}")
        return epoch_printer(echo)
    return on_start


def ratings_line(data) -> str:
    """What was read; the embedded sample says that it is one (synthetic, not MovieLens)."""
    return (f"{data.source}: {len(data):,} ratings, {data.n_users:,} users, "
            f"{data.n_movies:,} movies{_sample(data)}")


def _sample(data) -> str:
    from cfxl.data.sample import RATINGS_CSV
    return " (the embedded sample: synthetic, MovieLens-shaped)" * (
        str(data.source) == str(RATINGS_CSV))


def ratings_info(data) -> str:
    lo, hi = data.rating_range
    return (f"file:     {data.source}{_sample(data)}\nratings:  {len(data):,}\n"
            f"users:    {data.n_users:,}\n"
            f"movies:   {data.n_movies:,}\nrange:    {lo:g} to {hi:g}\n"
            f"titles:   {'yes' if data.titles is not None else 'no'}")


def duplicates_note(data) -> str | None:
    """What reading changed: duplicate ratings dropped, titles cut to fit a cell; None if nothing."""
    notes = []
    if data.dropped_duplicates:
        notes.append(f"note: {data.source}: dropped {data.dropped_duplicates:,} duplicate "
                     "(user, movie) ratings, keeping the last of each")
    if data.cut_titles:
        notes.append(f"note: {data.titles.attrs['source']}: {count(data.cut_titles, 'title')} "
                     "(or genres) longer than a spreadsheet cell's 32,767 characters cut to fit, "
                     "each ending in '... [cut: N characters]'")
    return "\n".join(notes) or None


def lesson_table(models: dict) -> str:
    """Each lesson model's last validation MSE and RMSE, and its training time."""
    rows = [{"model": name, "val_mse": m.kept["val_loss"], "val_rmse": m.kept["val_rmse"],
             "seconds": sum(h["seconds"] for h in m.history)} for name, m in models.items()]
    return ("Validation after training\n" + format_table(rows, LESSON_COLS) + "\n(The lesson "
            "reports validation MSE 1.130, 0.801 and 0.781 for these models on the real "
            "ml-latest-small; numbers on other data, the synthetic sample included, do not "
            "compare with those.)")


def lr_find_text(rec, every: int = 10) -> str:
    """The lr finder's run: what ran, every `every`-th step and the suggested one, the suggestion."""
    shown = sorted({*range(0, rec.n_steps, every), rec.n_steps - 1, rec.suggested})
    rows = [{"step": i + 1, "lr": rec.lr[i], "loss": rec.loss[i], "smooth": rec.smooth[i],
             "mark": "<- suggested" if i == rec.suggested else ""} for i in shown]
    return (f"lr finder: {rec.label}; {rec.ended}\n{format_table(rows, LR_COLS)}\n"
            f"suggested lr: {rec.suggestion:.3g} (fastai's {rec.rule} rule, step "
            f"{rec.suggested + 1})")


def check_plot() -> None:
    """The PNG plot needs matplotlib (the `plot` extra): said before any work is done."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        from cfxl.errors import CfxlError
        raise CfxlError("the lr finder's plot (-o) needs matplotlib: pip install 'cfxl[plot]' "
                        "(or leave out -o)") from None


def plot_lr_find(rec, path, *, force: bool = False):
    """The smoothed loss against lr (log scale), the suggestion marked, as a PNG written
    atomically (cfxl.io.atomic_write)."""
    from matplotlib.figure import Figure

    from cfxl.io import atomic_write

    check_plot()
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.subplots()
    ax.plot(rec.lr, rec.smooth, label="smoothed loss")
    ax.plot([rec.suggestion], [rec.smooth[rec.suggested]], "o", color="tab:red",
            label=f"suggested lr {rec.suggestion:.3g} ({rec.rule})")
    ax.set_xscale("log")
    ax.set(xlabel="learning rate (log scale)", ylabel="loss (MSE)", title="lr finder")
    ax.legend()
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), force=force)


def recalc_report(done, report=None) -> tuple[str, str | None]:
    """(the text, the problems in one line or None) of a recalculation (cfxl.proof.recalc) and,
    when given, its comparison with torch (cfxl.proof.verify.Report)."""
    from cfxl.sheets.refs import on_sheet

    formulas = sum(map(len, done.formulas.values()))
    how = " (soffice --convert-to: values to 15 significant digits)" * (done.via == "convert")
    lines = [f"{done.path}: {count(formulas, 'formula')} in {count(len(done.values), 'sheet')} "
             f"recomputed by LibreOffice in {done.seconds:.2f} s{how}"]
    lines += [f"sheet {_quoted(sheet)}: {what}" for sheet, what in done.lost.items()]
    lines += [f"{on_sheet(sheet, cell)}: {text}" for sheet, cell, text in done.errors]
    problems = [f"{count(len(done.lost), 'sheet')} not read whole by LibreOffice "
                f"({', '.join(map(_quoted, done.lost))})"] if done.lost else []
    problems += [count(len(done.errors), "formula error")] if done.errors else []
    if report is not None:
        rows = [{"sheet": s, "checked": c.checked, "max_rel_err": c.max_rel_err}
                for s, c in report.sheets.items()]
        lines += [f"against torch (rtol {report.rtol:g}, atol {report.atol:g}):",
                  format_table(rows, CHECK_COLS)]
        lines += [f"{on_sheet(m.sheet, m.cell)}: LibreOffice {m.engine!r}, torch {m.torch!r}: "
                  f"{m.problem}" for m in report.failures]
        if report.failures:
            problems.append(f"{count(len(report.failures), 'cell')} off torch's values")
    if not problems:  # a failure's verdict is the error line the command ends with
        checked = sum(c.checked for c in report.sheets.values()) if report is not None else 0
        lines.append(f"ok: no formula errors; {count(checked, 'cell')} equal torch's values "
                     f"(rtol {report.rtol:g})" if report is not None else "ok: no formula errors")
    return "\n".join(lines), ", ".join(problems) or None


def _quoted(sheet: str) -> str:
    return "'" + sheet.replace("'", "''") + "'"


def evaluation_report(ev) -> str:
    """cfxl.records.evaluation.Evaluation as text: the model beside the baselines, then how its
    error spreads over users and movies."""
    rows = [{"name": s.name, "rmse": s.rmse, "mae": s.mae} for s in ev.scores]
    spread = [{"who": f"per {who} ({n:,})", **{f"q{q}": v for q, v in rmse.items()}}
              for who, n, rmse in (("user", ev.n_users, ev.user_rmse),
                                   ("movie", ev.n_movies, ev.movie_rmse))]
    scores = [("name", "predictor", "s"), ("rmse", "RMSE", ".4f"), ("mae", "MAE", ".4f")]
    quantiles = [(f"q{q}", f"{q:.0%} RMSE", ".4f") for q in ev.user_rmse]
    return "\n".join([
        f"validation: {ev.n_valid:,} ratings held out ({ev.n_train:,} trained on)",
        format_table(rows, scores), "",
        "the model's RMSE over each user's (movie's) validation ratings, quantiles:",
        format_table(spread, [("who", "", "s"), *quantiles])])
